//! A decoder LLM (a `llama` or `gemma3` GGUF model directory) made trainable in its top blocks.
//!
//! The bottom blocks stay frozen and run on the inference encoder (`Encoder`, matrices
//! dequantised to f32): their output, the residual stream after block `first_trained`, is
//! computed without a graph. The top blocks and the final norm are rebuilt here from
//! differentiable candle operations on f32 parameters (`rms_norm_slow`, `rope_i_slow` /
//! `rope_slow`, the softmax written out; the inference kernels have no backward pass), so their
//! vectors equal the inference encoder's (a test checks it). The embedding table and the
//! frozen blocks are never copied to f32 parameters, which is where a full fine-tune's memory
//! would go. Saving writes the base's GGUF with the trained tensors replaced by f32 ones.

use std::path::{Path, PathBuf};

use candle_core::quantized::{GgmlDType, QTensor, gguf_file};
use candle_core::{Device, Tensor, Var};

use super::bert::{encode_in_batches, l2_normalize};
use super::save;
use hybrid_search_dense::model::{Kernels, attention, rope_tables};
use hybrid_search_dense::{
    Architecture, DecoderConfig, Encoder, Error, GateActivation, LongText, ModelDescription,
    Pooling, Result, TextKind, WeightFormat,
};

/// One trainable block's parameters, by GGUF tensor name suffix.
struct Block {
    index: usize,
    params: Vec<(String, Var)>,
    cos: Tensor,
    sin: Tensor,
    window: Option<usize>,
}

impl Block {
    fn get(&self, suffix: &str) -> candle_core::Result<&Tensor> {
        self.params
            .iter()
            .find(|(n, _)| n == &format!("blk.{}.{suffix}.weight", self.index))
            .map(|(_, v)| v.as_tensor())
            .ok_or_else(|| candle_core::Error::Msg(format!("no {suffix} in block {}", self.index)))
    }
}

/// A decoder whose top `trained` blocks (and final norm) are trainable; see the module
/// documentation.
pub struct TrainableDecoder {
    dir: PathBuf,
    gguf: PathBuf,
    encoder: Encoder,
    config: DecoderConfig,
    first_trained: usize,
    blocks: Vec<Block>,
    norm: Var,
}

fn rms(x: &Tensor, w: &Tensor, eps: f32) -> candle_core::Result<Tensor> {
    candle_nn::ops::rms_norm_slow(x, w, eps)
}

impl TrainableDecoder {
    /// Loads the decoder model directory `dir` with its top `trained` blocks trainable (all of
    /// them when `trained` is at least the block count).
    ///
    /// # Errors
    ///
    /// [`Error::Model`] when `dir` is not a decoder model directory; [`Error::Candle`] when a
    /// tensor cannot be read.
    pub fn load(dir: &Path, trained: usize, device: &Device) -> Result<Self> {
        let encoder = Encoder::load_with(dir, device, WeightFormat::F32)?;
        let Some(config) = encoder.decoder_config().cloned() else {
            return Err(Error::Model {
                path: dir.to_path_buf(),
                message: "is not a decoder model directory (no GGUF file)".into(),
            });
        };
        let gguf = dir.join(&encoder.weights().file);
        let fail = |e: candle_core::Error| Error::candle(&gguf, e);
        let mut file = std::fs::File::open(&gguf).map_err(|e| Error::io(&gguf, e))?;
        let content = gguf_file::Content::read(&mut file).map_err(fail)?;
        let trained = trained.clamp(1, config.layers);
        let first_trained = config.layers - trained;
        let mut read = |name: &str| -> Result<Var> {
            let t = content
                .tensor(&mut file, name, device)
                .and_then(|q| q.dequantize(device))
                .map_err(fail)?;
            Var::from_tensor(&t).map_err(fail)
        };
        let mut suffixes = vec![
            "attn_norm",
            "attn_q",
            "attn_k",
            "attn_v",
            "attn_output",
            "ffn_norm",
            "ffn_gate",
            "ffn_up",
            "ffn_down",
        ];
        if config.architecture == Architecture::Gemma3 {
            suffixes.extend([
                "attn_q_norm",
                "attn_k_norm",
                "post_attention_norm",
                "post_ffw_norm",
            ]);
        }
        let mut blocks = Vec::with_capacity(trained);
        for index in first_trained..config.layers {
            let mut params = Vec::with_capacity(suffixes.len());
            for s in &suffixes {
                let name = format!("blk.{index}.{s}.weight");
                params.push((name.clone(), read(&name)?));
            }
            let (cos, sin) =
                rope_tables(config.head_dim, config.rope_base_of(index), device).map_err(fail)?;
            blocks.push(Block {
                index,
                params,
                cos,
                sin,
                window: config.sliding(index),
            });
        }
        let norm = read("output_norm.weight")?;
        Ok(Self {
            dir: dir.to_path_buf(),
            gguf,
            encoder,
            config,
            first_trained,
            blocks,
            norm,
        })
    }

