//! Decoder LLMs (Llama and Gemma 3 architectures) read from a GGUF file, run as text encoders:
//! the forward pass returns the final normed hidden state of every token, which the encoder
//! pools (last token or mean) into one vector per text.
//!
//! The layers follow llama.cpp's graphs for `llama` and `gemma3` GGUF files (the format's
//! reference implementation) and candle-transformers' `quantized_llama` / `quantized_gemma3`,
//! which only return the last position's logits; [`Decoder::last_logits`] computes those from
//! the hidden states and the tied output head, and a test checks them against
//! candle-transformers'. One deliberate difference: Gemma 3's feed-forward uses GELU (tanh
//! approximation, `hidden_activation: gelu_pytorch_tanh` in Google's config and `LLM_FFN_GELU`
//! in llama.cpp), where candle-transformers 0.11.1's `quantized_gemma3` uses SiLU.

use std::io::{Read, Seek};
use std::path::Path;
use std::sync::Arc;

use candle_core::quantized::{QMatMul, QTensor, gguf_file};
use candle_core::{D, DType, Device, IndexOp, Module, Tensor};
use tokenizers::Tokenizer;

use crate::bert::WeightFormat;
use crate::error::{Error, Result};

/// The decoder architectures this crate runs (GGUF's `general.architecture`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    /// `llama`: pre-norm blocks, interleaved RoPE (GGUF stores Q and K permuted for it), SwiGLU.
    Llama,
    /// `gemma3`: embeddings scaled by `sqrt(hidden)`, RMS norms before and after attention and
    /// feed-forward, Q/K norms, GELU-gated feed-forward, sliding-window layers with their own
    /// RoPE base and a global layer every `sliding_window_pattern` layers.
    Gemma3,
}

/// The feed-forward's gate activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateActivation {
    /// `x * sigmoid(x)` (Llama's SwiGLU).
    Silu,
    /// GELU, tanh approximation (Gemma's `gelu_pytorch_tanh`).
    GeluTanh,
}

/// A decoder's shape, read from the GGUF metadata (`{arch}.block_count`, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct DecoderConfig {
    /// Architecture.
    pub architecture: Architecture,
    /// Transformer blocks.
    pub layers: usize,
    /// Hidden size (the output vectors' dimension).
    pub hidden: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (grouped-query attention when fewer than `heads`).
    pub kv_heads: usize,
    /// Dimension of one head.
    pub head_dim: usize,
    /// Feed-forward inner size.
    pub intermediate: usize,
    /// Vocabulary size (rows of the embedding table).
    pub vocab: usize,
    /// RMS norm epsilon.
    pub eps: f64,
    /// RoPE base of the (global) attention layers.
    pub rope_base: f32,
    /// RoPE base of sliding-window layers (Gemma 3: 10,000).
    pub rope_local_base: f32,
    /// Sliding window in tokens for local layers (`None`: every layer is global).
    pub sliding_window: Option<usize>,
    /// Every this many layers, one is global (Gemma 3: 6).
    pub sliding_window_pattern: usize,
    /// Positions the model was trained on.
    pub context_length: usize,
    /// The feed-forward's gate activation.
    pub activation: GateActivation,
}

impl DecoderConfig {
    /// Reads the shape from GGUF metadata.
    fn from_gguf(content: &gguf_file::Content) -> std::result::Result<Self, String> {
        let md = &content.metadata;
        let arch = md
            .get("general.architecture")
            .and_then(|v| v.to_string().ok())
            .ok_or("no general.architecture in the GGUF metadata")?;
        let architecture = match arch.as_str() {
            "llama" => Architecture::Llama,
            "gemma3" => Architecture::Gemma3,
            other => {
                return Err(format!(
                    "architecture `{other}` is not supported (llama and gemma3 are)"
                ));
            }
        };
        let get = |key: &str| md.get(&format!("{arch}.{key}"));
        let int = |key: &str| -> std::result::Result<usize, String> {
            get(key)
                .ok_or_else(|| format!("no {arch}.{key} in the GGUF metadata"))?
                .to_u32()
                .map(|v| v as usize)
                .map_err(|e| format!("{arch}.{key}: {e}"))
        };
        let float = |key: &str, default: f32| -> std::result::Result<f32, String> {
            get(key).map_or(Ok(default), |v| {
                v.to_f32().map_err(|e| format!("{arch}.{key}: {e}"))
            })
        };
        let hidden = int("embedding_length")?;
        let heads = int("attention.head_count")?;
        let head_dim = match int("attention.key_length") {
            Ok(d) => d,
            Err(_) => hidden / heads.max(1),
        };
        let vocab = content
            .tensor_infos
            .get("token_embd.weight")
            .ok_or("no token_embd.weight tensor")?
            .shape
            .dims()[0];
        let gemma = architecture == Architecture::Gemma3;
        Ok(Self {
            architecture,
            layers: int("block_count")?,
            hidden,
            heads,
            kv_heads: int("attention.head_count_kv").unwrap_or(heads),
            head_dim,
            intermediate: int("feed_forward_length")?,
            vocab,
            eps: f64::from(float("attention.layer_norm_rms_epsilon", 1e-6)?),
            rope_base: float("rope.freq_base", if gemma { 1e6 } else { 1e4 })?,
            rope_local_base: float("rope.local_freq_base", 1e4)?,
            sliding_window: if gemma {
                int("attention.sliding_window").ok()
            } else {
                None
            },
            sliding_window_pattern: int("attention.sliding_window_type").unwrap_or(6),
            context_length: int("context_length")?,
            activation: if gemma {
                GateActivation::GeluTanh
            } else {
                GateActivation::Silu
            },
        })
    }

