//! The dense leg's wiring, on a tiny random model written by the test: building, searching,
//! the document lifecycle (upsert, delete, rollback), reopening, and the model check.

use std::path::Path;
use std::sync::Arc;

use hybrid_search::dense::{Device, Encoder, LongText, TinyModel, VectorIndex};
use hybrid_search::{
    AnalyzerConfig, AnalyzerKind, Collection, DenseOptions, Document, Error, FusionOverrides,
    HybridOptions, Mode, SearchRequest, Snapshot, VectorKind,
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

/// The top `k` of one mode as (id, score).
fn ranked(c: &Snapshot, query: &str, k: usize, mode: Mode) -> Vec<(String, f64)> {
    c.rank(
        &SearchRequest::new(query, k)
            .with_mode(mode)
            .with_fusion(FusionOverrides::exactly(HybridOptions::default())),
    )
    .unwrap()
    .hits
    .into_iter()
    .map(|h| (h.id.to_string(), h.score))
    .collect()
}

fn top(c: &Snapshot, query: &str) -> (String, f64) {
    ranked(c, query, 3, Mode::Dense).swap_remove(0)
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
        let hits = c
            .run(
                &SearchRequest::new("sepsis", 2)
                    .with_mode(Mode::Dense)
                    .with_fusion(FusionOverrides::exactly(HybridOptions::default()))
                    .with_explain(true),
            )
            .unwrap()
            .hits;
        assert_eq!(hits.len(), 2);
        assert!(
            !hits[0].title.is_empty(),
            "dense hits carry the stored document"
        );
        // The sparse leg is unchanged.
        assert_eq!(ranked(&c, "glycated", 1, Mode::Sparse)[0].0, "hba1c");
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
    let all = ranked(&c, "anything", 10, Mode::Dense);
    let mut ids: Vec<&str> = all.iter().map(|(id, _)| id.as_str()).collect();
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
    let all = ranked(&c, "anything", 10, Mode::Dense);
    let mut ids: Vec<&str> = all.iter().map(|(id, _)| id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["hba1c", "il6", "kept", "statin"]);
    assert_eq!(c.len(), 4);

    // One segment per commit that added vectors; nothing rewritten. The vectors of the
    // replaced and deleted documents wait for a merge, invisible to searches.
    let mut files: Vec<_> = std::fs::read_dir(tmp.path().join("c/dense"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "seg-00000000.hnsw",
            "seg-00000001.hnsw",
            "seg-00000002.hnsw"
        ]
    );
    let report = c.verify().unwrap();
    assert!(report.is_sound(), "{report:?}");
    assert_eq!((report.segments, report.deleted_vectors), (Some(3), 2));
}

#[test]
fn commits_write_only_their_own_vectors_and_merges_fold_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = build(tmp.path(), model(tmp.path(), 1), VectorKind::Hnsw);
    let dense = tmp.path().join("c/dense");
    let first = dense.join("seg-00000000.hnsw");
    let modified = || std::fs::metadata(&first).unwrap().modified().unwrap();
    let before = modified();
    // Seven more one-document commits: eight segments of the smallest tier, so the policy
    // folds them into one, and the replaced document's old vector is dropped.
    for i in 0..7 {
        let text = format!("document number {i} about ldl and glucose");
        c.add(&[doc(&format!("n{i}"), "New", &text)], None).unwrap();
        if i < 6 {
            assert_eq!(modified(), before, "an add never rewrites an older segment");
            assert_eq!(c.verify().unwrap().segments, Some(i + 2));
        }
    }
    let report = c.verify().unwrap();
    assert!(report.is_sound(), "{report:?}");
    assert_eq!(report.segments, Some(1), "{report:?}");
    assert_eq!(report.vectors, Some(11));
    c.add(&[doc("il6", "Cytokines", "replaced text")], None)
        .unwrap();
    c.delete(&["n0"]).unwrap();
    let report = c.verify().unwrap();
    assert_eq!((report.deleted_vectors, report.vectors), (2, Some(10)));
    let d = &docs()[1];
    assert_eq!(top(&c, &passage(d)).0, d.id);
    // The merged-away files are removed by the commit after the merge (readers of the
    // previous commit may still open them until then).
    let files = std::fs::read_dir(&dense).unwrap().count();
    assert!(files <= 3, "{files} files in dense/");
}

