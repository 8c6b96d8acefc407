//! BERT rebuilt from differentiable candle operations, for training.
//!
//! The inference model (`crate::bert`) runs fused kernels (`QMatMul`, a packed layer norm, a
//! polynomial softmax and GELU) that candle cannot differentiate. Here every step is an
//! ordinary tensor operation with a backward pass: matrix products, `index_select` for the
//! embeddings, LayerNorm written out (`candle_nn::ops::layer_norm_slow`; candle-nn's
//! `LayerNorm` module and `softmax_last_dim` take kernels without gradients for contiguous
//! inputs), `Tensor::gelu_erf`, and for the attention softmax a fused operation with its own
//! backward pass (`ops.rs`). Sequences are padded to the longest of the batch and padding is
//! masked out of attention and mean pooling.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use candle_core::{D, DType, Device, Tensor, Var};
use candle_nn::VarMap;
use tokenizers::{Encoding, Tokenizer};

use super::ops::attention_probs;
use super::{Rng, save};
use hybrid_search_dense::model::{
    Activation, BertConfig, HfConfig, Stored, TensorMap, WeightSource, hf_weights_file,
};
use hybrid_search_dense::model::{describe, load_tokenizer, tensor_names};
use hybrid_search_dense::{Error, Result};
use hybrid_search_dense::{ModelDescription, Pooling, TextKind};

/// `x Wᵀ + b`, on rows.
pub(crate) struct Linear {
    pub(crate) weight: Tensor,
    pub(crate) bias: Tensor,
}

impl Linear {
    pub(crate) fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.matmul(&self.weight.t()?)?.broadcast_add(&self.bias)
    }
}

/// LayerNorm over the last dimension, from differentiable operations.
struct Norm {
    weight: Tensor,
    bias: Tensor,
    eps: f32,
}

impl Norm {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        candle_nn::ops::layer_norm_slow(x, &self.weight, &self.bias, self.eps)
    }
}

struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    attention_out: Linear,
    attention_norm: Norm,
    intermediate: Linear,
    output: Linear,
    output_norm: Norm,
}

/// Inverted dropout with a mask drawn from `rng`: each element is zeroed with probability `p`
/// and the others scaled by `1 / (1 - p)`. Without a generator (evaluation) it is the identity.
pub(crate) fn dropout(x: &Tensor, p: f32, rng: Option<&mut Rng>) -> candle_core::Result<Tensor> {
    match rng {
        Some(rng) if p > 0.0 => {
            let keep = 1.0 / (1.0 - p);
            let mask: Vec<f32> = (0..x.elem_count())
                .map(|_| if rng.uniform_f32() < p { 0.0 } else { keep })
                .collect();
            x * Tensor::from_vec(mask, x.shape(), x.device())?
        }
        _ => Ok(x.clone()),
    }
}

/// Rows divided by their L2 norm.
pub(crate) fn l2_normalize(x: &Tensor) -> candle_core::Result<Tensor> {
    // The tiny constant keeps the square root differentiable at 0 without moving real norms.
    let norm = x
        .sqr()?
        .sum_keepdim(D::Minus1)?
        .affine(1.0, 1e-24)?
        .sqrt()?;
    x.broadcast_div(&norm)
}

/// The rows of `pooled` over `ids` taken `batch_size` at a time, in order: how a trainable
/// encoder gives the vectors its saved model would.
pub(crate) fn encode_in_batches(
    ids: &[Vec<u32>],
    batch_size: usize,
    pooled: impl Fn(&[&[u32]]) -> candle_core::Result<Tensor>,
) -> candle_core::Result<Vec<Vec<f32>>> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(batch_size.max(1)) {
        let seqs: Vec<&[u32]> = chunk.iter().map(Vec::as_slice).collect();
        out.extend(pooled(&seqs)?.to_vec2::<f32>()?);
    }
    Ok(out)
}

/// A padded batch: token ids, token types and the attention mask, `(batch, longest)`.
pub(crate) struct Batch {
    pub(crate) ids: Tensor,
    pub(crate) types: Tensor,
    pub(crate) mask: Tensor,
}