    fn check(&self) -> std::result::Result<(), String> {
        if self.heads == 0 || self.kv_heads == 0 || !self.heads.is_multiple_of(self.kv_heads) {
            return Err(format!(
                "{} query heads cannot share {} key/value heads",
                self.heads, self.kv_heads
            ));
        }
        if !self.head_dim.is_multiple_of(2) {
            return Err(format!(
                "head dimension {} is odd (RoPE needs pairs)",
                self.head_dim
            ));
        }
        Ok(())
    }

    /// RoPE base of layer `i` (the local one for a sliding-window layer).
    pub fn rope_base_of(&self, i: usize) -> f32 {
        if self.sliding(i).is_some() {
            self.rope_local_base
        } else {
            self.rope_base
        }
    }

    /// The sliding window of layer `i`, `None` for a global layer (Gemma 3: all but every 6th
    /// layer slide).
    pub fn sliding(&self, i: usize) -> Option<usize> {
        self.sliding_window
            .filter(|_| !(i + 1).is_multiple_of(self.sliding_window_pattern.max(1)))
    }
}

/// A matrix as it runs: as stored, GGML blocks through candle's quantized kernel for a few
/// rows, and for larger inputs dequantised for the call and multiplied by the f32 GEMM (as
/// `crate::bert` does; the quantized kernel is a dot product per output on AVX2); or, on the
/// CPU, dequantised at load and packed for `crate::fused`'s f32 or int8 GEMM.
enum Matrix {
    Candle(QMatMul),
    Cpu(crate::fused::CpuLinear),
}

impl Matrix {
    fn new(q: QTensor, format: WeightFormat, device: &Device) -> candle_core::Result<Self> {
        let cpu = device.is_cpu();
        Ok(match format {
            WeightFormat::Int8 if cpu => {
                let matrix = crate::int8::Int8Matrix::quantize(&q.dequantize(device)?)?;
                let outputs = q.shape().dims()[0];
                Self::Cpu(crate::fused::CpuLinear::int8(matrix, vec![0.0; outputs]))
            }
            WeightFormat::F32 if cpu => {
                let w = q.dequantize(device)?;
                let outputs = w.dim(0)?;
                let values = w.flatten_all()?.to_vec1::<f32>()?;
                Self::Cpu(crate::fused::CpuLinear::f32(
                    &values,
                    outputs,
                    vec![0.0; outputs],
                ))
            }
            WeightFormat::F32 | WeightFormat::Int8 => {
                Self::Candle(QMatMul::Tensor(q.dequantize(device)?))
            }
            WeightFormat::AsStored | WeightFormat::Q4_0 => Self::Candle(QMatMul::from_qtensor(q)?),
        })
    }

    fn forward(&self, x: &Tensor, kernel_rows: usize) -> candle_core::Result<Tensor> {
        match self {
            Self::Cpu(l) => l.forward(x),
            Self::Candle(QMatMul::QTensor(q)) if x.rank() == 2 && x.dim(0)? > kernel_rows => {
                x.matmul(&q.dequantize(x.device())?.t()?)
            }
            Self::Candle(w) => w.forward(x),
        }
    }
}

