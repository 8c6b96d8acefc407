//! Training on the CPU (or any candle device): DPR-style dense encoders and a cross-encoder
//! reranker, fine-tuned from a BERT-family model directory and saved as model directories that
//! [`Encoder::load`](hybrid_search_dense::Encoder::load) and [`CrossEncoder::load`](hybrid_search_dense::CrossEncoder::load) open like any other.
//!
//! - [`training_set`]: examples from a labelled dataset, hard negatives mined through a
//!   [`Searcher`] (the engine's BM25, in the CLI).
//! - [`TrainableBert`]: the BERT encoder rebuilt from differentiable candle operations, so that
//!   `loss.backward()` reaches every weight (the inference model in `bert.rs` runs custom kernels
//!   that have no gradients; the one fused kernel here, the attention softmax, has its own
//!   backward pass). Its weights live in a `candle_nn::VarMap` in f32.
//! - [`DenseTrainer`]: in-batch negatives plus hard negatives, the softmax over the similarity
//!   matrix (DPR, Karpukhin et al. 2020; sentence-transformers' `MultipleNegativesRankingLoss`),
//!   with one shared encoder or separate query and passage encoders.
//! - [`TrainableCrossEncoder`]: BERT with a one-logit head on `[CLS] q [SEP] p [SEP]`, trained with a
//!   softmax over each query's group (its positive and its negatives).
//!
//! Both trainers use AdamW with decoupled weight decay (none on biases and LayerNorm weights, as
//! sentence-transformers does), gradient clipping by global norm, a linear warm-up then linear
//! decay of the learning rate ([`LinearSchedule`]), seeded shuffling and seeded dropout masks:
//! the same seed on the same machine gives the same loss curve.
//!
//! # Example
//!
//! ```no_run
//! use hybrid_search_train::{DenseTrainConfig, DenseTrainer, TrainExample, TrainSettings};
//!
//! let examples = vec![TrainExample {
//!     query: "il-6 in sepsis".into(),
//!     positive: "Interleukin 6 rises early in septic shock.".into(),
//!     negatives: vec!["Insulin regulates blood glucose.".into()],
//! }];
//! let device = candle_core::Device::Cpu;
//! let config = DenseTrainConfig {
//!     train: TrainSettings {
//!         epochs: 2,
//!         ..DenseTrainConfig::default().train
//!     },
//!     ..DenseTrainConfig::default()
//! };
//! let mut trainer = DenseTrainer::new("models/all-MiniLM-L6-v2".as_ref(), config, &device)?;
//! let report = trainer.train(&examples, |s| {
//!     eprintln!("step {}/{}: loss {:.4}", s.step, s.steps, s.loss)
//! })?;
//! trainer.save("models/my-retriever".as_ref())?;
//! println!("mean loss per epoch: {:?}", report.epoch_losses);
//! # Ok::<(), hybrid_search_dense::Error>(())
//! ```

mod bert;
mod cross;
mod decoder;
mod dpr;
pub mod examples;
mod ops;
mod optim;
mod save;
mod schedule;

use std::path::{Path, PathBuf};

use candle_core::{Tensor, Var};
use serde::{Deserialize, Deserializer, Serialize};

use hybrid_search_dense::{Error, Result};

pub use bert::TrainableBert;
pub use cross::{CrossTrainConfig, TrainableCrossEncoder};
pub use decoder::TrainableDecoder;
pub use dpr::{
    DEFAULT_DECODER_LAYERS, DEFAULT_MICRO_BATCH, DenseTrainConfig, DenseTrainer,
    PASSAGE_ENCODER_DIR, QUERY_ENCODER_DIR, Similarity, TrainableEncoder, trained_encoder_dirs,
};
pub use examples::{Searcher, TrainingSet, training_set};
pub use schedule::LinearSchedule;

use optim::Optim;

/// One training example: a query, a passage that answers it, and passages that do not (hard
/// negatives, e.g. mined with BM25; the best-ranked first, since trainers take the first ones).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrainExample {
    /// The query text.
    pub query: String,
    /// A passage relevant to the query.
    pub positive: String,
    /// Passages not relevant to the query, most useful (hardest) first.
    #[serde(default)]
    pub negatives: Vec<String>,
}

/// Progress of one optimisation step, given to the trainers' progress callback.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepReport {
    /// Epoch, from 1.
    pub epoch: usize,
    /// Step over the whole run, from 1 to `steps`.
    pub step: usize,
    /// Steps in the whole run.
    pub steps: usize,
    /// The batch's loss (mean over its queries).
    pub loss: f32,
    /// Learning rate used for this step.
    pub lr: f64,
    /// Global L2 norm of the gradient, before clipping.
    pub grad_norm: f32,
}

