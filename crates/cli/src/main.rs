//! The `hybrid-search` command-line tool: a thin layer over the `hybrid-search` library. Flags
//! are parsed into the engine's option types ([`args`]), each command runs in its own module
//! ([`commands`]), and all output is written by [`render`].
//!
//! Exit status ([`exit_status`]): 0 done, 1 `verify` found problems, 2 bad flags or input, 3 a
//! collection or model not found, 4 a conflict with the collection as built (its model,
//! dictionary or dimension), 5 another writer holds the collection (retry, or `--wait`), 6 a
//! remote backend (Qdrant) failed, 7 damaged data, a failed model or an I/O error.

mod args;
mod commands;
mod progress;
mod render;

use std::io;
use std::process::ExitCode;

use hybrid_search::ErrorKind;

use clap::{ArgAction, Parser, Subcommand};

use commands::{analyze, documents, eval, index, qdrant, search, serve, train, tune, verify};

/// Hybrid sparse + dense search for Korean and English text.
#[derive(Parser)]
#[command(
    name = "hybrid-search",
    version,
    about,
    after_help = "Models and the Korean dictionary are looked for in the data folder \
                  $HYBRID_SEARCH_HOME (default $XDG_DATA_HOME/hybrid-search, else \
                  ~/.local/share/hybrid-search; it holds models/ and models/ko-dic/lindera), then in models/ above the working folder and \
                  above the executable. A collection built with --model DIR tries DIR first. \
                  Logs: -v (info), -vv (debug) or RUST_LOG=hybrid_search=debug."
)]
struct Cli {
    /// Log what the engine does on stderr, with timings (-v: loads, commits, evaluations;
    /// -vv: every search and encoding). RUST_LOG overrides it.
    #[arg(short, long, action = ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Index a dataset into a collection (created if missing; documents with an existing id are
    /// replaced).
    Index(index::Args),
    /// Search a collection.
    Search(search::Args),
    /// Evaluate a collection on a dataset's labelled queries (nDCG@10, Recall@100, MRR@10).
    Eval(eval::Args),
    /// Choose the hybrid fusion settings (method, alpha, k, normalisation, depth) with the
    /// best nDCG@10 on a dataset's labelled queries, and store them as the collection's default.
    Tune(tune::Args),
    /// Add documents to a collection (JSONL, BEIR folder or SQuAD JSON), replacing those whose
    /// id exists, in one commit covering both legs.
    Add(documents::AddArgs),
    /// Delete documents by id, in one commit covering both legs.
    Delete(documents::DeleteArgs),
    /// Check that a collection is whole and both legs hold the same documents (exit status 1
    /// if not).
    Verify(verify::VerifyArgs),
    /// Rebuild the dense leg's vectors from the stored documents (after `verify` reports a
    /// lost or damaged vector file). Every document is encoded from its text, so vectors that
    /// were supplied with documents are replaced by the model's.
    Repair(verify::RepairArgs),
    /// Show how text is analysed: one token per line (term, start byte, end byte, tag).
    Analyze(analyze::AnalyzeArgs),
    /// Fine-tune a dense retriever on a dataset's labelled queries (in-batch negatives, plus
    /// BM25 hard negatives with --index), and write it as a model directory for `index --model`.
    TrainDense(train::TrainDenseArgs),
    /// Train a cross-encoder reranker (BERT with a one-logit head on the query-passage pair)
    /// on a dataset's labelled queries and BM25 hard negatives, for `search --rerank`.
    TrainReranker(train::TrainRerankerArgs),
    /// Serve the collections of a folder over HTTP: a JSON API (search, documents,
    /// collections; docs/api.md) and a search page at `/`.
    Serve(serve::Args),
    /// Serve a collection from a Qdrant cluster: `sync` fills a Qdrant collection from it,
    /// `export` writes the same points as JSON Lines (search and eval take --qdrant URL
    /// --collection NAME).
    #[command(subcommand)]
    Qdrant(qdrant::Command),
    /// Build the ko-dic dictionary from MeCab-compiled mecab-ko-dic files (used by
    /// scripts/fetch-ko-dic.sh).
    BuildKoDic(analyze::BuildKoDicArgs),
}

