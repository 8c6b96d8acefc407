//! Cross-encoder inference: BERT reading the query and a passage together, with a one-logit
//! head, as Hugging Face's `BertForSequenceClassification` with `num_labels = 1` (the layout of
//! sentence-transformers' `CrossEncoder`; Nogueira & Cho 2019, "Passage Re-ranking with BERT"):
//!
//! `score(q, p) = w · tanh(W_pool h_[CLS] + b_pool) + b`, on the input `[CLS] q [SEP] p [SEP]`
//! (token types 0 for `[CLS] q [SEP]`, 1 for `p [SEP]`).
//!
//! It runs on the same packed forward as [`Encoder`](crate::Encoder) (no padding; attention per
//! pair). Training lives in the `hybrid-search-train` crate, which writes the directories this
//! type loads.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use tokenizers::{Encoding, Tokenizer, TruncationDirection};

use crate::bert::{Bert, HfBert, WeightFormat};
use crate::encoder::{describe, load_tokenizer};
use crate::error::{Error, Result};

/// The head's tensors, as a saved `BertForSequenceClassification` names them.
pub const HEAD_NAMES: [&str; 4] = [
    "pooler.dense.weight",
    "pooler.dense.bias",
    "classifier.weight",
    "classifier.bias",
];

/// A query-passage pair as the cross-encoder reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairInput {
    /// Token ids: `[CLS] query [SEP] passage [SEP]` (or the tokenizer's pair template).
    pub ids: Vec<u32>,
    /// Token types: 0 for the query part, 1 for the passage part (all 0 for a model with one
    /// token type).
    pub type_ids: Vec<u32>,
    /// Query tokens kept (special tokens not counted).
    pub query_tokens: usize,
    /// Passage tokens kept (special tokens not counted).
    pub passage_tokens: usize,
}

/// How many query and passage tokens fit in `room` tokens (the maximum length less the
/// special tokens): `(query kept, passage kept)`.
///
/// The passage is truncated (its end dropped) and the query kept whole, unless the query is
/// longer than both half the room and what the passage leaves: then it is cut to that larger
/// amount, so a very long query cannot crowd the passage out entirely.
/// `query kept = min(q, max(room - p, room / 2))`, `passage kept = min(p, room - query kept)`.
pub fn pair_budget(query_len: usize, passage_len: usize, room: usize) -> (usize, usize) {
    let query = query_len.min(room.saturating_sub(passage_len).max(room / 2));
    let passage = passage_len.min(room - query);
    (query, passage)
}

/// How a tokenizer turns a query and a passage into one input of at most `max_len` tokens.
#[derive(Clone)]
pub struct PairTokenizer {
    tokenizer: Tokenizer,
    path: PathBuf,
    max_len: usize,
    /// Special tokens the tokenizer adds to a pair (3 for BERT).
    pair_specials: usize,
    /// Whether the model has a second token type (else every type id is 0).
    typed: bool,
}

impl PairTokenizer {
    /// Pairs from `tokenizer` (read from `path`, named in errors), cut to `max_len` tokens;
    /// `typed`: whether the model has a token type for the passage part.
    ///
    /// # Errors
    ///
    /// [`Error::Model`] when the tokenizer has no pair template.
    pub fn new(tokenizer: Tokenizer, path: &Path, max_len: usize, typed: bool) -> Result<Self> {
        let pair_specials = tokenizer
            .post_process(Encoding::default(), Some(Encoding::default()), true)
            .map_err(|e| Error::Model {
                path: path.to_path_buf(),
                message: format!("cannot build a query-passage pair ({e})"),
            })?
            .len();
        Ok(Self {
            tokenizer,
            path: path.to_path_buf(),
            max_len,
            pair_specials,
            typed,
        })
    }

    /// The maximum input length in tokens, special tokens included.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Special tokens the tokenizer adds to a pair (3 for BERT).
    pub fn pair_specials(&self) -> usize {
        self.pair_specials
    }

    /// Sets the maximum input length; it must be more than [`PairTokenizer::pair_specials`] and
    /// at most `max_positions` (the model's).
    ///
    /// # Errors
    ///
    /// [`Error::Model`] when `max_len` is out of that range.
    pub fn set_max_len(&mut self, max_len: usize, max_positions: usize) -> Result<()> {
        if max_len <= self.pair_specials || max_len > max_positions {
            return Err(Error::Model {
                path: self.path.clone(),
                message: format!(
                    "a cross-encoder length of {max_len} tokens is not possible: it must be \
                     more than {} and at most the model's {max_positions} positions",
                    self.pair_specials,
                ),
            });
        }
        self.max_len = max_len;
        Ok(())
    }

    fn plain(&self, text: &str) -> Result<Encoding> {
        self.tokenizer
            .encode(text, false)
            .map_err(|e| Error::Model {
                path: self.path.clone(),
                message: format!("tokenizing: {e}"),
            })
    }

    /// The model's input for a pair, at most [`PairTokenizer::max_len`] tokens, truncated as
    /// [`pair_budget`] says (the passage first; the query only when it alone would take more
    /// than half).
    ///
    /// # Errors
    ///
    /// [`Error::Model`] when the tokenizer fails.
    pub fn pair(&self, query: &str, passage: &str) -> Result<PairInput> {
        let mut q = self.plain(query)?;
        let mut p = self.plain(passage)?;
        let room = self.max_len.saturating_sub(self.pair_specials);
        let (query_tokens, passage_tokens) = pair_budget(q.len(), p.len(), room);
        for (enc, keep) in [(&mut q, query_tokens), (&mut p, passage_tokens)] {
            enc.truncate(keep, 0, TruncationDirection::Right);
            enc.take_overflowing();
        }
        let pair = self
            .tokenizer
            .post_process(q, Some(p), true)
            .map_err(|e| Error::Model {
                path: self.path.clone(),
                message: format!("building a query-passage pair: {e}"),
            })?;
        let ids = pair.get_ids().to_vec();
        let type_ids = if self.typed {
            pair.get_type_ids().to_vec()
        } else {
            vec![0; ids.len()]
        };
        Ok(PairInput {
            ids,
            type_ids,
            query_tokens,
            passage_tokens,
        })
    }
}

