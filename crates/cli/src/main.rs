//! The `hybrid-search` command-line tool: a thin layer over the `hybrid-search` library.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;

use hybrid_search::eval::{self, metrics, trec};
use hybrid_search::sparse::{Analyzer, kodic};
use hybrid_search::{AnalyzerConfig, AnalyzerKind, Collection, DecompoundMode, StopWords};

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
    },
    /// Search a collection.
    Search {
        /// The collection folder.
        #[arg(long)]
        index: PathBuf,
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
        } => cmd_index(&index, &dataset, analyzer.config()?),
        Command::Search {
            index,
            k,
            json,
            query,
        } => cmd_search(&index, k, json, &query),
        Command::Eval {
            index,
            dataset,
            split,
            json,
            run,
        } => cmd_eval(&index, &dataset, &split, json, run.as_deref()),
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

fn cmd_index(index: &Path, dataset: &Path, config: AnalyzerConfig) -> anyhow::Result<()> {
    let started = Instant::now();
    // Read and validate the whole dataset before touching the collection.
    let docs = eval::read_corpus(dataset)?;
    let existed = Collection::exists(index);
    let mut collection = Collection::open_or_create(index, config.clone())
        .with_context(|| format!("opening collection {}", index.display()))?;
    if existed && collection.manifest().analyzer != config {
        eprintln!(
            "note: {} was created with other analyzer settings; they are kept: {}",
            index.display(),
            serde_json::to_string(&collection.manifest().analyzer)?
        );
    }
    let bar = progress(docs.len() as u64, "indexing");
    let result = collection.bulk_load(&docs, || bar.inc(1));
    bar.finish_and_clear();
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

fn cmd_search(index: &Path, k: usize, json: bool, query: &str) -> anyhow::Result<()> {
    if k == 0 {
        bail!("-k must be at least 1");
    }
    let collection = Collection::open(index)?;
    let hits = collection.search(query, k)?;
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
    json: bool,
    run_path: Option<&Path>,
) -> anyhow::Result<()> {
    let collection = Collection::open(index)?;
    let data = eval::load_dataset(dataset, split)?;
    if data.queries.is_empty() {
        bail!(
            "{}: no queries with judgements in split {split:?}",
            dataset.display()
        );
    }
    let depth = 1000;
    let started = Instant::now();
    let bar = progress(data.queries.len() as u64, "searching");
    let results: Vec<(String, Vec<(String, f32)>)> = data
        .queries
        .par_iter()
        .map(|q| {
            let hits = collection.search_ids(&q.text, depth);
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
        trec::write_run(&mut w, &run, "hybrid-search-bm25")?;
        w.flush()?;
    }
    let mut out = io::stdout().lock();
    if json {
        let value = serde_json::json!({
            "ndcg@10": scores.ndcg_at_10,
            "recall@100": scores.recall_at_100,
            "mrr@10": scores.mrr_at_10,
            "queries": scores.queries,
            "mode": "sparse",
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
