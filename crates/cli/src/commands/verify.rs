//! `hybrid-search verify` and `repair`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::bail;

use hybrid_search::Collection;

use crate::args::{ModelArgs, WaitArgs};
use crate::progress::encode_bar;
use crate::render;

/// Check that a collection is whole and both legs hold the same documents (exit status 1 if
/// not, 2 if it cannot be checked).
#[derive(clap::Args)]
pub struct VerifyArgs {
    /// The collection folder.
    #[arg(long)]
    index: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Rebuild the dense leg's vectors from the stored documents (after `verify` reports a lost
/// or damaged vector file). Every document is encoded from its text, so vectors that were
/// supplied with documents are replaced by the model's.
#[derive(clap::Args)]
pub struct RepairArgs {
    /// The collection folder.
    #[arg(long)]
    index: PathBuf,
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    wait: WaitArgs,
}

/// Runs `verify`; `Ok(false)` when it found problems.
pub fn verify(args: &VerifyArgs) -> anyhow::Result<bool> {
    let collection = Collection::open(&args.index)?;
    let report = collection.verify()?;
    render::verify(&report, collection.manifest().dense.is_some(), args.json)?;
    if !report.is_sound() {
        eprintln!(
            "error: {}: {} problems found",
            args.index.display(),
            report.problems.len()
        );
    }
    Ok(report.is_sound())
}

/// Runs `repair`.
pub fn repair(args: &RepairArgs) -> anyhow::Result<()> {
    let wait = args.wait.wait()?;
    let started = Instant::now();
    let mut collection = Collection::open(&args.index)?;
    collection.set_write_wait(wait);
    if collection.manifest().dense.is_none() {
        bail!("{}: no dense leg to repair", args.index.display());
    }
    collection.attach_model(&args.model.choice())?;
    let (bar, on_encoded) = encode_bar();
    let result = collection.repair_dense(Some(on_encoded));
    bar.finish_and_clear();
    let documents = result?;
    render::warnings(collection.take_warnings());
    eprintln!(
        "re-encoded {documents} documents into {} in {:.2} s",
        args.index.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
