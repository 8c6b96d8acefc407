//! A cross-encoder reranker: BERT reading the query and the passage together, with a one-logit
//! head, as Hugging Face's `BertForSequenceClassification` with `num_labels = 1` (the layout of
//! sentence-transformers' `CrossEncoder`, Nogueira & Cho 2019, "Passage Re-ranking with
//! BERT"):
//!
//! `score(q, p) = w · tanh(W_pool h_[CLS] + b_pool) + b`, on the input `[CLS] q [SEP] p [SEP]`
//! (token types 0 for `[CLS] q [SEP]`, 1 for `p [SEP]`).
//!
//! Training uses the same examples as the dense retriever. Each query forms a group: its
//! positive (index 0) and its first hard negatives; the loss is the softmax cross-entropy over
//! the group's logits (a listwise loss, as in Gao et al. 2021 "Rethink Training of BERT
//! Rerankers in Multi-Stage Retrieval Pipeline", the Localized Contrastive Estimation loss):
//!
//! `L = -1/B * sum_i log( exp(s(q_i, p_i)) / (exp(s(q_i, p_i)) + sum_k exp(s(q_i, n_ik))) )`
//!
//! It was chosen over a pointwise binary cross-entropy because it compares each positive
//! directly with the negatives it must outrank, which is what reranking needs; the logits are
//! then relative scores, comparable across the passages of one query.

use std::path::Path;

use candle_core::{Device, Tensor, Var};
use candle_nn::VarMap;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::json;

use super::bert::{Batch, Linear, TrainableBert, dropout};
use super::dpr::check_dropout;
use super::{
    Hyper, Objective, Rng, StepReport, TrainExample, TrainReport, TrainSettings, checkpoint_dir,
    fit, save,
};
use hybrid_search_dense::{Error, HEAD_NAMES, PairInput, PairTokenizer, Result};

/// Settings of a cross-encoder training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CrossTrainConfig {
    /// Epochs, batch size (queries per step, each bringing `1 + hard_negatives_per_query`
    /// query-passage pairs), learning rate schedule, weight decay, clipping and seed;
    /// serialized as top-level keys, the ones missing taken from this type's `Default`.
    #[serde(flatten, deserialize_with = "cross_settings")]
    pub train: TrainSettings,
    /// Negatives in each query's group: the first ones of the example's `negatives` (fewer
    /// when it has fewer; negatives identical to the positive are left out).
    pub hard_negatives_per_query: usize,
    /// Dropout rate during training; `None` takes the model's `config.json`
    /// (`hidden_dropout_prob`, `attention_probs_dropout_prob`, 0.1 when absent).
    pub dropout: Option<f32>,
    /// The head (pooler and classifier) learns at this multiple of the learning rate. A
    /// sentence-embedding base such as all-MiniLM-L6-v2 has an untrained pooler (weights of
    /// std 0.009, zero bias) under the fresh classifier: at the body's rate (Adam moves each
    /// weight by about the rate per step) the two small matrices kept the logits within about
    /// +-1.5 after 58 steps at 2e-4, and the loss near chance.
    pub head_lr_scale: f64,
}

impl Default for CrossTrainConfig {
    fn default() -> Self {
        Self {
            // The shared defaults (1 epoch, 10 % warm-up, decay 0.01, clipping at norm 1,
            // seed 42) with the rate and batch of the measured SciFact recipe
            // (docs/benchmarks.md): 16 queries per step, each bringing several pairs, at 1e-4.
            train: TrainSettings {
                batch_size: 16,
                learning_rate: 1e-4,
                ..TrainSettings::default()
            },
            hard_negatives_per_query: 3,
            dropout: None,
            head_lr_scale: 20.0,
        }
    }
}

impl CrossTrainConfig {
    fn hyper(&self) -> Hyper<'_> {
        Hyper {
            settings: &self.train,
            head_lr_scale: self.head_lr_scale,
            is_head: |name| HEAD_NAMES.contains(&name),
        }
    }
}

