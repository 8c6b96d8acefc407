//! The `hybrid-search` command-line tool: a thin layer over the `hybrid-search` library.

mod train;

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;

use std::sync::Arc;

use hybrid_search::dense::CrossEncoder;
use hybrid_search::dense::Scalar;
use hybrid_search::dense::{Device, Encoder, LongText, TextKind, WeightFormat};
use hybrid_search::eval::{self, metrics, trec};
use hybrid_search::fusion::{ConvexSettings, Fusion, Leg, Normalization, RrfSettings};
use hybrid_search::sparse::Analyzer;
use hybrid_search::{
    AnalyzerConfig, AnalyzerKind, Collection, DecompoundMode, DenseOptions, HybridOptions, Mode,
    RerankOptions, SearchDefaults, SearchResults, StopWords, TuneRecord, VectorKind, Wait,
    locate_model,
};
use hybrid_search_kodic as kodic;
use hybrid_search_train::{PASSAGE_ENCODER_DIR, QUERY_ENCODER_DIR};

/// Hybrid sparse + dense search for Korean and English text.
#[derive(Parser)]
#[command(name = "hybrid-search", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum AnalyzerArg {
    /// Hangul runs through `ko`, the rest through `en`.
    Auto,
    /// lindera with ko-dic for everything.
    Ko,
    /// The English path for everything.
    En,
}

