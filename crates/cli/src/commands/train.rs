//! `train-dense` and `train-reranker`: training examples from a dataset's labelled queries,
//! BM25 hard negatives mined from a collection, the training run with a progress bar, and the
//! summary.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};

use hybrid_search::dense::Device;
use hybrid_search::{Collection, Document, Mode, SearchRequest, eval};
use hybrid_search_train::{
    CrossTrainConfig, DenseTrainConfig, DenseTrainer, PASSAGE_ENCODER_DIR, QUERY_ENCODER_DIR,
    Searcher, StepReport, TrainSettings, TrainableCrossEncoder, TrainingSet, checkpoint_dir,
    training_set,
};

use crate::progress::progress;
use crate::render::TrainingSummary;

/// What both training commands read and write.
#[derive(clap::Args)]
pub struct DataArgs {
    /// The model directory to start from (BERT family: config.json, model.safetensors,
    /// tokenizer.json and, for a sentence-transformers model, its pooling files; train-dense
    /// also takes a decoder LLM's GGUF model directory, scripts/fetch-models.sh --llm).
    #[arg(long)]
    pub(crate) base: PathBuf,
    /// A BEIR folder or a SQuAD/KorQuAD JSON file: one training example per (query, relevant
    /// document) of the split.
    #[arg(long)]
    pub(crate) dataset: PathBuf,
    /// The qrels split to train on: never the one you report.
    #[arg(long, default_value = "train")]
    pub(crate) split: String,
    /// The new model directory (must not exist, or be empty).
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// A collection of the dataset's corpus (`hybrid-search index`) to mine hard negatives
    /// from: its BM25 top hits for each query that the qrels do not mark relevant.
    #[arg(long)]
    pub(crate) index: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub(crate) json: bool,
    /// Also save the model after each epoch but the last, as OUT-epoch1, OUT-epoch2, ... (to
    /// index and evaluate each epoch's model: the curve per epoch).
    #[arg(long)]
    pub(crate) checkpoints: bool,
    /// Where to train: `cpu`, or `cuda` / `cuda:N` for an NVIDIA GPU (a binary built with
    /// `--features cuda`).
    #[arg(long, default_value = "cpu")]
    pub(crate) device: String,
}

impl DataArgs {
    /// The device of `--device`.
    fn device(&self) -> anyhow::Result<Device> {
        let ordinal = match self.device.as_str() {
            "cpu" => return Ok(Device::Cpu),
            "cuda" => 0,
            other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(n)) => n,
                _ => bail!("--device must be cpu, cuda or cuda:N, got {other:?}"),
            },
        };
        Device::new_cuda(ordinal).with_context(|| {
            format!(
                "--device {}: no CUDA device (a GPU build needs the CUDA toolkit and \
                 `cargo build --release -p hybrid-search-cli --features cuda`)",
                self.device
            )
        })
    }

    /// Where the checkpoints of a run of `epochs` go (none without --checkpoints).
    pub(crate) fn checkpoint_dirs(&self, epochs: usize) -> Vec<PathBuf> {
        if !self.checkpoints {
            return Vec::new();
        }
        (1..epochs).map(|e| checkpoint_dir(&self.out, e)).collect()
    }
}

/// The schedule flags both training commands take. Their defaults differ by command (they are
/// the trainer's configuration defaults), so a flag left out is `None` here and filled in by
/// [`ScheduleArgs::settings`].
#[derive(clap::Args)]
pub struct ScheduleArgs {
    /// Passes over the training examples [default: 1].
    #[arg(long)]
    epochs: Option<usize>,
    /// Queries per step: for train-dense each brings its positive and its hard negatives (the
    /// other queries' passages are its in-batch negatives); for train-reranker, 1 +
    /// --hard-negatives query-passage pairs [default: 32 for train-dense, 16 for
    /// train-reranker].
    #[arg(long)]
    batch_size: Option<usize>,
    /// Peak learning rate of AdamW [default: 2e-5 for train-dense, 1e-4 for train-reranker].
    #[arg(long)]
    lr: Option<f64>,
    /// Fraction of the steps spent warming the learning rate up (then it decays linearly to 0)
    /// [default: 0.1].
    #[arg(long)]
    warmup_ratio: Option<f64>,
    /// Seed of the example order and the dropout masks (and of train-reranker's new head's
    /// weights) [default: 42].
    #[arg(long)]
    seed: Option<u64>,
}