    /// The base model directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How the model is used (pooling, maximum length, prompts).
    pub fn description(&self) -> &ModelDescription {
        self.encoder.description()
    }

    /// The first trainable block (the ones below are frozen).
    pub fn first_trained(&self) -> usize {
        self.first_trained
    }

    pub(crate) fn device(&self) -> &Device {
        self.norm.device()
    }

    /// The trainable parameters by GGUF tensor name.
    pub(crate) fn named_vars(&self) -> Vec<(String, Var)> {
        let mut out: Vec<(String, Var)> = self
            .blocks
            .iter()
            .flat_map(|b| b.params.iter().cloned())
            .collect();
        out.push(("output_norm.weight".into(), self.norm.clone()));
        out
    }

    /// Token ids of `text` as the encoder builds them, at most `max_len` tokens (the prompt,
    /// the special tokens and the start of the text).
    ///
    /// # Errors
    ///
    /// [`Error::Model`] when the tokenizer fails.
    pub fn token_ids(&self, text: &str, kind: TextKind, max_len: usize) -> Result<Vec<u32>> {
        let mut w = self
            .encoder
            .windows_within(text, kind, LongText::Truncate, max_len)?;
        Ok(w.swap_remove(0))
    }

    /// Pooled vectors `(sequences, hidden)` of packed `seqs`, normalised when the model says so
    /// (always, for a decoder), with the graph through the trainable blocks.
    pub(crate) fn pooled(&self, seqs: &[&[u32]]) -> candle_core::Result<Tensor> {
        self.pooled_from(&self.frozen(seqs)?, seqs)
    }

    /// The frozen blocks' output for packed `seqs`, `(total tokens, hidden)`, without a graph.
    pub(crate) fn frozen(&self, seqs: &[&[u32]]) -> candle_core::Result<Tensor> {
        Ok(self
            .encoder
            .decoder_hidden_states(seqs, self.first_trained)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?
            .detach())
    }

    /// [`TrainableDecoder::pooled`] from the frozen blocks' output.
    pub(crate) fn pooled_from(
        &self,
        frozen: &Tensor,
        seqs: &[&[u32]],
    ) -> candle_core::Result<Tensor> {
        let mut x = frozen.clone();
        for block in &self.blocks {
            x = self.block_forward(block, &x, seqs)?;
        }
        let x = rms(&x, self.norm.as_tensor(), self.config.eps as f32)?;
        let mut pooled = Vec::with_capacity(seqs.len());
        let mut offset = 0;
        for s in seqs {
            let part = match self.description().pooling {
                Pooling::Last => x.narrow(0, offset + s.len() - 1, 1)?,
                Pooling::Mean | Pooling::Cls => x.narrow(0, offset, s.len())?.mean_keepdim(0)?,
            };
            pooled.push(part);
            offset += s.len();
        }
        let pooled = Tensor::cat(&pooled, 0)?;
        // As the encoder does (a decoder's description always normalises), so a `Dot`
        // similarity in training sees the vectors the saved model gives.
        if self.description().normalize {
            l2_normalize(&pooled)
        } else {
            Ok(pooled)
        }
    }