#[test]
fn supplied_vectors_are_stored_and_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let encoder = model(tmp.path(), 1);
    let mut c = build(tmp.path(), encoder.clone(), VectorKind::Exact);
    let dim = c.manifest().dense.as_ref().unwrap().vectors.dim;
    let mut v: Vec<f32> = (0..dim).map(|i| (i as f32 * 0.37).sin()).collect();
    let mut supplied = doc("given", "Given", "text that is not encoded");
    supplied.vector = Some(v.clone());
    c.add(&[supplied.clone()], None).unwrap();
    let hits = c
        .rank(
            &SearchRequest::new("", 1)
                .with_mode(Mode::Dense)
                .with_fusion(FusionOverrides::exactly(HybridOptions::default()))
                .with_vector(v.to_vec()),
        )
        .unwrap()
        .hits;
    assert_eq!(&*hits[0].id, "given");
    assert!(hits[0].score > 0.9999);
    // Wrong length, non-finite values: an error naming the document; nothing committed.
    v.push(1.0);
    supplied.vector = Some(v.clone());
    supplied.id = "long".into();
    let err = c.add(&[supplied.clone()], None).unwrap_err();
    assert!(matches!(err, Error::InvalidVector { .. }), "{err}");
    assert!(err.to_string().contains("\"long\"") && err.to_string().contains(&dim.to_string()));
    v.pop();
    v[3] = f32::NAN;
    supplied.vector = Some(v.clone());
    assert!(c.add(&[supplied], None).is_err());
    assert_eq!(c.len(), 5);
    // A query vector of the wrong length is refused too, in the hybrid mode as well (a
    // mistake of the caller's, not a leg that cannot answer: no fallback to BM25).
    for mode in [Mode::Dense, Mode::Hybrid] {
        let err = c
            .rank(
                &SearchRequest::new("", 1)
                    .with_mode(mode)
                    .with_fusion(FusionOverrides::exactly(HybridOptions::default()))
                    .with_vector(v[..3].to_vec()),
            )
            .unwrap_err();
        assert!(
            matches!(
                err,
                hybrid_search::Error::InvalidRequest {
                    setting: hybrid_search::Setting::Vector,
                    ..
                }
            ),
            "{mode:?}: {err}"
        );
    }
    assert!(c.verify().unwrap().is_sound());
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
    let err = c
        .rank(
            &SearchRequest::new("x", 1)
                .with_mode(Mode::Dense)
                .with_fusion(FusionOverrides::exactly(HybridOptions::default())),
        )
        .unwrap_err();
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
            scalar: hybrid_search::dense::Scalar::F32,
        };
        let mut c = Collection::create_with(
            &dir,
            AnalyzerConfig::for_kind(AnalyzerKind::En),
            Some((encoder.clone(), options)),
        )
        .unwrap();
        c.bulk_load(&[long.clone(), docs()[0].clone()], || {})
            .unwrap();
        let hits = ranked(&c, &tail, 2, Mode::Dense);
        let score = hits.iter().find(|(id, _)| id == "long").unwrap().1;
        match long_text {
            // The last window ends at the text's end: it is exactly the tail.
            LongText::Windows { .. } => {
                assert_eq!(hits[0].0, "long");
                assert!(score > 0.9999, "best window's cosine {score}");
            }
            LongText::Truncate => assert!(score < 0.999, "truncated cosine {score}"),
        }
    }
}