impl ScheduleArgs {
    /// `defaults` (a trainer configuration's) with the flags given, checked by the library;
    /// a problem is reported against the flag that set the value.
    fn settings(&self, defaults: TrainSettings) -> anyhow::Result<TrainSettings> {
        let settings = TrainSettings {
            epochs: self.epochs.unwrap_or(defaults.epochs),
            batch_size: self.batch_size.unwrap_or(defaults.batch_size),
            learning_rate: self.lr.unwrap_or(defaults.learning_rate),
            warmup_ratio: self.warmup_ratio.unwrap_or(defaults.warmup_ratio),
            seed: self.seed.unwrap_or(defaults.seed),
            ..defaults
        };
        if let Some(problem) = settings.check() {
            // The library's message starts with the field's name.
            const FLAGS: [(&str, &str); 4] = [
                ("epochs", "--epochs"),
                ("batch_size", "--batch-size"),
                ("learning_rate", "--lr"),
                ("warmup_ratio", "--warmup-ratio"),
            ];
            match FLAGS
                .iter()
                .find_map(|(field, flag)| Some((flag, problem.strip_prefix(field)?)))
            {
                Some((flag, rest)) => bail!("{flag}{rest}"),
                None => bail!("invalid training setting: {problem}"),
            }
        }
        Ok(settings)
    }
}

/// `train-dense`'s flags.
#[derive(clap::Args)]
pub struct TrainDenseArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Hard negatives per query, mined with --index and added to each batch's passages
    /// [default: 1 with --index].
    #[arg(long, requires = "index")]
    hard_negatives: Option<usize>,
    /// Separate query and passage encoders (DPR's layout), saved as OUT/query_encoder and
    /// OUT/passage_encoder, instead of one shared encoder.
    #[arg(long)]
    separate: bool,
    #[command(flatten)]
    schedule: ScheduleArgs,
    /// Longest query in tokens (also capped by the model's maximum length).
    #[arg(long, default_value_t = DenseTrainConfig::default().max_query_len)]
    max_query_len: usize,
    /// Longest passage in tokens (also capped by the model's maximum length).
    #[arg(long, default_value_t = DenseTrainConfig::default().max_passage_len)]
    max_passage_len: usize,
    /// GradCache micro-batch: queries and passages encoded this many at a time, so only one
    /// micro-batch's activations are in memory while the loss keeps every in-batch and hard
    /// negative; 0 runs each batch in one pass (fastest, most memory).
    #[arg(long, default_value_t = hybrid_search_train::DEFAULT_MICRO_BATCH)]
    micro_batch: usize,
    /// A decoder LLM base (GGUF model directory): how many of its top blocks train; the
    /// blocks below and the embedding table stay frozen.
    #[arg(long, default_value_t = hybrid_search_train::DEFAULT_DECODER_LAYERS)]
    decoder_layers: usize,
}

/// `train-reranker`'s flags.
#[derive(clap::Args)]
pub struct TrainRerankerArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Hard negatives per query, mined with --index: each query's positive is compared with
    /// them [default: 3].
    #[arg(long, requires = "index")]
    hard_negatives: Option<usize>,
    #[command(flatten)]
    schedule: ScheduleArgs,
    /// Longest query-passage pair in tokens, special tokens included (the passage is cut
    /// first) [default: the base model's maximum length].
    #[arg(long)]
    max_len: Option<usize>,
    /// The new head (pooler and classifier) learns at this multiple of --lr.
    #[arg(long, default_value_t = CrossTrainConfig::default().head_lr_scale)]
    head_lr_scale: f64,
}

/// The schedule `schedule` sets over `defaults`, once the flags and the directories both
/// trainers use are checked, before anything is loaded. `decoders` says whether the trainer
/// also accepts a decoder LLM's GGUF model directory as `--base` (train-dense does, the
/// cross-encoder does not).
fn check_common(
    data: &DataArgs,
    schedule: &ScheduleArgs,
    defaults: TrainSettings,
    decoders: bool,
) -> anyhow::Result<TrainSettings> {
    let settings = schedule.settings(defaults)?;
    let epochs = settings.epochs;
    let decoder = decoders
        && data.base.is_dir()
        && hybrid_search::dense::decoder_model_file(&data.base)?.is_some();
    if !decoder && !data.base.join("config.json").is_file() {
        let packed = if data.base.is_dir() {
            hybrid_search::dense::packed_model_file(&data.base)?
        } else {
            None
        };
        if let Some(packed) = packed.as_deref().and_then(|p| p.file_name()) {
            bail!(
                "{}: holds packed quantised weights ({}), which `index --model` runs but \
                 training cannot start from; pass --base with a directory of the f32 checkpoint \
                 (config.json + model.safetensors)",
                data.base.display(),
                packed.to_string_lossy()
            );
        }
        let also = if decoders {
            ", or a decoder LLM's directory with a .gguf file such as \
             models/SmolLM2-135M-Instruct (scripts/fetch-models.sh --llm)"
        } else {
            ""
        };
        bail!(
            "{}: not a model directory (no config.json); pass --base with a BERT-family model \
             directory such as models/all-MiniLM-L6-v2 (scripts/fetch-models.sh){also}",
            data.base.display()
        );
    }
    for out in std::iter::once(data.out.clone()).chain(data.checkpoint_dirs(epochs)) {
        if out.exists()
            && (!out.is_dir()
                || std::fs::read_dir(&out)
                    .with_context(|| format!("reading {}", out.display()))?
                    .next()
                    .is_some())
        {
            bail!(
                "{}: already exists and is not an empty directory; choose a new --out (a \
                 trained model never overwrites one)",
                out.display()
            );
        }
    }
    Ok(settings)
}

