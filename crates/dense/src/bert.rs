//! A BERT encoder whose linear layers run either in f32 or on GGML Q4_0 blocks.
//!
//! candle-transformers' `BertModel` holds `candle_nn::Linear` (f32 only). Here every matrix is a
//! `QMatMul`, so one forward pass serves safetensors models, the packed Q4_0 file run quantized,
//! and the same file dequantized to f32. Query, key and value are one `[3H, H]` matrix, so each
//! layer reads (and, for Q4_0, quantises) its input once for all three.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Device, Module, Tensor};
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::fused::{CpuLayer, CpuLinear};
use crate::ops::LayerNorm;

/// The activation between the feed-forward matrices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `gelu` in Hugging Face configurations: the exact, erf-based GELU.
    GeluErf,
    /// `gelu_new` / `gelu_pytorch_tanh`: the tanh approximation.
    GeluTanh,
    /// `relu`.
    Relu,
}

/// The architecture of a BERT-family encoder.
#[derive(Debug, Clone, PartialEq)]
pub struct BertConfig {
    /// Hidden size (the width of every token's state).
    pub hidden: usize,
    /// Transformer layers.
    pub layers: usize,
    /// Attention heads per layer (`hidden` is a multiple of it).
    pub heads: usize,
    /// Width of the feed-forward layer.
    pub intermediate: usize,
    /// Vocabulary size (rows of the word-embedding table).
    pub vocab: usize,
    /// Longest input in tokens.
    pub max_positions: usize,
    /// Token types (2 for BERT: query and passage of a pair).
    pub type_vocab: usize,
    /// LayerNorm epsilon.
    pub eps: f64,
    /// The feed-forward activation.
    pub activation: Activation,
    /// First position id: 0 for BERT, `pad_token_id + 1` for RoBERTa-style models.
    pub position_offset: usize,
}

/// `config.json` as Hugging Face writes it for BERT-family models.
#[derive(Deserialize)]
pub struct HfConfig {
    #[serde(default)]
    model_type: String,
    hidden_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    intermediate_size: usize,
    vocab_size: usize,
    max_position_embeddings: usize,
    #[serde(default = "default_type_vocab")]
    type_vocab_size: usize,
    #[serde(default = "default_eps")]
    layer_norm_eps: f64,
    #[serde(default = "default_act")]
    hidden_act: String,
    #[serde(default)]
    pad_token_id: usize,
}

fn default_type_vocab() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
}
fn default_act() -> String {
    "gelu".into()
}

impl HfConfig {
    /// The architecture, or what is unsupported about it.
    ///
    /// # Errors
    ///
    /// A message naming the unsupported activation or impossible sizes.
    pub fn to_config(&self) -> std::result::Result<BertConfig, String> {
        let activation = match self.hidden_act.as_str() {
            "gelu" => Activation::GeluErf,
            "gelu_new" | "gelu_pytorch_tanh" => Activation::GeluTanh,
            "relu" => Activation::Relu,
            other => return Err(format!("hidden_act {other:?} is not supported")),
        };
        let position_offset = match self.model_type.as_str() {
            "roberta" | "xlm-roberta" | "camembert" => self.pad_token_id + 1,
            _ => 0,
        };
        let config = BertConfig {
            hidden: self.hidden_size,
            layers: self.num_hidden_layers,
            heads: self.num_attention_heads,
            intermediate: self.intermediate_size,
            vocab: self.vocab_size,
            max_positions: self.max_position_embeddings - position_offset,
            type_vocab: self.type_vocab_size,
            eps: self.layer_norm_eps,
            activation,
            position_offset,
        };
        config.check()?;
        Ok(config)
    }
}