#[test]
fn hybrid_fuses_both_legs_and_keeps_each_legs_scores() {
    use hybrid_search::fusion::{ConvexSettings, Fusion, Leg};
    let tmp = tempfile::tempdir().unwrap();
    let c = build(tmp.path(), model(tmp.path(), 1), VectorKind::Exact);
    // "glycated" matches one document by BM25; the dense leg returns every document.
    for fusion in [Fusion::default(), Fusion::Convex(ConvexSettings::default())] {
        let options = HybridOptions { fusion, depth: 10 };
        let fused = c
            .rank(
                &SearchRequest::new("glycated", 10)
                    .with_mode(Mode::Hybrid)
                    .with_fusion(FusionOverrides::exactly(options)),
            )
            .unwrap()
            .hits;
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
    // The collection's default: hybrid, since it has a dense leg and its model is attached.
    let results = c.search("glycated", 2).unwrap();
    assert_eq!(
        (results.mode, results.degraded, results.hits.len()),
        (Mode::Hybrid, None, 2)
    );
    assert_eq!(results.hits[0].id, "hba1c");
    assert_eq!(results.hits[0].legs.len(), 2);
}

fn ids(c: &Collection, mode: Mode) -> Vec<String> {
    let mut ids: Vec<String> = ranked(c, "anything", 100, mode)
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    ids.sort();
    ids
}

#[test]
fn hybrid_falls_back_to_the_sparse_leg_and_says_why() {
    let tmp = tempfile::tempdir().unwrap();
    drop(build(tmp.path(), model(tmp.path(), 1), VectorKind::Hnsw));
    // Opened without its model: the default mode is still hybrid, answered by BM25 alone.
    let c = Collection::open(&tmp.path().join("c")).unwrap();
    assert_eq!(c.default_mode(), Mode::Hybrid);
    let results = c.search("glycated", 3).unwrap();
    assert_eq!(results.mode, Mode::Sparse);
    let reason = results.degraded.unwrap();
    assert!(
        matches!(reason, hybrid_search::Degraded::NoEncoder { .. }),
        "{reason:?}"
    );
    assert!(reason.message().contains("none is attached"), "{reason}");
    assert_eq!(results.hits[0].id, "hba1c");
    assert!(
        !results.hits[0].legs[1].found,
        "the dense leg found nothing"
    );
    // A dense search has no fallback.
    assert!(
        c.run(
            &SearchRequest::new("glycated", 3)
                .with_mode(Mode::Dense)
                .with_fusion(FusionOverrides::exactly(HybridOptions::default()))
                .with_explain(true)
        )
        .is_err()
    );
}

#[test]
fn damaged_vectors_keep_the_documents_and_repair_rebuilds_them() {
    let tmp = tempfile::tempdir().unwrap();
    let encoder = model(tmp.path(), 1);
    drop(build(tmp.path(), encoder.clone(), VectorKind::Hnsw));
    let path = tmp.path().join("c");
    for (segment, damage) in [(0, "truncated"), (1, "missing")] {
        let name = format!("seg-{segment:08}.hnsw");
        let vectors = path.join("dense").join(&name);
        let whole = std::fs::read(&vectors).unwrap();
        match damage {
            "truncated" => std::fs::write(&vectors, &whole[..whole.len() / 2]).unwrap(),
            _ => std::fs::remove_file(&vectors).unwrap(),
        }
        let mut c = Collection::open(&path).unwrap();
        c.attach_encoder(encoder.clone()).unwrap();
        // The sparse leg answers; dense searches and writers name the damage and the way out.
        assert_eq!(c.len(), 4, "{damage}: no committed document lost");
        let results = c.search("glycated", 2).unwrap();
        assert_eq!(
            (results.mode, results.hits[0].id.as_str()),
            (Mode::Sparse, "hba1c")
        );
        let err = c
            .rank(
                &SearchRequest::new("x", 1)
                    .with_mode(Mode::Dense)
                    .with_fusion(FusionOverrides::exactly(HybridOptions::default())),
            )
            .unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, Error::DenseDamaged { .. }), "{message}");
        assert!(
            message.contains(&name) && message.contains("repair"),
            "{damage}: {message}"
        );
        assert!(matches!(c.writer(), Err(Error::DenseDamaged { .. })));
        let report = c.verify().unwrap();
        assert!(!report.is_sound(), "{damage}: verify sees it");
        assert_eq!(report.vectors, None);

        assert_eq!(c.repair_dense(None).unwrap(), 4);
        assert!(c.verify().unwrap().is_sound(), "{damage}: repaired");
        let d = &docs()[2];
        assert_eq!(top(&c, &passage(d)).0, d.id, "{damage}");
        let mut all: Vec<String> = docs().into_iter().map(|d| d.id).collect();
        all.sort();
        assert_eq!(
            ids(&c, Mode::Dense),
            all,
            "{damage}: every document has its vectors"
        );
    }
}

