//! A writer killed between writing its files and committing leaves files no commit lists; the
//! next writer, counting opstamps from the same commit, must not trip over them.

use hybrid_search_sparse::{AnalyzerConfig, AnalyzerKind, Bm25Index, SparseDoc};

fn doc(id: &str, key: u64) -> SparseDoc {
    SparseDoc {
        id: id.into(),
        key,
        title: String::new(),
        text: format!("interleukin six document {id}"),
        fields: Default::default(),
    }
}

#[test]
fn a_writer_after_an_uncommitted_one_deletes_without_name_clashes() {
    let dir = tempfile::tempdir().unwrap();
    let config = AnalyzerConfig::for_kind(AnalyzerKind::En);
    let index = Bm25Index::create(dir.path(), &config).unwrap();
    let mut w = index.writer(15_000_000).unwrap();
    for (i, id) in ["a", "b", "c"].into_iter().enumerate() {
        w.insert(&doc(id, i as u64), None).unwrap();
    }
    w.commit("{}").unwrap();
    drop(w);

    // What a killed `add` leaves: its `.del` file written (and registered in tantivy's
    // `.managed.json`, which tantivy does before creating a file) but `meta.json` not yet
    // switched. Made here by running the same delete to its commit in a copy of the index,
    // then taking over that run's new files and its `.managed.json`, but not its `meta.json`.
    let copy = tempfile::tempdir().unwrap();
    let files = |d: &std::path::Path| -> Vec<String> {
        std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect()
    };
    for name in files(dir.path()) {
        std::fs::copy(dir.path().join(&name), copy.path().join(&name)).unwrap();
    }
    let other = Bm25Index::open(copy.path(), &config).unwrap();
    let mut w = other.writer(15_000_000).unwrap();
    w.delete("b");
    w.commit("{}").unwrap();
    drop(w);
    let before = files(dir.path());
    let mut taken = 0;
    for name in files(copy.path()) {
        if (name.ends_with(".del") && !before.contains(&name)) || name == ".managed.json" {
            std::fs::copy(copy.path().join(&name), dir.path().join(&name)).unwrap();
            taken += usize::from(name.ends_with(".del"));
        }
    }
    assert_eq!(taken, 1, "the uncommitted run's delete file is in place");

    let index = Bm25Index::open(dir.path(), &config).unwrap();
    let mut w = index.writer(15_000_000).unwrap();
    w.delete("b");
    w.commit("{}").unwrap();
    index.reload().unwrap();
    assert_eq!(index.num_docs(), 2);
    assert!(index.get("b").unwrap().is_none());
}