impl BertConfig {
    /// Sizes that make a forward pass possible.
    ///
    /// # Errors
    ///
    /// A message naming the impossible sizes.
    pub fn check(&self) -> std::result::Result<(), String> {
        if self.hidden == 0 || self.heads == 0 || !self.hidden.is_multiple_of(self.heads) {
            return Err(format!(
                "hidden size {} is not a multiple of the {} heads",
                self.hidden, self.heads
            ));
        }
        if self.layers == 0 || self.intermediate == 0 || self.vocab == 0 || self.max_positions == 0
        {
            return Err("layers, intermediate size, vocabulary and positions must be > 0".into());
        }
        Ok(())
    }
}

/// A weight as a source holds it.
pub enum Stored {
    /// Plain f32 values.
    F32(Tensor),
    /// GGML Q4_0 blocks.
    Quantized(QTensor),
}

/// Where the weights come from: tensors named as in Hugging Face's BERT
/// (`embeddings.word_embeddings.weight`, `encoder.layer.0.attention.self.query.weight`, ...).
pub trait WeightSource {
    /// The tensor `name` with `shape`.
    ///
    /// # Errors
    ///
    /// [`Error::Model`] when the tensor is missing or has another shape.
    fn get(&self, name: &str, shape: &[usize], device: &Device) -> Result<Stored>;
}

/// How the linear layers are run.
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WeightFormat {
    /// As the model directory stores them (f32 for safetensors, Q4_0 for a packed file).
    AsStored,
    /// Matrices dequantised to f32 at load (a quantised word-embedding table stays quantised:
    /// rows are dequantised exactly on lookup).
    F32,
    /// Quantised to GGML Q4_0 at load time (word embeddings stay as stored).
    #[cfg_attr(feature = "clap", value(name = "q4_0"))]
    Q4_0,
    /// The default: the linear layers' matrices quantised to int8 per output channel at load,
    /// activations per token at each call, i32 accumulation with the kernel chosen at run time
    /// (`crate::int8`; word embeddings stay as stored). A packed Q4_0 file is dequantised
    /// first. On the CPU only: other devices run such a model in f32. Measured in
    /// `docs/benchmarks.md`: 1.3-1.4x the f32 path's speed on an AVX2 CPU, vectors within
    /// cosine 0.993 of f32, retrieval quality within its noise.
    #[default]
    #[cfg_attr(
        feature = "clap",
        value(
            help = "Linear layers in int8 (weights per output channel, activations per \
                      token), kernel chosen at run time: the default, faster than f32 with the \
                      same retrieval quality (docs/benchmarks.md)"
        )
    )]
    Int8,
}

/// Tensors from a safetensors or PyTorch checkpoint, with or without a `bert.` prefix and with
/// old LayerNorm names (`gamma`/`beta`).
pub struct TensorMap {
    /// The checkpoint file.
    pub path: std::path::PathBuf,
    /// Its tensors by name, as stored.
    pub tensors: HashMap<String, Tensor>,
}

/// The f32 weights file of a Hugging Face model directory: `model.safetensors`, else
/// `pytorch_model.bin`.
pub fn hf_weights_file(dir: &std::path::Path) -> Option<std::path::PathBuf> {
    ["model.safetensors", "pytorch_model.bin"]
        .into_iter()
        .map(|name| dir.join(name))
        .find(|path| path.is_file())
}

impl TensorMap {
    /// The tensors of a safetensors file (from its `bytes`) or of a PyTorch pickle (read from
    /// `path`).
    ///
    /// # Errors
    ///
    /// [`crate::Error::Candle`] when the file cannot be parsed.
    pub fn read(path: &std::path::Path, bytes: &[u8], device: &Device) -> crate::Result<Self> {
        let tensors = if path.extension().is_some_and(|e| e == "safetensors") {
            candle_core::safetensors::load_buffer(bytes, device)
        } else {
            candle_core::pickle::read_all(path).map(|v| v.into_iter().collect())
        }
        .map_err(|e| crate::Error::candle(path, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            tensors,
        })
    }
}

