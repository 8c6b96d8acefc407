//! A sentence encoder over a Hugging Face / sentence-transformers model directory.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use serde::{Deserialize, Serialize};
use tokenizers::{Tokenizer, TruncationParams};

use crate::error::{Error, Result};

/// How token vectors become one text vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// Mean of the token vectors under the attention mask (special tokens included).
    Mean,
    /// The `[CLS]` token's vector.
    Cls,
}

/// Whether a text is a query or a passage (models such as E5 prefix them differently).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextKind {
    /// A search query.
    Query,
    /// A document or passage.
    Passage,
}

/// What a model directory says about how to use it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelDescription {
    /// Output dimensions.
    pub dim: usize,
    /// Pooling.
    pub pooling: Pooling,
    /// Whether embeddings are L2-normalised.
    pub normalize: bool,
    /// Longest input in tokens, special tokens included.
    pub max_seq_length: usize,
    /// Text put before a query.
    pub query_prefix: String,
    /// Text put before a passage.
    pub passage_prefix: String,
}

/// A BERT-family encoder loaded from a model directory (`config.json`, `tokenizer.json`,
/// `model.safetensors` or `pytorch_model.bin`, and the sentence-transformers files `modules.json`,
/// `1_Pooling/config.json`, `sentence_bert_config.json`, `config_sentence_transformers.json`).
pub struct Encoder {
    dir: PathBuf,
    model: BertModel,
    tokenizer: Tokenizer,
    description: ModelDescription,
    pad_id: u32,
    device: Device,
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Model {
        path: path.to_path_buf(),
        message: format!("not valid JSON for this file ({e})"),
    })
}

fn read_json_opt<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    if path.is_file() {
        read_json(path).map(Some)
    } else {
        Ok(None)
    }
}

#[derive(Deserialize)]
struct Module {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    path: String,
}

#[derive(Deserialize)]
struct PoolingConfig {
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
}

#[derive(Deserialize)]
struct SentenceBertConfig {
    max_seq_length: Option<usize>,
}

#[derive(Deserialize, Default)]
struct SentenceTransformersConfig {
    #[serde(default)]
    prompts: std::collections::HashMap<String, String>,
}

/// Reads the sentence-transformers description of a model directory; a plain Hugging Face
/// directory gets mean pooling, normalisation off and the model's position limit.
pub fn describe(dir: &Path, config: &Config) -> Result<ModelDescription> {
    let modules: Vec<Module> = read_json_opt(&dir.join("modules.json"))?.unwrap_or_default();
    let mut pooling = Pooling::Mean;
    for m in modules.iter().filter(|m| m.kind.ends_with("Pooling")) {
        let path = dir.join(&m.path).join("config.json");
        let p: PoolingConfig = read_json(&path)?;
        pooling = match (p.pooling_mode_cls_token, p.pooling_mode_mean_tokens) {
            (true, false) => Pooling::Cls,
            (false, true) => Pooling::Mean,
            _ => {
                return Err(Error::Model {
                    path,
                    message: "only mean or CLS pooling (exactly one) is supported".into(),
                });
            }
        };
    }
    let normalize = modules.iter().any(|m| m.kind.ends_with("Normalize"));
    let sbert: Option<SentenceBertConfig> = read_json_opt(&dir.join("sentence_bert_config.json"))?;
    let max_seq_length = sbert
        .and_then(|s| s.max_seq_length)
        .unwrap_or(config.max_position_embeddings)
        .min(config.max_position_embeddings);
    let st: SentenceTransformersConfig =
        read_json_opt(&dir.join("config_sentence_transformers.json"))?.unwrap_or_default();
    let prompt = |names: &[&str]| names.iter().find_map(|n| st.prompts.get(*n)).cloned();
    Ok(ModelDescription {
        dim: config.hidden_size,
        pooling,
        normalize,
        max_seq_length,
        query_prefix: prompt(&["query"]).unwrap_or_default(),
        passage_prefix: prompt(&["passage", "document"]).unwrap_or_default(),
    })
}