/// The settings of a serialized [`CrossTrainConfig`], the keys it lacks taken from
/// `CrossTrainConfig::default()` (whose batch size differs from [`TrainSettings::default`]).
fn cross_settings<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<TrainSettings, D::Error> {
    TrainSettings::deserialize_over(CrossTrainConfig::default().train, d)
}

/// A cross-encoder reranker (see the module documentation for the model and the loss).
///
/// Saved as a Hugging Face `BertForSequenceClassification` directory: `model.safetensors`
/// with `bert.`-prefixed encoder weights, `bert.pooler.dense.*` and `classifier.*`;
/// `config.json` with `"num_labels": 1`; the tokenizer files; and
/// `sentence_bert_config.json` holding the maximum length.
pub struct TrainableCrossEncoder {
    bert: TrainableBert,
    head: VarMap,
    pooler: Linear,
    classifier: Linear,
    pairs: PairTokenizer,
    report: Option<(CrossTrainConfig, TrainReport)>,
}

impl TrainableCrossEncoder {
    /// A reranker initialised from the BERT-family model directory `base` on `device`: its
    /// encoder (and its pooler when the checkpoint has one) with a fresh classifier, drawn
    /// from N(0, 0.02²) with generator seed `seed` (Hugging Face's `initializer_range`). The
    /// maximum length is the base's.
    ///
    /// # Errors
    ///
    /// Those of [`TrainableBert::load`].
    pub fn from_base(base: &Path, seed: u64, device: &Device) -> Result<Self> {
        let mut bert = TrainableBert::load(base, device)?;
        let h = bert.hidden_size();
        let mut rng = Rng::new(seed);
        let mut random = |rows: usize| -> Result<Tensor> {
            let values: Vec<f32> = (0..rows * h).map(|_| 0.02 * rng.normal() as f32).collect();
            Tensor::from_vec(values, (rows, h), device).map_err(|e| Error::candle(base, e))
        };
        let zeros = |n: usize| Tensor::zeros(n, candle_core::DType::F32, device);
        let pooler_w = match bert.take_extra("pooler.dense.weight") {
            Some(w) if w.dims() == [h, h] => w,
            _ => random(h)?,
        };
        let pooler_b = match bert.take_extra("pooler.dense.bias") {
            Some(b) if b.dims() == [h] => b,
            _ => zeros(h).map_err(|e| Error::candle(base, e))?,
        };
        let classifier_w = random(1)?;
        let classifier_b = zeros(1).map_err(|e| Error::candle(base, e))?;
        let max_len = bert.description().max_seq_length;
        Self::assemble(
            bert,
            [pooler_w, pooler_b, classifier_w, classifier_b],
            max_len,
        )
    }