impl TensorMap {
    /// The tensor `name`, stored as named, with a `bert.` prefix, or under the old LayerNorm
    /// names (`gamma`/`beta`).
    pub(crate) fn find(&self, name: &str) -> Option<&Tensor> {
        let legacy = name
            .replace("LayerNorm.weight", "LayerNorm.gamma")
            .replace("LayerNorm.bias", "LayerNorm.beta");
        let candidates = [
            name.to_string(),
            format!("bert.{name}"),
            legacy.clone(),
            format!("bert.{legacy}"),
        ];
        candidates.iter().find_map(|c| self.tensors.get(c))
    }
}

/// A Hugging Face BERT-family directory loaded for inference: its configuration, its
/// checkpoint's tensors (for the heads on top) and the encoder body.
pub(crate) struct HfBert {
    pub(crate) config: BertConfig,
    pub(crate) map: TensorMap,
    pub(crate) bert: Bert,
}

impl HfBert {
    /// Loads `dir` (`config.json`, `model.safetensors` or `pytorch_model.bin`) with the body's
    /// matrices run in `format`; `missing` says where such a directory comes from, for the
    /// error when `config.json` is not there.
    pub(crate) fn load(
        dir: &Path,
        device: &Device,
        format: WeightFormat,
        missing: &str,
    ) -> Result<Self> {
        let config_path = dir.join("config.json");
        if !config_path.is_file() {
            return Err(Error::Model {
                path: dir.to_path_buf(),
                message: format!("no config.json: not a model directory ({missing})"),
            });
        }
        let hf: HfConfig = crate::encoder::read_json(&config_path)?;
        let config: BertConfig = hf.to_config().map_err(|message| Error::Model {
            path: config_path.clone(),
            message,
        })?;
        let Some(path) = hf_weights_file(dir) else {
            return Err(Error::Model {
                path: dir.to_path_buf(),
                message: "has no weights: expected model.safetensors or pytorch_model.bin".into(),
            });
        };
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        let map = TensorMap::read(&path, &bytes, device)?;
        let bert = Bert::load(&path, &config, &map, format, device)?;
        Ok(Self { config, map, bert })
    }
}

impl WeightSource for TensorMap {
    fn get(&self, name: &str, shape: &[usize], _device: &Device) -> Result<Stored> {
        let tensor = self.find(name).ok_or_else(|| Error::Model {
            path: self.path.clone(),
            message: format!("has no tensor {name} (is this a BERT-family model?)"),
        })?;
        if tensor.dims() != shape {
            return Err(Error::Model {
                path: self.path.clone(),
                message: format!(
                    "tensor {name} has shape {:?}, config.json implies {shape:?}",
                    tensor.dims()
                ),
            });
        }
        let tensor = tensor
            .to_dtype(DType::F32)
            .map_err(|e| Error::candle(&self.path, e))?;
        Ok(Stored::F32(tensor))
    }
}

struct Linear {
    weight: LinearWeight,
    bias: Tensor,
}

/// A linear layer's matrix as it runs.
enum LinearWeight {
    /// A GGML quantised matrix (Q4_0), or f32 on a device other than the CPU.
    Candle(QMatMul),
    /// f32 or int8 on the CPU, packed for `rten-gemm`, with the bias (`crate::fused`).
    Cpu(CpuLinear),
}

/// By default, up to this many input rows (tokens in a batch), a Q4_0 matrix multiplies through candle's quantized kernel
/// (activations quantised to Q8_0 blocks, integer dot products); above it, the matrix is
/// dequantised for the call and multiplied by the f32 GEMM. On this project's AVX2 machine the
/// quantized kernel is a dot product per output and runs at about a third of the f32 GEMM's
/// speed on batches (`docs/benchmarks.md`), so batches keep only the memory saving of Q4_0.
pub(crate) const QUANTIZED_KERNEL_MAX_ROWS: usize = 8;

