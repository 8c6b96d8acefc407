//! The dense leg's wiring, on a tiny random model written by the test: building, searching,
//! the document lifecycle (upsert, delete, rollback), reopening, and the model check.

use std::path::Path;
use std::sync::Arc;

use hybrid_search::dense::{Device, Encoder, LongText, TinyModel};
use hybrid_search::{
    AnalyzerConfig, AnalyzerKind, Collection, DenseOptions, Document, Error, Mode, VectorKind,
};

fn doc(id: &str, title: &str, text: &str) -> Document {
    Document {
        id: id.into(),
        title: title.into(),
        text: text.into(),
    }
}

fn docs() -> Vec<Document> {
    vec![
        doc(
            "il6",
            "Cytokines",
            "interleukin 6 drives the acute phase response in sepsis",
        ),
        doc(
            "hba1c",
            "Diabetes",
            "glycated haemoglobin reflects glucose over three months",
        ),
        doc(
            "statin",
            "Lipids",
            "statins lower ldl cholesterol and cardiovascular risk",
        ),
        doc(
            "asthma",
            "Airways",
            "inhaled corticosteroids control chronic asthma symptoms",
        ),
    ]
}

fn model(dir: &Path, seed: u64) -> Arc<Encoder> {
    let path = dir.join(format!("tiny-{seed}"));
    TinyModel {
        seed,
        ..TinyModel::default()
    }
    .write(&path)
    .unwrap();
    Arc::new(Encoder::load(&path, &Device::Cpu).unwrap())
}

fn build(dir: &Path, encoder: Arc<Encoder>, kind: VectorKind) -> Collection {
    let mut options = DenseOptions::for_encoder(&encoder);
    options.kind = kind;
    let mut c = Collection::create_with(
        &dir.join("c"),
        AnalyzerConfig::for_kind(AnalyzerKind::En),
        Some((encoder, options)),
    )
    .unwrap();
    c.bulk_load(&docs(), || {}).unwrap();
    c
}

/// The text the passage encoder saw for a document: searching it finds the document first
/// (identical input, cosine 1), whatever the random weights.
fn passage(d: &Document) -> String {
    format!("{} {}", d.title, d.text)
}

fn top(c: &Collection, query: &str) -> (String, f32) {
    let hits = c.search_ids_with(query, 3, Mode::Dense).unwrap();
    (hits[0].0.to_string(), hits[0].1)
}

#[test]
fn dense_search_finds_each_document_by_its_own_text() {
    let tmp = tempfile::tempdir().unwrap();
    for kind in [VectorKind::Hnsw, VectorKind::Exact] {
        let dir = tmp.path().join(format!("{kind:?}"));
        let c = build(&dir, model(tmp.path(), 1), kind);
        for d in docs() {
            let (id, score) = top(&c, &passage(&d));
            assert_eq!(id, d.id, "{kind:?}");
            assert!(score > 0.9999, "{kind:?}: cosine {score}");
        }
        let hits = c.search_with("sepsis", 2, Mode::Dense).unwrap();
        assert_eq!(hits.len(), 2);
        assert!(
            !hits[0].title.is_empty(),
            "dense hits carry the stored document"
        );
        // The sparse leg is unchanged.
        assert_eq!(c.search("glycated", 1).unwrap()[0].id, "hba1c");
    }
}

#[test]
fn upsert_delete_and_rollback_keep_the_legs_in_step() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = build(tmp.path(), model(tmp.path(), 1), VectorKind::Hnsw);
    let replaced = doc("statin", "Lipids", "pcsk9 antibodies lower ldl further");
    let mut w = c.writer().unwrap();
    w.upsert(&replaced).unwrap();
    w.delete("asthma").unwrap();
    w.commit().unwrap();
    drop(w);
    c.reload().unwrap();
    assert_eq!(top(&c, &passage(&replaced)).0, "statin");
    let all = c.search_ids_with("anything", 10, Mode::Dense).unwrap();
    let mut ids: Vec<&str> = all.iter().map(|(id, _)| id.as_ref()).collect();
    ids.sort();
    assert_eq!(
        ids,
        ["hba1c", "il6", "statin"],
        "one vector set per live document"
    );

    // A rolled-back change leaves no trace in either leg.
    let mut w = c.writer().unwrap();
    w.upsert(&doc("new", "New", "a document that is rolled back"))
        .unwrap();
    w.delete("il6").unwrap();
    w.rollback().unwrap();
    w.upsert(&doc("kept", "Kept", "committed after the rollback"))
        .unwrap();
    w.commit().unwrap();
    drop(w);
    c.reload().unwrap();
    let all = c.search_ids_with("anything", 10, Mode::Dense).unwrap();
    let mut ids: Vec<&str> = all.iter().map(|(id, _)| id.as_ref()).collect();
    ids.sort();
    assert_eq!(ids, ["hba1c", "il6", "kept", "statin"]);
    assert_eq!(c.len(), 4);

    // One vector file: the generation the last commit names.
    let files: Vec<_> = std::fs::read_dir(tmp.path().join("c/dense"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files, ["vectors-00000003.hnsw"]);
}