impl Batch {
    /// Pads `seqs` (token types 0, or `types`) with id 0 to the longest.
    pub(crate) fn new(
        seqs: &[&[u32]],
        types: Option<&[&[u32]]>,
        device: &Device,
    ) -> candle_core::Result<Self> {
        let b = seqs.len();
        let l = seqs.iter().map(|s| s.len()).max().unwrap_or(0).max(1);
        let mut ids = vec![0u32; b * l];
        let mut type_ids = vec![0u32; b * l];
        let mut mask = vec![0f32; b * l];
        for (i, s) in seqs.iter().enumerate() {
            ids[i * l..i * l + s.len()].copy_from_slice(s);
            mask[i * l..i * l + s.len()].fill(1.0);
            if let Some(types) = types {
                type_ids[i * l..i * l + types[i].len()].copy_from_slice(types[i]);
            }
        }
        Ok(Self {
            ids: Tensor::from_vec(ids, (b, l), device)?,
            types: Tensor::from_vec(type_ids, (b, l), device)?,
            mask: Tensor::from_vec(mask, (b, l), device)?,
        })
    }
}

/// Parameter names as Hugging Face's `BertModel` writes them: no `bert.` prefix, LayerNorm
/// `weight`/`bias` rather than the old `gamma`/`beta`.
pub(crate) fn canonical(name: &str) -> String {
    name.strip_prefix("bert.")
        .unwrap_or(name)
        .replace("LayerNorm.gamma", "LayerNorm.weight")
        .replace("LayerNorm.beta", "LayerNorm.bias")
}

/// Turns checkpoint tensors into trainable variables, remembering their names.
struct Loader<'a> {
    map: &'a TensorMap,
    device: &'a Device,
    vars: Vec<(String, Var)>,
}

impl Loader<'_> {
    fn param(&mut self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let fail = |e| Error::candle(&self.map.path, e);
        let tensor = match self.map.get(name, shape, self.device)? {
            Stored::F32(t) => t,
            Stored::Quantized(q) => q.dequantize(self.device).map_err(fail)?,
        };
        let var = Var::from_tensor(&tensor).map_err(fail)?;
        let tensor = var.as_tensor().clone();
        self.vars.push((name.to_string(), var));
        Ok(tensor)
    }

    fn linear(&mut self, name: &str, out: usize, inp: usize) -> Result<Linear> {
        Ok(Linear {
            weight: self.param(&format!("{name}.weight"), &[out, inp])?,
            bias: self.param(&format!("{name}.bias"), &[out])?,
        })
    }

    fn norm(&mut self, name: &str, h: usize, eps: f64) -> Result<Norm> {
        Ok(Norm {
            weight: self.param(&format!("{name}.weight"), &[h])?,
            bias: self.param(&format!("{name}.bias"), &[h])?,
            eps: eps as f32,
        })
    }
}

fn read_json(path: &Path) -> Result<serde_json::Value> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Model {
        path: path.to_path_buf(),
        message: format!("not valid JSON ({e})"),
    })
}

/// A BERT-family encoder whose weights are trainable `candle_core::Var`s in a
/// `candle_nn::VarMap` (f32), loaded from a model directory with `config.json` and
/// `model.safetensors` (or `pytorch_model.bin`), weight names as in Hugging Face's `BertModel`
/// with or without a `bert.` prefix. It computes what [`Encoder`](crate::Encoder) computes for
/// the same directory (same tokens, pooling, normalisation and prefixes), with gradients.
///
/// Tensors of the checkpoint that the encoder does not use (a pooler, `position_ids`) are kept
/// and written back unchanged by [`TrainableBert::save`].
pub struct TrainableBert {
    dir: PathBuf,
    config: BertConfig,
    config_json: serde_json::Value,
    description: ModelDescription,
    tokenizer: Tokenizer,
    varmap: VarMap,
    /// Parameter names in model order (the `VarMap` is a hash map).
    names: Vec<String>,
    extras: Vec<(String, Tensor)>,
    word: Tensor,
    positions: Tensor,
    token_types: Tensor,
    embedding_norm: Norm,
    layers: Vec<Layer>,
    hidden_dropout: f32,
    attention_dropout: f32,
    device: Device,
}

