//! `hybrid-search tune`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::bail;

use hybrid_search::eval;
use hybrid_search::{
    Collection, SearchDefaults, TuneRecord, default_grid, default_prf_grid, query_vectors, tune,
};

use crate::args::{ModelArgs, WaitArgs};
use crate::progress::progress;
use crate::render;

/// Choose the hybrid fusion settings (method, alpha, k, normalisation, depth) and the
/// pseudo-relevance feedback (none, RM3, Rocchio, both) with the best nDCG@10 on a dataset's
/// labelled queries, and store them as the collection's default.
#[derive(clap::Args)]
pub struct Args {
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
    /// Tune the fusion alone, without pseudo-relevance feedback (by default each fusion
    /// setting is tried with no feedback, RM3 on BM25, Rocchio on the dense leg, and both).
    #[arg(long)]
    no_prf: bool,
}

/// Runs `tune`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let wait = args.wait.wait()?;
    let mut collection = Collection::open(&args.index)?;
    collection.set_write_wait(wait);
    if collection.manifest().dense.is_none() {
        bail!(
            "{}: tuning blends the sparse and dense legs, and this collection has no dense leg; \
             build it with `hybrid-search index --model DIR`",
            args.index.display()
        );
    }
    collection.attach_model(&args.model.choice())?;
    let data = eval::load_dataset(&args.dataset, &args.split)?;
    if data.queries.is_empty() {
        bail!(
            "{}: no queries with judgements in split {:?}",
            args.dataset.display(),
            args.split
        );
    }
    let started = Instant::now();
    let texts: Vec<&str> = data.queries.iter().map(|q| q.text.as_str()).collect();
    let bar = progress(texts.len() as u64, "encoding queries");
    let vectors = query_vectors(&collection, None, &texts, &|done| {
        bar.set_position(done as u64)
    });
    bar.finish_and_clear();
    let vectors = vectors?;
    let grid = default_grid();
    let prfs = if args.no_prf {
        vec![hybrid_search::Prf::OFF]
    } else {
        default_prf_grid()
    };
    let rows = tune(
        &collection,
        &data.queries,
        &vectors,
        &data.qrels,
        &grid,
        &prfs,
    )?;
    let seconds = started.elapsed().as_secs_f64();
    let best = &rows[0];
    let record = TuneRecord {
        dataset: args.dataset.display().to_string(),
        split: args.split.clone(),
        queries: best.scores.queries,
        tried: rows.len(),
        ndcg_at_10: best.scores.ndcg_at_10,
    };
    if !args.dry_run {
        collection.set_search_defaults(SearchDefaults {
            hybrid: best.options,
            prf: best.prf,
            tuned: Some(record.clone()),
        })?;
    }
    render::tune(
        &args.index,
        (&rows, &record, seconds),
        (args.top, !args.dry_run, args.json),
    )
}
