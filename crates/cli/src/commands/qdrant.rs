//! `hybrid-search qdrant sync` and `hybrid-search qdrant export`.

use std::path::PathBuf;

use anyhow::Context;

use hybrid_search::Collection;
use hybrid_search::eval;
use hybrid_search_qdrant::{Client, SyncOptions, Target, export, sync};

use crate::args::ModelArgs;
use crate::progress::progress;
use crate::render;

/// The `qdrant` subcommands.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Create or update a Qdrant collection from an engine collection: one point per
    /// document (dense vectors, the BM25 side as a sparse vector, id/title/text as payload).
    /// Unchanged points are not sent again; points of deleted documents are removed.
    Sync(SyncArgs),
    /// Write the points `sync` would send (and, with --queries, a dataset's query vectors) as
    /// JSON Lines.
    Export(ExportArgs),
}

/// `qdrant sync`'s flags.
#[derive(clap::Args)]
pub struct SyncArgs {
    /// The engine collection folder.
    #[arg(long)]
    index: PathBuf,
    /// Qdrant's gRPC URL (port 6334 by default, not the REST port 6333).
    #[arg(long, value_name = "URL")]
    url: String,
    /// The Qdrant collection's name (created if missing).
    #[arg(long, value_name = "NAME")]
    collection: String,
    /// Shards of a new collection (default: the server's, one per peer).
    #[arg(long)]
    shards: Option<u32>,
    /// Copies of each shard in a new collection (default: the server's, 1).
    #[arg(long)]
    replicas: Option<u32>,
    /// Points per request.
    #[arg(long, default_value_t = hybrid_search_qdrant::DEFAULT_SYNC_BATCH)]
    batch: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// `qdrant export`'s flags.
#[derive(clap::Args)]
pub struct ExportArgs {
    /// The engine collection folder.
    #[arg(long)]
    index: PathBuf,
    /// The JSON Lines file to write.
    #[arg(long)]
    out: PathBuf,
    /// Also write the query vectors of this dataset's labelled queries (a BEIR folder or a
    /// SQuAD/KorQuAD JSON file).
    #[arg(long, value_name = "DATASET")]
    queries: Option<PathBuf>,
    /// The qrels split of a BEIR folder.
    #[arg(long, default_value = "test", requires = "queries")]
    split: String,
    #[command(flatten)]
    model: ModelArgs,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs a `qdrant` subcommand.
pub fn run(command: &Command) -> anyhow::Result<()> {
    match command {
        Command::Sync(a) => run_sync(a),
        Command::Export(a) => run_export(a),
    }
}

fn run_sync(args: &SyncArgs) -> anyhow::Result<()> {
    let mut collection = Collection::open(&args.index)?;
    render::warnings(collection.take_warnings());
    let client = Client::connect(Target {
        url: args.url.clone(),
        collection: args.collection.clone(),
    })?;
    let bar = progress(collection.len(), "syncing");
    let report = sync(
        &collection,
        &client,
        SyncOptions {
            shards: args.shards,
            replicas: args.replicas,
            batch: args.batch,
        },
        &|done, _| bar.set_position(done),
    );
    bar.finish_and_clear();
    let report = report?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    println!(
        "{}: {} documents; {} points sent, {} BM25 vectors refreshed, {} unchanged, {} deleted{}",
        client.target().describe(),
        report.documents,
        report.upserted,
        report.bm25_refreshed,
        report.unchanged,
        report.deleted,
        if report.created {
            " (collection created)"
        } else {
            ""
        }
    );
    if report.indexes_created > 0 {
        println!(
            "{} payload indexes created (one per field)",
            report.indexes_created
        );
    }
    if !report.unindexed_fields.is_empty() {
        eprintln!(
            "warning: fields {} are sent as payload but not indexed: a name with a double quote \
             or a backslash cannot be a Qdrant payload key, so searches through Qdrant cannot \
             filter on them",
            report.unindexed_fields.join(", ")
        );
    }
    println!(
        "{:.1} s, {:.1} MB sent ({:.0} bytes per point sent)",
        report.seconds,
        report.bytes_sent as f64 / 1e6,
        report.bytes_sent as f64 / (report.upserted + report.bm25_refreshed).max(1) as f64
    );
    Ok(())
}

fn run_export(args: &ExportArgs) -> anyhow::Result<()> {
    let mut collection = Collection::open(&args.index)?;
    render::warnings(collection.take_warnings());
    let dataset = match &args.queries {
        Some(path) => {
            if collection.manifest().dense.is_some() {
                collection.attach_model(&args.model.choice())?;
            }
            Some(eval::load_dataset(path, &args.split)?)
        }
        None => None,
    };
    let bar = progress(collection.len(), "exporting");
    let report = export(&collection, &args.out, dataset.as_ref(), &|done, _| {
        bar.set_position(done)
    });
    bar.finish_and_clear();
    let report = report.with_context(|| format!("exporting to {}", args.out.display()))?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    let c = report.collisions;
    println!(
        "{}: {} points, {} queries; {:.1} s; {:.0} bytes per point ({:.0} in sync's gRPC \
         requests)",
        args.out.display(),
        report.points,
        report.queries,
        report.seconds,
        report.point_bytes as f64 / report.points.max(1) as f64,
        report.grpc_point_bytes as f64 / report.points.max(1) as f64
    );
    println!(
        "term ids: {} terms, {} ids, {} terms share an id with another ({:.4}%); {} terms \
         merged within a document",
        c.terms,
        c.ids,
        c.colliding_terms,
        100.0 * c.colliding_terms as f64 / c.terms.max(1) as f64,
        report.merged_terms
    );
    Ok(())
}