impl Linear {
    fn forward(&self, x: &Tensor, kernel_rows: usize) -> candle_core::Result<Tensor> {
        let y = match &self.weight {
            LinearWeight::Cpu(l) => return l.forward(x),
            LinearWeight::Candle(QMatMul::QTensor(q))
                if x.rank() == 2 && x.dim(0)? > kernel_rows =>
            {
                x.matmul(&q.dequantize(x.device())?.t()?)?
            }
            LinearWeight::Candle(w) => w.forward(x)?,
        };
        y.broadcast_add(&self.bias)
    }
}

struct Layer {
    qkv: Linear,
    attention_out: Linear,
    attention_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    output_norm: LayerNorm,
}

impl Layer {
    /// The layer for `crate::fused`, when all its matrices are packed for the CPU.
    fn cpu(&self) -> Option<CpuLayer<'_>> {
        fn cpu(l: &Linear) -> Option<&CpuLinear> {
            match &l.weight {
                LinearWeight::Cpu(c) => Some(c),
                LinearWeight::Candle(_) => None,
            }
        }
        Some(CpuLayer {
            qkv: cpu(&self.qkv)?,
            attention_out: cpu(&self.attention_out)?,
            attention_norm: &self.attention_norm,
            intermediate: cpu(&self.intermediate)?,
            output: cpu(&self.output)?,
            output_norm: &self.output_norm,
        })
    }
}

/// The encoder: embeddings and transformer layers, returning the last hidden states.
pub(crate) struct Bert {
    config: BertConfig,
    word: QMatMul,
    positions: Tensor,
    token_type: Tensor,
    embedding_norm: LayerNorm,
    layers: Vec<Layer>,
    /// Every linear layer is packed for the CPU: the forward runs `crate::fused`.
    fused: bool,
    /// See [`QUANTIZED_KERNEL_MAX_ROWS`].
    pub(crate) quantized_kernel_rows: usize,
}

struct Builder<'a> {
    path: &'a Path,
    source: &'a dyn WeightSource,
    format: WeightFormat,
    device: &'a Device,
}

