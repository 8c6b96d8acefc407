//! Dense retriever training with in-batch and hard negatives.
//!
//! For a batch of `B` queries `q_1..q_B` with positives `p_1..p_B`, the passage pool is the
//! `B` positives followed by the hard negatives of every query in the batch, `P` passages in
//! all. With `s(q, p)` the similarity (cosine, or the dot product of the model's vectors) and
//! `scale` the inverse temperature, the loss is the mean negative log-likelihood of each
//! query's own positive under a softmax over the whole pool:
//!
//! `L = -1/B * sum_i log( exp(scale * s(q_i, p_i)) / sum_j exp(scale * s(q_i, p_j)) )`
//!
//! This is DPR's loss with in-batch negatives plus BM25 hard negatives (Karpukhin et al. 2020,
//! "Dense Passage Retrieval for Open-Domain Question Answering", section 3.2) and
//! sentence-transformers' `MultipleNegativesRankingLoss` (cosine similarity, `scale` 20 by
//! default, hard negatives as extra columns). Pool entries that are copies of a query's own
//! positive (the same passage mined as another query's negative, or the positive of the same
//! query repeated in the batch) are masked out of that query's softmax rather than counted as
//! negatives.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::bert::{Batch, TrainableBert, l2_normalize};
use super::decoder::TrainableDecoder;
use super::{
    Hyper, Objective, Rng, StepReport, TrainExample, TrainReport, TrainSettings, checkpoint_dir,
    fit, save,
};
use hybrid_search_dense::TextKind;
use hybrid_search_dense::{Error, Result};

pub use hybrid_search_dense::{PASSAGE_ENCODER_DIR, QUERY_ENCODER_DIR};

/// How a query vector and a passage vector are compared in the loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Similarity {
    /// Cosine of the pooled vectors (sentence-transformers' `cos_sim`), whatever the model's
    /// normalisation.
    #[default]
    Cosine,
    /// Dot product of the model's output vectors (DPR; equal to cosine for a model that
    /// normalises).
    Dot,
}

/// Settings of a dense training run. Defaults follow sentence-transformers'
/// `MultipleNegativesRankingLoss` recipes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DenseTrainConfig {
    /// Epochs, batch size (queries per step, each bringing its positive and its hard
    /// negatives), learning rate schedule, weight decay, clipping and seed; serialized as
    /// top-level keys.
    #[serde(flatten)]
    pub train: TrainSettings,
    /// Similarity scale (inverse temperature) applied before the softmax: 20 for cosine as in
    /// sentence-transformers; about 1 for the unnormalised dot product of DPR.
    pub scale: f64,
    /// How queries and passages are compared.
    pub similarity: Similarity,
    /// Hard negatives per query added to the pool: the first ones of each example's
    /// `negatives` (fewer when an example has fewer).
    pub hard_negatives_per_query: usize,
    /// One encoder for queries and passages (`true`), or two separate ones initialised from
    /// the same base (DPR's layout).
    pub shared: bool,
    /// Longest query in tokens, special tokens included (also capped by the model's maximum
    /// length).
    pub max_query_len: usize,
    /// Longest passage in tokens, special tokens included (also capped by the model's maximum
    /// length).
    pub max_passage_len: usize,
    /// Dropout rate for hidden states and attention probabilities during training; `None`
    /// takes the model's `config.json` (`hidden_dropout_prob`, `attention_probs_dropout_prob`,
    /// 0.1 when absent).
    pub dropout: Option<f32>,
    /// GradCache (Gao et al. 2021, "Scaling Deep Contrastive Learning Batch Size under Memory
    /// Limited Setup"): encode the batch's queries and passages this many at a time, first
    /// without keeping the graph, then again one micro-batch at a time back-propagating the
    /// loss's gradient with respect to its vectors. The loss and gradients are those of the
    /// whole batch (every in-batch and hard negative stays in every query's softmax; dropout
    /// masks are replayed), but only one micro-batch's activations are alive at a time. `None`
    /// (or a size at least the pool's) runs the batch in one pass, keeping the whole graph.
    pub micro_batch: Option<usize>,
    /// For a decoder LLM base (a GGUF model directory): how many of its top blocks train (with
    /// the final norm); the blocks below and the embedding table stay frozen. Ignored for BERT
    /// bases, which train whole.
    pub decoder_layers: usize,
}

/// The default GradCache micro-batch (sequences encoded at a time): measured in
/// `docs/benchmarks.md`, it cuts all-MiniLM-L6-v2's peak memory at batch 32 with one hard
/// negative several times over at a small cost in speed.
pub const DEFAULT_MICRO_BATCH: usize = 16;