    fn block_forward(&self, b: &Block, x: &Tensor, seqs: &[&[u32]]) -> candle_core::Result<Tensor> {
        let c = &self.config;
        let eps = c.eps as f32;
        let gemma = c.architecture == Architecture::Gemma3;
        let linear = |x: &Tensor, name: &str| -> candle_core::Result<Tensor> {
            x.matmul(&b.get(name)?.t()?)
        };
        let normed = rms(x, b.get("attn_norm")?, eps)?;
        let (q, k, v) = (
            linear(&normed, "attn_q")?,
            linear(&normed, "attn_k")?,
            linear(&normed, "attn_v")?,
        );
        let norms = if gemma {
            Some((b.get("attn_q_norm")?, b.get("attn_k_norm")?))
        } else {
            None
        };
        let lengths: Vec<usize> = seqs.iter().map(|s| s.len()).collect();
        let context = attention(
            c,
            [&q, &k, &v],
            &lengths,
            (&b.cos, &b.sin),
            norms,
            b.window,
            Kernels::Differentiable,
        )?;
        let mut attended = linear(&context, "attn_output")?;
        if gemma {
            attended = rms(&attended, b.get("post_attention_norm")?, eps)?;
        }
        let x = (attended + x)?;
        let normed = rms(&x, b.get("ffn_norm")?, eps)?;
        let gate = linear(&normed, "ffn_gate")?;
        let gate = match c.activation {
            GateActivation::Silu => gate.silu()?,
            GateActivation::GeluTanh => gate.gelu()?,
        };
        let mut out = linear(&(gate * linear(&normed, "ffn_up")?)?, "ffn_down")?;
        if gemma {
            out = rms(&out, b.get("post_ffw_norm")?, eps)?;
        }
        out + x
    }

    /// Embeddings of `texts` (truncated to the model's maximum length), normalised: what the
    /// saved model gives through [`Encoder::encode`] with f32 matrices.
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
        let max = self.description().max_seq_length;
        let ids = texts
            .iter()
            .map(|t| self.token_ids(t, kind, max))
            .collect::<Result<Vec<_>>>()?;
        encode_in_batches(&ids, batch_size, |seqs| self.pooled(seqs))
            .map_err(|e| Error::candle(&self.dir, e))
    }

    /// Writes the model directory into the existing folder `dir`: the base's GGUF with the
    /// trained tensors as f32, and its other files (`decoder.json`, `tokenizer.json`).
    pub(crate) fn write_model_dir(&self, dir: &Path) -> Result<()> {
        save::copy_support_files(&self.dir, dir, &|name| name.ends_with(".gguf"))?;
        let fail = |e: candle_core::Error| Error::candle(&self.gguf, e);
        let mut file = std::fs::File::open(&self.gguf).map_err(|e| Error::io(&self.gguf, e))?;
        let content = gguf_file::Content::read(&mut file).map_err(fail)?;
        let trained: std::collections::HashMap<String, Var> =
            self.named_vars().into_iter().collect();
        let mut names: Vec<&String> = content.tensor_infos.keys().collect();
        names.sort_by_key(|n| content.tensor_infos[*n].offset);
        let mut tensors: Vec<(String, QTensor)> = Vec::with_capacity(names.len());
        for name in names {
            let t = match trained.get(name) {
                Some(v) => QTensor::quantize(v.as_tensor(), GgmlDType::F32),
                None => content.tensor(&mut file, name, &Device::Cpu),
            }
            .map_err(fail)?;
            tensors.push((name.clone(), t));
        }
        let mut metadata: Vec<(&String, &gguf_file::Value)> = content.metadata.iter().collect();
        metadata.sort_by_key(|(k, _)| k.as_str());
        let metadata: Vec<(&str, &gguf_file::Value)> =
            metadata.into_iter().map(|(k, v)| (k.as_str(), v)).collect();
        let refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
        let out = dir.join("model.gguf");
        let mut writer =
            std::io::BufWriter::new(std::fs::File::create(&out).map_err(|e| Error::io(&out, e))?);
        gguf_file::write(&mut writer, &metadata, &refs).map_err(|e| Error::candle(&out, e))?;
        std::io::Write::flush(&mut writer).map_err(|e| Error::io(&out, e))
    }
}