impl Builder<'_> {
    fn stored(&self, name: &str, shape: &[usize]) -> Result<Stored> {
        self.source.get(name, shape, self.device)
    }

    fn dense(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        match self.stored(name, shape)? {
            Stored::F32(t) => Ok(t),
            Stored::Quantized(q) => q.dequantize(self.device).map_err(self.fail(name)),
        }
    }

    fn matrix(&self, stored: Stored, name: &str) -> Result<QMatMul> {
        let m = match (stored, self.format) {
            (Stored::F32(t), WeightFormat::Q4_0) => QMatMul::QTensor(Arc::new(
                QTensor::quantize(&t, GgmlDType::Q4_0).map_err(self.fail(name))?,
            )),
            (Stored::F32(t), _) => QMatMul::Tensor(t),
            (Stored::Quantized(q), WeightFormat::F32) => {
                QMatMul::Tensor(q.dequantize(self.device).map_err(self.fail(name))?)
            }
            (Stored::Quantized(q), _) => QMatMul::QTensor(Arc::new(q)),
        };
        Ok(m)
    }

    fn linear(&self, name: &str, out: usize, inp: usize) -> Result<Linear> {
        let weight = self.stored(&format!("{name}.weight"), &[out, inp])?;
        let bias = self.dense(&format!("{name}.bias"), &[out])?;
        self.linear_from(weight, bias, name)
    }

    /// A linear layer of `weight` and `bias` in the builder's format: on the CPU, f32 and int8
    /// matrices are packed for `crate::fused`; Q4_0 (and every format on other devices) runs
    /// through candle.
    fn linear_from(&self, weight: Stored, bias: Tensor, name: &str) -> Result<Linear> {
        let cpu = self.device.is_cpu();
        let dense = |weight: Stored| match weight {
            Stored::F32(t) => Ok(t),
            Stored::Quantized(q) => q.dequantize(self.device),
        };
        let weight = match (self.format, &weight) {
            (WeightFormat::Int8, _) if cpu => {
                let f32 = dense(weight).map_err(self.fail(name))?;
                let matrix = crate::int8::Int8Matrix::quantize(&f32).map_err(self.fail(name))?;
                let bias = bias.to_vec1::<f32>().map_err(self.fail(name))?;
                LinearWeight::Cpu(CpuLinear::int8(matrix, bias))
            }
            (WeightFormat::F32, _) | (WeightFormat::AsStored, Stored::F32(_)) if cpu => {
                let f32 = dense(weight).map_err(self.fail(name))?;
                let outputs = f32.dim(0).map_err(self.fail(name))?;
                let values = f32
                    .flatten_all()
                    .and_then(|t| t.to_vec1::<f32>())
                    .map_err(self.fail(name))?;
                let bias = bias.to_vec1::<f32>().map_err(self.fail(name))?;
                LinearWeight::Cpu(CpuLinear::f32(&values, outputs, bias))
            }
            _ => LinearWeight::Candle(self.matrix(weight, name)?),
        };
        Ok(Linear { weight, bias })
    }

    /// Query, key and value stacked into one `[3H, H]` matrix.
    fn qkv(&self, layer: &tensor_names::Layer, h: usize) -> Result<Linear> {
        let prefix = layer.attention.as_str();
        let names = ["query", "key", "value"].map(|p| layer.projection(p));
        let mut weights = Vec::with_capacity(3);
        let mut biases = Vec::with_capacity(3);
        for n in &names {
            weights.push(self.stored(&format!("{n}.weight"), &[h, h])?);
            biases.push(self.dense(&format!("{n}.bias"), &[h])?);
        }
        let stacked = match weights.as_slice() {
            [
                Stored::Quantized(q),
                Stored::Quantized(k),
                Stored::Quantized(v),
            ] => Stored::Quantized(
                crate::packed::stack_q4_rows(&[q, k, v], self.device).map_err(self.fail(prefix))?,
            ),
            _ => {
                let dense = weights
                    .into_iter()
                    .map(|w| match w {
                        Stored::F32(t) => Ok(t),
                        Stored::Quantized(q) => q.dequantize(self.device),
                    })
                    .collect::<candle_core::Result<Vec<_>>>()
                    .map_err(self.fail(prefix))?;
                Stored::F32(Tensor::cat(&dense, 0).map_err(self.fail(prefix))?)
            }
        };
        let bias = Tensor::cat(&biases, 0).map_err(self.fail(prefix))?;
        self.linear_from(stacked, bias, prefix)
    }

    fn norm(&self, name: &str, h: usize, eps: f64) -> Result<LayerNorm> {
        LayerNorm::new(
            self.dense(&format!("{name}.weight"), &[h])?,
            self.dense(&format!("{name}.bias"), &[h])?,
            eps,
        )
        .map_err(self.fail(name))
    }
}

impl Builder<'_> {
    /// A candle error while building `what`, reported against the model's path.
    fn fail(&self, what: &str) -> impl Fn(candle_core::Error) -> Error + '_ {
        let path = self.path.to_path_buf();
        let what = what.to_string();
        move |e| Error::Model {
            path: path.clone(),
            message: format!("building {what}: {e}"),
        }
    }
}