/// The default number of a decoder LLM's top blocks that train.
pub const DEFAULT_DECODER_LAYERS: usize = 4;

/// A trainable encoder: a BERT-family model trained whole, or a decoder LLM trained in its top
/// blocks.
pub enum TrainableEncoder {
    /// BERT family (`config.json` + weights).
    Bert(Box<TrainableBert>),
    /// Decoder LLM (a GGUF model directory).
    Decoder(Box<TrainableDecoder>),
}

impl TrainableEncoder {
    /// Loads `base`: a decoder when the directory holds a `*.gguf` file, else BERT.
    ///
    /// # Errors
    ///
    /// Those of [`TrainableBert::load`] and [`TrainableDecoder::load`].
    pub fn load(base: &Path, decoder_layers: usize, device: &Device) -> Result<Self> {
        Ok(
            if hybrid_search_dense::decoder_model_file(base)?.is_some() {
                Self::Decoder(Box::new(TrainableDecoder::load(
                    base,
                    decoder_layers,
                    device,
                )?))
            } else {
                Self::Bert(Box::new(TrainableBert::load(base, device)?))
            },
        )
    }

    /// How the model is used.
    pub fn description(&self) -> &hybrid_search_dense::ModelDescription {
        match self {
            Self::Bert(m) => m.description(),
            Self::Decoder(m) => m.description(),
        }
    }

    /// Token ids of `text`, at most `max_len`.
    ///
    /// # Errors
    ///
    /// [`Error::Model`] when the tokenizer fails.
    pub fn token_ids(&self, text: &str, kind: TextKind, max_len: usize) -> Result<Vec<u32>> {
        match self {
            Self::Bert(m) => m.token_ids(text, kind, max_len),
            Self::Decoder(m) => m.token_ids(text, kind, max_len),
        }
    }

    /// Embeddings of `texts` as the saved model gives them.
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
        match self {
            Self::Bert(m) => m.encode(texts, kind, batch_size),
            Self::Decoder(m) => m.encode(texts, kind, batch_size),
        }
    }

    fn named_vars(&self) -> Vec<(String, candle_core::Var)> {
        match self {
            Self::Bert(m) => m.named_vars(),
            Self::Decoder(m) => m.named_vars(),
        }
    }

    fn device(&self) -> &Device {
        match self {
            Self::Bert(m) => m.device(),
            Self::Decoder(m) => m.device(),
        }
    }

    fn set_dropout(&mut self, p: f32) {
        // Decoder LLMs are pretrained without dropout and train without it here.
        if let Self::Bert(m) = self {
            m.set_dropout(p);
        }
    }

    /// Pooled vectors of `seqs` (dropout with a generator, BERT only); for a decoder, from the
    /// frozen blocks' output when `frozen` has it (see [`TrainableEncoder::frozen`]).
    fn pooled(
        &self,
        seqs: &[&[u32]],
        rng: Option<&mut Rng>,
        frozen: Option<&Tensor>,
    ) -> candle_core::Result<Tensor> {
        match self {
            Self::Bert(m) => m.pooled(&Batch::new(seqs, None, m.device())?, rng),
            Self::Decoder(m) => match frozen {
                Some(f) => m.pooled_from(f, seqs),
                None => m.pooled(seqs),
            },
        }
    }

    /// What does not depend on the trained parameters, kept between GradCache's two passes:
    /// a decoder's frozen blocks' output; nothing for BERT.
    fn frozen(&self, seqs: &[&[u32]]) -> candle_core::Result<Option<Tensor>> {
        match self {
            Self::Bert(_) => Ok(None),
            Self::Decoder(m) => m.frozen(seqs).map(Some),
        }
    }

    fn write_model_dir(&self, dir: &Path) -> Result<()> {
        match self {
            Self::Bert(m) => m.write_model_dir(dir),
            Self::Decoder(m) => m.write_model_dir(dir),
        }
    }
}

impl Default for DenseTrainConfig {
    fn default() -> Self {
        Self {
            // 1 epoch of 32 queries per step at 2e-5, 10 % warm-up, decay 0.01, clipping at
            // norm 1, seed 42.
            train: TrainSettings::default(),
            scale: 20.0,
            similarity: Similarity::Cosine,
            hard_negatives_per_query: 1,
            shared: true,
            max_query_len: 64,
            max_passage_len: 256,
            dropout: None,
            micro_batch: Some(DEFAULT_MICRO_BATCH),
            decoder_layers: DEFAULT_DECODER_LAYERS,
        }
    }
}