struct Layer {
    attention_norm: Tensor,
    q: Matrix,
    k: Matrix,
    v: Matrix,
    o: Matrix,
    /// Gemma 3: RMS norms over each head's queries and keys.
    q_norm: Option<Tensor>,
    k_norm: Option<Tensor>,
    /// Gemma 3: RMS norms of the attention's and the feed-forward's outputs.
    post_attention_norm: Option<Tensor>,
    post_ffn_norm: Option<Tensor>,
    ffn_norm: Tensor,
    gate: Matrix,
    up: Matrix,
    down: Matrix,
    /// RoPE tables `(context, head_dim / 2)` for this layer's base.
    cos: Tensor,
    sin: Tensor,
    sliding_window: Option<usize>,
}

/// A decoder LLM run as an encoder (see the module documentation).
pub(crate) struct Decoder {
    pub(crate) config: DecoderConfig,
    /// The embedding table, kept in its GGML blocks (rows dequantised exactly on lookup); with
    /// tied weights it is also the output head.
    embeddings: Arc<QTensor>,
    layers: Vec<Layer>,
    norm: Tensor,
    /// Inputs of at most this many tokens use candle's quantized kernel.
    pub(crate) quantized_kernel_rows: usize,
}

/// Longest input the RoPE tables are built for (inputs are cut to the model description's
/// `max_seq_length` before, which is at most this).
pub const MAX_POSITIONS: usize = 8192;

