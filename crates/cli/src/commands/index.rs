//! `hybrid-search index`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use clap::ValueEnum;

use hybrid_search::dense::{LongText, Scalar};
use hybrid_search::{Collection, DenseOptions, ModelChoice, VectorKind, eval, load_encoder};

use crate::args::{AnalyzerArgs, ModelArgs, WaitArgs};
use crate::commands::documents::upsert_documents;
use crate::progress::{encode_bar, indexing_bar};
use crate::render;

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

#[derive(Clone, Copy, ValueEnum)]
enum ScalarArg {
    F32,
    F16,
    I8,
}

/// Index a dataset into a collection (created if missing; documents with an existing id are
/// replaced).
#[derive(clap::Args)]
pub struct Args {
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
}

/// Runs `index`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let config = args.analyzer.config()?;
    let wait = args.wait.wait()?;
    let kind = match args.vectors {
        VectorsArg::Hnsw => VectorKind::Hnsw,
        VectorsArg::Exact => VectorKind::Exact,
    };
    let scalar = match args.vector_scalar {
        ScalarArg::F32 => Scalar::F32,
        ScalarArg::F16 => Scalar::F16,
        ScalarArg::I8 => Scalar::I8,
    };
    if kind == VectorKind::Exact && scalar != Scalar::F32 {
        bail!("--vector-scalar applies to --vectors hnsw; exact vectors are f32");
    }
    let choice = args.model.choice();
    let dense = match &choice.dir {
        Some(dir) => {
            let encoder = load_encoder(dir, choice.weights)?;
            let mut options = DenseOptions::for_encoder(&encoder);
            options.long_text = match (args.long_text, args.window_overlap) {
                (LongTextArg::Truncate, _) => LongText::Truncate,
                (LongTextArg::Windows, Some(overlap)) => LongText::Windows { overlap },
                (LongTextArg::Windows, None) => options.long_text,
            };
            options.kind = kind;
            options.scalar = scalar;
            Some((encoder, options))
        }
        None => None,
    };
    let (index, dataset) = (&args.index, &args.dataset);
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
            None => c.attach_model(&ModelChoice {
                dir: None,
                weights: choice.weights,
            })?,
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
    let committed = match result {
        Ok(committed) => committed,
        Err(err) => {
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
    };
    if count == 0 {
        // As `add` refuses a file without documents: an empty file is almost always the wrong
        // file, and an empty collection made from it would answer every search with nothing.
        if !existed && created_folder {
            let _ = std::fs::remove_dir_all(index);
        }
        bail!(
            "{}: no documents to index (the file is empty, or holds only blank lines); {}",
            dataset.display(),
            if existed {
                "the collection is as before"
            } else {
                "no collection was made"
            }
        );
    }
    render::warnings(committed.warnings);
    eprintln!(
        "indexed {count} documents from {} into {} in {:.2} s ({} documents in the collection)",
        dataset.display(),
        index.display(),
        started.elapsed().as_secs_f64(),
        collection.len()
    );
    Ok(())
}

/// Whether the collection in `index` holds a commit (so its folder must never be removed).
fn committed(index: &Path) -> bool {
    Collection::open(index)
        .is_ok_and(|c| !c.is_empty() || c.sparse().commit_payload().ok().flatten().is_some())
}