impl Encoder {
    /// Loads the model directory on `device`.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        if !dir.is_dir() {
            return Err(Error::Model {
                path: dir.to_path_buf(),
                message: "no such model directory (scripts/fetch-models.sh lays out models/)"
                    .into(),
            });
        }
        let config: Config = read_json(&dir.join("config.json"))?;
        let description = describe(dir, &config)?;
        let safetensors = dir.join("model.safetensors");
        let pth = dir.join("pytorch_model.bin");
        let vb = if safetensors.is_file() {
            let bytes = std::fs::read(&safetensors).map_err(|e| Error::io(&safetensors, e))?;
            VarBuilder::from_buffered_safetensors(bytes, DType::F32, device)
                .map_err(|e| Error::candle(&safetensors, e))?
        } else if pth.is_file() {
            VarBuilder::from_pth(&pth, DType::F32, device).map_err(|e| Error::candle(&pth, e))?
        } else {
            return Err(Error::Model {
                path: dir.to_path_buf(),
                message: "has neither model.safetensors nor pytorch_model.bin".into(),
            });
        };
        let model = BertModel::load(vb, &config).map_err(|e| Error::candle(dir, e))?;
        let tokenizer_path = dir.join("tokenizer.json");
        let mut tokenizer = Tokenizer::from_file(&tokenizer_path).map_err(|e| Error::Model {
            path: tokenizer_path.clone(),
            message: format!("cannot load the tokenizer ({e})"),
        })?;
        // tokenizer.json may carry its own padding and truncation (all-MiniLM-L6-v2 pads and
        // cuts everything to 128): batches are padded here, and truncation follows the model
        // description.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: description.max_seq_length,
                ..TruncationParams::default()
            }))
            .map_err(|e| Error::Model {
                path: tokenizer_path.clone(),
                message: e.to_string(),
            })?;
        let pad_id = ["[PAD]", "<pad>"]
            .iter()
            .find_map(|t| tokenizer.token_to_id(t))
            .unwrap_or(config.pad_token_id as u32);
        Ok(Self {
            dir: dir.to_path_buf(),
            model,
            tokenizer,
            description,
            pad_id,
            device: device.clone(),
        })
    }

    /// The model directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How the model is used.
    pub fn description(&self) -> &ModelDescription {
        &self.description
    }

    /// Token ids of a text as the model sees it (prefix, special tokens, truncation).
    pub fn token_ids(&self, text: &str, kind: TextKind) -> Result<Vec<u32>> {
        let prefix = match kind {
            TextKind::Query => &self.description.query_prefix,
            TextKind::Passage => &self.description.passage_prefix,
        };
        let input = format!("{prefix}{text}");
        let encoding = self
            .tokenizer
            .encode(input, true)
            .map_err(|e| Error::Model {
                path: self.dir.join("tokenizer.json"),
                message: format!("tokenizing: {e}"),
            })?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Pooled vectors before normalisation, one per text, batched by similar length.
    pub fn encode_unnormalized(
        &self,
        texts: &[&str],
        kind: TextKind,
        batch_size: usize,
    ) -> Result<Vec<Vec<f32>>> {
        let ids: Vec<Vec<u32>> = texts
            .iter()
            .map(|t| self.token_ids(t, kind))
            .collect::<Result<_>>()?;
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(ids[i].len()));
        let mut out = vec![Vec::new(); ids.len()];
        for chunk in order.chunks(batch_size.max(1)) {
            let vectors = self.forward_batch(chunk.iter().map(|&i| ids[i].as_slice()))?;
            for (&i, v) in chunk.iter().zip(vectors) {
                out[i] = v;
            }
        }
        Ok(out)
    }

    /// Embeddings, one per text, normalised when the model says so.
    pub fn encode(
        &self,
        texts: &[&str],
        kind: TextKind,
        batch_size: usize,
    ) -> Result<Vec<Vec<f32>>> {
        let mut vectors = self.encode_unnormalized(texts, kind, batch_size)?;
        if self.description.normalize {
            for v in &mut vectors {
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                v.iter_mut().for_each(|x| *x /= norm);
            }
        }
        Ok(vectors)
    }

    fn forward_batch<'a>(&self, batch: impl Iterator<Item = &'a [u32]>) -> Result<Vec<Vec<f32>>> {
        let batch: Vec<&[u32]> = batch.collect();
        let len = batch.iter().map(|b| b.len()).max().unwrap_or(0).max(1);
        let mut input = Vec::with_capacity(batch.len() * len);
        let mut mask = Vec::with_capacity(batch.len() * len);
        for ids in &batch {
            input.extend_from_slice(ids);
            input.extend(std::iter::repeat_n(self.pad_id, len - ids.len()));
            mask.extend(std::iter::repeat_n(1u32, ids.len()));
            mask.extend(std::iter::repeat_n(0u32, len - ids.len()));
        }
        let run = || -> candle_core::Result<Vec<Vec<f32>>> {
            let shape = (batch.len(), len);
            let input = Tensor::from_vec(input, shape, &self.device)?;
            let mask = Tensor::from_vec(mask, shape, &self.device)?;
            let types = input.zeros_like()?;
            let hidden = self.model.forward(&input, &types, Some(&mask))?;
            let pooled = match self.description.pooling {
                Pooling::Cls => hidden.narrow(1, 0, 1)?.squeeze(1)?,
                Pooling::Mean => {
                    let m = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
                    let summed = hidden.broadcast_mul(&m)?.sum(1)?;
                    summed.broadcast_div(&m.sum(1)?)?
                }
            };
            pooled.to_vec2::<f32>()
        };
        run().map_err(|e| Error::candle(&self.dir, e))
    }
}