#[test]
fn verify_finds_a_leg_that_lost_documents() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = build(tmp.path(), model(tmp.path(), 1), VectorKind::Exact);
    let report = c.verify().unwrap();
    assert!(report.is_sound(), "{report:?}");
    assert_eq!((report.documents, report.vectors), (4, Some(4)));
    // Empty the second commit's segment: the sparse leg then holds a document the dense leg
    // does not.
    let dense = tmp.path().join("c/dense");
    let mut w = c.writer().unwrap();
    w.upsert(&doc("new", "New", "added in the second commit"))
        .unwrap();
    w.commit().unwrap();
    drop(w);
    let settings = c.manifest().dense.as_ref().unwrap().vectors.clone();
    hybrid_search::dense::ExactIndex::new(settings)
        .unwrap()
        .save(&dense.join("seg-00000001.exact"))
        .unwrap();
    let c = Collection::open(&tmp.path().join("c")).unwrap();
    let report = c.verify().unwrap();
    assert_eq!(report.problems.len(), 1, "{report:?}");
    assert!(
        report.problems[0].contains("1 documents have no vector")
            && report.problems[0].contains("\"new\""),
        "{report:?}"
    );
}

#[test]
fn tuned_settings_are_stored_and_agree_with_a_search() {
    use hybrid_search::eval::{Qrels, Query};
    use hybrid_search::{SearchDefaults, TuneRecord};
    let tmp = tempfile::tempdir().unwrap();
    let mut c = build(tmp.path(), model(tmp.path(), 1), VectorKind::Exact);
    let queries: Vec<Query> = [("q1", "glycated glucose"), ("q2", "sepsis"), ("q3", "ldl")]
        .iter()
        .map(|(id, text)| Query {
            id: id.to_string(),
            text: text.to_string(),
        })
        .collect();
    let mut qrels = Qrels::new();
    for (q, d) in [("q1", "hba1c"), ("q2", "il6"), ("q3", "statin")] {
        qrels
            .entry(q.to_string())
            .or_default()
            .insert(d.to_string(), 1);
    }
    let texts: Vec<&str> = queries.iter().map(|q| q.text.as_str()).collect();
    let vectors = hybrid_search::query_vectors(&c, None, &texts, &|_| {}).unwrap();
    let grid = hybrid_search::default_grid();
    let prfs = hybrid_search::default_prf_grid();
    let rows = hybrid_search::tune(&c, &queries, &vectors, &qrels, &grid, &prfs).unwrap();
    assert_eq!(rows.len(), grid.len() * prfs.len());
    assert!(
        rows.windows(2)
            .all(|w| w[0].scores.ndcg_at_10 >= w[1].scores.ndcg_at_10)
    );
    // Each row's score is what searching with its settings gives: the best row, and the best
    // row with each feedback setting.
    let best = rows[0].options;
    for prf in &prfs {
        let row = rows.iter().find(|r| r.prf == *prf).unwrap();
        let mut run = hybrid_search::eval::Run::new();
        for q in &queries {
            let hits = c
                .rank(
                    &SearchRequest::new(&q.text, 100)
                        .with_mode(Mode::Hybrid)
                        .with_fusion(FusionOverrides::exactly(row.options))
                        .with_prf(*prf),
                )
                .unwrap()
                .hits;
            run.insert(
                q.id.clone(),
                hits.into_iter()
                    .map(|h| (h.id.to_string(), h.score as f32))
                    .collect(),
            );
        }
        let (scores, _) = hybrid_search::eval::evaluate(&qrels, &run);
        assert!(
            (scores.ndcg_at_10 - row.scores.ndcg_at_10).abs() < 1e-9,
            "{prf:?}: {} against {}",
            scores.ndcg_at_10,
            row.scores.ndcg_at_10
        );
    }

    assert_eq!(c.hybrid_options(), HybridOptions::default());
    let tuned = TuneRecord {
        dataset: "inline".into(),
        split: "train".into(),
        queries: 3,
        tried: rows.len(),
        ndcg_at_10: rows[0].scores.ndcg_at_10,
    };
    c.set_search_defaults(SearchDefaults {
        prf: Default::default(),
        hybrid: best,
        tuned: Some(tuned.clone()),
    })
    .unwrap();
    let c = Collection::open(&tmp.path().join("c")).unwrap();
    assert_eq!(c.hybrid_options(), best, "stored in the manifest");
    assert_eq!(c.manifest().search.as_ref().unwrap().tuned, Some(tuned));
}

