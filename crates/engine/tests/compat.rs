//! Collections written by earlier versions must keep opening, searching and taking updates.
//! `fixtures/compat/v1-en` is a format version 1 collection (the `en` analyzer over
//! `fixtures/medical.jsonl`), committed as written by hybrid-search 0.1.0;
//! `fixtures/compat/v2-en-hnsw` and `v2-en-exact` are format 2 collections with a dense leg (the
//! same corpus in two commits, then `en-05` deleted; `TinyModel::default()`, HNSW and exact
//! vectors), as written before vector segments. When the format changes, add the new version's
//! fixture beside them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hybrid_search::dense::{Device, Encoder, TinyModel};
use hybrid_search::{
    Collection, Document, FORMAT_VERSION, FusionOverrides, LegQuery, Legs, LocalLegs, Mode,
    SearchRequest,
};

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[test]
fn opens_a_format_1_collection() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = copy_fixture("v1-en", tmp.path());
    let mut collection = Collection::open(&dir).unwrap();
    assert_eq!(collection.manifest().format_version, 1);
    assert_eq!(collection.len(), 30);
    // Its documents were analysed by the rules before Unicode normalisation: opening says so.
    assert_eq!(collection.manifest().analysis, 1);
    let warnings = collection.take_warnings();
    assert!(
        warnings.iter().any(|w| w.contains("analysis version 1")),
        "{warnings:?}"
    );
    let mut ids: Vec<String> = LocalLegs
        .search(&collection, &LegQuery::sparse("IL-6", 4))
        .unwrap()
        .sparse
        .into_iter()
        .map(|(id, _)| id.to_string())
        .collect();
    ids.sort();
    assert_eq!(ids, ["en-01", "en-02", "ko-04", "ko-05"]);
    assert_eq!(
        collection.get("en-07").unwrap().unwrap().title,
        "Serotonin receptors"
    );
    // Updates work and upgrade the format.
    collection
        .add(&[doc("new-1", "IL-6 in a new document")], None)
        .unwrap();
    collection.delete(&["en-01"]).unwrap();
    assert_eq!(collection.manifest().format_version, FORMAT_VERSION);
    let reopened = Collection::open(&dir).unwrap();
    assert_eq!(reopened.len(), 30);
    assert!(reopened.verify().unwrap().is_sound());
}

fn doc(id: &str, text: &str) -> Document {
    Document {
        id: id.into(),
        title: String::new(),
        text: text.into(),
        vector: None,
        fields: Default::default(),
    }
}

/// A copy of a fixture in `to` (tests never write into the fixture itself).
fn copy_fixture(name: &str, to: &Path) -> PathBuf {
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/compat")
        .join(name);
    let dir = to.join(name);
    copy_dir(&fixture, &dir);
    dir
}

#[test]
fn opens_searches_and_updates_format_2_collections_with_a_dense_leg() {
    for name in ["v2-en-hnsw", "v2-en-exact"] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = copy_fixture(name, tmp.path());
        let model = tmp.path().join("tiny");
        TinyModel::default().write(&model).unwrap();
        let encoder = Arc::new(Encoder::load(&model, &Device::Cpu).unwrap());
        let mut c = Collection::open(&dir).unwrap();
        assert_eq!(c.manifest().format_version, 2, "{name}");
        c.attach_encoder(encoder.clone()).unwrap();
        assert_eq!(c.len(), 29, "{name}");
        let report = c.verify().unwrap();
        assert!(report.is_sound(), "{name}: {report:?}");
        assert_eq!(report.vectors, Some(29), "{name}");
        assert!(c.get("en-05").unwrap().is_none());
        // Each leg answers; a document's own text finds it first in the dense leg.
        let sparse = c
            .run(
                &SearchRequest::new("HbA1c", 3)
                    .with_mode(Mode::Sparse)
                    .with_fusion(FusionOverrides::exactly(c.hybrid_options()))
                    .with_explain(true),
            )
            .unwrap();
        assert!(sparse.hits.iter().any(|h| h.id == "en-03"), "{name}");
        let text = hybrid_search::passage_text(&c.get("en-03").unwrap().unwrap());
        let v = encoder
            .encode(&[text.as_str()], hybrid_search::dense::TextKind::Passage, 1)
            .unwrap();
        let dense = c
            .rank(
                &SearchRequest::new("", 1)
                    .with_mode(Mode::Dense)
                    .with_fusion(FusionOverrides::exactly(c.hybrid_options()))
                    .with_vector(v[0].to_vec()),
            )
            .unwrap();
        assert_eq!(&*dense.hits[0].id, "en-03", "{name}");
        let hybrid = c.search("HbA1c glucose", 5).unwrap();
        assert_eq!(hybrid.mode, Mode::Hybrid, "{name}");
        assert!(hybrid.degraded.is_none(), "{name}");

        // Update: an add and a delete, then reopen.
        c.add(&[doc("new-1", "HbA1c in a new document")], None)
            .unwrap();
        c.delete(&["en-03"]).unwrap();
        assert_eq!(c.manifest().format_version, FORMAT_VERSION, "{name}");
        let mut c = Collection::open(&dir).unwrap();
        c.attach_encoder(encoder.clone()).unwrap();
        assert_eq!(c.len(), 29, "{name}");
        let report = c.verify().unwrap();
        assert!(report.is_sound(), "{name}: {report:?}");
        assert_eq!(report.vectors, Some(29), "{name}");
        let ids: Vec<String> = c
            .run(
                &SearchRequest::new("HbA1c", 3)
                    .with_mode(Mode::Hybrid)
                    .with_fusion(FusionOverrides::exactly(c.hybrid_options()))
                    .with_explain(true),
            )
            .unwrap()
            .hits
            .into_iter()
            .map(|h| h.id)
            .collect();
        assert!(
            ids.contains(&"new-1".to_string()) && !ids.contains(&"en-03".to_string()),
            "{name}: {ids:?}"
        );
    }
}

/// A collection made before documents had fields (its index has no field for them) searches
/// with filters on the document id, refuses a filter on a field by saying it has none, and
/// refuses documents with fields by saying to build it again: nothing is written then.
#[test]
fn a_collection_made_before_fields_filters_by_id_and_says_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = copy_fixture("v1-en", tmp.path());
    let mut c = Collection::open(&dir).unwrap();
    let by_id = hybrid_search::Filter::from_json(
        &serde_json::json!({"field": "id", "in": ["en-01", "ko-04"]}),
    )
    .unwrap();
    let hits = c
        .run(
            &SearchRequest::new("IL-6", 10)
                .with_mode(Mode::Sparse)
                .with_filter(Some(by_id)),
        )
        .unwrap()
        .hits;
    let mut ids: Vec<&str> = hits.iter().map(|h| h.id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["en-01", "ko-04"]);
    let unknown = c
        .run(
            &SearchRequest::new("IL-6", 10)
                .with_filter(Some(hybrid_search::Filter::eq("source", "pubmed"))),
        )
        .unwrap_err()
        .to_string();
    assert!(unknown.contains("have no fields"), "{unknown}");
    let mut with_fields = doc("new-1", "IL-6 with a source");
    with_fields.fields = serde_json::from_value(serde_json::json!({"source": "pubmed"})).unwrap();
    let err = c.add(&[with_fields], None).unwrap_err().to_string();
    assert!(err.contains("build it again"), "{err}");
    assert_eq!(c.len(), 30);
}
