//! A tiny random BERT written as a complete model directory, for wiring tests and examples
//! that must not depend on downloaded weights.
//!
//! The directory has what a real one has: `config.json`, `model.safetensors`, a WordPiece
//! `tokenizer.json` (lower-cased ASCII letters and digits, so any English word tokenizes
//! into known pieces), and the sentence-transformers files (mean pooling, normalisation, a
//! short maximum length so long-text windows are exercised). Its vectors mean nothing, but
//! they are deterministic for a seed: identical texts get identical vectors, and different
//! seeds make different models (with different weight fingerprints).

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use serde_json::json;

use crate::error::{Error, Result};
use crate::rng::SplitMix64;

/// The shape of a tiny model.
#[derive(Debug, Clone, Copy)]
pub struct TinyModel {
    /// Hidden size (a multiple of `heads`).
    pub hidden: usize,
    /// Transformer layers.
    pub layers: usize,
    /// Attention heads.
    pub heads: usize,
    /// Longest input in tokens, special tokens included.
    pub max_seq_length: usize,
    /// Seed of the random weights.
    pub seed: u64,
}

impl Default for TinyModel {
    fn default() -> Self {
        Self {
            hidden: 32,
            layers: 2,
            heads: 4,
            max_seq_length: 32,
            seed: 1,
        }
    }
}

fn vocabulary() -> Vec<String> {
    let mut vocab: Vec<String> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let chars: Vec<char> = ('a'..='z').chain('0'..='9').collect();
    vocab.extend(chars.iter().map(|c| c.to_string()));
    vocab.extend(chars.iter().map(|c| format!("##{c}")));
    vocab.extend(".,;:!?()-'\"/%+=".chars().map(|c| c.to_string()));
    vocab
}

/// The tiny models' random weights.
pub(crate) struct Rng(pub(crate) SplitMix64);

impl Rng {
    /// Uniform in [-scale, scale).
    pub(crate) fn values(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n)
            .map(|_| (self.0.uniform_f32() * 2.0 - 1.0) * scale)
            .collect()
    }
}

/// Adds a named tensor of a shape with its values to the model being written.
type AddTensor<'a> = dyn FnMut(String, &[usize], Vec<f32>) -> Result<()> + 'a;

fn write(path: &Path, value: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value).expect("JSON serialises");
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

