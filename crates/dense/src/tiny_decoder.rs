//! A tiny random decoder LLM written as a complete model directory (a GGUF file with its
//! tokenizer in the metadata, and `decoder.json`), for wiring tests that must not depend on
//! downloaded weights.
//!
//! The GGUF file is laid out as llama.cpp writes `llama` and `gemma3` models: the metadata
//! keys the real SmolLM2 and Gemma 3 files carry, tied embeddings (no `output.weight`), and
//! quantized matrices (Q4_1 for `llama`, as SmolLM2's file has, Q4_K for `gemma3`; the
//! embedding table in Q8_0). The tokenizer is byte-level BPE (GPT-2's byte alphabet plus a few
//! merges), so any text tokenizes. Its vectors mean nothing, but are deterministic for a seed.

use std::path::Path;

use candle_core::quantized::gguf_file::Value;
use candle_core::quantized::{GgmlDType, QTensor, gguf_file};
use candle_core::{Device, Tensor};

use crate::decoder::Architecture;
use crate::error::{Error, Result};

/// The shape of a tiny decoder model.
#[derive(Debug, Clone, Copy)]
pub struct TinyDecoder {
    /// `Llama` (interleaved RoPE, SwiGLU) or `Gemma3` (Q/K norms, sandwich norms, GELU, a
    /// sliding window on all but every 6th layer).
    pub architecture: Architecture,
    /// Transformer blocks.
    pub layers: usize,
    /// Longest input in tokens (`decoder.json`'s `max_seq_length`).
    pub max_seq_length: usize,
    /// Sliding window of Gemma 3's local layers, in tokens.
    pub sliding_window: usize,
    /// Seed of the random weights.
    pub seed: u64,
}

impl TinyDecoder {
    /// A tiny model of `architecture` with 2 layers (Gemma 3: 7, so one layer is global),
    /// 48 tokens at most and seed 1.
    pub fn new(architecture: Architecture) -> Self {
        Self {
            architecture,
            layers: if architecture == Architecture::Gemma3 {
                7
            } else {
                2
            },
            max_seq_length: 48,
            sliding_window: 8,
            seed: 1,
        }
    }
}

/// GPT-2's byte-to-character map: printable bytes stand for themselves, the others for
/// characters from U+0100 on.
fn byte_alphabet() -> Vec<String> {
    let mut n = 0;
    (0u32..256)
        .map(|b| {
            let printable = (33..=126).contains(&b) || (161..=172).contains(&b) || b >= 174;
            let c = if printable {
                b
            } else {
                n += 1;
                255 + n
            };
            char::from_u32(c).map(String::from).unwrap_or_default()
        })
        .collect()
}

const SPECIALS: [&str; 3] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];
const MERGES: [(&str, &str); 6] = [
    ("Ġ", "t"),
    ("h", "e"),
    ("Ġt", "he"),
    ("i", "n"),
    ("Ġ", "a"),
    ("e", "r"),
];

impl TinyDecoder {
    /// Writes the model directory (`model.gguf`, `decoder.json`) into `dir`, creating it.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the directory or files cannot be written; [`Error::Candle`] when a
    /// tensor cannot be quantized.
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let path = dir.join("model.gguf");
        let fail = |e: candle_core::Error| Error::candle(&path, e);
        let gemma = self.architecture == Architecture::Gemma3;
        // Gemma's Q4_K blocks hold 256 values, so its matrices are at least 256 wide.
        let (hidden, heads, kv_heads, head_dim, ffn) = if gemma {
            (256, 4, 1, 64, 512)
        } else {
            (64, 4, 2, 16, 128)
        };
        let matrix_type = if gemma {
            GgmlDType::Q4K
        } else {
            GgmlDType::Q4_1
        };
        let mut tokens: Vec<String> = SPECIALS.iter().map(|s| s.to_string()).collect();
        tokens.extend(byte_alphabet());
        tokens.extend(MERGES.iter().map(|(a, b)| format!("{a}{b}")));
        let vocab = tokens.len();

