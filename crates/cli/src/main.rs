//! The `hybrid-search` command-line tool: a thin layer over the `hybrid-search` library.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;

use std::sync::Arc;

use hybrid_search::dense::{Device, Encoder, LongText, WeightFormat};
use hybrid_search::eval::{self, metrics, trec};
use hybrid_search::fusion::{ConvexSettings, Fusion, Normalization, RrfSettings};
use hybrid_search::sparse::{Analyzer, kodic};
use hybrid_search::{
    AnalyzerConfig, AnalyzerKind, Collection, DecompoundMode, DenseOptions, HybridOptions, Mode,
    StopWords, VectorKind, locate_model,
};

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

/// How `--mode hybrid` blends the legs.
#[derive(clap::Args, Clone)]
struct FusionArgs {
    /// Reciprocal rank fusion, or a convex combination of normalised scores.
    #[arg(long, value_enum, default_value = "rrf")]
    fusion: FusionArg,
    /// Convex combination: the dense leg's weight (the sparse leg gets 1 - alpha).
    #[arg(long, default_value_t = 0.5)]
    alpha: f32,
    /// RRF: the rank constant k in 1 / (k + rank).
    #[arg(long, default_value_t = 60.0)]
    rrf_k: f32,
    /// Convex combination: how each leg's scores are normalised.
    #[arg(long, value_enum, default_value = "minmax")]
    norm: NormArg,
    /// Candidates taken from each leg (at least -k).
    #[arg(long, default_value_t = 100)]
    depth: usize,
}

impl FusionArgs {
    fn options(&self) -> anyhow::Result<HybridOptions> {
        let fusion = match self.fusion {
            FusionArg::Rrf => Fusion::Rrf(RrfSettings {
                k: self.rrf_k,
                ..RrfSettings::default()
            }),
            FusionArg::Convex => {
                let (dense, sparse) = match self.norm {
                    NormArg::Minmax => (Normalization::MinMax, Normalization::MinMax),
                    NormArg::Zscore => (Normalization::ZScore, Normalization::ZScore),
                    NormArg::Dbsf => (Normalization::Dbsf, Normalization::Dbsf),
                    NormArg::Theoretical => (Normalization::cosine(), Normalization::bm25()),
                };
                Fusion::Convex(ConvexSettings {
                    alpha: self.alpha,
                    dense,
                    sparse,
                })
            }
        };
        fusion.validate()?;
        Ok(HybridOptions {
            fusion,
            depth: self.depth,
        })
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
    },
    /// Search a collection.
    Search {
        /// The collection folder.
        #[arg(long)]
        index: PathBuf,
        /// Which leg answers (hybrid: both, fused).
        #[arg(long, value_enum, default_value = "sparse")]
        mode: ModeArg,
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        fusion: FusionArgs,
        /// Number of results.
        #[arg(short, default_value_t = 10)]
        k: usize,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// The query.
        query: String,
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
        /// Which leg answers (hybrid: both, fused).
        #[arg(long, value_enum, default_value = "sparse")]
        mode: ModeArg,
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        fusion: FusionArgs,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// Write the ranked lists as a TREC run file (top 1000 per query).
        #[arg(long)]
        run: Option<PathBuf>,
    },
    /// Show how text is analysed: one token per line (term, start byte, end byte, tag).
    Analyze {
        #[command(flatten)]
        analyzer: AnalyzerArgs,
        /// The text.
        text: String,
    },
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
                    Some((encoder, options))
                }
                None => None,
            };
            cmd_index(&index, &dataset, analyzer.config()?, dense)
        }
        Command::Search {
            index,
            mode,
            model,
            fusion,
            k,
            json,
            query,
        } => cmd_search(
            &index,
            mode.into(),
            &model,
            &fusion.options()?,
            k,
            json,
            &query,
        ),
        Command::Eval {
            index,
            dataset,
            split,
            mode,
            model,
            fusion,
            json,
            run,
        } => cmd_eval(
            &index,
            &dataset,
            &split,
            (mode.into(), &fusion.options()?),
            &model,
            json,
            run.as_deref(),
        ),
        Command::Analyze { analyzer, text } => cmd_analyze(analyzer.config()?, &text),
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
) -> anyhow::Result<()> {
    let started = Instant::now();
    // Read and validate the whole dataset before touching the collection.
    let docs = eval::read_corpus(dataset)?;
    let existed = Collection::exists(index);
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
    if existed && collection.manifest().analyzer != config {
        eprintln!(
            "note: {} was created with other analyzer settings; they are kept: {}",
            index.display(),
            serde_json::to_string(&collection.manifest().analyzer)?
        );
    }
    let bar = progress(docs.len() as u64, "indexing");
    // The encoding bar appears when the dense leg starts encoding, at commit.
    let encoding = progress(0, "encoding");
    encoding.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    let encode_bar = encoding.clone();
    let on_encoded: hybrid_search::EncodeProgress = Box::new(move |done, total| {
        if encode_bar.is_hidden() {
            encode_bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            encode_bar.reset();
        }
        encode_bar.set_length(total as u64);
        encode_bar.set_position(done as u64);
    });
    let result = collection.bulk_load_with(&docs, || bar.inc(1), Some(on_encoded));
    bar.finish_and_clear();
    encoding.finish_and_clear();
    if let Err(err) = result {
        if !existed {
            // Nothing was committed: remove the folder this run created.
            let _ = std::fs::remove_dir_all(index);
        }
        return Err(anyhow::Error::new(err).context(format!(
            "indexing {} into {}",
            dataset.display(),
            index.display()
        )));
    }
    eprintln!(
        "indexed {} documents from {} into {} in {:.2} s ({} documents in the collection)",
        docs.len(),
        dataset.display(),
        index.display(),
        started.elapsed().as_secs_f64(),
        collection.len()
    );
    Ok(())
}