impl Decoder {
    /// Reads a GGUF file, running its matrices in `format` (Q4_0 means as stored).
    #[cfg(test)]
    pub(crate) fn load(
        path: &Path,
        format: WeightFormat,
        device: &Device,
    ) -> Result<(Self, GgufInfo)> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::from_bytes(path, &bytes, format, device)
    }

    /// [`Decoder::load`] from the GGUF file's bytes, already read from `path`.
    pub(crate) fn from_bytes(
        path: &Path,
        bytes: &[u8],
        format: WeightFormat,
        device: &Device,
    ) -> Result<(Self, GgufInfo)> {
        let mut file = std::io::Cursor::new(bytes);
        let content = gguf_file::Content::read(&mut file).map_err(|e| Error::Model {
            path: path.to_path_buf(),
            message: format!("not a GGUF file ({e})"),
        })?;
        let config = DecoderConfig::from_gguf(&content)
            .and_then(|c| c.check().map(|()| c))
            .map_err(|message| Error::Model {
                path: path.to_path_buf(),
                message,
            })?;
        let info = GgufInfo::read(&content);
        let decoder =
            Self::from_content(&content, &mut file, config, format, device).map_err(|e| {
                Error::Model {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                }
            })?;
        Ok((decoder, info))
    }

    fn from_content<R: Read + Seek>(
        content: &gguf_file::Content,
        reader: &mut R,
        config: DecoderConfig,
        format: WeightFormat,
        device: &Device,
    ) -> candle_core::Result<Self> {
        let mut tensor = |name: &str, shape: &[usize]| -> candle_core::Result<QTensor> {
            let t = content.tensor(reader, name, device)?;
            if t.shape().dims() != shape {
                candle_core::bail!(
                    "tensor {name} has shape {:?}, the metadata implies {shape:?}",
                    t.shape().dims()
                );
            }
            Ok(t)
        };
        let (h, hd) = (config.hidden, config.head_dim);
        let embeddings = Arc::new(tensor("token_embd.weight", &[config.vocab, h])?);
        let gemma = config.architecture == Architecture::Gemma3;
        let mut layers = Vec::with_capacity(config.layers);
        for i in 0..config.layers {
            let name = |n: &str| format!("blk.{i}.{n}.weight");
            let mut matrix = |n: &str, rows: usize, cols: usize| -> candle_core::Result<Matrix> {
                Matrix::new(tensor(&name(n), &[rows, cols])?, format, device)
            };
            let q = matrix("attn_q", config.heads * hd, h)?;
            let k = matrix("attn_k", config.kv_heads * hd, h)?;
            let v = matrix("attn_v", config.kv_heads * hd, h)?;
            let o = matrix("attn_output", h, config.heads * hd)?;
            let gate = matrix("ffn_gate", config.intermediate, h)?;
            let up = matrix("ffn_up", config.intermediate, h)?;
            let down = matrix("ffn_down", h, config.intermediate)?;
            let mut vector = |n: &str, len: usize| tensor(&name(n), &[len])?.dequantize(device);
            let sliding_window = config.sliding(i);
            let (cos, sin) = rope_tables(hd, config.rope_base_of(i), device)?;
            layers.push(Layer {
                attention_norm: vector("attn_norm", h)?,
                q_norm: gemma.then(|| vector("attn_q_norm", hd)).transpose()?,
                k_norm: gemma.then(|| vector("attn_k_norm", hd)).transpose()?,
                post_attention_norm: gemma
                    .then(|| vector("post_attention_norm", h))
                    .transpose()?,
                post_ffn_norm: gemma.then(|| vector("post_ffw_norm", h)).transpose()?,
                ffn_norm: vector("ffn_norm", h)?,
                q,
                k,
                v,
                o,
                gate,
                up,
                down,
                cos,
                sin,
                sliding_window,
            });
        }
        let norm = tensor("output_norm.weight", &[h])?.dequantize(device)?;
        Ok(Self {
            config,
            embeddings,
            layers,
            norm,
            quantized_kernel_rows: crate::bert::QUANTIZED_KERNEL_MAX_ROWS,
        })
    }

    /// The final normed hidden states of a batch of token sequences, packed without padding:
    /// `(total tokens, hidden)`, the sequences one after the other. Attention is causal and runs
    /// per sequence, so sequences never see each other and no padding enters a vector.
    pub(crate) fn forward(&self, seqs: &[&[u32]]) -> candle_core::Result<Tensor> {
        self.run(seqs, self.layers.len(), true)
    }

    /// [`Decoder::forward`] through the first `upto` blocks only, with the final norm or not.
    pub(crate) fn run(
        &self,
        seqs: &[&[u32]],
        upto: usize,
        final_norm: bool,
    ) -> candle_core::Result<Tensor> {
        let c = &self.config;
        let device = self.norm.device();
        let mut ids = Vec::with_capacity(seqs.iter().map(|s| s.len()).sum());
        for s in seqs {
            if s.len() > MAX_POSITIONS.min(c.context_length) {
                candle_core::bail!(
                    "a sequence of {} tokens is longer than the {} positions supported",
                    s.len(),
                    MAX_POSITIONS.min(c.context_length)
                );
            }
            ids.extend_from_slice(s);
        }
        let total = ids.len();
        let ids = Tensor::from_vec(ids, total, device)?;
        let mut x = self.embeddings.embedding(&ids)?;
        if c.architecture == Architecture::Gemma3 {
            x = (x * (c.hidden as f64).sqrt())?;
        }
        let rows = self.quantized_kernel_rows;
        let eps = c.eps as f32;
        for layer in self.layers.iter().take(upto) {
            let normed = rms_norm(&x, &layer.attention_norm, eps)?;
            let q = layer.q.forward(&normed, rows)?;
            let k = layer.k.forward(&normed, rows)?;
            let v = layer.v.forward(&normed, rows)?;
            let norms = layer.q_norm.as_ref().zip(layer.k_norm.as_ref());
            let lengths: Vec<usize> = seqs.iter().map(|s| s.len()).collect();
            let rope = (&layer.cos, &layer.sin);
            let window = layer.sliding_window;
            let context = attention(
                c,
                [&q, &k, &v],
                &lengths,
                rope,
                norms,
                window,
                Kernels::Fast,
            )?;
            let mut attended = layer.o.forward(&context, rows)?;
            if let Some(n) = &layer.post_attention_norm {
                attended = rms_norm(&attended, n, eps)?;
            }
            x = (attended + &x)?;
            let normed = rms_norm(&x, &layer.ffn_norm, eps)?;
            let gate = layer.gate.forward(&normed, rows)?;
            let gate = match c.activation {
                GateActivation::Silu => candle_nn::ops::silu(&gate)?,
                GateActivation::GeluTanh => gate.gelu()?,
            };
            let inner = (gate * layer.up.forward(&normed, rows)?)?;
            let mut out = layer.down.forward(&inner, rows)?;
            if let Some(n) = &layer.post_ffn_norm {
                out = rms_norm(&out, n, eps)?;
            }
            x = (out + &x)?;
        }
        if final_norm {
            rms_norm(&x, &self.norm, eps)
        } else {
            Ok(x)
        }
    }

    /// Next-token logits after each sequence's last token, `(sequences, vocab)`: the last
    /// hidden state times the tied output head (the embedding table), as a language model
    /// computes them. For checking the forward pass against other implementations.
    pub(crate) fn last_logits(&self, seqs: &[&[u32]]) -> candle_core::Result<Tensor> {
        let hidden = self.forward(seqs)?;
        let mut last = Vec::with_capacity(seqs.len());
        let mut end = 0;
        for s in seqs {
            end += s.len();
            last.push(hidden.i(end - 1..end)?);
        }
        let last = Tensor::cat(&last, 0)?;
        QMatMul::QTensor(self.embeddings.clone()).forward(&last)
    }
}

fn rms_norm(x: &Tensor, weight: &Tensor, eps: f32) -> candle_core::Result<Tensor> {
    candle_nn::ops::rms_norm(&x.contiguous()?, weight, eps)
}

