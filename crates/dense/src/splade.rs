//! SPLADE: a learned sparse encoder (Formal et al., "SPLADE v2: Sparse lexical and expansion
//! model for information retrieval", 2021). A BERT masked-language model reads the text; each
//! token's vocabulary logits go through `log(1 + relu(x))`, and the text's weight for each
//! vocabulary term is the maximum over its tokens:
//!
//! `w_j = max_i log(1 + relu(logit_ij))`, `logit_i = E · LN(gelu(W h_i + b)) + c`
//!
//! with `h_i` the last hidden state of token `i`, `W, b` the masked-language head's transform,
//! `LN` its layer norm, `E` the word embedding table (the decoder tied to it, as Hugging Face's
//! `BertForMaskedLM` saves it) and `c` the decoder's bias. Most weights are 0: a passage of
//! SPLADE-tiny has about 200 non-zero terms, a query about 15. Queries and documents are encoded
//! alike. The body runs on the same packed forward as [`Encoder`](crate::Encoder), in the
//! weight format asked for. The head's vocabulary product (`hidden x vocab` per token, about
//! 95% of the work for SPLADE-tiny) runs in f32 on the CPU's packed GEMM, a text at a time;
//! other devices run it through candle.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::LayerNorm;
use tokenizers::{Encoding, Tokenizer};

use crate::bert::{Bert, HfBert, WeightFormat};
use crate::encoder::load_tokenizer;
use crate::error::{Error, Result};

/// The masked-language head's tensors, as a saved `BertForMaskedLM` names them (the decoder
/// is tied to the word embeddings and not saved).
pub const MLM_HEAD_NAMES: [&str; 5] = [
    "cls.predictions.transform.dense.weight",
    "cls.predictions.transform.dense.bias",
    "cls.predictions.transform.LayerNorm.weight",
    "cls.predictions.transform.LayerNorm.bias",
    "cls.predictions.bias",
];

/// A text's SPLADE vector: `(vocabulary id, weight)` for each term whose weight is above 0,
/// by id ascending.
pub type SpladeVector = Vec<(u32, f32)>;

/// A SPLADE encoder loaded for inference (see the module documentation).
pub struct SpladeEncoder {
    dir: PathBuf,
    bert: Bert,
    tokenizer: Tokenizer,
    /// The head's transform `(hidden, hidden)` and bias `(hidden,)`.
    transform: (Tensor, Tensor),
    norm: LayerNorm,
    /// The tied decoder: the word embeddings, `(vocab, hidden)`.
    decoder: Tensor,
    /// The decoder's bias, `(vocab,)`.
    decoder_bias: Tensor,
    /// The decoder packed for the CPU (the tied word embeddings and the bias), when on the CPU.
    cpu_head: Option<crate::fused::CpuLinear>,
    vocab: usize,
    max_len: usize,
}