/// Quiet unless asked: `RUST_LOG`, else `-v` / `-vv` for this project's crates. Spans are
/// logged when they close, with their duration.
fn init_logging(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::fmt::format::FmtSpan;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(match verbose {
            0 => "off",
            1 => "hybrid_search=info",
            _ => "hybrid_search=debug",
        })
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_span_events(FmtSpan::CLOSE)
        .with_writer(io::stderr)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let outcome = match &cli.command {
        Command::Index(a) => index::run(a).map(|()| true),
        Command::Search(a) => search::run(a).map(|()| true),
        Command::Eval(a) => eval::run(a).map(|()| true),
        Command::Tune(a) => tune::run(a).map(|()| true),
        Command::Add(a) => documents::add(a).map(|()| true),
        Command::Delete(a) => documents::delete(a).map(|()| true),
        Command::Verify(a) => verify::verify(a),
        Command::Repair(a) => verify::repair(a).map(|()| true),
        Command::Analyze(a) => analyze::analyze(a).map(|()| true),
        Command::TrainDense(a) => train::cmd_train_dense(a).map(|()| true),
        Command::TrainReranker(a) => train::cmd_train_reranker(a).map(|()| true),
        Command::Serve(a) => serve::run(a).map(|()| true),
        Command::Qdrant(c) => qdrant::run(c).map(|()| true),
        Command::BuildKoDic(a) => analyze::build_ko_dic(a).map(|()| true),
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(err) => {
            if err.chain().any(|c| {
                c.downcast_ref::<io::Error>()
                    .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {}", message(&err));
            ExitCode::from(exit_status(&err))
        }
    }
}

/// The exit status of a command that failed: by the kind of the first engine error in the
/// chain (every kind named, no catch-all), 6 for a Qdrant server that failed, else 2 (the
/// CLI's own checks of flags and files).
fn exit_status(err: &anyhow::Error) -> u8 {
    let of = |kind: ErrorKind| match kind {
        ErrorKind::InvalidInput => 2,
        ErrorKind::NotFound => 3,
        ErrorKind::Conflict => 4,
        ErrorKind::Busy => 5,
        ErrorKind::Remote => 6,
        ErrorKind::Internal => 7,
    };
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<hybrid_search::Error>() {
            return of(e.kind());
        }
        match cause.downcast_ref::<hybrid_search_qdrant::Error>() {
            Some(hybrid_search_qdrant::Error::Engine(e)) => return of(e.kind()),
            Some(hybrid_search_qdrant::Error::Qdrant { .. }) => return of(ErrorKind::Remote),
            Some(_) => return of(ErrorKind::Internal),
            None => {}
        }
    }
    2
}

/// The error chain as `{:#}` prints it (causes joined by `: `, a cause the text before already
/// ends with left out), with the engine's neutral
/// words in the CLI's: a request setting named by its flag, and `--wait` offered to a writer
/// that found the collection busy.
fn message(err: &anyhow::Error) -> String {
    let mut busy = false;
    let parts: Vec<String> = err
        .chain()
        .map(|cause| match cause.downcast_ref::<hybrid_search::Error>() {
            Some(hybrid_search::Error::InvalidRequest { setting, problem }) => {
                format!("{}: {problem}", args::flag(*setting))
            }
            Some(e @ hybrid_search::Error::Busy { .. }) => {
                busy = true;
                e.to_string()
            }
            // How this front end names a model.
            Some(e @ hybrid_search::Error::NoModel(..)) => {
                format!("{e}; pass the model's folder with --model DIR")
            }
            Some(e @ hybrid_search::Error::ModelMismatch { .. }) => {
                format!("{e}; pass the collection's model with --model DIR")
            }
            _ => cause.to_string(),
        })
        .collect();
    // An error whose text already ends with its cause's (`{path}: {source}` with the source
    // also given as its cause) names it once.
    let mut message = String::new();
    for part in parts {
        if message.is_empty() {
            message = part;
        } else if !message.ends_with(&part) {
            message.push_str(": ");
            message.push_str(&part);
        }
    }
    if busy {
        message.push_str(", or pass --wait (or --wait=SECONDS) to queue behind it");
    }
    message
}