/// Which candle kernels [`attention`] runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernels {
    /// candle's fused RMS norm, RoPE and softmax kernels (no backward pass).
    Fast,
    /// The same operations written out from differentiable tensor operations (`rms_norm_slow`,
    /// `rope_i_slow` / `rope_slow`, `softmax`), for training.
    Differentiable,
}

/// Causal self-attention of one decoder block over packed sequences: `qkv` are the block's
/// query, key and value projections `(total tokens, heads * head_dim)` /
/// `(total tokens, kv_heads * head_dim)` with the sequences of `lengths` one after the other;
/// each sequence attends only to itself. Per head: Gemma 3's Q/K RMS norms (`norms`), RoPE
/// from the `rope` tables (`(positions, head_dim / 2)` cos and sin; interleaved pairs for
/// llama as GGUF stores its Q/K, halves for Gemma 3), grouped-query attention (query head `j`
/// reads key/value head `j / (heads / kv_heads)`), scores scaled by `1/sqrt(head_dim)`, the
/// causal mask (and `window`, [`causal_mask`]), softmax. Returns the context
/// `(total tokens, heads * head_dim)`, before the output projection.
///
/// # Errors
///
/// When the shapes do not agree.
pub fn attention(
    c: &DecoderConfig,
    qkv: [&Tensor; 3],
    lengths: &[usize],
    rope: (&Tensor, &Tensor),
    norms: Option<(&Tensor, &Tensor)>,
    window: Option<usize>,
    kernels: Kernels,
) -> candle_core::Result<Tensor> {
    use candle_nn::rotary_emb::{rope as rope_h, rope_i, rope_i_slow, rope_slow};
    let (heads, kv, hd) = (c.heads, c.kv_heads, c.head_dim);
    let eps = c.eps as f32;
    let scale = 1.0 / (hd as f64).sqrt();
    let fast = kernels == Kernels::Fast;
    let norm = |x: &Tensor, w: &Tensor| {
        if fast {
            rms_norm(x, w, eps)
        } else {
            candle_nn::ops::rms_norm_slow(x, w, eps)
        }
    };
    let rotate = |x: &Tensor, cos: &Tensor, sin: &Tensor| match (c.architecture, fast) {
        (Architecture::Llama, true) => rope_i(x, cos, sin),
        (Architecture::Llama, false) => rope_i_slow(x, cos, sin),
        (Architecture::Gemma3, true) => rope_h(x, cos, sin),
        (Architecture::Gemma3, false) => rope_slow(x, cos, sin),
    };
    let [q, k, v] = qkv;
    let device = q.device();
    let mut contexts = Vec::with_capacity(lengths.len());
    let mut offset = 0;
    for &len in lengths {
        // (1, heads, len, head_dim), as candle's RoPE kernels take it.
        let split = |t: &Tensor, n: usize| -> candle_core::Result<Tensor> {
            t.narrow(0, offset, len)?
                .reshape((1, len, n, hd))?
                .transpose(1, 2)?
                .contiguous()
        };
        let (mut q, mut k, v) = (split(q, heads)?, split(k, kv)?, split(v, kv)?);
        if let Some((qn, kn)) = norms {
            q = norm(&q, qn)?;
            k = norm(&k, kn)?;
        }
        let cos = rope.0.narrow(0, 0, len)?;
        let sin = rope.1.narrow(0, 0, len)?;
        let (q, k) = (rotate(&q, &cos, &sin)?, rotate(&k, &cos, &sin)?);
        let group = heads / kv;
        let q = q.reshape((kv, group * len, hd))?;
        let k = k.reshape((kv, len, hd))?;
        let v = v.reshape((kv, len, hd))?;
        let scores = (q.matmul(&k.t()?)? * scale)?.reshape((kv, group, len, len))?;
        let mut mask = causal_mask(len, window, device)?;
        if !fast {
            // A finite mask keeps the written-out softmax's backward pass free of inf - inf.
            mask = mask.clamp(-1e9f32, 0f32)?;
        }
        let scores = scores.broadcast_add(&mask)?;
        let probs = if fast {
            candle_nn::ops::softmax_last_dim(&scores)?
        } else {
            candle_nn::ops::softmax(&scores, D::Minus1)?
        };
        let context = probs.reshape((kv, group * len, len))?.matmul(&v)?;
        // (kv, group, len, hd) -> (len, heads * hd), heads in order kv * group + g.
        contexts.push(
            context
                .reshape((heads, len, hd))?
                .transpose(0, 1)?
                .reshape((len, heads * hd))?,
        );
        offset += len;
    }
    Tensor::cat(&contexts, 0)
}