/// The collection's BM25 leg as the trainers' [`Searcher`] for hard negatives.
struct Bm25Searcher<'a>(&'a Collection);

impl Searcher for Bm25Searcher<'_> {
    type Error = hybrid_search::Error;

    fn top_ids(&self, query: &str, k: usize) -> hybrid_search::Result<Vec<String>> {
        let request = SearchRequest::new(query, k).with_mode(Mode::Sparse);
        Ok(self
            .0
            .rank(&request)?
            .hits
            .into_iter()
            .map(|hit| hit.id.to_string())
            .collect())
    }

    fn document(&self, id: &str) -> hybrid_search::Result<Option<Document>> {
        self.0.get(id)
    }
}

/// One example per (query, relevant document) of `data.split`, with up to `hard_negatives`
/// BM25 hard negatives per query from `data.index`; notes printed about what was skipped.
fn training_data(data: &DataArgs, hard_negatives: usize) -> anyhow::Result<TrainingSet> {
    let dataset = eval::load_dataset(&data.dataset, &data.split)?;
    let collection = match &data.index {
        Some(index) => Some(
            Collection::open(index)
                .with_context(|| format!("opening {} to mine hard negatives", index.display()))?,
        ),
        None => None,
    };
    let searcher = collection.as_ref().map(Bm25Searcher);
    let bar = match (&searcher, hard_negatives) {
        (Some(_), 1..) => progress(dataset.queries.len() as u64, "mining hard negatives"),
        _ => ProgressBar::hidden(),
    };
    let set = training_set(&dataset, searcher.as_ref(), hard_negatives, &|| bar.inc(1));
    bar.finish_and_clear();
    let set = set.with_context(|| match &data.index {
        Some(index) => format!("mining hard negatives from {}", index.display()),
        None => "building training examples".into(),
    })?;
    if set.missing_judged > 0 {
        eprintln!(
            "note: {} relevant documents of split {:?} are not in the corpus of {}; \
             their judgements are skipped",
            set.missing_judged,
            data.split,
            data.dataset.display()
        );
    }
    if let (true, Some(index)) = (set.foreign_searcher, &data.index) {
        eprintln!(
            "note: {} holds none of the relevant documents checked; hard negatives come from \
             another corpus than the dataset's (index the dataset's corpus to mine from it)",
            index.display()
        );
    }
    if set.examples.is_empty() {
        bail!(
            "{}: split {:?} has no query with a relevant document in the corpus, so there is \
             nothing to train on; pass --split with a split that has judgements",
            data.dataset.display(),
            data.split
        );
    }
    Ok(set)
}

/// A progress bar over the training steps that shows the epoch and the running mean loss of
/// the epoch; the callback to give the trainer.
fn step_bar(epochs: usize) -> (ProgressBar, impl FnMut(StepReport)) {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "training [{bar:30}] step {pos}/{len} {msg} ({elapsed}, eta {eta})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    let handle = bar.clone();
    let (mut epoch, mut sum, mut count) = (0, 0.0f64, 0usize);
    let on_step = move |s: StepReport| {
        if s.epoch != epoch {
            (epoch, sum, count) = (s.epoch, 0.0, 0);
        }
        sum += f64::from(s.loss);
        count += 1;
        handle.set_length(s.steps as u64);
        handle.set_position(s.step as u64);
        handle.set_message(format!(
            "epoch {}/{epochs} loss {:.4} lr {:.2e}",
            s.epoch,
            sum / count as f64,
            s.lr
        ));
    };
    (bar, on_step)
}