fn cmd_search(
    index: &Path,
    mode: Mode,
    model: &ModelArgs,
    hybrid: &HybridOptions,
    k: usize,
    json: bool,
    query: &str,
) -> anyhow::Result<()> {
    if k == 0 {
        bail!("-k must be at least 1");
    }
    let mut collection = Collection::open(index)?;
    if mode != Mode::Sparse || model.model.is_some() {
        model.attach(&mut collection)?;
    }
    let ranked = match mode {
        Mode::Hybrid => collection
            .hybrid_ids(query, None, k, hybrid)?
            .into_iter()
            .map(|h| (h.id, h.score as f32))
            .collect(),
        mode => collection.search_ids_with(query, k, mode)?,
    };
    let hits = collection.hits(query, ranked)?;
    let mut out = io::stdout().lock();
    if json {
        let value = serde_json::json!({ "query": query, "hits": hits });
        writeln!(out, "{value}")?;
    } else {
        if hits.is_empty() {
            writeln!(out, "no results")?;
        }
        for (rank, hit) in hits.iter().enumerate() {
            writeln!(
                out,
                "{:>3}. {:<12} {:>8.3}  {}",
                rank + 1,
                hit.id,
                hit.score,
                hit.title
            )?;
            writeln!(out, "     {}", hit.snippet)?;
        }
    }
    Ok(())
}

fn cmd_eval(
    index: &Path,
    dataset: &Path,
    split: &str,
    (mode, hybrid): (Mode, &HybridOptions),
    model: &ModelArgs,
    json: bool,
    run_path: Option<&Path>,
) -> anyhow::Result<()> {
    let mut collection = Collection::open(index)?;
    if mode != Mode::Sparse || model.model.is_some() {
        model.attach(&mut collection)?;
    }
    let data = eval::load_dataset(dataset, split)?;
    if data.queries.is_empty() {
        bail!(
            "{}: no queries with judgements in split {split:?}",
            dataset.display()
        );
    }
    let depth = 1000;
    let started = Instant::now();
    // Dense: all query vectors first, in batches (one forward pass per 32 queries).
    let vectors = match mode {
        Mode::Dense | Mode::Hybrid => {
            let texts: Vec<&str> = data.queries.iter().map(|q| q.text.as_str()).collect();
            let bar = progress(texts.len() as u64, "encoding queries");
            let mut vectors = Vec::with_capacity(texts.len());
            for chunk in texts.chunks(32) {
                vectors.extend(collection.encode_queries(chunk)?);
                bar.inc(chunk.len() as u64);
            }
            bar.finish_and_clear();
            Some(vectors)
        }
        Mode::Sparse => None,
    };
    let bar = progress(data.queries.len() as u64, "searching");
    let results: Vec<(String, Vec<(String, f32)>)> = data
        .queries
        .par_iter()
        .enumerate()
        .map(|(i, q)| {
            let hits = match (mode, &vectors) {
                (Mode::Hybrid, Some(v)) => collection
                    .hybrid_ids(&q.text, Some(&v[i]), depth, hybrid)
                    .map(|fused| fused.into_iter().map(|h| (h.id, h.score as f32)).collect()),
                (_, Some(v)) => collection.dense_search_ids(&v[i], depth),
                (_, None) => collection.search_ids(&q.text, depth),
            };
            bar.inc(1);
            hits.map(|h| {
                (
                    q.id.clone(),
                    h.into_iter().map(|(id, s)| (id.to_string(), s)).collect(),
                )
            })
        })
        .collect::<Result<_, _>>()?;
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    let run: metrics::Run = results.into_iter().collect();
    let (scores, _) = metrics::evaluate(&data.qrels, &run);
    if let Some(path) = run_path {
        let file =
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let mut w = io::BufWriter::new(file);
        let tag = match mode {
            Mode::Sparse => "hybrid-search-bm25",
            Mode::Dense => "hybrid-search-dense",
            Mode::Hybrid => "hybrid-search-hybrid",
        };
        trec::write_run(&mut w, &run, tag)?;
        w.flush()?;
    }
    let mut out = io::stdout().lock();
    if json {
        let value = serde_json::json!({
            "ndcg@10": scores.ndcg_at_10,
            "recall@100": scores.recall_at_100,
            "mrr@10": scores.mrr_at_10,
            "queries": scores.queries,
            "mode": match mode {
                Mode::Sparse => "sparse",
                Mode::Dense => "dense",
                Mode::Hybrid => "hybrid",
            },
            "dataset": dataset.display().to_string(),
            "split": split,
            "seconds": seconds,
        });
        writeln!(out, "{value}")?;
    } else {
        writeln!(out, "dataset     {} ({split})", dataset.display())?;
        writeln!(out, "queries     {}", scores.queries)?;
        writeln!(out, "nDCG@10     {:.4}", scores.ndcg_at_10)?;
        writeln!(out, "Recall@100  {:.4}", scores.recall_at_100)?;
        writeln!(out, "MRR@10      {:.4}", scores.mrr_at_10)?;
        writeln!(out, "time        {seconds:.2} s")?;
    }
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