impl DenseTrainConfig {
    fn hyper(&self) -> Hyper<'_> {
        Hyper {
            settings: &self.train,
            // Every weight is the pretrained encoder's.
            head_lr_scale: 1.0,
            is_head: |_| false,
        }
    }

    /// What is wrong with the settings, if anything.
    fn check(&self) -> Option<String> {
        if let Some(problem) = self.hyper().check() {
            return Some(problem);
        }
        if !(self.scale.is_finite() && self.scale > 0.0) {
            return Some(format!("scale must be > 0 (got {})", self.scale));
        }
        if self.max_query_len < 2 || self.max_passage_len < 2 {
            return Some("max_query_len and max_passage_len must be at least 2".into());
        }
        if self.micro_batch == Some(0) {
            return Some("micro_batch must be at least 1".into());
        }
        check_dropout(self.dropout)
    }
}

/// A dropout rate outside [0, 1).
pub(crate) fn check_dropout(dropout: Option<f32>) -> Option<String> {
    match dropout {
        Some(p) if !(0.0..1.0).contains(&p) => Some(format!("dropout must be in [0, 1) (got {p})")),
        _ => None,
    }
}

/// The directories holding the query and the passage encoder of a model saved by
/// [`DenseTrainer::save`]: `out/query_encoder` and `out/passage_encoder` when they exist
/// (separate encoders), otherwise `out` for both.
pub fn trained_encoder_dirs(out: &Path) -> (PathBuf, PathBuf) {
    let (q, p) = (out.join(QUERY_ENCODER_DIR), out.join(PASSAGE_ENCODER_DIR));
    if q.is_dir() && p.is_dir() {
        (q, p)
    } else {
        (out.to_path_buf(), out.to_path_buf())
    }
}

/// Trains a dense retriever (one shared encoder, or separate query and passage encoders)
/// from a base model directory; see the module documentation for the loss.
pub struct DenseTrainer {
    config: DenseTrainConfig,
    base: PathBuf,
    query: TrainableEncoder,
    /// The separate passage encoder; `None` when the encoder is shared.
    passage: Option<TrainableEncoder>,
    report: Option<TrainReport>,
}

/// Token ids of one example.
struct Tokens {
    query: Vec<u32>,
    positive: Vec<u32>,
    negatives: Vec<Vec<u32>>,
}

impl DenseTrainer {
    /// Loads the base model directory (once, or twice for separate encoders) on `device` and
    /// checks the settings.
    ///
    /// # Errors
    ///
    /// Those of [`TrainableEncoder::load`]; [`Error::Model`] for invalid settings.
    pub fn new(base: &Path, config: DenseTrainConfig, device: &Device) -> Result<Self> {
        if let Some(problem) = config.check() {
            return Err(Error::Model {
                path: base.to_path_buf(),
                message: format!("invalid training setting: {problem}"),
            });
        }
        let mut query = TrainableEncoder::load(base, config.decoder_layers, device)?;
        let mut passage = if config.shared {
            None
        } else {
            Some(TrainableEncoder::load(base, config.decoder_layers, device)?)
        };
        if let Some(p) = config.dropout {
            query.set_dropout(p);
            if let Some(passage) = &mut passage {
                passage.set_dropout(p);
            }
        }
        Ok(Self {
            config,
            base: base.to_path_buf(),
            query,
            passage,
            report: None,
        })
    }

    /// The settings.
    pub fn config(&self) -> &DenseTrainConfig {
        &self.config
    }

    /// The encoder for queries.
    pub fn query_encoder(&self) -> &TrainableEncoder {
        &self.query
    }

    /// The encoder for passages (the query encoder when it is shared).
    pub fn passage_encoder(&self) -> &TrainableEncoder {
        self.passage.as_ref().unwrap_or(&self.query)
    }