/// A cross-encoder reranker loaded for scoring (see the module documentation).
pub struct CrossEncoder {
    dir: PathBuf,
    bert: Bert,
    pairs: PairTokenizer,
    /// `(hidden, hidden)`, `(hidden,)`, `(1, hidden)`, `(1,)`.
    head: [Tensor; 4],
}

impl CrossEncoder {
    /// Loads a reranker directory written by `hybrid-search train-reranker` (any BERT
    /// `BertForSequenceClassification` directory with one label: `config.json`,
    /// `model.safetensors` or `pytorch_model.bin` with the pooler and classifier,
    /// `tokenizer.json`) on `device`.
    ///
    /// # Errors
    ///
    /// [`Error::Model`] when the directory is not such a model (no head tensors, a head of
    /// more than one label, unsupported configuration), [`Error::Io`] or [`Error::Candle`]
    /// when its files cannot be read.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        Self::load_with(dir, device, WeightFormat::F32)
    }

    /// [`CrossEncoder::load`] with the body's matrices run in `format` (`Int8`: the engine's
    /// int8 path, 1.2x the f32 path for 20 reranked pairs on an AVX2 CPU,
    /// `docs/benchmarks.md`; the head stays f32).
    ///
    /// # Errors
    ///
    /// Those of [`CrossEncoder::load`].
    pub fn load_with(dir: &Path, device: &Device, format: WeightFormat) -> Result<Self> {
        let HfBert { config, map, bert } = HfBert::load(
            dir,
            device,
            format,
            "a reranker is written by `hybrid-search train-reranker`",
        )?;
        let path = map.path.clone();
        let h = config.hidden;
        let shapes: [&[usize]; 4] = [&[h, h], &[h], &[1, h], &[1]];
        let mut head = Vec::with_capacity(4);
        for (name, shape) in HEAD_NAMES.iter().zip(shapes) {
            let Some(tensor) = map.find(name) else {
                return Err(Error::Model {
                    path: path.clone(),
                    message: format!(
                        "has no tensor {name}: not a cross-encoder (train one with \
                         `hybrid-search train-reranker`)"
                    ),
                });
            };
            if tensor.dims() != shape {
                return Err(Error::Model {
                    path: path.clone(),
                    message: format!(
                        "tensor {name} has shape {:?}, expected {shape:?} (one label)",
                        tensor.dims()
                    ),
                });
            }
            head.push(
                tensor
                    .to_dtype(DType::F32)
                    .map_err(|e| Error::candle(&path, e))?,
            );
        }
        let head: [Tensor; 4] = head.try_into().map_err(|_| Error::Model {
            path: path.clone(),
            message: "incomplete classification head".into(),
        })?;
        let max_len = describe(dir, h, config.max_positions)?.max_seq_length;
        let pairs = PairTokenizer::new(
            load_tokenizer(dir)?,
            &dir.join("tokenizer.json"),
            max_len,
            config.type_vocab >= 2,
        )?;
        Ok(Self {
            dir: dir.to_path_buf(),
            bert,
            pairs,
            head,
        })
    }

    /// The directory the reranker was loaded from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How pairs are tokenised and cut.
    pub fn pairs(&self) -> &PairTokenizer {
        &self.pairs
    }

    /// Relevance logits of `passages` for `query`, in the order given (higher is more
    /// relevant; apply a sigmoid for sentence-transformers' 0..1 scores), computed in batches
    /// of 32 pairs. A passage's logit does not depend on the others.
    ///
    /// # Errors
    ///
    /// [`Error::Model`] when tokenising fails, [`Error::Candle`] when the forward pass does.
    pub fn score(&self, query: &str, passages: &[&str]) -> Result<Vec<f32>> {
        const BATCH: usize = 32;
        let inputs = passages
            .iter()
            .map(|p| self.pairs.pair(query, p))
            .collect::<Result<Vec<_>>>()?;
        let mut scores = Vec::with_capacity(inputs.len());
        for chunk in inputs.chunks(BATCH) {
            let logits = self
                .logits(chunk)
                .and_then(|t| t.to_vec1::<f32>())
                .map_err(|e| Error::candle(&self.dir, e))?;
            scores.extend(logits);
        }
        Ok(scores)
    }

    /// One logit per pair, `(n,)`.
    fn logits(&self, inputs: &[PairInput]) -> candle_core::Result<Tensor> {
        let ids: Vec<&[u32]> = inputs.iter().map(|p| p.ids.as_slice()).collect();
        let types: Vec<&[u32]> = inputs.iter().map(|p| p.type_ids.as_slice()).collect();
        let hidden = self.bert.forward_typed(&ids, Some(&types))?;
        let cls = Bert::pool(&hidden, &ids, crate::encoder::Pooling::Cls)?;
        let [pw, pb, cw, cb] = &self.head;
        let pooled = cls.matmul(&pw.t()?)?.broadcast_add(pb)?.tanh()?;
        pooled.matmul(&cw.t()?)?.broadcast_add(cb)?.squeeze(1)
    }
}