#[test]
fn add_replaces_by_id_and_delete_counts_what_it_found() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = build(tmp.path(), model(tmp.path(), 1), VectorKind::Hnsw);
    let replaced = doc("asthma", "Airways", "bronchodilators relieve acute wheeze");
    c.add(
        &[replaced.clone(), doc("new", "New", "a fifth document")],
        None,
    )
    .unwrap();
    assert_eq!(c.len(), 5);
    assert_eq!(top(&c, &passage(&replaced)).0, "asthma");
    assert_eq!(
        c.delete(&["new", "il6", "il6", "absent"]).unwrap().deleted,
        2
    );
    assert_eq!(ids(&c, Mode::Dense), ["asthma", "hba1c", "statin"]);
    // Deleting needs no model.
    let mut c = Collection::open(&tmp.path().join("c")).unwrap();
    assert_eq!(c.delete(&["statin"]).unwrap().deleted, 1);
    assert!(c.verify().unwrap().is_sound());
    assert_eq!(c.len(), 2);
}

#[test]
fn an_interrupted_commit_leaves_the_previous_segments_in_force() {
    // What a process killed between the dense and the sparse half of a commit leaves: the next
    // segment's file (whole or still under its temporary name), no sparse commit.
    let tmp = tempfile::tempdir().unwrap();
    let encoder = model(tmp.path(), 1);
    drop(build(tmp.path(), encoder.clone(), VectorKind::Hnsw));
    let dense = tmp.path().join("c/dense");
    std::fs::write(dense.join("seg-00000001.hnsw"), b"half written").unwrap();
    std::fs::write(dense.join("seg-00000001.hnsw.tmp"), b"half").unwrap();

    let mut c = Collection::open(&tmp.path().join("c")).unwrap();
    c.attach_encoder(encoder).unwrap();
    let report = c.verify().unwrap();
    assert!(report.is_sound(), "{report:?}");
    assert_eq!(report.segments, Some(1));
    assert_eq!(report.notes.len(), 2, "{report:?}");
    let d = &docs()[0];
    assert_eq!(
        top(&c, &passage(d)).0,
        d.id,
        "the committed segment answers"
    );

    // The next commit writes its segment over the leftover and removes the rest.
    c.add(&[doc("new", "New", "after the crash")], None)
        .unwrap();
    let report = c.verify().unwrap();
    assert!(report.is_sound() && report.notes.is_empty(), "{report:?}");
    assert_eq!((report.documents, report.segments), (5, Some(2)));
}