impl SpladeEncoder {
    /// Loads a `BertForMaskedLM` directory (`config.json`, `model.safetensors` or
    /// `pytorch_model.bin`, `tokenizer.json`) with the body's matrices run in `format` on
    /// `device`. Inputs are cut to the model's positions (512 for SPLADE-tiny).
    ///
    /// # Errors
    ///
    /// [`Error::Model`] when the directory is not such a model (no masked-language head, an
    /// unsupported configuration); [`Error::Io`] or [`Error::Candle`] when its files cannot be
    /// read.
    pub fn load(dir: &Path, device: &Device, format: WeightFormat) -> Result<Self> {
        let HfBert { config, map, bert } = HfBert::load(
            dir,
            device,
            format,
            "scripts/fetch-models.sh lays out SPLADE-tiny in models/splade-tiny",
        )?;
        let path = map.path.clone();
        let (h, vocab) = (config.hidden, config.vocab);
        let tensor = |name: &str, shape: &[usize]| -> Result<Tensor> {
            let found = map.find(name).ok_or_else(|| Error::Model {
                path: path.clone(),
                message: format!(
                    "has no tensor {name}: not a masked-language model (SPLADE needs \
                         BertForMaskedLM's head)"
                ),
            })?;
            if found.dims() != shape {
                return Err(Error::Model {
                    path: path.clone(),
                    message: format!(
                        "tensor {name} has shape {:?}, expected {shape:?}",
                        found.dims()
                    ),
                });
            }
            found
                .to_dtype(DType::F32)
                .map_err(|e| Error::candle(&path, e))
        };
        let [dense_w, dense_b, norm_w, norm_b, bias] = MLM_HEAD_NAMES;
        let transform = (tensor(dense_w, &[h, h])?, tensor(dense_b, &[h])?);
        let norm = LayerNorm::new(tensor(norm_w, &[h])?, tensor(norm_b, &[h])?, config.eps);
        let decoder = tensor(crate::bert::tensor_names::WORD_EMBEDDINGS, &[vocab, h])?;
        let decoder_bias = tensor(bias, &[vocab])?;
        let cpu_head = if device.is_cpu() {
            let fail = |e| Error::candle(&path, e);
            let c = decoder_bias.to_vec1::<f32>().map_err(fail)?;
            let values = decoder
                .flatten_all()
                .and_then(|t| t.to_vec1::<f32>())
                .map_err(fail)?;
            // f32 in every format: the int8 kernel was slower on this shape (27.3 against 32.6
            // SciFact passages/s, docs/benchmarks.md) and less exact.
            Some(crate::fused::CpuLinear::f32(&values, vocab, c))
        } else {
            None
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            bert,
            tokenizer: load_tokenizer(dir)?,
            transform,
            norm,
            decoder,
            decoder_bias,
            cpu_head,
            vocab,
            max_len: config.max_positions,
        })
    }

    /// The directory the model was loaded from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The vocabulary term of id `id` (`None` past the vocabulary).
    pub fn term(&self, id: u32) -> Option<String> {
        self.tokenizer.id_to_token(id)
    }

    /// The token ids the model reads for `text`: `[CLS] text [SEP]`, the text cut so that the
    /// whole fits the model's positions.
    ///
    /// # Errors
    ///
    /// [`Error::Model`] when tokenising fails.
    pub fn tokenize(&self, text: &str) -> Result<Vec<u32>> {
        let fail = |e: tokenizers::Error| Error::Model {
            path: self.dir.join("tokenizer.json"),
            message: format!("tokenizing: {e}"),
        };
        let mut plain = self.tokenizer.encode(text, false).map_err(fail)?;
        let specials = self
            .tokenizer
            .post_process(Encoding::default(), None, true)
            .map_err(fail)?
            .len();
        plain.truncate(
            self.max_len.saturating_sub(specials),
            0,
            tokenizers::TruncationDirection::Right,
        );
        plain.take_overflowing();
        let full = self
            .tokenizer
            .post_process(plain, None, true)
            .map_err(fail)?;
        Ok(full.get_ids().to_vec())
    }

    /// The SPLADE vector of each text, in order (see the module documentation). Texts are
    /// read by the body 16 at a time; each text's vocabulary logits are computed and reduced
    /// on their own, so memory stays at one text's `tokens x vocab` floats.
    ///
    /// # Errors
    ///
    /// [`Error::Model`] when tokenising fails, [`Error::Candle`] when the forward pass does.
    pub fn encode(&self, texts: &[&str]) -> Result<Vec<SpladeVector>> {
        const BATCH: usize = 16;
        let ids = texts
            .iter()
            .map(|t| self.tokenize(t))
            .collect::<Result<Vec<_>>>()?;
        let mut out = Vec::with_capacity(texts.len());
        for chunk in ids.chunks(BATCH) {
            let seqs: Vec<&[u32]> = chunk.iter().map(Vec::as_slice).collect();
            let vectors = self
                .vectors(&seqs)
                .map_err(|e| Error::candle(&self.dir, e))?;
            out.extend(vectors);
        }
        Ok(out)
    }

    fn vectors(&self, seqs: &[&[u32]]) -> candle_core::Result<Vec<SpladeVector>> {
        use candle_core::Module;
        let hidden = self.bert.forward(seqs)?;
        let (w, b) = &self.transform;
        let transformed = hidden.matmul(&w.t()?)?.broadcast_add(b)?.gelu_erf()?;
        let transformed = self.norm.forward(&transformed)?;
        let h = transformed.dim(1)?;
        let rows = match &self.cpu_head {
            Some(_) => Some(transformed.flatten_all()?.to_vec1::<f32>()?),
            None => None,
        };
        let mut logits = Vec::new();
        let mut out = Vec::with_capacity(seqs.len());
        let mut offset = 0;
        for s in seqs {
            // max_i log(1 + relu(x)) = log(1 + relu(max_i x)): both are monotone.
            let best = match (&self.cpu_head, &rows) {
                (Some(head), Some(rows)) => {
                    let x = &rows[offset * h..(offset + s.len()) * h];
                    logits.resize(s.len() * self.vocab, 0.0);
                    head.forward_into(x, &mut logits, false)?;
                    let mut best = vec![f32::NEG_INFINITY; self.vocab];
                    for row in logits.chunks_exact(self.vocab) {
                        for (b, x) in best.iter_mut().zip(row) {
                            *b = b.max(*x);
                        }
                    }
                    best
                }
                _ => transformed
                    .narrow(0, offset, s.len())?
                    .matmul(&self.decoder.t()?)?
                    .broadcast_add(&self.decoder_bias)?
                    .max(0)?
                    .to_vec1::<f32>()?,
            };
            offset += s.len();
            let vector = best
                .iter()
                .enumerate()
                .filter(|(_, x)| **x > 0.0)
                .map(|(id, x)| (id as u32, x.ln_1p()))
                .collect();
            out.push(vector);
        }
        Ok(out)
    }
}
