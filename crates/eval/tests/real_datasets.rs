//! Counts on the real evaluation collections under `shared/data` (skipped when absent).

use std::path::PathBuf;

use hybrid_search_eval::{DatasetFormat, detect_format, load_dataset, read_corpus};

/// `shared/data/<name>` beside the project, or `None` (with a message) when it is absent.
fn data(name: &str) -> Option<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data")
        .join(name);
    if path.exists() {
        Some(path)
    } else {
        eprintln!("skipping: {} is absent", path.display());
        None
    }
}

fn pairs(qrels: &hybrid_search_eval::Qrels) -> usize {
    qrels.values().map(|docs| docs.len()).sum()
}

#[test]
fn korquad_dev() {
    let Some(path) = data("korquad-v1-dev/KorQuAD_v1.0_dev.json") else {
        return;
    };
    assert_eq!(detect_format(&path).unwrap(), DatasetFormat::Squad);
    let ds = load_dataset(&path, "test").unwrap();
    assert_eq!(ds.corpus.len(), 960);
    assert_eq!(ds.queries.len(), 5774);
    assert_eq!(ds.qrels.len(), 5774);
    assert_eq!(pairs(&ds.qrels), 5774);
    assert_eq!(read_corpus(&path).unwrap().len(), 960);
    // Every judged paragraph is in the corpus.
    let ids: std::collections::HashSet<&str> = ds.corpus.iter().map(|d| d.id.as_str()).collect();
    assert!(
        ds.qrels
            .values()
            .flat_map(|d| d.keys())
            .all(|id| ids.contains(id.as_str()))
    );
}

#[test]
fn scifact() {
    let Some(path) = data("scifact") else { return };
    assert_eq!(detect_format(&path).unwrap(), DatasetFormat::Beir);
    assert_eq!(read_corpus(&path).unwrap().len(), 5183);
    let test = load_dataset(&path, "test").unwrap();
    assert_eq!(test.corpus.len(), 5183);
    assert_eq!(test.queries.len(), 300);
    assert_eq!(pairs(&test.qrels), 339);
    let train = load_dataset(&path, "train").unwrap();
    assert_eq!(train.queries.len(), 809);
    assert_eq!(pairs(&train.qrels), 919);
}

#[test]
fn cranfield() {
    let Some(path) = data("cranfield") else {
        return;
    };
    let test = load_dataset(&path, "test").unwrap();
    eprintln!(
        "cranfield test: {} docs, {} queries, {} qrels pairs",
        test.corpus.len(),
        test.queries.len(),
        pairs(&test.qrels)
    );
    assert_eq!(test.corpus.len(), 1400);
    assert!(
        test.qrels
            .values()
            .flat_map(|d| d.values())
            .any(|&g| g == 0),
        "expected a grade-0 judgment"
    );
    assert!(
        test.qrels
            .values()
            .flat_map(|d| d.values())
            .all(|&g| (0..=4).contains(&g))
    );
}