/// `cos` and `sin` of `position * base^(-2i / head_dim)`, `(MAX_POSITIONS, head_dim / 2)`
/// (RoPE, Su et al. 2021, "RoFormer"), as candle's `rotary_emb` kernels take them.
///
/// # Errors
///
/// When a tensor cannot be built on `device`.
pub fn rope_tables(
    head_dim: usize,
    base: f32,
    device: &Device,
) -> candle_core::Result<(Tensor, Tensor)> {
    let inv: Vec<f32> = (0..head_dim)
        .step_by(2)
        .map(|i| 1.0 / base.powf(i as f32 / head_dim as f32))
        .collect();
    let inv = Tensor::from_vec(inv, (1, head_dim / 2), device)?;
    let positions = Tensor::arange(0, MAX_POSITIONS as u32, device)?
        .to_dtype(DType::F32)?
        .reshape((MAX_POSITIONS, 1))?;
    let angles = positions.matmul(&inv)?;
    Ok((angles.cos()?, angles.sin()?))
}

/// Additive mask `(len, len)`: 0 where token `i` may attend to token `j` (`j <= i`, and within
/// the sliding window: `i - j < window`, as Hugging Face's Gemma 3 defines it), `-inf` elsewhere.
///
/// # Errors
///
/// When the tensor cannot be built on `device`.
pub fn causal_mask(
    len: usize,
    window: Option<usize>,
    device: &Device,
) -> candle_core::Result<Tensor> {
    let mask: Vec<f32> = (0..len)
        .flat_map(|i| {
            (0..len).map(move |j| {
                let visible = j <= i && window.is_none_or(|w| i - j < w);
                if visible { 0.0 } else { f32::NEG_INFINITY }
            })
        })
        .collect();
    Tensor::from_vec(mask, (len, len), device)
}

/// What the GGUF metadata says about tokens.
#[derive(Debug, Clone)]
pub(crate) struct GgufInfo {
    pub(crate) bos: Option<u32>,
    pub(crate) eos: Option<u32>,
    pub(crate) add_bos: bool,
    /// `tokenizer.ggml.model`, `tokenizer.ggml.pre`, tokens, their types and the merges, when the
    /// file carries a byte-level BPE tokenizer.
    tokenizer: Option<GgufTokenizer>,
}

#[derive(Debug, Clone)]
struct GgufTokenizer {
    model: String,
    pre: String,
    tokens: Vec<String>,
    types: Vec<i32>,
    merges: Vec<String>,
}

impl GgufInfo {
    fn read(content: &gguf_file::Content) -> Self {
        let md = &content.metadata;
        let id = |k: &str| md.get(k).and_then(|v| v.to_u32().ok());
        let strings = |k: &str| -> Vec<String> {
            md.get(k)
                .and_then(|v| v.to_vec().ok())
                .map(|v| {
                    v.iter()
                        .filter_map(|s| s.to_string().ok().cloned())
                        .collect()
                })
                .unwrap_or_default()
        };
        let text = |k: &str| md.get(k).and_then(|v| v.to_string().ok()).cloned();
        let tokens = strings("tokenizer.ggml.tokens");
        let tokenizer = text("tokenizer.ggml.model").map(|model| GgufTokenizer {
            model,
            pre: text("tokenizer.ggml.pre").unwrap_or_default(),
            types: md
                .get("tokenizer.ggml.token_type")
                .and_then(|v| v.to_vec().ok())
                .map(|v| v.iter().map(|t| t.to_i32().unwrap_or(1)).collect())
                .unwrap_or_default(),
            merges: strings("tokenizer.ggml.merges"),
            tokens,
        });
        Self {
            bos: id("tokenizer.ggml.bos_token_id"),
            eos: id("tokenizer.ggml.eos_token_id"),
            add_bos: md
                .get("tokenizer.ggml.add_bos_token")
                .and_then(|v| v.to_bool().ok())
                .unwrap_or(false),
            tokenizer,
        }
    }

