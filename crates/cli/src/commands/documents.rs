//! `hybrid-search add` and `delete`: writes of documents to an existing collection.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::bail;

use hybrid_search::{Collection, eval};

use crate::args::{ModelArgs, WaitArgs};
use crate::progress::encode_bar;
use crate::render;

/// Add documents to a collection (JSONL, BEIR folder or SQuAD JSON), replacing those whose
/// id exists, in one commit covering both legs.
#[derive(clap::Args)]
pub struct AddArgs {
    /// The collection folder.
    #[arg(long)]
    index: PathBuf,
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    wait: WaitArgs,
    /// The documents.
    file: PathBuf,
}

/// Delete documents by id, in one commit covering both legs.
#[derive(clap::Args)]
pub struct DeleteArgs {
    /// The collection folder.
    #[arg(long)]
    index: PathBuf,
    #[command(flatten)]
    wait: WaitArgs,
    /// Delete the documents this filter matches (the JSON form of `search --filter`); '{"all":
    /// true}' deletes every document.
    #[arg(long, value_name = "JSON", conflicts_with = "ids")]
    filter: Option<String>,
    /// Document ids.
    #[arg(required_unless_present = "filter")]
    ids: Vec<String>,
}

/// Upserts the documents of `docs` in one commit ([`Collection::upsert_stream`]); a document
/// that the engine refuses (a supplied vector that does not fit) is named with its line, as
/// the reader names its own errors.
pub fn upsert_documents(
    collection: &mut Collection,
    mut docs: eval::DocumentStream,
    on_doc: impl FnMut(),
    on_encoded: hybrid_search::EncodeProgress,
    merge: bool,
) -> anyhow::Result<hybrid_search::Committed> {
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
            Some(
                hybrid_search::Error::InvalidVector { .. }
                | hybrid_search::Error::InvalidVectorValues { .. }
                | hybrid_search::Error::InvalidId { .. }
                | hybrid_search::Error::InvalidField { .. },
            ) if line.get() > 0 => {
                let at = line.get();
                err.context(format!("line {at}"))
            }
            _ => err,
        })
}

/// Runs `add`.
pub fn add(args: &AddArgs) -> anyhow::Result<()> {
    let (index, file) = (&args.index, &args.file);
    let wait = args.wait.wait()?;
    let started = Instant::now();
    let docs = eval::stream_corpus(file)?;
    let mut collection = Collection::open(index)?;
    collection.set_write_wait(wait);
    collection.attach_model(&args.model.choice())?;
    let (bar, on_encoded) = encode_bar();
    let mut count = 0u64;
    let result = upsert_documents(&mut collection, docs, || count += 1, on_encoded, false);
    bar.finish_and_clear();
    let committed = result.map_err(|err| {
        err.context(format!(
            "adding {} to {}; nothing was committed, the collection is as before",
            file.display(),
            index.display()
        ))
    })?;
    if count == 0 {
        bail!("{}: no documents to add", file.display());
    }
    render::warnings(committed.warnings);
    eprintln!(
        "added {count} documents from {} to {} ({} new, {} replaced) in {:.2} s; {} \
         documents in the collection",
        file.display(),
        index.display(),
        committed.added,
        committed.replaced,
        started.elapsed().as_secs_f64(),
        committed.snapshot.len()
    );
    Ok(())
}

/// Runs `delete`.
pub fn delete(args: &DeleteArgs) -> anyhow::Result<()> {
    let wait = args.wait.wait()?;
    let mut collection = Collection::open(&args.index)?;
    collection.set_write_wait(wait);
    if let Some(filter) = &args.filter {
        let value = serde_json::from_str::<serde_json::Value>(filter).ok();
        if value == Some(serde_json::json!({})) {
            bail!(
                "--filter: an empty filter deletes nothing; to delete every document give \
                 --filter '{{\"all\": true}}'"
            );
        }
        let all = value == Some(serde_json::json!({"all": true}));
        let filter = if all {
            None
        } else {
            Some(crate::args::parse_filter(filter)?)
        };
        let committed = collection.delete_where(filter.as_ref())?;
        render::warnings(committed.warnings);
        eprintln!(
            "deleted {} documents matching the filter from {}; {} documents in the collection",
            committed.deleted,
            args.index.display(),
            committed.snapshot.len()
        );
        return Ok(());
    }
    let ids: Vec<&str> = args.ids.iter().map(String::as_str).collect();
    let committed = collection.delete(&ids)?;
    render::warnings(committed.warnings);
    eprintln!(
        "deleted {} of {} ids from {}; {} documents in the collection",
        committed.deleted,
        ids.len(),
        args.index.display(),
        committed.snapshot.len()
    );
    Ok(())
}