impl Bert {
    /// Builds the encoder from `source`, running its matrices as `format` says.
    pub(crate) fn load(
        path: &Path,
        config: &BertConfig,
        source: &dyn WeightSource,
        format: WeightFormat,
        device: &Device,
    ) -> Result<Self> {
        let b = Builder {
            path,
            source,
            format,
            device,
        };
        let (h, ff) = (config.hidden, config.intermediate);
        let word = match b.stored(tensor_names::WORD_EMBEDDINGS, &[config.vocab, h])? {
            // The table is only looked up, and a looked-up Q4_0 row is dequantised exactly, so it
            // stays in its blocks in every format (multilingual-e5-small's 250k x 384 table:
            // 54 MB as Q4_0, 384 MB as f32).
            Stored::Quantized(q) => QMatMul::QTensor(Arc::new(q)),
            Stored::F32(t) => QMatMul::Tensor(t),
        };
        let positions = b.dense(
            tensor_names::POSITION_EMBEDDINGS,
            &[config.max_positions + config.position_offset, h],
        )?;
        let token_type = b.dense(tensor_names::TOKEN_TYPE_EMBEDDINGS, &[config.type_vocab, h])?;
        let embedding_norm = b.norm(tensor_names::EMBEDDING_NORM, h, config.eps)?;
        let mut layers = Vec::with_capacity(config.layers);
        for i in 0..config.layers {
            let names = tensor_names::layer(i);
            layers.push(Layer {
                qkv: b.qkv(&names, h)?,
                attention_out: b.linear(&names.attention_out, h, h)?,
                attention_norm: b.norm(&names.attention_norm, h, config.eps)?,
                intermediate: b.linear(&names.intermediate, ff, h)?,
                output: b.linear(&names.output, h, ff)?,
                output_norm: b.norm(&names.output_norm, h, config.eps)?,
            });
        }
        let fused = layers.iter().all(|l| l.cpu().is_some());
        Ok(Self {
            config: config.clone(),
            word,
            positions,
            token_type,
            embedding_norm,
            layers,
            fused,
            quantized_kernel_rows: QUANTIZED_KERNEL_MAX_ROWS,
        })
    }

    /// Last hidden states of `seqs` packed end to end, `(total tokens, hidden)`, token types all
    /// 0. Nothing is padded: the matrices see every real token of the batch at once, and
    /// attention runs per sequence over its own tokens, so no mask is needed and a sequence's
    /// attention scores (`heads x len x len`) stay small enough for the caches.
    pub(crate) fn forward(&self, seqs: &[&[u32]]) -> candle_core::Result<Tensor> {
        self.forward_typed(seqs, None)
    }

    /// [`Bert::forward`] with each token's type id (`types[i]` as long as `seqs[i]`; `None`:
    /// all 0), as a cross-encoder's `[CLS] q [SEP] p [SEP]` input needs (1 for the passage).
    pub(crate) fn forward_typed(
        &self,
        seqs: &[&[u32]],
        types: Option<&[&[u32]]>,
    ) -> candle_core::Result<Tensor> {
        let c = &self.config;
        let (h, heads) = (c.hidden, c.heads);
        let head_dim = h / heads;
        let device = self.positions.device();
        let total: usize = seqs.iter().map(|s| s.len()).sum();
        let mut ids = Vec::with_capacity(total);
        let mut positions = Vec::with_capacity(total);
        for s in seqs {
            if s.len() > c.max_positions {
                candle_core::bail!(
                    "a sequence of {} tokens is longer than the model's {} positions",
                    s.len(),
                    c.max_positions
                );
            }
            ids.extend_from_slice(s);
            positions.extend((0..s.len()).map(|p| (p + c.position_offset) as u32));
        }
        let ids = Tensor::from_vec(ids, total, device)?;
        let positions = Tensor::from_vec(positions, total, device)?;
        let x = self
            .word
            .embedding(&ids)?
            .add(&self.positions.index_select(&positions, 0)?)?;
        let x = match types {
            None => x.broadcast_add(&self.token_type.narrow(0, 0, 1)?)?,
            Some(types) => {
                let mut all = Vec::with_capacity(total);
                for (s, t) in seqs.iter().zip(types) {
                    if s.len() != t.len() {
                        candle_core::bail!("{} token types for {} tokens", t.len(), s.len());
                    }
                    all.extend_from_slice(t);
                }
                let all = Tensor::from_vec(all, total, device)?;
                x.add(&self.token_type.index_select(&all, 0)?)?
            }
        };
        let x = self.embedding_norm.forward(&x)?;
        if self.fused {
            return self.run_fused(&x, seqs);
        }
        let mut x = x;
        let scale = 1.0 / (head_dim as f64).sqrt();
        for layer in &self.layers {
            let qkv = layer.qkv.forward(&x, self.quantized_kernel_rows)?;
            let mut contexts = Vec::with_capacity(seqs.len());
            let mut offset = 0;
            for s in seqs {
                let len = s.len();
                let part = qkv.narrow(0, offset, len)?;
                offset += len;
                let split = |i: usize| -> candle_core::Result<Tensor> {
                    part.narrow(1, i * h, h)?
                        .reshape((len, heads, head_dim))?
                        .transpose(0, 1)?
                        .contiguous()
                };
                let q = (split(0)? * scale)?;
                let scores = q.matmul(&split(1)?.t()?)?;
                let probs = crate::ops::softmax_last_dim(&scores)?;
                contexts.push(
                    probs
                        .matmul(&split(2)?)?
                        .transpose(0, 1)?
                        .reshape((len, h))?,
                );
            }
            let context = Tensor::cat(&contexts, 0)?;
            let attended = (layer
                .attention_out
                .forward(&context, self.quantized_kernel_rows)?
                + &x)?;
            x = layer.attention_norm.forward(&attended)?;
            let inner = layer.intermediate.forward(&x, self.quantized_kernel_rows)?;
            let inner = match c.activation {
                Activation::GeluErf => crate::ops::gelu_erf(&inner)?,
                Activation::GeluTanh => inner.gelu()?,
                Activation::Relu => inner.relu()?,
            };
            let out = (layer.output.forward(&inner, self.quantized_kernel_rows)? + &x)?;
            x = layer.output_norm.forward(&out)?;
        }
        Ok(x)
    }