    /// The byte-level BPE tokenizer the GGUF metadata describes (`tokenizer.ggml.model` =
    /// `gpt2`): the vocabulary in id order, the merges by rank, GGML control tokens (type 3) as
    /// special tokens, and the pre-tokenizer llama.cpp uses for `tokenizer.ggml.pre` =
    /// `smollm` / `starcoder` / `refact` (digits one by one, then GPT-2's byte-level split).
    pub(crate) fn tokenizer(&self) -> std::result::Result<Tokenizer, String> {
        use tokenizers::models::bpe::BPE;
        use tokenizers::pre_tokenizers::byte_level::ByteLevel;
        use tokenizers::pre_tokenizers::digits::Digits;
        use tokenizers::pre_tokenizers::sequence::Sequence;
        use tokenizers::{AddedToken, PreTokenizerWrapper};

        let t = self
            .tokenizer
            .as_ref()
            .ok_or("has no tokenizer.json and its GGUF metadata has no tokenizer")?;
        if t.model != "gpt2" {
            return Err(format!(
                "the GGUF tokenizer `{}` cannot be built from metadata (only byte-level BPE, \
                 `gpt2`, can); put the model's tokenizer.json beside it",
                t.model
            ));
        }
        let individual_digits = match t.pre.as_str() {
            "smollm" | "starcoder" | "refact" => true,
            "gpt-2" | "default" | "" => false,
            other => {
                return Err(format!(
                    "the GGUF pre-tokenizer `{other}` is not supported (smollm, starcoder, \
                     refact, gpt-2 are); put the model's tokenizer.json beside it"
                ));
            }
        };
        let vocab: tokenizers::models::bpe::Vocab = t
            .tokens
            .iter()
            .enumerate()
            .map(|(i, s)| (s.clone(), i as u32))
            .collect();
        let merges = t
            .merges
            .iter()
            .map(|m| {
                m.split_once(' ')
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .ok_or_else(|| format!("merge `{m}` is not two tokens"))
            })
            .collect::<std::result::Result<Vec<_>, String>>()?;
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .build()
            .map_err(|e| e.to_string())?;
        let mut tokenizer = Tokenizer::new(bpe);
        let byte_level = ByteLevel::new(false, true, true);
        let mut parts: Vec<PreTokenizerWrapper> = Vec::new();
        if individual_digits {
            parts.push(Digits::new(true).into());
        }
        parts.push(byte_level.into());
        tokenizer.with_pre_tokenizer(Some(Sequence::new(parts)));
        tokenizer.with_decoder(Some(ByteLevel::new(false, true, true)));
        let specials: Vec<AddedToken> = t
            .tokens
            .iter()
            .zip(&t.types)
            .filter(|(_, ty)| **ty == 3)
            .map(|(s, _)| AddedToken::from(s.clone(), true))
            .collect();
        tokenizer
            .add_special_tokens(specials)
            .map_err(|e| e.to_string())?;
        Ok(tokenizer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tiny_decoder::TinyDecoder;
    use candle_transformers::models::{quantized_gemma3, quantized_llama};

    /// Next-token logits after `ids` from candle-transformers' own quantized model.
    fn candle_logits(path: &Path, architecture: Architecture, ids: &[u32]) -> Vec<f32> {
        let mut file = std::fs::File::open(path).unwrap();
        let content = gguf_file::Content::read(&mut file).unwrap();
        let input = Tensor::new(ids, &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let logits = match architecture {
            Architecture::Llama => {
                let mut m =
                    quantized_llama::ModelWeights::from_gguf(content, &mut file, &Device::Cpu)
                        .unwrap();
                m.forward(&input, 0).unwrap()
            }
            Architecture::Gemma3 => {
                let mut m =
                    quantized_gemma3::ModelWeights::from_gguf(content, &mut file, &Device::Cpu)
                        .unwrap();
                m.forward(&input, 0).unwrap()
            }
        };
        logits.flatten_all().unwrap().to_vec1().unwrap()
    }

    /// Ours, set up as candle-transformers runs: every matrix through the quantized kernel and,
    /// for Gemma 3, candle's SiLU gate and its sliding window (it lets a token see `window`
    /// tokens back, one more than Hugging Face and llama.cpp).
    fn our_logits(path: &Path, format: WeightFormat, ids: &[&[u32]]) -> Vec<Vec<f32>> {
        let (mut m, _) = Decoder::load(path, format, &Device::Cpu).unwrap();
        m.quantized_kernel_rows = usize::MAX;
        if m.config.architecture == Architecture::Gemma3 {
            m.config.activation = GateActivation::Silu;
            for l in &mut m.layers {
                l.sliding_window = l.sliding_window.map(|w| w + 1);
            }
        }
        m.last_logits(ids).unwrap().to_vec2().unwrap()
    }

    fn max_abs(a: &[f32]) -> f32 {
        a.iter().fold(0f32, |m, x| m.max(x.abs()))
    }

    fn max_diff(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()))
    }

    fn check_parity(architecture: Architecture) {
        let dir = tempfile::tempdir().unwrap();
        let tiny = TinyDecoder::new(architecture);
        tiny.write(dir.path()).unwrap();
        let path = dir.path().join("model.gguf");
        // Longer than Gemma's sliding window of 8, so local and global layers differ.
        let long: Vec<u32> = (0..20).map(|i| (i * 37 + 5) % 260).collect();
        let short: Vec<u32> = vec![7, 99, 3, 250];
        let reference_long = candle_logits(&path, architecture, &long);
        let reference_short = candle_logits(&path, architecture, &short);
        let scale = max_abs(&reference_long);
        assert!(scale > 0.1, "degenerate logits {scale}");
        // Both sequences in one packed batch: each must match its own reference.
        let ours = our_logits(&path, WeightFormat::AsStored, &[&long, &short]);
        let d_long = max_diff(&ours[0], &reference_long);
        let d_short = max_diff(&ours[1], &reference_short);
        assert!(
            d_long < 1e-4 * scale.max(1.0),
            "{architecture:?}: long {d_long} of {scale}"
        );
        assert!(
            d_short < 1e-4 * scale.max(1.0),
            "{architecture:?}: short {d_short}"
        );
        // Dequantised matrices: activations are no longer rounded to Q8 blocks, so close only.
        // int8 rounds weights and activations again (random weights amplify it over 7 layers).
        for (format, bound) in [(WeightFormat::F32, 0.05), (WeightFormat::Int8, 0.1)] {
            let other = our_logits(&path, format, &[&long]);
            let d = max_diff(&other[0], &reference_long);
            assert!(
                d < bound * scale,
                "{architecture:?}: {format:?} {d} of {scale}"
            );
            assert!(
                d > 0.0,
                "the {format:?} path should not be the quantized kernel"
            );
        }
    }

    /// Mean next-token negative log-likelihood of `ids` (each prefix's last-token logits).
    fn mean_nll(m: &Decoder, ids: &[u32]) -> f32 {
        let prefixes: Vec<&[u32]> = (1..ids.len()).map(|n| &ids[..n]).collect();
        let logits = m.last_logits(&prefixes).unwrap();
        let logp = candle_nn::ops::log_softmax(&logits, 1)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        let sum: f32 = (1..ids.len()).map(|n| -logp[n - 1][ids[n] as usize]).sum();
        sum / (ids.len() - 1) as f32
    }

    /// Gemma 3's real weights: the GELU gate (Google's config, llama.cpp) models English text
    /// far better than candle-transformers' SiLU, so the GELU is what the weights were trained
    /// with. Needs `scripts/fetch-models.sh --llm`; skipped otherwise.
    #[test]
    fn gemma3_weights_were_trained_with_a_gelu_gate() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/gemma-3-270m");
        if !dir.join("model.gguf").is_file() {
            eprintln!("skipped: gemma-3-270m missing; run scripts/fetch-models.sh --llm");
            return;
        }
        let tokenizer = crate::encoder::load_tokenizer(&dir).unwrap();
        let text = "The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in \
                    Paris, France. It is named after the engineer Gustave Eiffel, whose company \
                    designed and built the tower from 1887 to 1889.";
        let mut ids = vec![2];
        ids.extend(tokenizer.encode(text, false).unwrap().get_ids());
        let (mut m, _) = Decoder::load(
            &dir.join("model.gguf"),
            WeightFormat::AsStored,
            &Device::Cpu,
        )
        .unwrap();
        let gelu = mean_nll(&m, &ids);
        m.config.activation = GateActivation::Silu;
        let silu = mean_nll(&m, &ids);
        eprintln!("gemma-3-270m mean NLL per token: GELU {gelu:.3}, SiLU {silu:.3}");
        assert!(gelu < 2.5 && gelu + 0.3 < silu, "GELU {gelu}, SiLU {silu}");
    }

    #[test]
    fn llama_last_logits_match_candle_transformers() {
        check_parity(Architecture::Llama);
    }

    #[test]
    fn gemma3_last_logits_match_candle_transformers() {
        check_parity(Architecture::Gemma3);
    }

    #[test]
    fn causal_mask_hides_the_future_and_what_lies_beyond_the_window() {
        let m = causal_mask(4, Some(2), &Device::Cpu)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        let visible: Vec<Vec<bool>> = m
            .iter()
            .map(|r| r.iter().map(|v| v.is_finite()).collect())
            .collect();
        assert_eq!(
            visible,
            vec![
                vec![true, false, false, false],
                vec![true, true, false, false],
                vec![false, true, true, false],
                vec![false, false, true, true],
            ]
        );
    }
}