#[test]
fn a_reopened_collection_needs_its_own_model() {
    let tmp = tempfile::tempdir().unwrap();
    let encoder = model(tmp.path(), 1);
    drop(build(tmp.path(), encoder.clone(), VectorKind::Hnsw));
    let path = tmp.path().join("c");

    let mut c = Collection::open(&path).unwrap();
    let dense = c.manifest().dense.clone().unwrap();
    assert_eq!(dense.model.name, "tiny-1");
    assert_eq!(dense.model.description.dim, 32);
    assert_eq!(dense.model.weights.file, "model.safetensors");
    assert_eq!(dense.model.weights.checksum.len(), 16);
    // No model attached: a clear error, not a panic.
    let err = c.search_ids_with("x", 1, Mode::Dense).unwrap_err();
    assert!(matches!(err, Error::NoModel(..)), "{err}");

    let other = model(tmp.path(), 2);
    let err = c.attach_encoder(other).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, Error::ModelMismatch { .. }), "{message}");
    assert!(
        message.contains("tiny-1") && message.contains("fingerprint"),
        "{message}"
    );

    c.attach_encoder(encoder).unwrap();
    let d = &docs()[1];
    assert_eq!(top(&c, &passage(d)).0, d.id);
}

#[test]
fn long_documents_are_found_by_their_best_window() {
    let tmp = tempfile::tempdir().unwrap();
    let encoder = model(tmp.path(), 1);
    // 120 one-token words; the tiny model reads 30 tokens between [CLS] and [SEP].
    let alphabet: Vec<char> = ('a'..='z').chain('0'..='9').collect();
    let words: Vec<String> = (0..120)
        .map(|i| alphabet[(i * 7 + i / 36) % alphabet.len()].to_string())
        .collect();
    let long = doc("long", "", &words.join(" "));
    let tail = words[90..].join(" ");
    for long_text in [LongText::Windows { overlap: 4 }, LongText::Truncate] {
        let dir = tmp.path().join(format!("{long_text:?}"));
        let options = DenseOptions {
            long_text,
            kind: VectorKind::Exact,
        };
        let mut c = Collection::create_with(
            &dir,
            AnalyzerConfig::for_kind(AnalyzerKind::En),
            Some((encoder.clone(), options)),
        )
        .unwrap();
        c.bulk_load(&[long.clone(), docs()[0].clone()], || {})
            .unwrap();
        let hits = c.search_ids_with(&tail, 2, Mode::Dense).unwrap();
        let score = hits.iter().find(|(id, _)| id.as_ref() == "long").unwrap().1;
        match long_text {
            // The last window ends at the text's end: it is exactly the tail.
            LongText::Windows { .. } => {
                assert_eq!(hits[0].0.as_ref(), "long");
                assert!(score > 0.9999, "best window's cosine {score}");
            }
            LongText::Truncate => assert!(score < 0.999, "truncated cosine {score}"),
        }
    }
}

#[test]
fn hybrid_fuses_both_legs_and_keeps_each_legs_scores() {
    use hybrid_search::HybridOptions;
    use hybrid_search::fusion::{ConvexSettings, Fusion, Leg};
    let tmp = tempfile::tempdir().unwrap();
    let c = build(tmp.path(), model(tmp.path(), 1), VectorKind::Exact);
    // "glycated" matches one document by BM25; the dense leg returns every document.
    for fusion in [Fusion::default(), Fusion::Convex(ConvexSettings::default())] {
        let options = HybridOptions { fusion, depth: 10 };
        let fused = c.hybrid_ids("glycated", None, 10, &options).unwrap();
        assert_eq!(
            fused.len(),
            docs().len(),
            "{fusion:?}: the union of both legs"
        );
        let hba1c = fused.iter().find(|h| h.id.as_ref() == "hba1c").unwrap();
        assert!(hba1c.leg(Leg::Sparse).unwrap().found);
        assert!(hba1c.leg(Leg::Dense).unwrap().found);
        let others: Vec<_> = fused.iter().filter(|h| h.id.as_ref() != "hba1c").collect();
        assert!(others.iter().all(|h| !h.leg(Leg::Sparse).unwrap().found));
        // Found by both legs, it outranks every document found by one.
        assert_eq!(fused[0].id.as_ref(), "hba1c", "{fusion:?}");
        assert!(fused.windows(2).all(|w| w[0].score >= w[1].score));
    }
    let ids = c.search_ids_with("glycated", 2, Mode::Hybrid).unwrap();
    assert_eq!(ids.len(), 2);
}