    /// The layers on the CPU's fused path (`crate::fused`), a group of whole sequences at a
    /// time; `x` is the embedded batch, `(total tokens, hidden)`.
    fn run_fused(&self, x: &Tensor, seqs: &[&[u32]]) -> candle_core::Result<Tensor> {
        let c = &self.config;
        let layers: Vec<CpuLayer<'_>> = self.layers.iter().filter_map(Layer::cpu).collect();
        let activate: crate::fused::Activate<'_> = match c.activation {
            Activation::GeluErf => &crate::ops::gelu_in_place,
            Activation::GeluTanh => &crate::ops::gelu_tanh_in_place,
            Activation::Relu => &|x: &mut [f32]| x.iter_mut().for_each(|v| *v = v.max(0.0)),
        };
        let mut hidden = x.flatten_all()?.to_vec1::<f32>()?;
        let lengths: Vec<usize> = seqs.iter().map(|s| s.len()).collect();
        let mut start = 0;
        for group in crate::fused::groups(&lengths) {
            let tokens: usize = lengths[group.clone()].iter().sum();
            let rows = &mut hidden[start * c.hidden..(start + tokens) * c.hidden];
            crate::fused::run_layers(&layers, rows, &lengths[group], c.hidden, c.heads, activate)?;
            start += tokens;
        }
        Tensor::from_vec(hidden, (start, c.hidden), x.device())
    }

    /// One pooled vector per sequence from packed hidden states `(total tokens, hidden)`
    /// (sequences one after the other, as [`Bert::forward`] and the decoder return them):
    /// `(sequences, hidden)`, the mean over each sequence's tokens, its first token or its last.
    pub(crate) fn pool(
        hidden: &Tensor,
        seqs: &[&[u32]],
        pooling: crate::encoder::Pooling,
    ) -> candle_core::Result<Tensor> {
        use crate::encoder::Pooling;
        let mut pooled = Vec::with_capacity(seqs.len());
        let mut offset = 0;
        for s in seqs {
            let part = match pooling {
                Pooling::Mean => hidden.narrow(0, offset, s.len())?,
                Pooling::Cls => hidden.narrow(0, offset, 1)?,
                Pooling::Last => hidden.narrow(0, offset + s.len() - 1, 1)?,
            };
            pooled.push(part.mean_keepdim(0)?);
            offset += s.len();
        }
        Tensor::cat(&pooled, 0)
    }
}

