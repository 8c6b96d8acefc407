//! The document lifecycle of a collection: upsert, delete, commit, reopen.

use hybrid_search::{
    AnalyzerConfig, AnalyzerKind, Collection, Document, Error, LegQuery, Legs, LocalLegs,
};

fn doc(id: &str, title: &str, text: &str) -> Document {
    Document {
        id: id.into(),
        title: title.into(),
        text: text.into(),
        vector: None,
        fields: Default::default(),
    }
}

fn ids(collection: &Collection, query: &str) -> Vec<String> {
    LocalLegs
        .search(collection, &LegQuery::sparse(query, 10))
        .unwrap()
        .sparse
        .into_iter()
        .map(|(id, _)| id.to_string())
        .collect()
}

fn english(dir: &std::path::Path) -> Collection {
    Collection::create(dir, AnalyzerConfig::for_kind(AnalyzerKind::En)).unwrap()
}

#[test]
fn upsert_replaces_and_delete_removes() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = english(&tmp.path().join("c"));
    let mut w = c.writer().unwrap();
    w.upsert(&doc("a", "", "interleukin six in sepsis"))
        .unwrap();
    w.upsert(&doc("b", "", "metformin for diabetes")).unwrap();
    w.commit().unwrap();
    c.reload().unwrap();
    assert_eq!(c.len(), 2);
    assert_eq!(ids(&c, "sepsis"), ["a"]);

    w.upsert(&doc("a", "", "tocilizumab blocks the receptor"))
        .unwrap();
    w.delete("b").unwrap();
    w.commit().unwrap();
    c.reload().unwrap();
    assert_eq!(c.len(), 1);
    assert!(ids(&c, "sepsis").is_empty());
    assert_eq!(ids(&c, "tocilizumab"), ["a"]);
    assert!(ids(&c, "metformin").is_empty());
    assert_eq!(
        c.get("a").unwrap().unwrap().text,
        "tocilizumab blocks the receptor"
    );
}

#[test]
fn uncommitted_changes_are_invisible_and_lost_on_drop() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let mut c = english(&dir);
    let mut w = c.writer().unwrap();
    w.upsert(&doc("a", "Sepsis", "IL-6 rises early")).unwrap();
    w.commit().unwrap();
    w.upsert(&doc("b", "Diabetes", "HbA1c above 6.5%")).unwrap();
    w.delete("a").unwrap();
    drop(w);
    drop(c);

    let c = Collection::open(&dir).unwrap();
    assert_eq!(c.len(), 1);
    assert_eq!(ids(&c, "IL-6"), ["a"]);
    assert!(ids(&c, "HbA1c").is_empty());
}

#[test]
fn reopened_collection_keeps_settings_and_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let mut config = AnalyzerConfig::for_kind(AnalyzerKind::En);
    config.stem = false;
    {
        let mut c = Collection::create(&dir, config.clone()).unwrap();
        let mut w = c.writer().unwrap();
        w.upsert(&doc("a", "", "patients")).unwrap();
        w.commit().unwrap();
        w.finish().unwrap();
    }
    let mut c = Collection::open(&dir).unwrap();
    assert_eq!(c.manifest().analyzer, config);
    // Without stemming, `patient` does not match `patients`.
    assert!(ids(&c, "patient").is_empty());
    assert_eq!(ids(&c, "patients"), ["a"]);
    let mut w = c.writer().unwrap();
    w.upsert(&doc("b", "", "patients again")).unwrap();
    w.commit().unwrap();
    c.reload().unwrap();
    let keys: Vec<u64> = c
        .sparse()
        .search("patients", 10)
        .unwrap()
        .into_iter()
        .map(|h| h.key)
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(
        sorted.len(),
        2,
        "internal keys are unique across sessions: {keys:?}"
    );
}

#[test]
fn refuses_to_create_over_something_else_and_to_open_a_non_collection() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("notes.txt"), "mine").unwrap();
    let config = AnalyzerConfig::for_kind(AnalyzerKind::En);
    assert!(matches!(
        Collection::create(tmp.path(), config),
        Err(Error::NotEmpty(_))
    ));
    assert!(matches!(
        Collection::open(tmp.path()),
        Err(Error::NotACollection(_))
    ));
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("notes.txt")).unwrap(),
        "mine"
    );
}

#[test]
fn unknown_format_version_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    drop(english(&dir));
    let path = dir.join("manifest.json");
    let text = std::fs::read_to_string(&path).unwrap().replace(
        &format!("\"format_version\": {}", hybrid_search::FORMAT_VERSION),
        "\"format_version\": 99",
    );
    std::fs::write(&path, text).unwrap();
    let err = Collection::open(&dir)
        .err()
        .expect("version 99 must not open")
        .to_string();
    assert!(
        err.contains("manifest.json") && err.contains("format version 99"),
        "{err}"
    );
}

#[test]
fn deep_and_shallow_top_k_agree() {
    // k >= 100 uses the exhaustive collector, smaller k tantivy's block-WAND top-k: the first 99
    // results must be the same documents with the same scores.
    let tmp = tempfile::tempdir().unwrap();
    let mut c = english(&tmp.path().join("c"));
    let mut w = c.writer().unwrap();
    let words = [
        "sepsis", "cytokine", "receptor", "glucose", "insulin", "kidney", "liver",
    ];
    for i in 0..400usize {
        let text: Vec<&str> = (0..12)
            .map(|j| words[(i * 7 + j * (i % 5 + 1)) % words.len()])
            .collect();
        w.upsert(&doc(&format!("d{i:03}"), "", &text.join(" ")))
            .unwrap();
    }
    w.commit().unwrap();
    c.reload().unwrap();
    for query in [
        "sepsis",
        "glucose insulin",
        "kidney liver receptor cytokine",
    ] {
        let shallow = LocalLegs
            .search(&c, &LegQuery::sparse(query, 99))
            .unwrap()
            .sparse;
        let deep = LocalLegs
            .search(&c, &LegQuery::sparse(query, 100))
            .unwrap()
            .sparse;
        assert_eq!(shallow.len(), 99);
        for (a, b) in shallow.iter().zip(&deep) {
            assert_eq!(a.1, b.1, "{query}: scores differ");
        }
        let mut a: Vec<_> = shallow.iter().map(|h| h.0.clone()).collect();
        let mut b: Vec<_> = deep[..99].iter().map(|h| h.0.clone()).collect();
        // Documents with equal scores may come in either order; the last score's ties may
        // be cut differently, so compare the documents above the 99th score.
        let cutoff = shallow[98].1;
        a.retain(|id| shallow.iter().any(|h| &h.0 == id && h.1 > cutoff));
        b.retain(|id| deep.iter().any(|h| &h.0 == id && h.1 > cutoff));
        a.sort();
        b.sort();
        assert_eq!(a, b, "{query}");
    }
}