/// What a training run did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainReport {
    /// Mean batch loss of each epoch, in order.
    pub epoch_losses: Vec<f32>,
    /// Optimisation steps taken.
    pub steps: usize,
    /// Training examples seen per epoch.
    pub examples: usize,
}

/// The optimisation settings both trainers share: the schedule (epochs, batch size, learning
/// rate and its warm-up), AdamW's weight decay, gradient clipping and the seed.
///
/// [`DenseTrainConfig`] and [`CrossTrainConfig`] hold it as their `train` field, flattened
/// in their serialized form (`"epochs"`, `"batch_size"`, ... stay top-level keys). Its
/// [`Default`] is the dense trainer's (32 queries per step); the reranker's takes 8.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainSettings {
    /// Passes over the training examples.
    pub epochs: usize,
    /// Queries per step (each brings its positive and its hard negatives).
    pub batch_size: usize,
    /// Peak learning rate of AdamW.
    pub learning_rate: f64,
    /// Fraction of all steps spent warming the learning rate up from 0 (then it decays
    /// linearly to 0).
    pub warmup_ratio: f64,
    /// AdamW's decoupled weight decay (not applied to biases and LayerNorm weights).
    pub weight_decay: f64,
    /// Gradients are scaled down to this global L2 norm when larger; `None` turns clipping off.
    pub max_grad_norm: Option<f64>,
    /// Seed of the example order and of the dropout masks.
    pub seed: u64,
}

impl Default for TrainSettings {
    fn default() -> Self {
        Self {
            epochs: 1,
            batch_size: 32,
            learning_rate: 2e-5,
            warmup_ratio: 0.1,
            weight_decay: 0.01,
            max_grad_norm: Some(1.0),
            seed: 42,
        }
    }
}

impl TrainSettings {
    /// What is wrong with the settings, if anything: a message that starts with the name of
    /// the field at fault (`"epochs must be at least 1"`).
    pub fn check(&self) -> Option<String> {
        if self.epochs == 0 {
            return Some("epochs must be at least 1".into());
        }
        if self.batch_size == 0 {
            return Some("batch_size must be at least 1".into());
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Some(format!(
                "learning_rate must be > 0 (got {})",
                self.learning_rate
            ));
        }
        if !(0.0..=1.0).contains(&self.warmup_ratio) {
            return Some(format!(
                "warmup_ratio must be in [0, 1] (got {})",
                self.warmup_ratio
            ));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Some(format!(
                "weight_decay must be >= 0 (got {})",
                self.weight_decay
            ));
        }
        if let Some(n) = self.max_grad_norm
            && !(n.is_finite() && n > 0.0)
        {
            return Some(format!("max_grad_norm must be > 0 (got {n})"));
        }
        None
    }

    /// Deserializes settings whose missing keys take their values from `defaults` (a
    /// configuration's own defaults, for its flattened `train` field).
    pub(crate) fn deserialize_over<'de, D: Deserializer<'de>>(
        defaults: Self,
        d: D,
    ) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        let given = serde_json::Map::<String, serde_json::Value>::deserialize(d)?;
        let mut value = serde_json::to_value(defaults).map_err(D::Error::custom)?;
        if let Some(map) = value.as_object_mut() {
            map.extend(given);
        }
        Self::deserialize(value).map_err(D::Error::custom)
    }
}

/// What the shared training loop needs: the settings, and which parameters form a new task
/// head that learns at a multiple of the learning rate.
pub(crate) struct Hyper<'a> {
    pub settings: &'a TrainSettings,
    /// Multiple of the learning rate for the parameters `is_head` names (a new task head).
    pub head_lr_scale: f64,
    pub is_head: fn(&str) -> bool,
}

impl Hyper<'_> {
    /// What is wrong with the settings, if anything.
    pub(crate) fn check(&self) -> Option<String> {
        if let Some(problem) = self.settings.check() {
            return Some(problem);
        }
        if !(self.head_lr_scale.is_finite() && self.head_lr_scale > 0.0) {
            return Some(format!(
                "head_lr_scale must be > 0 (got {})",
                self.head_lr_scale
            ));
        }
        None
    }
}

/// The seeded generator of shuffles, dropout masks and head initialisation, so a run is
/// reproducible without a device RNG.
pub(crate) type Rng = hybrid_search_dense::SplitMix64;