/// `hybrid-search train-dense`.
pub fn cmd_train_dense(args: &TrainDenseArgs) -> anyhow::Result<()> {
    let data = &args.data;
    let train = check_common(
        data,
        &args.schedule,
        DenseTrainConfig::default().train,
        true,
    )?;
    let device = data.device()?;
    if args.max_query_len < 2 || args.max_passage_len < 2 {
        bail!("--max-query-len and --max-passage-len must be at least 2");
    }
    let hard_negatives = args.hard_negatives.unwrap_or(1);
    let training = training_data(data, hard_negatives)?;
    let epochs = train.epochs;
    let config = DenseTrainConfig {
        train,
        hard_negatives_per_query: if data.index.is_some() {
            hard_negatives
        } else {
            0
        },
        shared: !args.separate,
        max_query_len: args.max_query_len,
        max_passage_len: args.max_passage_len,
        micro_batch: (args.micro_batch > 0).then_some(args.micro_batch),
        decoder_layers: args.decoder_layers,
        ..DenseTrainConfig::default()
    };
    let mut trainer = DenseTrainer::new(&data.base, config, &device)
        .with_context(|| format!("loading base model {}", data.base.display()))?;
    let started = Instant::now();
    let (bar, on_step) = step_bar(epochs);
    let checkpoints = data.checkpoints.then_some(data.out.as_path());
    let report = trainer.train_checkpointed(&training.examples, checkpoints, on_step);
    bar.finish_and_clear();
    let report = report.with_context(|| format!("training from {}", data.base.display()))?;
    let seconds = started.elapsed().as_secs_f64();
    trainer
        .save(&data.out)
        .with_context(|| format!("saving the trained model to {}", data.out.display()))?;
    TrainingSummary {
        kind: "dense retriever",
        layout: Some(if args.separate { "separate" } else { "shared" }),
        data,
        training: &training,
        hard_negatives: if data.index.is_some() {
            hard_negatives
        } else {
            0
        },
        report: &report,
        seconds,
    }
    .print()?;
    if args.separate {
        let out = data.out.display();
        eprintln!(
            "note: {out} holds two encoders ({out}/{PASSAGE_ENCODER_DIR}, \
             {out}/{QUERY_ENCODER_DIR}); index with `--model {out}/{PASSAGE_ENCODER_DIR}` and \
             search or evaluate with `--query-model {out}/{QUERY_ENCODER_DIR}`"
        );
    }
    Ok(())
}

/// `hybrid-search train-reranker`.
pub fn cmd_train_reranker(args: &TrainRerankerArgs) -> anyhow::Result<()> {
    let data = &args.data;
    let train = check_common(
        data,
        &args.schedule,
        CrossTrainConfig::default().train,
        false,
    )?;
    let device = data.device()?;
    if !(args.head_lr_scale.is_finite() && args.head_lr_scale > 0.0) {
        bail!(
            "--head-lr-scale must be a number > 0, got {}",
            args.head_lr_scale
        );
    }
    let hard_negatives = args.hard_negatives.unwrap_or(3);
    let (Some(index), 1..) = (&data.index, hard_negatives) else {
        bail!(
            "a reranker learns by comparing each query's relevant passage with passages that \
             are not: pass --index DIR (a collection of the dataset's corpus, built with \
             `hybrid-search index`) to mine them, and --hard-negatives N of at least 1"
        );
    };
    let training = training_data(data, hard_negatives)?;
    if training.with_negatives == 0 {
        bail!(
            "{}: BM25 found no passage outside the relevant ones for any query, so there is \
             nothing to compare with; index the dataset's corpus into it",
            index.display()
        );
    }
    let config = CrossTrainConfig {
        train,
        hard_negatives_per_query: hard_negatives,
        head_lr_scale: args.head_lr_scale,
        ..CrossTrainConfig::default()
    };
    let mut reranker = TrainableCrossEncoder::from_base(&data.base, config.train.seed, &device)
        .with_context(|| format!("loading base model {}", data.base.display()))?;
    if let Some(max_len) = args.max_len {
        reranker
            .set_max_len(max_len)
            .context("--max-len is not possible")?;
    }
    let started = Instant::now();
    let (bar, on_step) = step_bar(config.train.epochs);
    let checkpoints = data.checkpoints.then_some(data.out.as_path());
    let report = reranker.train_checkpointed(&training.examples, &config, checkpoints, on_step);
    bar.finish_and_clear();
    let report = report.with_context(|| format!("training from {}", data.base.display()))?;
    let seconds = started.elapsed().as_secs_f64();
    reranker
        .save(&data.out)
        .with_context(|| format!("saving the trained reranker to {}", data.out.display()))?;
    TrainingSummary {
        kind: "cross-encoder reranker",
        layout: None,
        data,
        training: &training,
        hard_negatives: if data.index.is_some() {
            hard_negatives
        } else {
            0
        },
        report: &report,
        seconds,
    }
    .print()
}