    /// Loads a reranker saved by [`TrainableCrossEncoder::save`] (or any BERT
    /// `BertForSequenceClassification` directory with one label) on `device`.
    ///
    /// # Errors
    ///
    /// Those of [`TrainableBert::load`]; [`Error::Model`] when the head's tensors are missing or
    /// not of one label.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let mut bert = TrainableBert::load(dir, device)?;
        let h = bert.hidden_size();
        let shapes: [&[usize]; 4] = [&[h, h], &[h], &[1, h], &[1]];
        let mut head = Vec::with_capacity(4);
        for (name, shape) in HEAD_NAMES.iter().zip(shapes) {
            let tensor = bert.take_extra(name).ok_or_else(|| Error::Model {
                path: dir.to_path_buf(),
                message: format!(
                    "has no tensor {name}: not a cross-encoder (train one with `hybrid-search train-reranker`, \
                     or start one from a base model with TrainableCrossEncoder::from_base)"
                ),
            })?;
            if tensor.dims() != shape {
                return Err(Error::Model {
                    path: dir.to_path_buf(),
                    message: format!(
                        "tensor {name} has shape {:?}, expected {shape:?} (one label)",
                        tensor.dims()
                    ),
                });
            }
            head.push(
                tensor
                    .to_dtype(candle_core::DType::F32)
                    .map_err(|e| Error::candle(dir, e))?,
            );
        }
        let head: [Tensor; 4] = head.try_into().map_err(|_| Error::Model {
            path: dir.to_path_buf(),
            message: "incomplete classification head".into(),
        })?;
        let max_len = bert.description().max_seq_length;
        Self::assemble(bert, head, max_len)
    }

    fn assemble(bert: TrainableBert, head: [Tensor; 4], max_len: usize) -> Result<Self> {
        let fail = |e| Error::candle(bert.dir(), e);
        let varmap = VarMap::new();
        let mut tensors = Vec::with_capacity(4);
        {
            let mut data = varmap
                .data()
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            for (name, tensor) in HEAD_NAMES.iter().zip(head) {
                let var = Var::from_tensor(&tensor).map_err(fail)?;
                tensors.push(var.as_tensor().clone());
                data.insert(name.to_string(), var);
            }
        }
        let [pw, pb, cw, cb]: [Tensor; 4] = tensors.try_into().map_err(|_| Error::Model {
            path: bert.dir().to_path_buf(),
            message: "incomplete classification head".into(),
        })?;
        let pairs = PairTokenizer::new(
            bert.tokenizer().clone(),
            &bert.dir().join("tokenizer.json"),
            max_len,
            bert.type_vocab() >= 2,
        )?;
        Ok(Self {
            bert,
            head: varmap,
            pooler: Linear {
                weight: pw,
                bias: pb,
            },
            classifier: Linear {
                weight: cw,
                bias: cb,
            },
            pairs,
            report: None,
        })
    }

    /// The encoder under the head.
    pub fn encoder(&self) -> &TrainableBert {
        &self.bert
    }

    /// The head's weights (`pooler.dense.*`, `classifier.*`).
    pub fn head(&self) -> &VarMap {
        &self.head
    }

    /// Longest pair in tokens, special tokens included.
    pub fn max_len(&self) -> usize {
        self.pairs.max_len()
    }

    /// Sets the longest pair in tokens (saved with the model); at most the model's positions.
    ///
    /// # Errors
    ///
    /// [`Error::Model`] when it leaves no room beside the special tokens or exceeds the
    /// model's positions.
    pub fn set_max_len(&mut self, max_len: usize) -> Result<()> {
        self.pairs.set_max_len(max_len, self.bert.max_positions())
    }

    /// The model's input for a pair, at most [`TrainableCrossEncoder::max_len`] tokens,
    /// truncated as [`pair_budget`](hybrid_search_dense::pair_budget) says.
    ///
    /// # Errors
    ///
    /// [`Error::Model`] when the tokenizer fails.
    pub fn pair_input(&self, query: &str, passage: &str) -> Result<PairInput> {
        self.pairs.pair(query, passage)
    }

    /// One logit per input `(n,)`; with a generator, in training mode (dropout).
    fn logits(
        &self,
        inputs: &[&PairInput],
        mut rng: Option<&mut Rng>,
    ) -> candle_core::Result<Tensor> {
        let ids: Vec<&[u32]> = inputs.iter().map(|p| p.ids.as_slice()).collect();
        let types: Vec<&[u32]> = inputs.iter().map(|p| p.type_ids.as_slice()).collect();
        let batch = Batch::new(&ids, Some(&types), self.bert.device())?;
        let hidden =
            self.bert
                .forward_with(&batch.ids, &batch.mask, &batch.types, rng.as_deref_mut())?;
        let cls = hidden.narrow(1, 0, 1)?.squeeze(1)?;
        let pooled = self.pooler.forward(&cls)?.tanh()?;
        let pooled = dropout(&pooled, self.bert.hidden_dropout(), rng)?;
        self.classifier.forward(&pooled)?.squeeze(1)
    }

    /// Relevance logits of `passages` for `query`, in the order given (higher is more
    /// relevant; apply a sigmoid for sentence-transformers' 0..1 scores), computed in batches
    /// of pairs of similar length.
    ///
    /// # Errors
    ///
    /// [`Error::Model`] when the tokenizer fails; [`Error::Candle`] when the forward pass fails.
    pub fn score(&self, query: &str, passages: &[&str]) -> Result<Vec<f32>> {
        const BATCH: usize = 32;
        let inputs = passages
            .iter()
            .map(|p| self.pair_input(query, p))
            .collect::<Result<Vec<_>>>()?;
        let mut order: Vec<usize> = (0..inputs.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(inputs[i].ids.len()));
        let mut scores = vec![0f32; inputs.len()];
        for chunk in order.chunks(BATCH) {
            let batch: Vec<&PairInput> = chunk.iter().map(|&i| &inputs[i]).collect();
            let logits = self
                .logits(&batch, None)
                .and_then(|t| t.to_vec1::<f32>())
                .map_err(|e| Error::candle(self.bert.dir(), e))?;
            for (&i, s) in chunk.iter().zip(logits) {
                scores[i] = s;
            }
        }
        Ok(scores)
    }

    /// Trains the reranker on `examples` (see the module documentation for the loss), calling
    /// `progress` after every step; returns the mean loss of each epoch. Examples without
    /// negatives add nothing to the loss; at least one example needs one.
    ///
    /// # Errors
    ///
    /// [`Error::Model`] for invalid settings or when no example has a negative; [`Error::Candle`]
    /// when a step fails.
    pub fn train(
        &mut self,
        examples: &[TrainExample],
        config: &CrossTrainConfig,
        progress: impl FnMut(StepReport),
    ) -> Result<TrainReport> {
        self.train_checkpointed(examples, config, None, progress)
    }

    /// [`TrainableCrossEncoder::train`], and with `final_out` set, after every epoch but the last the
    /// reranker so far is saved as [`checkpoint_dir`]`(final_out, epoch)` (each must not
    /// exist or be empty). The final reranker is still written by [`TrainableCrossEncoder::save`].
    ///
    /// # Errors
    ///
    /// Those of [`TrainableCrossEncoder::train`]; [`Error::Io`] when a checkpoint cannot be
    /// written.
    pub fn train_checkpointed(
        &mut self,
        examples: &[TrainExample],
        config: &CrossTrainConfig,
        final_out: Option<&Path>,
        mut progress: impl FnMut(StepReport),
    ) -> Result<TrainReport> {
        let path = self.bert.dir().to_path_buf();
        let invalid = |message: String| Error::Model {
            path: path.clone(),
            message,
        };
        let hyper = config.hyper();
        if let Some(problem) = hyper.check().or_else(|| check_dropout(config.dropout)) {
            return Err(invalid(format!("invalid training setting: {problem}")));
        }
        if examples.is_empty() {
            return Err(invalid("no training examples".into()));
        }
        if let Some(p) = config.dropout {
            self.bert.set_dropout(p);
        }
        let groups = examples
            .iter()
            .map(|e| {
                let mut group = vec![self.pair_input(&e.query, &e.positive)?];
                for negative in e
                    .negatives
                    .iter()
                    .filter(|n| **n != e.positive)
                    .take(config.hard_negatives_per_query)
                {
                    group.push(self.pair_input(&e.query, negative)?);
                }
                Ok(group)
            })
            .collect::<Result<Vec<_>>>()?;
        if groups.iter().all(|g| g.len() < 2) {
            return Err(invalid(format!(
                "none of the {} training examples has a negative passage (with \
                 hard_negatives_per_query = {}); a cross-encoder learns by comparing each \
                 positive with negatives, e.g. mined with BM25",
                examples.len(),
                config.hard_negatives_per_query
            )));
        }
        let mut vars = self.bert.named_vars();
        vars.extend(self.head_vars());
        let device = self.bert.device().clone();
        let this = &*self;
        let batch_loss = |batch: &[usize], rng: &mut Rng| -> candle_core::Result<Objective> {
            let inputs: Vec<&PairInput> = batch.iter().flat_map(|&i| groups[i].iter()).collect();
            let logits = this.logits(&inputs, Some(rng))?;
            // Gather the flat logits into a (queries, largest group) matrix; the slots of
            // smaller groups point at logit 0 and are masked out.
            let width = batch.iter().map(|&i| groups[i].len()).max().unwrap_or(1);
            let mut index = vec![0u32; batch.len() * width];
            let mut mask = vec![-1e9f32; batch.len() * width];
            let mut offset = 0;
            for (row, &i) in batch.iter().enumerate() {
                for k in 0..groups[i].len() {
                    index[row * width + k] = (offset + k) as u32;
                    mask[row * width + k] = 0.0;
                }
                offset += groups[i].len();
            }
            let index = Tensor::from_vec(index, batch.len() * width, &device)?;
            let mask = Tensor::from_vec(mask, (batch.len(), width), &device)?;
            let scores = (logits
                .index_select(&index, 0)?
                .reshape((batch.len(), width))?
                + mask)?;
            let targets = Tensor::zeros(batch.len(), candle_core::DType::U32, &device)?;
            candle_nn::loss::cross_entropy(&scores, &targets).map(Objective::Loss)
        };
        let mut after_epoch = |so_far: &TrainReport| match final_out {
            Some(out) => this.write(
                &checkpoint_dir(out, so_far.epoch_losses.len()),
                Some((config, so_far)),
            ),
            None => Ok(()),
        };
        let report = fit(
            &path,
            examples.len(),
            &hyper,
            vars,
            batch_loss,
            &mut progress,
            &mut after_epoch,
        )?;
        self.report = Some((config.clone(), report.clone()));
        Ok(report)
    }

    fn head_vars(&self) -> Vec<(String, Var)> {
        let data = self
            .head
            .data()
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        HEAD_NAMES
            .iter()
            .filter_map(|n| data.get(*n).map(|v| (n.to_string(), v.clone())))
            .collect()
    }

    /// Writes the reranker as a new model directory `out` (which must not exist or be
    /// empty): see [`TrainableCrossEncoder`] for the layout. The base's tokenizer files are copied;
    /// its sentence-transformers bi-encoder files (`modules.json`, pooling folders) are not.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] or [`Error::Candle`] when a file cannot be written; `out` must not exist or
    /// be empty, and is written through a staging folder.
    pub fn save(&self, out: &Path) -> Result<()> {
        self.write(out, self.report.as_ref().map(|(c, r)| (c, r)))
    }

    fn write(&self, out: &Path, trained: Option<(&CrossTrainConfig, &TrainReport)>) -> Result<()> {
        let staging = save::begin(out)?;
        let bi_encoder_only = |name: &str| {
            matches!(
                name,
                "config.json"
                    | "modules.json"
                    | "sentence_bert_config.json"
                    | "config_sentence_transformers.json"
            ) || is_module_folder(name)
        };
        save::copy_support_files(self.bert.dir(), &staging, &bi_encoder_only)?;
        let mut config = self.bert.config_json().clone();
        if let Some(map) = config.as_object_mut() {
            map.insert(
                "architectures".into(),
                json!(["BertForSequenceClassification"]),
            );
            map.insert("num_labels".into(), json!(1));
            map.insert("id2label".into(), json!({"0": "LABEL_0"}));
            map.insert("label2id".into(), json!({"LABEL_0": 0}));
        }
        save::write_json(&staging.join("config.json"), &config)?;
        save::write_json(
            &staging.join("sentence_bert_config.json"),
            &json!({"max_seq_length": self.max_len()}),
        )?;
        let mut tensors = self.bert.tensors("bert.", |name| {
            name.starts_with("embeddings.") || name.starts_with("encoder.")
        });
        for (name, var) in self.head_vars() {
            let name = if name.starts_with("pooler.") {
                format!("bert.{name}")
            } else {
                name
            };
            tensors.insert(name, var.as_tensor().detach());
        }
        save::write_safetensors(&tensors, &staging.join("model.safetensors"))?;
        if let Some((config, report)) = trained {
            let record = json!({
                "kind": "cross-encoder",
                "base": self.bert.dir(),
                "config": config,
                "report": report,
            });
            save::write_json(&staging.join("training.json"), &record)?;
        }
        save::commit(&staging, out)
    }

    /// The directory the model was loaded from.
    pub fn dir(&self) -> &Path {
        self.bert.dir()
    }
}

/// A sentence-transformers module folder (`1_Pooling`, `2_Normalize`, `2_Dense`, ...).
fn is_module_folder(name: &str) -> bool {
    name.split_once('_')
        .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}