/// The tensor names of a BERT checkpoint (Hugging Face's `BertModel`, without the `bert.`
/// prefix some checkpoints add), in one place for the inference loader and the trainer.
pub mod tensor_names {
    /// The word embedding table, `(vocab, hidden)`.
    pub const WORD_EMBEDDINGS: &str = "embeddings.word_embeddings.weight";
    /// The position embedding table, `(max positions + offset, hidden)`.
    pub const POSITION_EMBEDDINGS: &str = "embeddings.position_embeddings.weight";
    /// The token type embedding table, `(type vocab, hidden)`.
    pub const TOKEN_TYPE_EMBEDDINGS: &str = "embeddings.token_type_embeddings.weight";
    /// The layer norm after the embeddings (`.weight`, `.bias`).
    pub const EMBEDDING_NORM: &str = "embeddings.LayerNorm";

    /// The prefixes of one encoder layer's tensors (each with `.weight` and `.bias`).
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Layer {
        /// Self-attention's projections: `{attention}.query`, `.key`, `.value`.
        pub attention: String,
        /// The attention output projection.
        pub attention_out: String,
        /// The layer norm after attention.
        pub attention_norm: String,
        /// The feed-forward up projection.
        pub intermediate: String,
        /// The feed-forward down projection.
        pub output: String,
        /// The layer norm after the feed-forward block.
        pub output_norm: String,
    }

    impl Layer {
        /// Self-attention's `query`, `key` or `value` projection.
        pub fn projection(&self, which: &str) -> String {
            format!("{}.{which}", self.attention)
        }
    }

    /// The tensor prefixes of encoder layer `i`.
    pub fn layer(i: usize) -> Layer {
        let p = format!("encoder.layer.{i}");
        Layer {
            attention: format!("{p}.attention.self"),
            attention_out: format!("{p}.attention.output.dense"),
            attention_norm: format!("{p}.attention.output.LayerNorm"),
            intermediate: format!("{p}.intermediate.dense"),
            output: format!("{p}.output.dense"),
            output_norm: format!("{p}.output.LayerNorm"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tiny::TinyModel;

    fn load(dir: &Path, format: WeightFormat) -> Bert {
        let hf: HfConfig = crate::encoder::read_json(&dir.join("config.json")).unwrap();
        let config = hf.to_config().unwrap();
        let path = hf_weights_file(dir).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let map = TensorMap::read(&path, &bytes, &Device::Cpu).unwrap();
        Bert::load(&path, &config, &map, format, &Device::Cpu).unwrap()
    }

    /// The fused CPU forward against candle's operations on the same packed matrices:
    /// sequences of different lengths, more of them than one group of `GROUP_TOKENS` holds.
    #[test]
    fn fused_forward_matches_candles_path() {
        let dir = tempfile::tempdir().unwrap();
        TinyModel {
            hidden: 48,
            layers: 2,
            heads: 4,
            max_seq_length: 64,
            seed: 7,
        }
        .write(dir.path())
        .unwrap();
        let fused = load(dir.path(), WeightFormat::F32);
        assert!(fused.fused);
        let mut reference = load(dir.path(), WeightFormat::F32);
        reference.fused = false;
        let seqs: Vec<Vec<u32>> = (0..70)
            .map(|i| {
                (0..(3 + i * 7 % 60))
                    .map(|t| ((t * 13 + i) % 80) as u32)
                    .collect()
            })
            .collect();
        let refs: Vec<&[u32]> = seqs.iter().map(Vec::as_slice).collect();
        assert!(refs.iter().map(|s| s.len()).sum::<usize>() > crate::fused::GROUP_TOKENS);
        let a = fused.forward(&refs).unwrap();
        let b = reference.forward(&refs).unwrap();
        assert_eq!(a.dims(), b.dims());
        let diff = crate::ops::tests::max_diff(&a, &b);
        assert!(diff < 1e-4, "max |diff| {diff}");
    }
}