impl TrainableBert {
    /// Loads the model directory `dir` on `device`.
    ///
    /// # Errors
    ///
    /// [`Error::Model`] when `dir` is not a BERT-family model directory (what is missing or
    /// unsupported is named); [`Error::Io`] or [`Error::Candle`] when its files cannot be read.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        if !dir.is_dir() {
            return Err(Error::Model {
                path: dir.to_path_buf(),
                message: "no such model directory".into(),
            });
        }
        let config_path = dir.join("config.json");
        let config_json = read_json(&config_path)?;
        let hf: HfConfig =
            serde_json::from_value(config_json.clone()).map_err(|e| Error::Model {
                path: config_path.clone(),
                message: format!("not a BERT-family config.json ({e})"),
            })?;
        let config = hf.to_config().map_err(|message| Error::Model {
            path: config_path.clone(),
            message,
        })?;
        // Hugging Face's BertConfig defaults both dropout rates to 0.1.
        let rate = |key: &str| {
            config_json
                .get(key)
                .and_then(serde_json::Value::as_f64)
                .unwrap_or(0.1) as f32
        };
        let (hidden_dropout, attention_dropout) = (
            rate("hidden_dropout_prob"),
            rate("attention_probs_dropout_prob"),
        );
        let Some(path) = hf_weights_file(dir) else {
            return Err(Error::Model {
                path: dir.to_path_buf(),
                message: "has no f32 weights to train: expected model.safetensors or \
                          pytorch_model.bin (packed Q4_0 models cannot be trained)"
                    .into(),
            });
        };
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        let map = TensorMap::read(&path, &bytes, device)?;
        let mut l = Loader {
            map: &map,
            device,
            vars: Vec::new(),
        };
        let (h, ff) = (config.hidden, config.intermediate);
        let word = l.param(tensor_names::WORD_EMBEDDINGS, &[config.vocab, h])?;
        let positions = l.param(
            tensor_names::POSITION_EMBEDDINGS,
            &[config.max_positions + config.position_offset, h],
        )?;
        let token_types = l.param(tensor_names::TOKEN_TYPE_EMBEDDINGS, &[config.type_vocab, h])?;
        let embedding_norm = l.norm(tensor_names::EMBEDDING_NORM, h, config.eps)?;
        let mut layers = Vec::with_capacity(config.layers);
        for i in 0..config.layers {
            let names = tensor_names::layer(i);
            layers.push(Layer {
                query: l.linear(&names.projection("query"), h, h)?,
                key: l.linear(&names.projection("key"), h, h)?,
                value: l.linear(&names.projection("value"), h, h)?,
                attention_out: l.linear(&names.attention_out, h, h)?,
                attention_norm: l.norm(&names.attention_norm, h, config.eps)?,
                intermediate: l.linear(&names.intermediate, ff, h)?,
                output: l.linear(&names.output, h, ff)?,
                output_norm: l.norm(&names.output_norm, h, config.eps)?,
            });
        }
        let vars = l.vars;
        let names: Vec<String> = vars.iter().map(|(n, _)| n.clone()).collect();
        let used: HashSet<&str> = names.iter().map(String::as_str).collect();
        let mut extras: Vec<(String, Tensor)> = map
            .tensors
            .iter()
            .map(|(name, t)| (canonical(name), t.clone()))
            .filter(|(name, _)| !used.contains(name.as_str()))
            .collect();
        extras.sort_by(|a, b| a.0.cmp(&b.0));
        let varmap = VarMap::new();
        varmap
            .data()
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .extend(vars);

        let description = describe(dir, config.hidden, config.max_positions)?;
        // Inputs are truncated and batches padded (with an attention mask) here.
        let tokenizer = load_tokenizer(dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            config,
            config_json,
            description,
            tokenizer,
            varmap,
            names,
            extras,
            word,
            positions,
            token_types,
            embedding_norm,
            layers,
            hidden_dropout,
            attention_dropout,
            device: device.clone(),
        })
    }

    /// The model directory it was loaded from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Pooling, normalisation, maximum length and prefixes, as the directory describes them.
    pub fn description(&self) -> &ModelDescription {
        &self.description
    }

    /// The trainable weights, named as in Hugging Face's `BertModel`.
    pub fn varmap(&self) -> &VarMap {
        &self.varmap
    }

    /// Hidden size.
    pub fn hidden_size(&self) -> usize {
        self.config.hidden
    }

    /// Positions the model has (the longest input it can take).
    pub fn max_positions(&self) -> usize {
        self.config.max_positions
    }

    pub(crate) fn type_vocab(&self) -> usize {
        self.config.type_vocab
    }

    pub(crate) fn hidden_dropout(&self) -> f32 {
        self.hidden_dropout
    }

    pub(crate) fn device(&self) -> &Device {
        &self.device
    }

    pub(crate) fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    pub(crate) fn config_json(&self) -> &serde_json::Value {
        &self.config_json
    }

    /// Sets both dropout rates (hidden states and attention probabilities) used in training.
    pub(crate) fn set_dropout(&mut self, p: f32) {
        self.hidden_dropout = p;
        self.attention_dropout = p;
    }

    /// A candle error, reported against the model directory.
    pub(crate) fn fail(&self) -> impl Fn(candle_core::Error) -> Error + '_ {
        |e| Error::candle(&self.dir, e)
    }

    /// The trainable variables with their names, in model order.
    pub(crate) fn named_vars(&self) -> Vec<(String, Var)> {
        let data = self
            .varmap
            .data()
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        self.names
            .iter()
            .filter_map(|n| data.get(n).map(|v| (n.clone(), v.clone())))
            .collect()
    }

    /// Removes and returns a checkpoint tensor the encoder does not use (by its name without
    /// `bert.`), such as `pooler.dense.weight`.
    pub(crate) fn take_extra(&mut self, name: &str) -> Option<Tensor> {
        let i = self.extras.iter().position(|(n, _)| n == name)?;
        Some(self.extras.remove(i).1)
    }

    /// The weights to save: parameters and kept checkpoint tensors (those `keep` accepts),
    /// each name with `prefix` in front.
    pub(crate) fn tensors(
        &self,
        prefix: &str,
        keep: impl Fn(&str) -> bool,
    ) -> HashMap<String, Tensor> {
        let mut out: HashMap<String, Tensor> = self
            .named_vars()
            .into_iter()
            .map(|(n, v)| (format!("{prefix}{n}"), v.as_tensor().detach()))
            .collect();
        for (name, t) in self.extras.iter().filter(|(n, _)| keep(n)) {
            out.insert(format!("{prefix}{name}"), t.clone());
        }
        out
    }

    fn encode_text(&self, text: &str, special: bool) -> Result<Encoding> {
        self.tokenizer
            .encode(text, special)
            .map_err(|e| Error::Model {
                path: self.dir.join("tokenizer.json"),
                message: format!("tokenizing: {e}"),
            })
    }

    /// Token ids of a text as the model sees it, as
    /// [`Encoder::token_ids`](hybrid_search_dense::Encoder::token_ids) makes them: the prefix for `kind`,
    /// special tokens, and at most `max_len` tokens (the closing special token kept).
    ///
    /// # Errors
    ///
    /// [`Error::Model`] when the tokenizer fails.
    pub fn token_ids(&self, text: &str, kind: TextKind, max_len: usize) -> Result<Vec<u32>> {
        let prefix = match kind {
            TextKind::Query => &self.description.query_prefix,
            TextKind::Passage => &self.description.passage_prefix,
        };
        let ids = self
            .encode_text(&format!("{prefix}{text}"), true)?
            .get_ids()
            .to_vec();
        if ids.len() <= max_len || ids.len() < 2 {
            return Ok(ids);
        }
        let room = max_len.saturating_sub(2).max(1);
        let mut out = Vec::with_capacity(room + 2);
        out.push(ids[0]);
        out.extend_from_slice(&ids[1..1 + room]);
        out.push(ids[ids.len() - 1]);
        Ok(out)
    }

    /// Last hidden states `(batch, length, hidden)` in evaluation mode (no dropout):
    /// `input_ids` and `token_type_ids` are `(batch, length)` u32, `attention_mask` is
    /// `(batch, length)` with 1 for tokens and 0 for padding (any dtype).
    ///
    /// # Errors
    ///
    /// [`Error::Candle`] when the operations fail (mismatched shapes, say).
    pub fn forward(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        token_type_ids: &Tensor,
    ) -> Result<Tensor> {
        let mask = attention_mask.to_dtype(DType::F32).map_err(self.fail())?;
        self.forward_with(input_ids, &mask, token_type_ids, None)
            .map_err(self.fail())
    }

    /// Last hidden states as [`TrainableBert::forward`] gives them, in training mode: dropout
    /// where BERT applies it, at the rates of `config.json` (or the trainer's setting), with
    /// masks drawn from a generator seeded with `seed` (the same seed gives the same masks).
    ///
    /// # Errors
    ///
    /// [`Error::Candle`] when the operations fail (mismatched shapes, say).
    pub fn forward_train(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        token_type_ids: &Tensor,
        seed: u64,
    ) -> Result<Tensor> {
        let mask = attention_mask.to_dtype(DType::F32).map_err(self.fail())?;
        let mut rng = Rng::new(seed);
        self.forward_with(input_ids, &mask, token_type_ids, Some(&mut rng))
            .map_err(self.fail())
    }

    /// Pooled vectors `(batch, hidden)` in evaluation mode, normalised when the model says so,
    /// for inputs as [`TrainableBert::forward`] takes them (token types all 0).
    ///
    /// # Errors
    ///
    /// [`Error::Candle`] when the operations fail (ids out of the vocabulary, say).
    pub fn embed(&self, input_ids: &Tensor, attention_mask: &Tensor) -> Result<Tensor> {
        let run = || -> candle_core::Result<Tensor> {
            let batch = Batch {
                ids: input_ids.clone(),
                types: input_ids.zeros_like()?,
                mask: attention_mask.to_dtype(DType::F32)?,
            };
            self.pooled(&batch, None)
        };
        run().map_err(self.fail())
    }

    /// Embeddings of `texts` (truncated to the model's maximum length), normalised when the
    /// model says so, in batches of `batch_size`, without dropout: what
    /// [`Encoder::encode`](hybrid_search_dense::Encoder::encode) gives for a saved copy of this model.
    ///
    /// # Errors
    ///
    /// [`Error::Model`] when the tokenizer fails; [`Error::Candle`] when the forward pass fails.
    pub fn encode(
        &self,
        texts: &[&str],
        kind: TextKind,
        batch_size: usize,
    ) -> Result<Vec<Vec<f32>>> {
        let max = self.description.max_seq_length;
        let ids = texts
            .iter()
            .map(|t| self.token_ids(t, kind, max))
            .collect::<Result<Vec<_>>>()?;
        encode_in_batches(&ids, batch_size, |seqs| {
            self.pooled(&Batch::new(seqs, None, &self.device)?, None)
        })
        .map_err(self.fail())
    }

    /// Pooled vectors `(batch, hidden)`, normalised when the model says so; with a generator,
    /// in training mode (dropout).
    pub(crate) fn pooled(
        &self,
        batch: &Batch,
        rng: Option<&mut Rng>,
    ) -> candle_core::Result<Tensor> {
        let hidden = self.forward_with(&batch.ids, &batch.mask, &batch.types, rng)?;
        let pooled = match self.description.pooling {
            Pooling::Cls => hidden.narrow(1, 0, 1)?.squeeze(1)?,
            // Mean over the tokens under the mask: sum(h_t m_t) / sum(m_t).
            Pooling::Mean => hidden
                .broadcast_mul(&batch.mask.unsqueeze(2)?)?
                .sum(1)?
                .broadcast_div(&batch.mask.sum_keepdim(1)?)?,
            // describe() never gives a BERT directory last-token pooling (decoders only).
            Pooling::Last => candle_core::bail!("last-token pooling is for decoder models"),
        };
        if self.description.normalize {
            l2_normalize(&pooled)
        } else {
            Ok(pooled)
        }
    }

    /// Last hidden states `(batch, length, hidden)`; `mask` is f32. With a generator, dropout
    /// is applied where BERT applies it: after the embeddings, on the attention
    /// probabilities, and on the attention and feed-forward outputs before each residual sum.
    pub(crate) fn forward_with(
        &self,
        ids: &Tensor,
        mask: &Tensor,
        types: &Tensor,
        mut rng: Option<&mut Rng>,
    ) -> candle_core::Result<Tensor> {
        let c = &self.config;
        let (b, l) = ids.dims2()?;
        if l > c.max_positions {
            candle_core::bail!(
                "a sequence of {l} tokens is longer than the model's {} positions",
                c.max_positions
            );
        }
        let (h, heads) = (c.hidden, c.heads);
        let head_dim = h / heads;
        let (ph, pa) = (self.hidden_dropout, self.attention_dropout);
        let word = self.word.index_select(&ids.flatten_all()?, 0)?;
        let types = self.token_types.index_select(&types.flatten_all()?, 0)?;
        let offset = c.position_offset as u32;
        let position_ids = Tensor::arange(offset, offset + l as u32, ids.device())?;
        let positions = self.positions.index_select(&position_ids, 0)?;
        let x = (word + types)?
            .reshape((b, l, h))?
            .broadcast_add(&positions)?
            .reshape((b * l, h))?;
        let x = self.embedding_norm.forward(&x)?;
        let mut x = dropout(&x, ph, rng.as_deref_mut())?;
        let scale = 1.0 / (head_dim as f64).sqrt();
        for layer in &self.layers {
            let split = |t: Tensor| -> candle_core::Result<Tensor> {
                t.reshape((b, l, heads, head_dim))?
                    .transpose(1, 2)?
                    .contiguous()
            };
            let q = (split(layer.query.forward(&x)?)? * scale)?;
            let k = split(layer.key.forward(&x)?)?;
            let v = split(layer.value.forward(&x)?)?;
            let probs = attention_probs(&q.matmul(&k.t()?)?, mask, pa, rng.as_deref_mut())?;
            let context = probs.matmul(&v)?.transpose(1, 2)?.reshape((b * l, h))?;
            let attended = layer.attention_out.forward(&context)?;
            let attended = (dropout(&attended, ph, rng.as_deref_mut())? + &x)?;
            x = layer.attention_norm.forward(&attended)?;
            let inner = layer.intermediate.forward(&x)?;
            let inner = match c.activation {
                Activation::GeluErf => inner.gelu_erf()?,
                Activation::GeluTanh => inner.gelu()?,
                Activation::Relu => inner.relu()?,
            };
            let out = layer.output.forward(&inner)?;
            let out = (dropout(&out, ph, rng.as_deref_mut())? + &x)?;
            x = layer.output_norm.forward(&out)?;
        }
        x.reshape((b, l, h))
    }

    /// Writes the model as a new model directory `out`: `model.safetensors` with Hugging Face
    /// names (no prefix), and every other file of the directory it was loaded from (config,
    /// tokenizer, sentence-transformers files) copied. `out` must not exist or be empty; the
    /// files are written to a sibling `.NAME.partial` folder renamed to `out` at the end.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] or [`Error::Candle`] when a file cannot be written; `out` is written through
    /// a staging folder, so it is never half-written.
    pub fn save(&self, out: &Path) -> Result<()> {
        let staging = save::begin(out)?;
        self.write_model_dir(&staging)?;
        save::commit(&staging, out)
    }

    /// Writes the model directory's files into the existing folder `dir`.
    pub(crate) fn write_model_dir(&self, dir: &Path) -> Result<()> {
        save::copy_support_files(&self.dir, dir, &|_| false)?;
        save::write_safetensors(&self.tensors("", |_| true), &dir.join("model.safetensors"))
    }
}