impl TinyModel {
    /// Writes the model directory `dir` (created if missing).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] or [`Error::Candle`] when a file cannot be written.
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir.join("1_Pooling")).map_err(|e| Error::io(dir, e))?;
        let vocab = vocabulary();
        let (h, ff) = (self.hidden, self.hidden * 2);
        write(
            &dir.join("config.json"),
            &json!({
                "model_type": "bert",
                "hidden_size": h,
                "num_hidden_layers": self.layers,
                "num_attention_heads": self.heads,
                "intermediate_size": ff,
                "vocab_size": vocab.len(),
                "max_position_embeddings": self.max_seq_length,
                "type_vocab_size": 2,
                "layer_norm_eps": 1e-12,
                "hidden_act": "gelu",
                "pad_token_id": 0
            }),
        )?;
        let mut rng = Rng(SplitMix64::new(self.seed));
        let mut tensors: HashMap<String, Tensor> = HashMap::new();
        let device = Device::Cpu;
        let mut add = |name: String, shape: &[usize], values: Vec<f32>| -> Result<()> {
            let t = Tensor::from_vec(values, shape, &device).map_err(|e| Error::candle(dir, e))?;
            tensors.insert(name, t);
            Ok(())
        };
        let matrix = |rng: &mut Rng, rows: usize, cols: usize| {
            rng.values(rows * cols, (1.0 / cols as f32).sqrt() * 1.7)
        };
        add(
            "embeddings.word_embeddings.weight".into(),
            &[vocab.len(), h],
            rng.values(vocab.len() * h, 1.0),
        )?;
        add(
            "embeddings.position_embeddings.weight".into(),
            &[self.max_seq_length, h],
            rng.values(self.max_seq_length * h, 0.1),
        )?;
        add(
            "embeddings.token_type_embeddings.weight".into(),
            &[2, h],
            rng.values(2 * h, 0.1),
        )?;
        let norm = |add: &mut AddTensor<'_>, name: &str| -> Result<()> {
            add(format!("{name}.weight"), &[h], vec![1.0; h])?;
            add(format!("{name}.bias"), &[h], vec![0.0; h])
        };
        norm(&mut add, "embeddings.LayerNorm")?;
        for i in 0..self.layers {
            let p = format!("encoder.layer.{i}");
            let linears = [
                ("attention.self.query", h, h),
                ("attention.self.key", h, h),
                ("attention.self.value", h, h),
                ("attention.output.dense", h, h),
                ("intermediate.dense", ff, h),
                ("output.dense", h, ff),
            ];
            for (name, out, inp) in linears {
                add(
                    format!("{p}.{name}.weight"),
                    &[out, inp],
                    matrix(&mut rng, out, inp),
                )?;
                add(format!("{p}.{name}.bias"), &[out], rng.values(out, 0.02))?;
            }
            norm(&mut add, &format!("{p}.attention.output.LayerNorm"))?;
            norm(&mut add, &format!("{p}.output.LayerNorm"))?;
        }
        let weights = dir.join("model.safetensors");
        candle_core::safetensors::save(&tensors, &weights)
            .map_err(|e| Error::candle(&weights, e))?;

        let ids: serde_json::Map<String, serde_json::Value> = vocab
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), json!(i)))
            .collect();
        let special = |id: usize, content: &str| {
            json!({"id": id, "content": content, "single_word": false, "lstrip": false,
                   "rstrip": false, "normalized": false, "special": true})
        };
        write(
            &dir.join("tokenizer.json"),
            &json!({
                "version": "1.0",
                "truncation": null,
                "padding": null,
                "added_tokens": [special(0, "[PAD]"), special(1, "[UNK]"), special(2, "[CLS]"),
                                 special(3, "[SEP]"), special(4, "[MASK]")],
                "normalizer": {"type": "BertNormalizer", "clean_text": true,
                               "handle_chinese_chars": true, "strip_accents": null,
                               "lowercase": true},
                "pre_tokenizer": {"type": "BertPreTokenizer"},
                "post_processor": {"type": "BertProcessing", "sep": ["[SEP]", 3],
                                   "cls": ["[CLS]", 2]},
                "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},
                "model": {"type": "WordPiece", "unk_token": "[UNK]",
                          "continuing_subword_prefix": "##", "max_input_chars_per_word": 100,
                          "vocab": ids}
            }),
        )?;
        write(
            &dir.join("modules.json"),
            &json!([
                {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
                {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}
            ]),
        )?;
        write(
            &dir.join("1_Pooling/config.json"),
            &json!({"word_embedding_dimension": h, "pooling_mode_cls_token": false,
                    "pooling_mode_mean_tokens": true}),
        )?;
        write(
            &dir.join("sentence_bert_config.json"),
            &json!({"max_seq_length": self.max_seq_length, "do_lower_case": false}),
        )
    }

    /// Writes a cross-encoder directory `dir`: the model of [`TinyModel::write`] with a random
    /// one-logit head (`pooler.dense.*`, `classifier.*`, seeded by `seed + 1`) and
    /// `"num_labels": 1`, as [`CrossEncoder::load`](crate::CrossEncoder::load) reads it.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] or [`Error::Candle`] when a file cannot be written.
    pub fn write_cross_encoder(&self, dir: &Path) -> Result<()> {
        self.write(dir)?;
        let weights = dir.join("model.safetensors");
        let mut tensors = candle_core::safetensors::load(&weights, &Device::Cpu)
            .map_err(|e| Error::candle(&weights, e))?;
        let h = self.hidden;
        let mut rng = Rng(SplitMix64::new(self.seed + 1));
        let head = [
            (
                "pooler.dense.weight",
                vec![h, h],
                rng.values(h * h, (1.0 / h as f32).sqrt()),
            ),
            ("pooler.dense.bias", vec![h], vec![0.0; h]),
            ("classifier.weight", vec![1, h], rng.values(h, 1.0)),
            ("classifier.bias", vec![1], vec![0.0]),
        ];
        for (name, shape, values) in head {
            let t =
                Tensor::from_vec(values, shape, &Device::Cpu).map_err(|e| Error::candle(dir, e))?;
            tensors.insert(name.to_string(), t);
        }
        candle_core::safetensors::save(&tensors, &weights)
            .map_err(|e| Error::candle(&weights, e))?;
        let config_path = dir.join("config.json");
        let text = std::fs::read(&config_path).map_err(|e| Error::io(&config_path, e))?;
        let mut config: serde_json::Value =
            serde_json::from_slice(&text).map_err(|e| Error::Model {
                path: config_path.clone(),
                message: e.to_string(),
            })?;
        config["num_labels"] = json!(1);
        write(&config_path, &config)
    }
}