impl From<AnalyzerArg> for AnalyzerKind {
    fn from(a: AnalyzerArg) -> Self {
        match a {
            AnalyzerArg::Auto => AnalyzerKind::Auto,
            AnalyzerArg::Ko => AnalyzerKind::Ko,
            AnalyzerArg::En => AnalyzerKind::En,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum DecompoundArg {
    /// Keep compound nouns whole.
    None,
    /// Keep only the parts.
    Discard,
    /// Keep the whole and the parts.
    Mixed,
}

#[derive(Clone, Copy, ValueEnum)]
enum StopWordsArg {
    /// No English stop words.
    None,
    /// Lucene's 33 words.
    Lucene,
    /// The longer built-in list.
    Extended,
}

#[derive(Clone, Copy, ValueEnum)]
enum ModeArg {
    Sparse,
    Dense,
    Hybrid,
}

impl From<ModeArg> for Mode {
    fn from(m: ModeArg) -> Self {
        match m {
            ModeArg::Sparse => Mode::Sparse,
            ModeArg::Dense => Mode::Dense,
            ModeArg::Hybrid => Mode::Hybrid,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum FusionArg {
    Rrf,
    Convex,
}

#[derive(Clone, Copy, ValueEnum)]
enum NormArg {
    Minmax,
    Zscore,
    Dbsf,
    /// Cosine in [-1, 1], BM25 from 0 to the list's maximum.
    Theoretical,
}

/// How `--mode hybrid` blends the legs. Unset flags keep the collection's stored settings
/// (`hybrid-search tune`), else the built-in default (convex combination, min-max, alpha 0.4,
/// depth 100).
#[derive(clap::Args, Clone)]
struct FusionArgs {
    /// Reciprocal rank fusion, or a convex combination of normalised scores.
    #[arg(long, value_enum)]
    fusion: Option<FusionArg>,
    /// Convex combination: the dense leg's weight (the sparse leg gets 1 - alpha).
    #[arg(long)]
    alpha: Option<f32>,
    /// RRF: the rank constant k in 1 / (k + rank).
    #[arg(long)]
    rrf_k: Option<f32>,
    /// Convex combination: how each leg's scores are normalised.
    #[arg(long, value_enum)]
    norm: Option<NormArg>,
    /// Candidates taken from each leg (at least -k).
    #[arg(long)]
    depth: Option<usize>,
}

impl FusionArgs {
    /// `base` with the flags given applied on top.
    fn options(&self, base: HybridOptions) -> anyhow::Result<HybridOptions> {
        let method = self.fusion.unwrap_or(match base.fusion {
            Fusion::Rrf(_) => FusionArg::Rrf,
            _ => FusionArg::Convex,
        });
        let fusion = match method {
            FusionArg::Rrf => {
                if self.alpha.is_some() || self.norm.is_some() {
                    bail!("--alpha and --norm apply to --fusion convex, not rrf");
                }
                let mut settings = match base.fusion {
                    Fusion::Rrf(s) => s,
                    _ => RrfSettings::default(),
                };
                if let Some(k) = self.rrf_k {
                    settings.k = k;
                }
                Fusion::Rrf(settings)
            }
            FusionArg::Convex => {
                if self.rrf_k.is_some() {
                    bail!("--rrf-k applies to --fusion rrf, not convex");
                }
                let mut settings = match base.fusion {
                    Fusion::Convex(s) => s,
                    _ => ConvexSettings::default(),
                };
                if let Some(alpha) = self.alpha {
                    settings.alpha = alpha;
                }
                if let Some(norm) = self.norm {
                    (settings.dense, settings.sparse) = match norm {
                        NormArg::Minmax => (Normalization::MinMax, Normalization::MinMax),
                        NormArg::Zscore => (Normalization::ZScore, Normalization::ZScore),
                        NormArg::Dbsf => (Normalization::Dbsf, Normalization::Dbsf),
                        NormArg::Theoretical => (Normalization::cosine(), Normalization::bm25()),
                    };
                }
                Fusion::Convex(settings)
            }
        };
        fusion.validate()?;
        let depth = self.depth.unwrap_or(base.depth);
        if depth == 0 {
            bail!("--depth must be at least 1");
        }
        Ok(HybridOptions { fusion, depth })
    }
}

/// Which leg(s) answer, with which model and fusion settings (`search` and `eval`).
#[derive(clap::Args, Clone)]
struct SearchArgs {
    /// Which leg answers (hybrid: both, fused). Default: hybrid for a collection built with a
    /// model, sparse otherwise.
    #[arg(long, value_enum)]
    mode: Option<ModeArg>,
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    fusion: FusionArgs,
    /// Encode queries with this model instead of the collection's: the query encoder of a
    /// model trained with `train-dense --separate` (OUT/query_encoder), for a collection
    /// indexed with its passage encoder (OUT/passage_encoder).
    #[arg(long)]
    query_model: Option<PathBuf>,
    /// Rerank the top hits with this cross-encoder (a directory written by
    /// `hybrid-search train-reranker`). Reranked hits are scored by its logit (see
    /// --rerank-weight).
    #[arg(long)]
    rerank: Option<PathBuf>,
    /// Hits the cross-encoder reorders; the ones below keep their order after them.
    #[arg(long, default_value_t = RerankOptions::default().depth, requires = "rerank")]
    rerank_depth: usize,
    /// How much the cross-encoder counts, 0 to 1: 1 orders the reranked hits by its logit
    /// alone; below 1 their score is weight x logit + (1 - weight) x first-stage score, both
    /// min-max normalised over the reranked hits. Choose it on held-out labelled queries
    /// (`eval --split`): a reranker trained on a few hundred queries is weaker than a fused
    /// first stage on its own (0.2 was best for the SciFact reranker in docs/benchmarks.md).
    #[arg(long, default_value_t = RerankOptions::default().weight, requires = "rerank")]
    rerank_weight: f64,
}

/// A collection opened for searching: the mode and fusion settings resolved, the model
/// attached when needed.
struct Prepared {
    collection: Collection,
    mode: Mode,
    hybrid: HybridOptions,
    /// Why the dense leg is unavailable, when a hybrid search must fall back.
    unavailable: Option<String>,
    /// The model that encodes queries when it is not the collection's (`--query-model`).
    query_encoder: Option<Arc<Encoder>>,
    /// The cross-encoder of `--rerank`, with its directory.
    reranker: Option<(PathBuf, CrossEncoder)>,
}

impl Prepared {
    /// The query vectors of `texts` when the query model is not the collection's, else
    /// `None` (the collection encodes them).
    fn own_query_vectors(&self, texts: &[&str]) -> anyhow::Result<Option<Vec<Vec<f32>>>> {
        let Some(encoder) = &self.query_encoder else {
            return Ok(None);
        };
        let bar = progress(texts.len() as u64, "encoding queries");
        let mut vectors = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(32) {
            vectors.extend(
                encoder
                    .encode(chunk, TextKind::Query, 32)
                    .with_context(|| {
                        format!("encoding queries with {}", encoder.dir().display())
                    })?,
            );
            bar.inc(chunk.len() as u64);
        }
        bar.finish_and_clear();
        Ok(Some(vectors))
    }
}

impl SearchArgs {
    fn open(&self, index: &Path) -> anyhow::Result<Prepared> {
        if self.rerank.is_some() && self.rerank_depth == 0 {
            bail!("--rerank-depth must be at least 1");
        }
        if !(0.0..=1.0).contains(&self.rerank_weight) {
            bail!(
                "--rerank-weight must be between 0 and 1, got {}",
                self.rerank_weight
            );
        }
        let mut collection = Collection::open(index)?;
        let mode = self
            .mode
            .map_or_else(|| collection.default_mode(), Mode::from);
        let hybrid = self.fusion.options(collection.hybrid_options())?;
        let query_encoder = match &self.query_model {
            Some(_) if mode == Mode::Sparse => {
                bail!("--query-model applies to --mode dense and hybrid, not sparse")
            }
            Some(dir) => Some(self.query_model_for(&collection, dir)?),
            None => None,
        };
        let reranker = match &self.rerank {
            Some(dir) => {
                let reranker = CrossEncoder::load(dir, &Device::Cpu).with_context(|| {
                    format!(
                        "loading reranker {} (a cross-encoder directory written by \
                         `hybrid-search train-reranker`)",
                        dir.display()
                    )
                })?;
                Some((dir.clone(), reranker))
            }
            None => None,
        };
        let mut unavailable = None;
        // With --query-model the collection's vectors are searched with the query model's
        // vectors: its own model is only needed when named.
        if (mode != Mode::Sparse && query_encoder.is_none()) || self.model.model.is_some() {
            match self.model.attach(&mut collection) {
                Ok(()) => {}
                // A model found on its own may be missing or broken: hybrid falls back to the
                // sparse leg. A model the user named must work.
                Err(err) if mode == Mode::Hybrid && self.model.model.is_none() => {
                    unavailable = Some(format!("{err:#}"));
                }
                Err(err) => return Err(err),
            }
        }
        Ok(Prepared {
            collection,
            mode,
            hybrid,
            unavailable,
            query_encoder,
            reranker,
        })
    }

    /// The reranking settings of the flags.
    fn rerank_options(&self) -> RerankOptions {
        RerankOptions {
            depth: self.rerank_depth,
            weight: self.rerank_weight,
        }
    }

    /// Loads the `--query-model` and checks that its vectors can search the collection's.
    fn query_model_for(&self, collection: &Collection, dir: &Path) -> anyhow::Result<Arc<Encoder>> {
        let Some(dense) = &collection.manifest().dense else {
            bail!(
                "{}: this collection has no dense leg, so --query-model {} cannot be used; \
                 rebuild it with `hybrid-search index --model`",
                collection.dir().display(),
                dir.display()
            );
        };
        let encoder = self.model.load(dir)?;
        let (theirs, ours) = (dense.model.description.dim, encoder.description().dim);
        if theirs != ours {
            bail!(
                "--query-model {}: makes {ours}-dimensional vectors, but the vectors of {} \
                 ({}) have {theirs}; pass the query encoder trained with the collection's model",
                dir.display(),
                collection.dir().display(),
                dense.model.name
            );
        }
        Ok(encoder)
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum WeightsArg {
    /// As the model directory stores them (Q4_0 for a packed file).
    AsStored,
    /// Dequantised to f32.
    F32,
    /// Quantised to Q4_0 at load.
    #[value(name = "q4_0")]
    Q4_0,
}

#[derive(Clone, Copy, ValueEnum)]
enum LongTextArg {
    Truncate,
    Windows,
}

#[derive(Clone, Copy, ValueEnum)]
enum VectorsArg {
    Hnsw,
    Exact,
}

/// Which model makes query (and passage) vectors.
#[derive(clap::Args, Clone)]
struct ModelArgs {
    /// Model directory (config.json + safetensors, or a packed E5S1 file; tokenizer.json;
    /// sentence-transformers files). For an existing collection, defaults to models/<name> of
    /// the model it was built with.
    #[arg(long)]
    model: Option<PathBuf>,
    /// How the model's matrices run.
    #[arg(long, value_enum, default_value = "as-stored")]
    weights: WeightsArg,
}

impl ModelArgs {
    fn load(&self, dir: &Path) -> anyhow::Result<Arc<Encoder>> {
        if !dir.join("config.json").exists()
            && dir.join(QUERY_ENCODER_DIR).is_dir()
            && dir.join(PASSAGE_ENCODER_DIR).is_dir()
        {
            let d = dir.display();
            bail!(
                "{d}: a model with separate query and passage encoders (`train-dense \
                 --separate`); a collection holds one model's vectors: index with \
                 `--model {d}/{PASSAGE_ENCODER_DIR}` and search or evaluate with \
                 `--query-model {d}/{QUERY_ENCODER_DIR}`"
            );
        }
        let format = match self.weights {
            WeightsArg::AsStored => WeightFormat::AsStored,
            WeightsArg::F32 => WeightFormat::F32,
            WeightsArg::Q4_0 => WeightFormat::Q4_0,
        };
        let encoder = Encoder::load_with(dir, &Device::Cpu, format)
            .with_context(|| format!("loading model {}", dir.display()))?;
        Ok(Arc::new(encoder))
    }

    /// Attaches the collection's model when it has a dense leg: `--model`, else the recorded
    /// model's directory found under models/.
    fn attach(&self, collection: &mut Collection) -> anyhow::Result<()> {
        let Some(dense) = &collection.manifest().dense else {
            if let Some(dir) = &self.model {
                bail!(
                    "{}: this collection has no dense leg, so --model {} cannot be used; \
                     rebuild it with `hybrid-search index --model`",
                    collection.dir().display(),
                    dir.display()
                );
            }
            return Ok(());
        };
        let dir = match &self.model {
            Some(dir) => dir.clone(),
            None => locate_model(&dense.model.name).with_context(|| {
                format!(
                    "{}: built with model {}, which is not under models/ here; pass --model DIR \
                     (scripts/fetch-models.sh lays out the standard models)",
                    collection.dir().display(),
                    dense.model.name
                )
            })?,
        };
        let encoder = self.load(&dir)?;
        collection.attach_encoder(encoder)?;
        Ok(())
    }
}

/// How a write waits for another writer of the same collection.
#[derive(clap::Args, Clone, Copy)]
struct WaitArgs {
    /// When another process is writing to the collection, queue behind it: `--wait` waits
    /// as long as it takes, `--wait=SECONDS` at most that long; without it a busy collection
    /// is an error at once.
    #[arg(
        long,
        value_name = "SECONDS",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "inf"
    )]
    wait: Option<f64>,
}

impl WaitArgs {
    fn wait(&self) -> anyhow::Result<Wait> {
        Ok(match self.wait {
            None => Wait::No,
            Some(s) if s.is_infinite() && s > 0.0 => Wait::Forever,
            Some(s) if s.is_finite() && s >= 0.0 => {
                Wait::For(std::time::Duration::from_secs_f64(s))
            }
            Some(s) => bail!("--wait=SECONDS takes a number of seconds >= 0 (got {s})"),
        })
    }

    /// Opens the collection in `index` for writing with this waiting policy.
    fn open(&self, index: &Path) -> anyhow::Result<Collection> {
        let mut collection = Collection::open(index)?;
        collection.set_write_wait(self.wait()?);
        Ok(collection)
    }
}

/// Prints what went wrong after a commit was already durable.
fn print_warnings(collection: &mut Collection) {
    for warning in collection.take_warnings() {
        eprintln!("warning: {warning}");
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum ScalarArg {
    F32,
    F16,
    I8,
}

/// Analyzer settings shared by `index` and `analyze`.
#[derive(clap::Args, Clone)]
struct AnalyzerArgs {
    /// Analyzer: auto (Korean and English), ko or en.
    #[arg(long, value_enum, default_value = "auto")]
    analyzer: AnalyzerArg,
    /// How Korean compound nouns are indexed.
    #[arg(long, value_enum)]
    decompound: Option<DecompoundArg>,
    /// Korean part-of-speech tags to drop, comma-separated (default: Lucene nori's 30 tags).
    #[arg(long, value_delimiter = ',')]
    stop_tags: Option<Vec<String>>,
    /// English stop-word list.
    #[arg(long, value_enum)]
    stop_words: Option<StopWordsArg>,
    /// Turn English stemming off.
    #[arg(long)]
    no_stem: bool,
    /// Weight of the Hangul character-bigram field in queries; 0 turns it off.
    #[arg(long)]
    ngram_weight: Option<f32>,
}

impl AnalyzerArgs {
    fn config(&self) -> anyhow::Result<AnalyzerConfig> {
        let mut c = AnalyzerConfig::for_kind(self.analyzer.into());
        if let Some(d) = self.decompound {
            c.decompound = match d {
                DecompoundArg::None => DecompoundMode::None,
                DecompoundArg::Discard => DecompoundMode::Discard,
                DecompoundArg::Mixed => DecompoundMode::Mixed,
            };
        }
        if let Some(tags) = &self.stop_tags {
            c.stop_tags = tags
                .iter()
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
                .collect();
        }
        if let Some(s) = self.stop_words {
            c.stop_words = match s {
                StopWordsArg::None => StopWords::None,
                StopWordsArg::Lucene => StopWords::Lucene,
                StopWordsArg::Extended => StopWords::Extended,
            };
        }
        c.stem = !self.no_stem;
        if let Some(w) = self.ngram_weight {
            if !(w.is_finite() && w >= 0.0) {
                bail!("--ngram-weight must be a number >= 0, got {w}");
            }
            c.ngram_weight = w;
        }
        Ok(c)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Index a dataset into a collection (created if missing; documents with an existing id are
    /// replaced).
    Index {
        /// The collection folder.
        #[arg(long)]
        index: PathBuf,
        /// A BEIR folder, a SQuAD/KorQuAD JSON file, or a JSONL file of {"_id" or "id", "title", "text"}.
        #[arg(long)]
        dataset: PathBuf,
        #[command(flatten)]
        analyzer: AnalyzerArgs,
        #[command(flatten)]
        model: ModelArgs,
        /// Passages longer than the model's limit: split into overlapping windows (a document
        /// scores by its best window) or truncated.
        #[arg(long, value_enum, default_value = "windows")]
        long_text: LongTextArg,
        /// Tokens shared by consecutive windows (default: a quarter of the model's length).
        #[arg(long)]
        window_overlap: Option<usize>,
        /// The vector index.
        #[arg(long, value_enum, default_value = "hnsw")]
        vectors: VectorsArg,
        /// How HNSW stores vector components: f32 (exact), f16 or i8 (usearch quantises;
        /// recall@10 against exact f32 in docs/benchmarks.md).
        #[arg(long, value_enum, default_value = "f32")]
        vector_scalar: ScalarArg,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Search a collection.
    Search {
        /// The collection folder.
        #[arg(long)]
        index: PathBuf,
        #[command(flatten)]
        search: SearchArgs,
        /// Number of results.
        #[arg(short, default_value_t = 10)]
        k: usize,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// Show each leg's raw score, rank, normalised score and share of every hit's score.
        #[arg(long)]
        explain: bool,
        /// The query's vector as a JSON array (the collection's model dimensions), used by
        /// the dense leg instead of encoding the query text.
        #[arg(long, value_name = "JSON_ARRAY")]
        vector: Option<String>,
        /// The query (may be left out with --vector in dense mode).
        #[arg(required_unless_present = "vector")]
        query: Option<String>,
    },
    /// Evaluate a collection on a dataset's labelled queries (nDCG@10, Recall@100, MRR@10).
    Eval {
        /// The collection folder.
        #[arg(long)]
        index: PathBuf,
        /// A BEIR folder or a SQuAD/KorQuAD JSON file.
        #[arg(long)]
        dataset: PathBuf,
        /// The qrels split of a BEIR folder.
        #[arg(long, default_value = "test")]
        split: String,
        #[command(flatten)]
        search: SearchArgs,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// Write the ranked lists as a TREC run file (top 1000 per query for one leg; the
        /// fused top max(depth, 100) for hybrid). With --rerank the scores are n - rank (the
        /// reranked top and the rest are scored on different scales).
        #[arg(long)]
        run: Option<PathBuf>,
    },
    /// Choose the hybrid fusion settings (method, alpha, k, normalisation, depth) with the
    /// best nDCG@10 on a dataset's labelled queries, and store them as the collection's default.
    Tune {
        /// The collection folder (built with a model).
        #[arg(long)]
        index: PathBuf,
        /// A BEIR folder or a SQuAD/KorQuAD JSON file.
        #[arg(long)]
        dataset: PathBuf,
        /// The qrels split to tune on: never the one you report.
        #[arg(long, default_value = "train")]
        split: String,
        #[command(flatten)]
        model: ModelArgs,
        /// Rows of the table to print (best first).
        #[arg(long, default_value_t = 15)]
        top: usize,
        /// Print the table, keep the collection's settings.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        wait: WaitArgs,
        /// Print one JSON object (every row) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Add documents to a collection (JSONL, BEIR folder or SQuAD JSON), replacing those whose
    /// id exists, in one commit covering both legs.
    Add {
        /// The collection folder.
        #[arg(long)]
        index: PathBuf,
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        wait: WaitArgs,
        /// The documents.
        file: PathBuf,
    },
    /// Delete documents by id, in one commit covering both legs.
    Delete {
        /// The collection folder.
        #[arg(long)]
        index: PathBuf,
        #[command(flatten)]
        wait: WaitArgs,
        /// Document ids.
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Check that a collection is whole and both legs hold the same documents (exit status 1
    /// if not).
    Verify {
        /// The collection folder.
        #[arg(long)]
        index: PathBuf,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Rebuild the dense leg's vectors from the stored documents (after `verify` reports a
    /// lost or damaged vector file). Every document is encoded from its text, so vectors that
    /// were supplied with documents are replaced by the model's.
    Repair {
        /// The collection folder.
        #[arg(long)]
        index: PathBuf,
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Show how text is analysed: one token per line (term, start byte, end byte, tag).
    Analyze {
        #[command(flatten)]
        analyzer: AnalyzerArgs,
        /// The text.
        text: String,
    },
    /// Fine-tune a dense retriever on a dataset's labelled queries (in-batch negatives, plus
    /// BM25 hard negatives with --index), and write it as a model directory for `index --model`.
    TrainDense(train::TrainDenseArgs),
    /// Train a cross-encoder reranker (BERT with a one-logit head on the query-passage pair)
    /// on a dataset's labelled queries and BM25 hard negatives, for `search --rerank`.
    TrainReranker(train::TrainRerankerArgs),
    /// Build the ko-dic dictionary from MeCab-compiled mecab-ko-dic files (used by
    /// scripts/fetch-ko-dic.sh).
    BuildKoDic {
        /// Folder with sys.dic, unk.dic, matrix.bin and char.bin.
        #[arg(long)]
        mecab: PathBuf,
        /// Output folder; the dictionary goes to OUT/lindera.
        #[arg(long)]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if err.chain().any(|c| {
                c.downcast_ref::<io::Error>()
                    .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Index {
            index,
            dataset,
            analyzer,
            model,
            long_text,
            window_overlap,
            vectors,
            vector_scalar,
            wait,
        } => {
            let dense = match &model.model {
                Some(dir) => {
                    let encoder = model.load(dir)?;
                    let mut options = DenseOptions::for_encoder(&encoder);
                    options.long_text = match (long_text, window_overlap) {
                        (LongTextArg::Truncate, _) => LongText::Truncate,
                        (LongTextArg::Windows, Some(overlap)) => LongText::Windows { overlap },
                        (LongTextArg::Windows, None) => options.long_text,
                    };
                    options.kind = match vectors {
                        VectorsArg::Hnsw => VectorKind::Hnsw,
                        VectorsArg::Exact => VectorKind::Exact,
                    };
                    options.scalar = match vector_scalar {
                        ScalarArg::F32 => Scalar::F32,
                        ScalarArg::F16 => Scalar::F16,
                        ScalarArg::I8 => Scalar::I8,
                    };
                    if options.kind == VectorKind::Exact && options.scalar != Scalar::F32 {
                        bail!("--vector-scalar applies to --vectors hnsw; exact vectors are f32");
                    }
                    Some((encoder, options))
                }
                None => None,
            };
            cmd_index(&index, &dataset, analyzer.config()?, dense, wait.wait()?)
        }
        Command::Search {
            index,
            search,
            k,
            json,
            explain,
            vector,
            query,
        } => {
            let vector = vector.map(|v| parse_vector(&v)).transpose()?;
            cmd_search(
                &index,
                &search,
                k,
                (json, explain),
                (query.as_deref().unwrap_or(""), vector),
            )
        }
        Command::Eval {
            index,
            dataset,
            split,
            search,
            json,
            run,
        } => cmd_eval(&index, &dataset, &split, &search, json, run.as_deref()),
        Command::Tune {
            index,
            dataset,
            split,
            model,
            top,
            dry_run,
            json,
            wait,
        } => cmd_tune(
            &index,
            (&dataset, &split),
            &model,
            (top, dry_run, json),
            wait,
        ),
        Command::Add {
            index,
            model,
            wait,
            file,
        } => cmd_add(&index, &model, wait, &file),
        Command::Delete { index, wait, ids } => cmd_delete(&index, wait, &ids),
        Command::Verify { index, json } => cmd_verify(&index, json),
        Command::Repair { index, model, wait } => cmd_repair(&index, &model, wait),
        Command::Analyze { analyzer, text } => cmd_analyze(analyzer.config()?, &text),
        Command::TrainDense(args) => train::cmd_train_dense(&args),
        Command::TrainReranker(args) => train::cmd_train_reranker(&args),
        Command::BuildKoDic { mecab, out } => {
            let started = Instant::now();
            let stats = kodic::build_ko_dic(&mecab, &out)
                .with_context(|| format!("building ko-dic from {}", mecab.display()))?;
            eprintln!(
                "ko-dic: {} entries, {} unknown-word entries, {} character categories -> {} ({:.1} s)",
                stats.lexicon_entries,
                stats.unknown_entries,
                stats.categories,
                out.join("lindera").display(),
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
    }
}

fn progress(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

fn cmd_index(
    index: &Path,
    dataset: &Path,
    config: AnalyzerConfig,
    dense: Option<(Arc<Encoder>, DenseOptions)>,
    wait: Wait,
) -> anyhow::Result<()> {
    let started = Instant::now();
    // The dataset is read as a stream, in bounded batches; a bad record anywhere stops the
    // run before the one commit at its end, so the collection stays as it was.
    let docs = eval::stream_corpus(dataset)?;
    let existed = Collection::exists(index);
    let created_folder = !index.exists();
    let mut collection = if existed {
        let mut c = Collection::open(index)
            .with_context(|| format!("opening collection {}", index.display()))?;
        match dense {
            Some((encoder, options)) => {
                c.attach_encoder(encoder)?;
                if let Some(d) = &c.manifest().dense
                    && (d.long_text != options.long_text || d.kind != options.kind)
                {
                    eprintln!(
                        "note: {} keeps its dense settings ({:?}, {:?} vectors)",
                        index.display(),
                        d.long_text,
                        d.kind
                    );
                }
            }
            None => ModelArgs {
                model: None,
                weights: WeightsArg::AsStored,
            }
            .attach(&mut c)?,
        }
        c
    } else {
        Collection::create_with(index, config.clone(), dense)
            .with_context(|| format!("creating collection {}", index.display()))?
    };
    collection.set_write_wait(wait);
    if existed && collection.manifest().analyzer != config {
        eprintln!(
            "note: {} was created with other analyzer settings; they are kept: {}",
            index.display(),
            serde_json::to_string(&collection.manifest().analyzer)?
        );
    }
    let bar = indexing_bar();
    let (encoding, on_encoded) = encode_bar();
    let mut count = 0u64;
    let on_doc = || {
        count += 1;
        bar.inc(1);
    };
    let result = upsert_documents(&mut collection, docs, on_doc, on_encoded, true);
    bar.finish_and_clear();
    encoding.finish_and_clear();
    if let Err(err) = result {
        // Nothing was committed (errors after the commit point are warnings): remove the
        // folder only if this run created it and it holds no committed collection.
        let busy = matches!(
            err.downcast_ref::<hybrid_search::Error>(),
            Some(hybrid_search::Error::Busy { .. })
        );
        if !existed && created_folder && !busy && !committed(index) {
            let _ = std::fs::remove_dir_all(index);
        }
        return Err(err.context(format!(
            "indexing {} into {}; nothing was committed",
            dataset.display(),
            index.display()
        )));
    }
    print_warnings(&mut collection);
    eprintln!(
        "indexed {count} documents from {} into {} in {:.2} s ({} documents in the collection)",
        dataset.display(),
        index.display(),
        started.elapsed().as_secs_f64(),
        collection.len()
    );
    Ok(())
}

/// Upserts the documents of `docs` in one commit ([`Collection::upsert_stream`]); a document
/// that the engine refuses (a supplied vector that does not fit) is named with its line, as
/// the reader names its own errors.
fn upsert_documents(
    collection: &mut Collection,
    mut docs: eval::DocumentStream,
    on_doc: impl FnMut(),
    on_encoded: hybrid_search::EncodeProgress,
    merge: bool,
) -> anyhow::Result<()> {
    let line = std::cell::Cell::new(0usize);
    let stream = std::iter::from_fn(|| {
        let next = docs.next()?;
        line.set(docs.line());
        Some(
            next.map(std::borrow::Cow::Owned)
                .map_err(anyhow::Error::new),
        )
    });
    collection
        .upsert_stream(stream, on_doc, Some(on_encoded), merge)
        .map_err(|err| match err.downcast_ref::<hybrid_search::Error>() {
            Some(hybrid_search::Error::InvalidVector { .. }) if line.get() > 0 => {
                let at = line.get();
                err.context(format!("line {at}"))
            }
            _ => err,
        })
}

/// Whether the collection in `index` holds a commit (so its folder must never be removed).
fn committed(index: &Path) -> bool {
    Collection::open(index)
        .is_ok_and(|c| !c.is_empty() || c.sparse().commit_payload().ok().flatten().is_some())
}

/// A progress bar counting documents of a stream of unknown length.
fn indexing_bar() -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{msg} {pos} documents ({per_sec})").expect("valid template"),
    );
    bar.set_message("indexing");
    bar
}

/// An encoding progress bar that appears when the dense leg starts encoding (at commit).
fn encode_bar() -> (ProgressBar, hybrid_search::EncodeProgress) {
    let encoding = progress(0, "encoding");
    encoding.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    let bar = encoding.clone();
    let on_encoded: hybrid_search::EncodeProgress = Box::new(move |done, total| {
        if bar.is_hidden() {
            bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            bar.reset();
        }
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    });
    (encoding, on_encoded)
}

/// Query vectors for `texts`, 32 per forward pass, with a progress bar.
fn encode_queries(collection: &Collection, texts: &[&str]) -> anyhow::Result<Vec<Vec<f32>>> {
    let bar = progress(texts.len() as u64, "encoding queries");
    let mut vectors = Vec::with_capacity(texts.len());
    for chunk in texts.chunks(32) {
        vectors.extend(collection.encode_queries(chunk)?);
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    Ok(vectors)
}

/// One line describing fusion settings: `convex minmax alpha=0.40 depth=100`.
fn describe(options: &HybridOptions) -> String {
    let norm = |n: &Normalization| match n {
        Normalization::MinMax => "minmax",
        Normalization::ZScore => "zscore",
        Normalization::Dbsf => "dbsf",
        _ => "theoretical",
    };
    match options.fusion {
        Fusion::Rrf(s) => format!(
            "rrf k={} dense-weight={} depth={}",
            s.k,
            s.dense_weight / s.sparse_weight,
            options.depth
        ),
        Fusion::Convex(s) => format!(
            "convex {} alpha={:.2} depth={}",
            norm(&s.dense),
            s.alpha,
            options.depth
        ),
    }
}

/// `value` as JSON, through its text form so that `f32` fields print as written (`0.85`,
/// not the `f64` widening `0.8500000238418579` that `serde_json::to_value` gives).
fn to_json<T: serde::Serialize>(value: &T) -> anyhow::Result<serde_json::Value> {
    Ok(serde_json::from_str(&serde_json::to_string(value)?)?)
}

/// A query vector given on the command line as a JSON array of numbers.
fn parse_vector(text: &str) -> anyhow::Result<Vec<f32>> {
    let values: Vec<f64> = serde_json::from_str(text).with_context(|| {
        "--vector: expected a JSON array of numbers, such as [0.1, -0.2, 0.3]".to_string()
    })?;
    let vector: Vec<f32> = values.iter().map(|&x| x as f32).collect();
    if let Some(at) = vector.iter().position(|x| !x.is_finite()) {
        bail!(
            "--vector: value {at} ({}) is not a finite 32-bit number",
            values[at]
        );
    }
    if vector.is_empty() {
        bail!("--vector: the array is empty");
    }
    Ok(vector)
}

fn fallback_note(reason: &str) {
    eprintln!(
        "note: the dense leg is unavailable ({reason}); results come from the sparse leg only"
    );
}

fn cmd_search(
    index: &Path,
    args: &SearchArgs,
    k: usize,
    (json, explain): (bool, bool),
    (query, supplied): (&str, Option<Vec<f32>>),
) -> anyhow::Result<()> {
    if k == 0 {
        bail!("-k must be at least 1");
    }
    let prepared = args.open(index)?;
    let collection = &prepared.collection;
    if supplied.is_some() && prepared.mode == Mode::Sparse {
        bail!(
            "--vector needs the dense leg: use --mode dense or hybrid on a collection built with a model"
        );
    }
    let plain = prepared.reranker.is_none() && prepared.query_encoder.is_none();
    let (mut results, before) = if plain && supplied.is_none() {
        let results = collection.search_with(query, k, prepared.mode, &prepared.hybrid)?;
        (results, Vec::new())
    } else {
        let vector = match supplied {
            Some(v) => Some(v),
            None => prepared
                .own_query_vectors(&[query])?
                .and_then(|v| v.into_iter().next()),
        };
        let depth = if prepared.reranker.is_some() {
            args.rerank_depth
        } else {
            0
        };
        let ranked = collection.rank(
            query,
            vector.as_deref(),
            k.max(depth),
            prepared.mode,
            &prepared.hybrid,
        )?;
        let (mut ranked, before) = match &prepared.reranker {
            Some((_, reranker)) => {
                let out = hybrid_search::rerank(
                    collection,
                    query,
                    ranked,
                    reranker,
                    &args.rerank_options(),
                )?;
                (out.results, out.before)
            }
            None => (ranked, Vec::new()),
        };
        ranked.hits.truncate(k);
        let results = SearchResults {
            mode: ranked.mode,
            fallback: ranked.fallback,
            hits: collection.hits(query, ranked.hits)?,
        };
        (results, before)
    };
    if let Some(reason) = prepared.unavailable.or(results.fallback.clone()) {
        fallback_note(&reason);
        results.fallback = Some(reason);
    }
    if !explain {
        for hit in &mut results.hits {
            hit.legs.clear();
        }
    }
    let mut out = io::stdout().lock();
    if json {
        let mut value = to_json(&results)?;
        value["query"] = query.into();
        if results.mode == Mode::Hybrid {
            value["fusion"] = to_json(&prepared.hybrid)?;
        }
        if let Some((dir, _)) = &prepared.reranker {
            value["rerank"] = serde_json::json!({
                "model": dir.display().to_string(),
                "depth": args.rerank_depth,
                "weight": args.rerank_weight,
            });
            if explain && let Some(hits) = value["hits"].as_array_mut() {
                for (hit, first) in hits.iter_mut().zip(&before) {
                    hit["first_stage"] = to_json(first)?;
                }
            }
        }
        writeln!(out, "{value}")?;
        return Ok(());
    }
    if results.hits.is_empty() {
        writeln!(out, "no results")?;
    }
    if explain && results.mode == Mode::Hybrid {
        writeln!(out, "hybrid: {}", describe(&prepared.hybrid))?;
    }
    if explain && let Some((dir, _)) = &prepared.reranker {
        let score = if args.rerank_weight >= 1.0 {
            "its logit".to_string()
        } else {
            format!(
                "{w} x normalised logit + {} x normalised first-stage score",
                1.0 - args.rerank_weight,
                w = args.rerank_weight
            )
        };
        writeln!(
            out,
            "rerank: the top {} by {} (score: {score})",
            args.rerank_depth,
            dir.display()
        )?;
    }
    for (rank, hit) in results.hits.iter().enumerate() {
        writeln!(
            out,
            "{:>3}. {:<12} {:>8.3}  {}",
            rank + 1,
            hit.id,
            hit.score,
            hit.title
        )?;
        writeln!(out, "     {}", hit.snippet)?;
        if explain && let Some(first) = before.get(rank) {
            writeln!(
                out,
                "     rerank logit {:.4}; first stage rank {} score {:.4}",
                first.logit, first.rank, first.score
            )?;
        }
        for leg in &hit.legs {
            let raw = match leg.leg {
                Leg::Sparse => "BM25",
                _ => "cosine",
            };
            match (leg.rank, leg.raw_score) {
                (Some(rank), Some(score)) => writeln!(
                    out,
                    "     {:<6} rank {rank:<4} {raw} {score:<8.4} normalised {:.4}  adds {:.4}",
                    leg.leg.as_str(),
                    leg.normalized,
                    leg.contribution
                )?,
                _ => writeln!(
                    out,
                    "     {:<6} not in its top {:<4} normalised {:.4}  adds {:.4}",
                    leg.leg.as_str(),
                    prepared.hybrid.depth.max(k),
                    leg.normalized,
                    leg.contribution
                )?,
            }
        }
    }
    Ok(())
}

/// One query's ranked list for `eval`: query id, (document id, score) best first, and why the
/// dense leg took no part when the search fell back to the sparse leg.
type QueryResult = (String, Vec<(String, f32)>, Option<String>);

fn cmd_eval(
    index: &Path,
    dataset: &Path,
    split: &str,
    args: &SearchArgs,
    json: bool,
    run_path: Option<&Path>,
) -> anyhow::Result<()> {
    let prepared = args.open(index)?;
    let (collection, mode, hybrid) = (&prepared.collection, prepared.mode, &prepared.hybrid);
    let data = eval::load_dataset(dataset, split)?;
    if data.queries.is_empty() {
        bail!(
            "{}: no queries with judgements in split {split:?}",
            dataset.display()
        );
    }
    // One leg: its top 1000. Hybrid: what a search shows, the fused top max(depth, 100).
    let k = match mode {
        Mode::Hybrid => hybrid.depth.max(100),
        _ => 1000,
    };
    let started = Instant::now();
    // Dense: all query vectors first, in batches (one forward pass per 32 queries).
    let texts: Vec<&str> = data.queries.iter().map(|q| q.text.as_str()).collect();
    let vectors = match mode {
        Mode::Dense | Mode::Hybrid if prepared.query_encoder.is_some() => {
            prepared.own_query_vectors(&texts)?
        }
        Mode::Dense | Mode::Hybrid if prepared.unavailable.is_none() => {
            Some(encode_queries(collection, &texts)?)
        }
        _ => None,
    };
    let bar = progress(data.queries.len() as u64, "searching");
    // The cross-encoder is shared by the threads (it is Sync; each query's pairs go through
    // it in one batch of --rerank-depth).
    let reranker = prepared
        .reranker
        .as_ref()
        .map(|(_, r)| (r, args.rerank_options()));
    let results: Vec<QueryResult> = data
        .queries
        .par_iter()
        .enumerate()
        .map(|(i, q)| {
            let vector = vectors.as_ref().map(|v| v[i].as_slice());
            let ranked = collection.rank(&q.text, vector, k, mode, hybrid)?;
            let r = match reranker {
                Some((reranker, options)) => {
                    hybrid_search::rerank(collection, &q.text, ranked, reranker, &options)?.results
                }
                None => ranked,
            };
            bar.inc(1);
            let n = r.hits.len();
            let hits = r.hits.into_iter().enumerate().map(|(rank, h)| {
                // Reranked and first-stage scores do not share a scale: the run keeps the
                // list's order with scores n - rank.
                let score = match reranker {
                    Some(_) => (n - rank) as f32,
                    None => h.score as f32,
                };
                (h.id.to_string(), score)
            });
            Ok((q.id.clone(), hits.collect(), r.fallback))
        })
        .collect::<hybrid_search::Result<_>>()?;
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    let fell_back = results.iter().filter(|r| r.2.is_some()).count();
    let reason = prepared
        .unavailable
        .clone()
        .or_else(|| results.iter().find_map(|r| r.2.clone()));
    if let Some(reason) = &reason {
        fallback_note(reason);
    }
    let run: metrics::Run = results.into_iter().map(|(q, h, _)| (q, h)).collect();
    let (scores, _) = metrics::evaluate(&data.qrels, &run);
    if let Some(path) = run_path {
        let file =
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let mut w = io::BufWriter::new(file);
        trec::write_run(&mut w, &run, &format!("hybrid-search-{}", mode.as_str()))?;
        w.flush()?;
    }
    let mut out = io::stdout().lock();
    if json {
        let mut value = serde_json::json!({
            "ndcg@10": scores.ndcg_at_10,
            "recall@100": scores.recall_at_100,
            "mrr@10": scores.mrr_at_10,
            "queries": scores.queries,
            "mode": mode.as_str(),
            "dataset": dataset.display().to_string(),
            "split": split,
            "seconds": seconds,
        });
        if mode == Mode::Hybrid {
            value["fusion"] = to_json(hybrid)?;
            value["fallback_queries"] = fell_back.into();
        }
        if let Some(dir) = &args.query_model {
            value["query_model"] = dir.display().to_string().into();
        }
        if let Some((dir, _)) = &prepared.reranker {
            value["rerank"] = serde_json::json!({
                "model": dir.display().to_string(),
                "depth": args.rerank_depth,
                "weight": args.rerank_weight,
            });
        }
        writeln!(out, "{value}")?;
    } else {
        writeln!(out, "dataset     {} ({split})", dataset.display())?;
        writeln!(out, "mode        {}", mode.as_str())?;
        if mode == Mode::Hybrid {
            writeln!(out, "fusion      {}", describe(hybrid))?;
            if fell_back > 0 {
                writeln!(
                    out,
                    "fallback    {fell_back} queries answered by the sparse leg only"
                )?;
            }
        }
        if let Some(dir) = &args.query_model {
            writeln!(out, "queries by  {}", dir.display())?;
        }
        if let Some((dir, _)) = &prepared.reranker {
            writeln!(
                out,
                "rerank      top {} by {}",
                args.rerank_depth,
                dir.display()
            )?;
        }
        writeln!(out, "queries     {}", scores.queries)?;
        writeln!(out, "nDCG@10     {:.4}", scores.ndcg_at_10)?;
        writeln!(out, "Recall@100  {:.4}", scores.recall_at_100)?;
        writeln!(out, "MRR@10      {:.4}", scores.mrr_at_10)?;
        writeln!(out, "time        {seconds:.2} s")?;
    }
    Ok(())
}

fn cmd_tune(
    index: &Path,
    (dataset, split): (&Path, &str),
    model: &ModelArgs,
    (top, dry_run, json): (usize, bool, bool),
    wait: WaitArgs,
) -> anyhow::Result<()> {
    let mut collection = wait.open(index)?;
    if collection.manifest().dense.is_none() {
        bail!(
            "{}: tuning blends the sparse and dense legs, and this collection has no dense leg; \
             build it with `hybrid-search index --model DIR`",
            index.display()
        );
    }
    model.attach(&mut collection)?;
    let data = eval::load_dataset(dataset, split)?;
    if data.queries.is_empty() {
        bail!(
            "{}: no queries with judgements in split {split:?}",
            dataset.display()
        );
    }
    let started = Instant::now();
    let texts: Vec<&str> = data.queries.iter().map(|q| q.text.as_str()).collect();
    let vectors = encode_queries(&collection, &texts)?;
    let grid = hybrid_search::default_grid();
    let rows = hybrid_search::tune(&collection, &data.queries, &vectors, &data.qrels, &grid)?;
    let seconds = started.elapsed().as_secs_f64();
    let best = &rows[0];
    let record = TuneRecord {
        dataset: dataset.display().to_string(),
        split: split.to_string(),
        queries: best.scores.queries,
        tried: rows.len(),
        ndcg_at_10: best.scores.ndcg_at_10,
    };
    if !dry_run {
        collection.set_search_defaults(SearchDefaults {
            hybrid: best.options,
            tuned: Some(record.clone()),
        })?;
    }
    let mut out = io::stdout().lock();
    if json {
        let table = rows
            .iter()
            .map(|r| {
                Ok(serde_json::json!({
                    "fusion": to_json(&r.options)?,
                    "ndcg@10": r.scores.ndcg_at_10,
                    "recall@100": r.scores.recall_at_100,
                    "mrr@10": r.scores.mrr_at_10,
                }))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let value = serde_json::json!({
            "tuned": record,
            "stored": !dry_run,
            "seconds": seconds,
            "rows": table,
        });
        writeln!(out, "{value}")?;
        return Ok(());
    }
    writeln!(
        out,
        "{} settings on {} queries of {} ({split}) in {seconds:.1} s",
        rows.len(),
        best.scores.queries,
        dataset.display()
    )?;
    writeln!(out, "rank  nDCG@10  R@100   MRR@10  fusion")?;
    let line = |out: &mut io::StdoutLock, rank: usize, r: &hybrid_search::TuneRow| {
        writeln!(
            out,
            "{rank:>4}  {:.4}   {:.4}  {:.4}  {}",
            r.scores.ndcg_at_10,
            r.scores.recall_at_100,
            r.scores.mrr_at_10,
            describe(&r.options)
        )
    };
    for (i, row) in rows.iter().enumerate().take(top) {
        line(&mut out, i + 1, row)?;
    }
    // The best row of each method that did not make the table.
    let mut shown: Vec<String> = rows.iter().take(top).map(|r| family(&r.options)).collect();
    for (i, row) in rows.iter().enumerate().skip(top) {
        let f = family(&row.options);
        if !shown.contains(&f) {
            line(&mut out, i + 1, row)?;
            shown.push(f);
        }
    }
    if dry_run {
        writeln!(out, "dry run: {} keeps its settings", index.display())?;
    } else {
        writeln!(
            out,
            "stored in {}: {} (searches without fusion flags use it)",
            index.display(),
            describe(&best.options)
        )?;
    }
    Ok(())
}

/// The method and normalisation of a setting, without its numbers.
fn family(options: &HybridOptions) -> String {
    describe(options)
        .split_whitespace()
        .take_while(|w| !w.contains('='))
        .collect::<Vec<_>>()
        .join(" ")
}

fn cmd_add(index: &Path, model: &ModelArgs, wait: WaitArgs, file: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    let docs = eval::stream_corpus(file)?;
    let mut collection = wait.open(index)?;
    model.attach(&mut collection)?;
    let before = collection.len();
    let (bar, on_encoded) = encode_bar();
    let mut count = 0u64;
    let result = upsert_documents(&mut collection, docs, || count += 1, on_encoded, false);
    bar.finish_and_clear();
    if let Err(err) = result {
        return Err(err.context(format!(
            "adding {} to {}; nothing was committed, the collection is as before",
            file.display(),
            index.display()
        )));
    }
    if count == 0 {
        bail!("{}: no documents to add", file.display());
    }
    print_warnings(&mut collection);
    let added = collection.len().saturating_sub(before);
    eprintln!(
        "added {count} documents from {} to {} ({added} new, {} replaced) in {:.2} s; {} \
         documents in the collection",
        file.display(),
        index.display(),
        count.saturating_sub(added),
        started.elapsed().as_secs_f64(),
        collection.len()
    );
    Ok(())
}

fn cmd_delete(index: &Path, wait: WaitArgs, ids: &[String]) -> anyhow::Result<()> {
    let mut collection = wait.open(index)?;
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let found = collection.delete(&ids)?;
    print_warnings(&mut collection);
    eprintln!(
        "deleted {found} of {} ids from {}; {} documents in the collection",
        ids.len(),
        index.display(),
        collection.len()
    );
    Ok(())
}

fn cmd_verify(index: &Path, json: bool) -> anyhow::Result<()> {
    let collection = Collection::open(index)?;
    let report = collection.verify()?;
    let mut out = io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string(&report)?)?;
    } else {
        writeln!(out, "documents   {}", report.documents)?;
        if collection.manifest().dense.is_some() {
            match report.vectors {
                Some(n) => writeln!(out, "vectors     {n} documents")?,
                None => writeln!(out, "vectors     unreadable")?,
            }
            if let Some(n) = report.segments {
                writeln!(out, "segments    {n}")?;
            }
        }
        for note in &report.notes {
            writeln!(out, "note: {note}")?;
        }
        for problem in &report.problems {
            writeln!(out, "problem: {problem}")?;
        }
        if report.is_sound() {
            writeln!(out, "ok: both legs hold the same documents")?;
        }
    }
    if !report.is_sound() {
        bail!(
            "{}: {} problems found",
            index.display(),
            report.problems.len()
        );
    }
    Ok(())
}

fn cmd_repair(index: &Path, model: &ModelArgs, wait: WaitArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut collection = wait.open(index)?;
    if collection.manifest().dense.is_none() {
        bail!("{}: no dense leg to repair", index.display());
    }
    model.attach(&mut collection)?;
    let (bar, on_encoded) = encode_bar();
    let result = collection.repair_dense(Some(on_encoded));
    bar.finish_and_clear();
    let documents = result?;
    print_warnings(&mut collection);
    eprintln!(
        "re-encoded {documents} documents into {} in {:.2} s",
        index.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn cmd_analyze(config: AnalyzerConfig, text: &str) -> anyhow::Result<()> {
    let analyzer = Analyzer::new(&config)?;
    let mut out = io::stdout().lock();
    for t in analyzer.analyze(text)? {
        match &t.tag {
            Some(tag) => writeln!(out, "{}\t{}\t{}\t{tag}", t.term, t.start, t.end)?,
            None => writeln!(out, "{}\t{}\t{}", t.term, t.start, t.end)?,
        }
    }
    Ok(())
}