/// A write returns what it committed and the next snapshot; a snapshot taken before stays on
/// its commit; the key -> id map carried over and updated by the write (the snapshot before
/// had built it) answers like the one a freshly opened collection builds.
#[test]
fn writes_return_their_commit_and_snapshots_stay_on_theirs() {
    let tmp = tempfile::tempdir().unwrap();
    let encoder = model(tmp.path(), 1);
    let mut c = build(tmp.path(), encoder.clone(), VectorKind::Hnsw);
    let before = c.snapshot();
    before.warm().unwrap(); // builds the key -> id map the write then updates
    let replaced = doc("asthma", "Airways", "bronchodilators relieve acute wheeze");
    let committed = c
        .add(
            &[
                replaced.clone(),
                doc("new", "New", "a fifth document"),
                doc("new", "New", "the fifth document, given twice"),
            ],
            None,
        )
        .unwrap();
    assert_eq!(
        (committed.added, committed.replaced, committed.deleted),
        (1, 1, 0)
    );
    assert_eq!(committed.snapshot.len(), 5);
    assert!(std::sync::Arc::ptr_eq(&committed.snapshot, &c.snapshot()));
    // The snapshot before the write still answers from its commit.
    assert_eq!(before.len(), 4);
    assert!(before.get("new").unwrap().is_none());
    assert_eq!(
        ranked(&before, &passage(&docs()[3]), 1, Mode::Dense)[0].0,
        "asthma"
    );
    let committed = c.delete(&["il6", "absent"]).unwrap();
    assert_eq!(
        (committed.added, committed.replaced, committed.deleted),
        (0, 0, 1)
    );
    // Every live document found by its own text through the updated map, as after a fresh
    // open (which builds the map from the index).
    let mut fresh = Collection::open(&tmp.path().join("c")).unwrap();
    fresh.attach_encoder(encoder).unwrap();
    for text in [
        passage(&replaced),
        "the fifth document, given twice".into(),
        passage(&docs()[1]),
    ] {
        assert_eq!(
            ranked(&c, &text, 5, Mode::Dense),
            ranked(&fresh, &text, 5, Mode::Dense)
        );
    }
    assert_eq!(ids(&c, Mode::Dense), ["asthma", "hba1c", "new", "statin"]);
    assert!(c.verify().unwrap().is_sound());
}

/// A batch runs each request as `run` would: the same hits, in request order, whatever the
/// mode, with the queries the model encodes encoded together.
#[test]
fn a_batch_answers_like_each_request_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let c = build(tmp.path(), model(tmp.path(), 1), VectorKind::Exact);
    let requests: Vec<SearchRequest> = [
        ("sepsis cytokines", Some(Mode::Hybrid)),
        ("glycated haemoglobin", Some(Mode::Dense)),
        ("statins", Some(Mode::Sparse)),
        ("asthma", None),
    ]
    .into_iter()
    .map(|(q, mode)| {
        SearchRequest::new(q, 3)
            .with_mode_or_default(mode)
            .with_explain(true)
    })
    .collect();
    let batch = c.run_batch(&requests);
    assert_eq!(batch.len(), requests.len());
    for (request, got) in requests.iter().zip(batch) {
        let got = got.unwrap();
        let alone = c.run(request).unwrap();
        assert_eq!(got.mode, alone.mode, "{}", request.query());
        let ids = |r: &hybrid_search::SearchResults| -> Vec<String> {
            r.hits.iter().map(|h| h.id.clone()).collect()
        };
        assert_eq!(ids(&got), ids(&alone), "{}", request.query());
        for (a, b) in got.hits.iter().zip(&alone.hits) {
            assert!((a.score - b.score).abs() < 1e-4, "{}", request.query());
        }
    }
}