    /// Embeddings of `texts` by the encoder for `kind`, without dropout: what the saved model
    /// gives through [`Encoder::encode`](hybrid_search_dense::Encoder::encode).
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
        match kind {
            TextKind::Query => self.query.encode(texts, kind, batch_size),
            TextKind::Passage => self.passage_encoder().encode(texts, kind, batch_size),
        }
    }

    /// Runs the training over `examples`, calling `progress` after every step; returns the
    /// mean loss of each epoch. Calling it again continues from the trained weights with a
    /// fresh optimiser and schedule.
    ///
    /// # Errors
    ///
    /// [`Error::Model`] for invalid settings or no examples; [`Error::Candle`] when a step fails.
    pub fn train(
        &mut self,
        examples: &[TrainExample],
        progress: impl FnMut(StepReport),
    ) -> Result<TrainReport> {
        self.train_checkpointed(examples, None, progress)
    }

    /// [`DenseTrainer::train`], and with `final_out` set, after every epoch but the last the
    /// model so far is saved as [`checkpoint_dir`]`(final_out, epoch)` (each must not exist or
    /// be empty), so each epoch's model can be indexed and evaluated. The final model is still
    /// written by [`DenseTrainer::save`].
    ///
    /// # Errors
    ///
    /// Those of [`DenseTrainer::train`]; [`Error::Io`] when a checkpoint cannot be written.
    pub fn train_checkpointed(
        &mut self,
        examples: &[TrainExample],
        final_out: Option<&Path>,
        mut progress: impl FnMut(StepReport),
    ) -> Result<TrainReport> {
        if examples.is_empty() {
            return Err(Error::Model {
                path: self.base.clone(),
                message: "no training examples".into(),
            });
        }
        let this = &*self;
        let config = &this.config;
        let q_model = &this.query;
        let p_model = this.passage_encoder();
        let q_max = config
            .max_query_len
            .min(q_model.description().max_seq_length);
        let p_max = config
            .max_passage_len
            .min(p_model.description().max_seq_length);
        let tokens = examples
            .iter()
            .map(|e| {
                Ok(Tokens {
                    query: q_model.token_ids(&e.query, TextKind::Query, q_max)?,
                    positive: p_model.token_ids(&e.positive, TextKind::Passage, p_max)?,
                    negatives: e
                        .negatives
                        .iter()
                        .take(config.hard_negatives_per_query)
                        .map(|t| p_model.token_ids(t, TextKind::Passage, p_max))
                        .collect::<Result<_>>()?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut vars = q_model.named_vars();
        if let Some(p) = &this.passage {
            vars.extend(p.named_vars());
        }
        let device = q_model.device().clone();
        let (scale, cosine) = (config.scale, config.similarity == Similarity::Cosine);
        let micro = config.micro_batch.unwrap_or(usize::MAX).max(1);
        let params: Vec<candle_core::Var> = vars.iter().map(|(_, v)| v.clone()).collect();
        // The loss of a batch from its query and pool vectors `(B, d)`, `(P, d)`.
        let loss_of = |q: &Tensor, p: &Tensor, queries: &[&[u32]], pool: &[&[u32]]| {
            let (q, p) = if cosine {
                (l2_normalize(q)?, l2_normalize(p)?)
            } else {
                (q.clone(), p.clone())
            };
            let mut scores = (q.matmul(&p.t()?)? * scale)?;
            if let Some(mask) = duplicate_mask(queries, pool) {
                scores = (scores + Tensor::from_vec(mask, (queries.len(), pool.len()), &device)?)?;
            }
            let targets = Tensor::arange(0u32, queries.len() as u32, &device)?;
            candle_nn::loss::cross_entropy(&scores, &targets)
        };
        let batch_loss = |batch: &[usize], rng: &mut Rng| -> candle_core::Result<Objective> {
            let queries: Vec<&[u32]> = batch.iter().map(|&i| tokens[i].query.as_slice()).collect();
            let mut pool: Vec<&[u32]> = batch
                .iter()
                .map(|&i| tokens[i].positive.as_slice())
                .collect();
            for &i in batch {
                pool.extend(tokens[i].negatives.iter().map(Vec::as_slice));
            }
            if micro >= queries.len().max(pool.len()) {
                let q = q_model.pooled(&queries, Some(&mut *rng), None)?;
                let p = p_model.pooled(&pool, Some(&mut *rng), None)?;
                return loss_of(&q, &p, &queries, &pool).map(Objective::Loss);
            }
            // GradCache. Each micro-batch gets its own dropout stream, replayed in pass 2.
            let chunks: Vec<(&TrainableEncoder, &[&[u32]], u64)> = queries
                .chunks(micro)
                .map(|c| (q_model, c))
                .chain(pool.chunks(micro).map(|c| (p_model, c)))
                .map(|(m, c)| (m, c, rng.next_u64()))
                .collect();
            // Pass 1: every vector, no graph kept.
            let mut vectors = Vec::with_capacity(chunks.len());
            let mut frozen = Vec::with_capacity(chunks.len());
            for &(model, seqs, seed) in &chunks {
                let f = model.frozen(seqs)?;
                vectors.push(
                    model
                        .pooled(seqs, Some(&mut Rng::new(seed)), f.as_ref())?
                        .detach(),
                );
                frozen.push(f);
            }
            let n_q = queries.len().div_ceil(micro);
            let q = candle_core::Var::from_tensor(&Tensor::cat(&vectors[..n_q], 0)?)?;
            let p = candle_core::Var::from_tensor(&Tensor::cat(&vectors[n_q..], 0)?)?;
            drop(vectors);
            let loss = loss_of(q.as_tensor(), p.as_tensor(), &queries, &pool)?;
            let value = loss.to_scalar::<f32>()?;
            let upstream = loss.backward()?;
            let missing = || candle_core::Error::Msg("no gradient for the batch's vectors".into());
            let q_grad = upstream.get(q.as_tensor()).ok_or_else(missing)?.clone();
            let p_grad = upstream.get(p.as_tensor()).ok_or_else(missing)?.clone();
            drop(upstream);
            // Pass 2: each micro-batch again with its graph, back-propagating d loss / d vectors
            // through the surrogate sum(vectors * gradient); parameter gradients add up.
            let mut grads = candle_core::backprop::GradStore::default();
            let (mut q_at, mut p_at) = (0, 0);
            for (k, &(model, seqs, seed)) in chunks.iter().enumerate() {
                let grad = if k < n_q {
                    q_at += seqs.len();
                    q_grad.narrow(0, q_at - seqs.len(), seqs.len())?
                } else {
                    p_at += seqs.len();
                    p_grad.narrow(0, p_at - seqs.len(), seqs.len())?
                };
                let v = model.pooled(seqs, Some(&mut Rng::new(seed)), frozen[k].as_ref())?;
                let part = (v * grad)?.sum_all()?.backward()?;
                let mut own = candle_core::backprop::GradStore::default();
                for var in &params {
                    if let Some(g) = part.get(var.as_tensor()) {
                        own.insert(var.as_tensor(), g.clone());
                    }
                }
                grads.extend(own)?;
            }
            Ok(Objective::Gradients { loss: value, grads })
        };
        let mut after_epoch = |so_far: &TrainReport| match final_out {
            Some(out) => this.write(
                &checkpoint_dir(out, so_far.epoch_losses.len()),
                Some(so_far),
            ),
            None => Ok(()),
        };
        let report = fit(
            &this.base,
            examples.len(),
            &config.hyper(),
            vars,
            batch_loss,
            &mut progress,
            &mut after_epoch,
        )?;
        self.report = Some(report.clone());
        Ok(report)
    }

    /// Writes the trained model to the new directory `out` (which must not exist or be empty):
    ///
    /// ```text
    /// shared encoder:                 separate encoders:
    /// out/                            out/
    ///   config.json                     training.json
    ///   model.safetensors               query_encoder/     (a complete model directory)
    ///   tokenizer.json, modules.json,   passage_encoder/   (a complete model directory)
    ///   1_Pooling/, ...
    ///   training.json
    /// ```
    ///
    /// Each model directory is the base's with the trained weights ([`TrainableBert::save`]);
    /// `training.json` records the base directory, the settings and the losses.
    /// [`trained_encoder_dirs`] tells which directory encodes queries and which passages.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] or [`Error::Candle`] when a file cannot be written; `out` must not exist or
    /// be empty, and is written through a staging folder.
    pub fn save(&self, out: &Path) -> Result<()> {
        self.write(out, self.report.as_ref())
    }

    fn write(&self, out: &Path, report: Option<&TrainReport>) -> Result<()> {
        let staging = save::begin(out)?;
        match &self.passage {
            None => self.query.write_model_dir(&staging)?,
            Some(passage) => {
                for (name, model) in [
                    (QUERY_ENCODER_DIR, &self.query),
                    (PASSAGE_ENCODER_DIR, passage),
                ] {
                    let dir = staging.join(name);
                    std::fs::create_dir(&dir).map_err(|e| Error::io(&dir, e))?;
                    model.write_model_dir(&dir)?;
                }
            }
        }
        let record = json!({
            "kind": "dense",
            "base": self.base,
            "layout": if self.passage.is_some() { "separate" } else { "shared" },
            "config": self.config,
            "report": report,
        });
        save::write_json(&staging.join("training.json"), &record)?;
        save::commit(&staging, out)
    }
}

/// Additive mask `(queries, pool)` that takes out of query `i`'s softmax every pool entry
/// `j != i` that is a copy of its positive `pool[i]`, or the positive of a copy of the query;
/// `None` when nothing needs masking.
fn duplicate_mask(queries: &[&[u32]], pool: &[&[u32]]) -> Option<Vec<f32>> {
    let (b, n) = (queries.len(), pool.len());
    let mut mask = vec![0f32; b * n];
    let mut any = false;
    for i in 0..b {
        for j in (0..n).filter(|&j| j != i) {
            if pool[j] == pool[i] || (j < b && queries[j] == queries[i]) {
                mask[i * n + j] = -1e9;
                any = true;
            }
        }
    }
    any.then_some(mask)
}
