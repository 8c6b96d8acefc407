//! `hybrid-search eval`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, bail};

use hybrid_search::eval::{self, trec};
use hybrid_search::{EvalStage, evaluate};

use crate::args::SearchArgs;
use crate::commands::search;
use crate::progress::progress;
use crate::render;

/// Evaluate a collection on a dataset's labelled queries (nDCG@10, Recall@100, MRR@10).
#[derive(clap::Args)]
pub struct Args {
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
}

/// Runs `eval`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let plan = args.search.plan()?;
    let (collection, template) = search::open(&args.index, &plan)?;
    let data = eval::load_dataset(&args.dataset, &args.split)?;
    if data.queries.is_empty() {
        bail!(
            "{}: no queries with judgements in split {:?}",
            args.dataset.display(),
            args.split
        );
    }
    let total = data.queries.len() as u64;
    let encoding = progress(total, "encoding queries");
    let searching = progress(total, "searching");
    let report = evaluate(
        &collection,
        &data,
        &template,
        &|stage, done, _| match stage {
            EvalStage::Encoding => encoding.set_position(done as u64),
            EvalStage::Searching => {
                if !encoding.is_finished() {
                    encoding.finish_and_clear();
                }
                searching.set_position(done as u64);
            }
        },
    );
    encoding.finish_and_clear();
    searching.finish_and_clear();
    let report = report?;
    if let Some(path) = &args.run {
        let file =
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let mut w = std::io::BufWriter::new(file);
        let name = format!("hybrid-search-{}", report.mode.as_str());
        trec::write_run(&mut w, &report.run, &name)?;
        w.flush()?;
    }
    render::eval(
        &report,
        (&args.dataset, &args.split),
        args.search.query_model.as_deref(),
        args.json,
    )
}