#[test]
fn ids_break_no_front_end_and_overflowing_vectors_are_refused_or_scaled() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = build(tmp.path(), model(tmp.path(), 1), VectorKind::Exact);
    let dim = c.manifest().dense.as_ref().unwrap().vectors.dim;
    // Ids: empty, blank, a control character, longer than 512 characters. Each is refused naming
    // the document, nothing of the batch is committed; 512 characters exactly is fine.
    let long = "x".repeat(70_000);
    for (id, why) in [
        ("", "may not be empty"),
        ("   ", "white space"),
        ("a\nb", "U+000A"),
        ("tab\there", "U+0009"),
        (long.as_str(), "at most 512 characters"),
    ] {
        let err = c
            .add(&[doc("fine", "", "sepsis"), doc(id, "", "sepsis")], None)
            .unwrap_err();
        assert!(matches!(err, Error::InvalidId { .. }), "{id:?}: {err}");
        assert!(err.to_string().contains(why), "{err}");
        assert!(err.to_string().len() < 300, "the id is shown cut: {err}");
        assert_eq!(c.len(), 4, "nothing committed for {id:?}");
    }
    let widest = "y".repeat(512);
    c.add(&[doc(&widest, "", "sepsis")], None).unwrap();
    assert!(c.get(&widest).unwrap().is_some());
    c.delete(&[widest.as_str()]).unwrap();

    // A vector whose components are finite but whose squares overflow f32 is stored scaled to
    // unit length (the collection compares by cosine), so every search goes on working; a
    // zero vector is refused.
    let mut huge = doc("huge", "", "unrelated words");
    huge.vector = Some(vec![1e20; dim]);
    c.add(&[huge], None).unwrap();
    for mode in [Mode::Hybrid, Mode::Dense, Mode::Sparse] {
        let hits = ranked(&c, "sepsis", 10, mode);
        assert!(
            hits.iter().all(|(_, s)| s.is_finite()),
            "{mode:?}: {hits:?}"
        );
    }
    let results = c
        .rank(
            &SearchRequest::new("", 3)
                .with_mode(Mode::Dense)
                .with_vector(vec![1e20; dim]),
        )
        .unwrap();
    assert_eq!(&*results.hits[0].id, "huge");
    assert!(
        (results.hits[0].score - 1.0).abs() < 1e-5,
        "{:?}",
        results.hits[0]
    );
    let mut zero = doc("zero", "", "x");
    zero.vector = Some(vec![0.0; dim]);
    let err = c.add(&[zero], None).unwrap_err();
    assert!(err.to_string().contains("every value is 0"), "{err}");
    let err = c
        .rank(
            &SearchRequest::new("", 3)
                .with_mode(Mode::Dense)
                .with_vector(vec![0.0; dim]),
        )
        .unwrap_err();
    assert!(matches!(err, Error::InvalidRequest { .. }), "{err}");
}

#[test]
fn documents_with_nothing_to_encode_have_no_vector_and_never_outrank_a_match() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = build(tmp.path(), model(tmp.path(), 1), VectorKind::Hnsw);
    let empties = [
        doc("empty", "", ""),
        doc("blank", "  ", " \n\t "),
        doc("emoji", "", "\u{1F600}\u{1F44D}\u{1F468}\u{200D}\u{1F469}"),
        doc("marks", "", "... !!! ---"),
    ];
    c.add(&empties, None).unwrap();
    c.add(&[doc("titled", "Sepsis bundle", "")], None).unwrap();
    let report = c.verify().unwrap();
    assert!(report.is_sound(), "{report:?}");
    assert_eq!(
        report.vectors,
        Some(5),
        "the four documents and the title-only one"
    );
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("4 documents have no text to encode")),
        "{report:?}"
    );
    for query in ["sepsis", "kidney disease", "interleukin 6 acute phase"] {
        for mode in [Mode::Hybrid, Mode::Dense] {
            let hits = ranked(&c, query, 10, mode);
            assert!(
                hits.iter()
                    .all(|(id, _)| !empties.iter().any(|e| e.id == *id)),
                "{query:?} {mode:?}: {hits:?}"
            );
        }
    }
    // The title-only document has a vector made from its title.
    assert_eq!(top(&c, "Sepsis bundle").0, "titled");
    // Rebuilding the vectors keeps the rule.
    c.repair_dense(None).unwrap();
    assert_eq!(c.verify().unwrap().vectors, Some(5));
}