        let device = Device::Cpu;
        let mut rng = crate::tiny::Rng(crate::SplitMix64::new(self.seed));
        // Uniform in [offset - scale, offset + scale).
        let mut random =
            |shape: &[usize], scale: f64, offset: f64| -> candle_core::Result<Tensor> {
                let n = shape.iter().product();
                Tensor::from_vec(rng.values(n, scale as f32), shape, &device)?.affine(1.0, offset)
            };
        let mut tensors: Vec<(String, QTensor)> = Vec::new();
        let mut add = |name: String, t: Tensor, dtype: GgmlDType| -> candle_core::Result<()> {
            tensors.push((name, QTensor::quantize(&t, dtype)?));
            Ok(())
        };
        let embedding_scale = if gemma { 0.05 } else { 0.5 };
        let e = random(&[vocab, hidden], embedding_scale, 0.0).map_err(fail)?;
        add("token_embd.weight".into(), e, GgmlDType::Q8_0).map_err(fail)?;
        let n = random(&[hidden], 0.1, 1.0).map_err(fail)?;
        add("output_norm.weight".into(), n, GgmlDType::F32).map_err(fail)?;
        for i in 0..self.layers {
            let name = |n: &str| format!("blk.{i}.{n}.weight");
            let mut mats = vec![
                ("attn_q", heads * head_dim, hidden),
                ("attn_k", kv_heads * head_dim, hidden),
                ("attn_v", kv_heads * head_dim, hidden),
                ("attn_output", hidden, heads * head_dim),
                ("ffn_gate", ffn, hidden),
                ("ffn_up", ffn, hidden),
                ("ffn_down", hidden, ffn),
            ];
            for (n, rows, cols) in mats.drain(..) {
                let scale = 1.0 / (cols as f64).sqrt();
                let t = random(&[rows, cols], scale, 0.0).map_err(fail)?;
                add(name(n), t, matrix_type).map_err(fail)?;
            }
            let mut norms = vec![("attn_norm", hidden), ("ffn_norm", hidden)];
            if gemma {
                norms.extend([
                    ("attn_q_norm", head_dim),
                    ("attn_k_norm", head_dim),
                    ("post_attention_norm", hidden),
                    ("post_ffw_norm", hidden),
                ]);
            }
            for (n, len) in norms {
                let t = random(&[len], 0.1, 1.0).map_err(fail)?;
                add(name(n), t, GgmlDType::F32).map_err(fail)?;
            }
        }

        let arch = if gemma { "gemma3" } else { "llama" };
        let u32v = |v: usize| Value::U32(v as u32);
        let mut metadata: Vec<(String, Value)> = vec![
            ("general.architecture".into(), Value::String(arch.into())),
            (format!("{arch}.block_count"), u32v(self.layers)),
            (format!("{arch}.context_length"), u32v(2048)),
            (format!("{arch}.embedding_length"), u32v(hidden)),
            (format!("{arch}.feed_forward_length"), u32v(ffn)),
            (format!("{arch}.attention.head_count"), u32v(heads)),
            (format!("{arch}.attention.head_count_kv"), u32v(kv_heads)),
            (
                format!("{arch}.attention.layer_norm_rms_epsilon"),
                Value::F32(1e-6),
            ),
            (
                format!("{arch}.rope.freq_base"),
                Value::F32(if gemma { 1e6 } else { 1e5 }),
            ),
            ("tokenizer.ggml.model".into(), Value::String("gpt2".into())),
            ("tokenizer.ggml.pre".into(), Value::String("smollm".into())),
            (
                "tokenizer.ggml.tokens".into(),
                Value::Array(tokens.iter().cloned().map(Value::String).collect()),
            ),
            (
                "tokenizer.ggml.token_type".into(),
                Value::Array(
                    (0..vocab)
                        .map(|i| Value::I32(if i < SPECIALS.len() { 3 } else { 1 }))
                        .collect(),
                ),
            ),
            (
                "tokenizer.ggml.merges".into(),
                Value::Array(
                    MERGES
                        .iter()
                        .map(|(a, b)| Value::String(format!("{a} {b}")))
                        .collect(),
                ),
            ),
            ("tokenizer.ggml.bos_token_id".into(), u32v(1)),
            ("tokenizer.ggml.eos_token_id".into(), u32v(2)),
            ("tokenizer.ggml.add_bos_token".into(), Value::Bool(gemma)),
        ];
        if gemma {
            metadata.extend([
                (format!("{arch}.attention.key_length"), u32v(head_dim)),
                (format!("{arch}.attention.value_length"), u32v(head_dim)),
                (
                    format!("{arch}.attention.sliding_window"),
                    u32v(self.sliding_window),
                ),
            ]);
        } else {
            metadata.push((format!("{arch}.rope.dimension_count"), u32v(head_dim)));
        }
        let mut file = std::fs::File::create(&path).map_err(|e| Error::io(&path, e))?;
        let metadata: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let tensors: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
        gguf_file::write(&mut file, &metadata, &tensors).map_err(fail)?;

        let json = serde_json::json!({
            "pooling": "last",
            "max_seq_length": self.max_seq_length,
            "query_prompt": "Instruct: find passages.\nQuery: ",
            "passage_prompt": "",
        });
        let json_path = dir.join("decoder.json");
        std::fs::write(&json_path, json.to_string()).map_err(|e| Error::io(&json_path, e))
    }
}
