//! Shared helpers of the hybrid-search benchmarks: where the benchmark data sets live, loading
//! them (or explaining why a group is skipped), and building a collection from a corpus.
//!
//! The benchmarks themselves are in `benches/`; run them with
//! `cargo bench -p hybrid-search-benches`.

use std::path::{Path, PathBuf};

use hybrid_search::eval::load_dataset;
use hybrid_search::{AnalyzerConfig, Collection, Dataset, Document};

/// The shared data folder (`shared/data` next to the repository), found relative to this
/// package so the benchmarks do not depend on an absolute path.
pub fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data")
}

/// The SciFact BEIR folder (`corpus.jsonl`, `queries.jsonl`, `qrels/`).
pub fn scifact_path() -> PathBuf {
    data_dir().join("scifact")
}

/// The KorQuAD 1.0 dev file (SQuAD JSON).
pub fn korquad_path() -> PathBuf {
    data_dir().join("korquad-v1-dev/KorQuAD_v1.0_dev.json")
}

/// Loads the dataset at `path` (`split` selects the BEIR qrels; SQuAD files ignore it).
///
/// Returns `None`, after printing why on stderr, when the data is missing or unreadable, so a
/// benchmark group can be skipped instead of failing the whole run.
pub fn load_or_skip(name: &str, path: &Path, split: &str) -> Option<Dataset> {
    match load_dataset(path, split) {
        Ok(dataset) => Some(dataset),
        Err(e) => {
            eprintln!(
                "skipping the {name} benchmarks: cannot load {}: {e}",
                path.display()
            );
            None
        }
    }
}

/// The first `n` documents of `data` as an encoder reads them: `title + " " + text`, as
/// sentence-transformers encodes a corpus.
pub fn passages(data: &Dataset, n: usize) -> Vec<String> {
    data.corpus
        .iter()
        .take(n)
        .map(|d| format!("{} {}", d.title, d.text))
        .collect()
}

/// The text an analyzer sees for a document: its title, a newline and its body.
pub fn document_text(doc: &Document) -> String {
    format!("{}\n{}", doc.title, doc.text)
}

/// Creates a collection in the empty folder `dir` with `analyzer` and bulk-loads `docs` into it
/// as `hybrid-search index` does, so the collection is ready to search.
///
/// # Errors
///
/// Those of `Collection::create` and `Collection::bulk_load`.
pub fn build_collection(
    dir: &Path,
    analyzer: AnalyzerConfig,
    docs: &[Document],
) -> hybrid_search::Result<Collection> {
    let mut collection = Collection::create(dir, analyzer)?;
    collection.bulk_load(docs, || {})?;
    Ok(collection)
}