#[test]
fn pseudo_relevance_feedback_rewrites_each_legs_query() {
    use hybrid_search::{Prf, Rm3, Rocchio, SearchDefaults};
    let tmp = tempfile::tempdir().unwrap();
    let mut c = build(tmp.path(), model(tmp.path(), 1), VectorKind::Exact);
    c.add(
        &[doc(
            "bundle",
            "Sepsis bundle",
            "antibiotics within the first hour of sepsis",
        )],
        None,
    )
    .unwrap();
    fn ids(c: &Collection, prf: Option<Prf>, mode: Mode, query: &str) -> Vec<String> {
        let mut request = SearchRequest::new(query, 10)
            .with_mode(mode)
            .with_fusion(FusionOverrides::exactly(HybridOptions::default()));
        if let Some(prf) = prf {
            request = request.with_prf(prf);
        }
        c.rank(&request)
            .unwrap()
            .hits
            .into_iter()
            .map(|h| h.id.to_string())
            .collect()
    }
    // "interleukin" is in one document only; RM3 from that document adds "sepsis", which
    // finds the bundle document too.
    let rm3 = Prf {
        rm3: Some(Rm3 {
            docs: 1,
            terms: 10,
            original_weight: 0.5,
        }),
        rocchio: None,
    };
    assert_eq!(ids(&c, None, Mode::Sparse, "interleukin"), ["il6"]);
    let expanded = ids(&c, Some(rm3), Mode::Sparse, "interleukin");
    assert_eq!(expanded[0], "il6", "the query's own document stays first");
    assert!(expanded.contains(&"bundle".to_string()), "{expanded:?}");
    // Weighing the query alone, RM3 changes nothing.
    let own = Prf {
        rm3: Some(Rm3 {
            original_weight: 1.0,
            ..Rm3::default()
        }),
        rocchio: None,
    };
    assert_eq!(ids(&c, Some(own), Mode::Sparse, "interleukin"), ["il6"]);
    // Rocchio with beta 0 is the query vector itself; with beta it still finds the query's
    // own document first, and every mode answers.
    let rocchio = |beta| Prf {
        rm3: None,
        rocchio: Some(Rocchio { docs: 2, beta }),
    };
    let query = "interleukin 6 drives the acute phase response";
    assert_eq!(
        ids(&c, Some(rocchio(0.0)), Mode::Dense, query),
        ids(&c, None, Mode::Dense, query)
    );
    assert_eq!(ids(&c, Some(rocchio(0.5)), Mode::Dense, query)[0], "il6");
    let both = Prf {
        rm3: rm3.rm3,
        rocchio: rocchio(0.5).rocchio,
    };
    let hybrid = ids(&c, Some(both), Mode::Hybrid, "interleukin");
    assert!(hybrid.contains(&"bundle".to_string()), "{hybrid:?}");
    // The collection's stored feedback is used when a search names none; out of range is
    // refused naming the setting.
    c.set_search_defaults(SearchDefaults {
        hybrid: HybridOptions::default(),
        prf: rm3,
        tuned: None,
    })
    .unwrap();
    assert_eq!(ids(&c, None, Mode::Sparse, "interleukin"), expanded);
    assert_eq!(
        ids(&c, Some(Prf::OFF), Mode::Sparse, "interleukin"),
        ["il6"]
    );
    let err = c
        .rank(&SearchRequest::new("x", 3).with_prf(Prf {
            rm3: Some(Rm3 {
                docs: 0,
                ..Rm3::default()
            }),
            rocchio: None,
        }))
        .unwrap_err();
    assert!(err.to_string().contains("prf: rm3: docs 0"), "{err}");
}