/// The training loop both trainers share: `epochs` passes over `n` examples in seeded random
/// order, `batch_size` examples per step; `batch_loss` turns a batch (example indices) into a
/// scalar loss, drawing its dropout masks from the generator it is given; the optimiser steps
/// with the scheduled learning rate and `progress` hears about every step. After every epoch
/// but the last, `after_epoch` gets the report so far (e.g. to save a checkpoint); an error
/// from it stops the run. Candle errors are reported against `model` (the base directory).
/// What one training step computed: the loss to back-propagate, or (GradCache) the loss's
/// value with the parameters' gradients already accumulated over micro-batches.
pub(crate) enum Objective {
    /// A scalar loss tensor whose graph reaches the parameters.
    Loss(Tensor),
    /// The loss value and the gradient of every parameter.
    Gradients {
        /// The loss.
        loss: f32,
        /// Gradients by parameter.
        grads: candle_core::backprop::GradStore,
    },
}

impl Objective {
    fn value(&self) -> candle_core::Result<f32> {
        match self {
            Self::Loss(loss) => loss.to_dtype(candle_core::DType::F32)?.to_scalar::<f32>(),
            Self::Gradients { loss, .. } => Ok(*loss),
        }
    }
}

pub(crate) fn fit(
    model: &Path,
    n: usize,
    hyper: &Hyper<'_>,
    vars: Vec<(String, Var)>,
    mut batch_loss: impl FnMut(&[usize], &mut Rng) -> candle_core::Result<Objective>,
    progress: &mut dyn FnMut(StepReport),
    after_epoch: &mut dyn FnMut(&TrainReport) -> Result<()>,
) -> Result<TrainReport> {
    let fail = |e| Error::candle(model, e);
    let settings = hyper.settings;
    let steps_per_epoch = n.div_ceil(settings.batch_size);
    let steps = settings.epochs * steps_per_epoch;
    let schedule = LinearSchedule::new(settings.learning_rate, settings.warmup_ratio, steps);
    let lr_scale = |name: &str| {
        if (hyper.is_head)(name) {
            hyper.head_lr_scale
        } else {
            1.0
        }
    };
    let mut optim = Optim::new(
        vars,
        settings.weight_decay,
        settings.max_grad_norm,
        &lr_scale,
    )
    .map_err(fail)?;
    // Two streams, so that changing the dropout rate does not change the order of the data.
    let mut order_rng = Rng::new(settings.seed);
    let mut dropout_rng = Rng::new(settings.seed ^ 0x5EED_D80F_0D10_7A11);
    let mut order: Vec<usize> = (0..n).collect();
    let mut epoch_losses = Vec::with_capacity(settings.epochs);
    for epoch in 0..settings.epochs {
        order_rng.shuffle(&mut order);
        let mut sum = 0.0f64;
        for (i, batch) in order.chunks(settings.batch_size).enumerate() {
            let step = epoch * steps_per_epoch + i;
            let lr = schedule.lr(step);
            let objective = batch_loss(batch, &mut dropout_rng).map_err(fail)?;
            let value = objective.value().map_err(fail)?;
            if !value.is_finite() {
                return Err(Error::Model {
                    path: model.to_path_buf(),
                    message: format!(
                        "the loss became {value} at step {} (try a lower learning rate)",
                        step + 1
                    ),
                });
            }
            let grad_norm = match objective {
                Objective::Loss(loss) => optim.step(&loss, lr),
                Objective::Gradients { grads, .. } => optim.step_with(grads, lr),
            }
            .map_err(fail)?;
            sum += f64::from(value);
            progress(StepReport {
                epoch: epoch + 1,
                step: step + 1,
                steps,
                loss: value,
                lr,
                grad_norm,
            });
        }
        epoch_losses.push((sum / steps_per_epoch as f64) as f32);
        if epoch + 1 < settings.epochs {
            after_epoch(&TrainReport {
                epoch_losses: epoch_losses.clone(),
                steps: (epoch + 1) * steps_per_epoch,
                examples: n,
            })?;
        }
    }
    Ok(TrainReport {
        epoch_losses,
        steps,
        examples: n,
    })
}

/// Where a trainer saves the model after epoch `epoch` of a run that writes its final model
/// to `out`: the sibling directory `<out>-epoch<epoch>` (`models/mine` -> `models/mine-epoch1`).
pub fn checkpoint_dir(out: &Path, epoch: usize) -> PathBuf {
    let mut name = out.file_name().unwrap_or_default().to_os_string();
    name.push(format!("-epoch{epoch}"));
    out.with_file_name(name)
}
