//! Documents with fields and filters: a property test comparing every filtered sparse, dense
//! and hybrid search with brute force over the matching documents, and the errors a user meets
//! (a wrong-typed value, an unknown field, a malformed filter), paging, returned fields and
//! delete by filter.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;
use serde_json::{Value, json};

use hybrid_search::dense::{Device, Encoder, TinyModel};
use hybrid_search::fusion::LegList;
use hybrid_search::{
    AnalyzerConfig, AnalyzerKind, Collection, DenseOptions, Document, Error, FieldSelection,
    FieldType, Fields, Filter, Mode, SearchRequest, Snapshot, VectorKind, sparse_list,
};

const DIM: usize = 32;
const WORDS: [&str; 8] = [
    "sepsis", "cytokine", "insulin", "glucose", "statin", "asthma", "kidney", "fever",
];
const SOURCES: [&str; 3] = ["pubmed", "trials", "wiki"];
const TAGS: [&str; 4] = ["a", "b", "c", "d"];

fn model(dir: &Path) -> Arc<Encoder> {
    let path = dir.join("tiny");
    TinyModel::default().write(&path).unwrap();
    Arc::new(Encoder::load(&path, &Device::Cpu).unwrap())
}

fn create(dir: &Path, kind: VectorKind) -> Collection {
    let encoder = model(dir);
    let mut options = DenseOptions::for_encoder(&encoder);
    options.kind = kind;
    Collection::create_with(
        &dir.join("c"),
        AnalyzerConfig::for_kind(AnalyzerKind::En),
        Some((encoder, options)),
    )
    .unwrap()
}

fn fields(v: Value) -> Fields {
    serde_json::from_value(v).unwrap()
}

/// One random document: words of a small vocabulary, a unit vector, and some of the fields.
fn arb_doc(i: usize) -> impl Strategy<Value = Document> {
    (
        prop::collection::vec(0..WORDS.len(), 1..6),
        prop::collection::vec(-1.0f32..1.0, DIM),
        prop::option::of(0..SOURCES.len()),
        prop::option::of(1990i64..2030),
        prop::option::of(-5.0f64..5.0),
        prop::collection::vec(0..TAGS.len(), 0..3),
        prop::option::of(any::<bool>()),
        prop::option::of(0u32..28),
    )
        .prop_map(
            move |(words, vector, source, year, score, tags, flag, day)| {
                let mut f = serde_json::Map::new();
                if let Some(s) = source {
                    f.insert("source".into(), json!(SOURCES[s]));
                }
                if let Some(y) = year {
                    f.insert("year".into(), json!(y));
                }
                if let Some(s) = score {
                    f.insert("score".into(), json!(s));
                }
                if !tags.is_empty() {
                    let tags: Vec<&str> = tags.iter().map(|&t| TAGS[t]).collect();
                    f.insert("tags".into(), json!(tags));
                }
                if let Some(b) = flag {
                    f.insert("flag".into(), json!(b));
                }
                if let Some(d) = day {
                    f.insert("at".into(), json!(format!("2024-02-{:02}", d + 1)));
                }
                let text: Vec<&str> = words.iter().map(|&w| WORDS[w]).collect();
                Document {
                    id: format!("d{i}"),
                    title: String::new(),
                    text: text.join(" "),
                    // Nonzero, so cosine is defined.
                    vector: Some(vector.into_iter().map(|x| x + 1e-3).collect()),
                    fields: fields(Value::Object(f)),
                }
            },
        )
}

fn arb_docs() -> impl Strategy<Value = Vec<Document>> {
    (10usize..40).prop_flat_map(|n| (0..n).map(arb_doc).collect::<Vec<_>>())
}

/// One condition on one field, its value drawn from the field's domain.
fn arb_condition() -> impl Strategy<Value = Value> {
    prop_oneof![
        (0..SOURCES.len()).prop_map(|s| json!({"field": "source", "eq": SOURCES[s]})),
        prop::collection::vec(0..TAGS.len(), 1..3).prop_map(|t| {
            let t: Vec<&str> = t.iter().map(|&i| TAGS[i]).collect();
            json!({"field": "tags", "in": t})
        }),
        (1990i64..2030, 0i64..15)
            .prop_map(|(lo, w)| json!({"field": "year", "gte": lo, "lt": lo + w})),
        (1990i64..2030).prop_map(|y| json!({"field": "year", "eq": y})),
        // A fractional bound on an integer field, and a whole float equal to an integer.
        (1990.0f64..2030.0).prop_map(|y| json!({"field": "year", "gte": y})),
        // One fractional bound and one integer bound (tantivy once panicked on the mix).
        (1990.0f64..2030.0, 0i64..15)
            .prop_map(|(y, w)| json!({"field": "year", "gt": y, "lte": y as i64 + w})),
        (1990i64..2030, 0.0f64..15.0)
            .prop_map(|(y, w)| json!({"field": "year", "gte": y, "lt": y as f64 + w})),
        (1990i64..2030).prop_map(|y| json!({"field": "year", "eq": y as f64})),
        (-5.0f64..5.0).prop_map(|x| json!({"field": "score", "gt": x})),
        (-5i64..5).prop_map(|x| json!({"field": "score", "lte": x})),
        any::<bool>().prop_map(|b| json!({"field": "flag", "eq": b})),
        (1u32..29)
            .prop_map(|d| json!({"field": "at", "lt": format!("2024-02-{d:02}T12:00:00+09:00")})),
        prop::sample::select(vec!["source", "year", "score", "tags", "flag", "at"])
            .prop_flat_map(|f| any::<bool>().prop_map(move |b| json!({"field": f, "exists": b}))),
        (0usize..40)
            .prop_map(|i| json!({"field": "id", "in": [format!("d{i}"), format!("d{}", i / 2)]})),
    ]
}

fn arb_filter() -> impl Strategy<Value = Value> {
    arb_condition().prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..3).prop_map(|fs| json!({"and": fs})),
            prop::collection::vec(inner.clone(), 1..3).prop_map(|fs| json!({"or": fs})),
            inner.prop_map(|f| json!({"not": f})),
        ]
    })
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b))
}

fn ranked(s: &Snapshot, request: &SearchRequest) -> Vec<(String, f64)> {
    s.rank(request)
        .unwrap()
        .hits
        .into_iter()
        .map(|h| (h.id.to_string(), h.score))
        .collect()
}

/// `got` is `expected` up to the order of equal scores: same length, the same score at every
/// rank, and each id's score its own.
fn same_ranking(got: &[(String, f64)], expected: &[(String, f64)], own: &HashMap<String, f64>) {
    assert_eq!(got.len(), expected.len(), "{got:?}\n{expected:?}");
    for (g, e) in got.iter().zip(expected) {
        assert!((g.1 - e.1).abs() <= 1e-5, "{got:?}\n{expected:?}");
        assert!((own[&g.0] - g.1).abs() <= 1e-5, "{} {got:?}", g.0);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn filtered_searches_equal_brute_force(docs in arb_docs(), filter in arb_filter(), q in prop::collection::vec(0..WORDS.len(), 1..3), qv in prop::collection::vec(-1.0f32..1.0, DIM)) {
        let dir = tempfile::tempdir().unwrap();
        let mut c = create(dir.path(), VectorKind::Exact);
        c.bulk_load(&docs, || {}).unwrap();
        let filter = Filter::from_json(&filter).unwrap();
        let query: Vec<&str> = q.iter().map(|&w| WORDS[w]).collect();
        let query = query.join(" ");
        let qv: Vec<f32> = qv.into_iter().map(|x| x + 1e-3).collect();
        let passes: HashMap<&str, bool> =
            docs.iter().map(|d| (d.id.as_str(), filter.matches(&d.id, &d.fields))).collect();
        let matches = passes.values().filter(|p| **p).count();
        let n = docs.len();
        let k = 10;

        // Sparse: the unfiltered ranking of every document, restricted to the matching ones.
        let all = ranked(&c, &SearchRequest::new(&query, n).with_mode(Mode::Sparse));
        let own: HashMap<String, f64> = all.iter().cloned().collect();
        let expected: Vec<(String, f64)> =
            all.iter().filter(|(id, _)| passes[id.as_str()]).take(k).cloned().collect();
        let request = SearchRequest::new(&query, k).with_mode(Mode::Sparse).with_filter(Some(filter.clone()));
        let got = ranked(&c, &request);
        same_ranking(&got, &expected, &own);

        // Dense: exact cosine over the matching documents.
        let mut exact: Vec<(String, f64)> = docs
            .iter()
            .filter(|d| passes[d.id.as_str()])
            .map(|d| (d.id.clone(), f64::from(cosine(&qv, d.vector.as_ref().unwrap()))))
            .collect();
        exact.sort_by(|a, b| b.1.total_cmp(&a.1));
        exact.truncate(k);
        let dense_own: HashMap<String, f64> = docs
            .iter()
            .map(|d| (d.id.clone(), f64::from(cosine(&qv, d.vector.as_ref().unwrap()))))
            .collect();
        let request = SearchRequest::new(&query, k)
            .with_mode(Mode::Dense)
            .with_vector(qv.clone())
            .with_filter(Some(filter.clone()));
        let got = ranked(&c, &request);
        prop_assert_eq!(got.len(), k.min(matches));
        same_ranking(&got, &exact, &dense_own);

        // Hybrid: the fusion of the two filtered lists, each as deep as the fusion goes.
        let options = c.hybrid_options();
        let depth = options.depth.max(k);
        let sparse_list_filtered: Vec<(Arc<str>, f32)> = all
            .iter()
            .filter(|(id, _)| passes[id.as_str()])
            .take(depth)
            .map(|(id, s)| (Arc::from(id.as_str()), *s as f32))
            .collect();
        let mut dense_all: Vec<(String, f64)> = dense_own
            .iter()
            .filter(|(id, _)| passes[id.as_str()])
            .map(|(id, s)| (id.clone(), *s))
            .collect();
        dense_all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let dense_list: Vec<(Arc<str>, f32)> = dense_all
            .iter()
            .take(depth)
            .map(|(id, s)| (Arc::from(id.as_str()), *s as f32))
            .collect();
        let fused = options
            .fusion
            .fuse_lists(sparse_list(&sparse_list_filtered, depth), LegList::new(&dense_list))
            .unwrap();
        let request = SearchRequest::new(&query, k)
            .with_mode(Mode::Hybrid)
            .with_vector(qv.clone())
            .with_filter(Some(filter.clone()));
        let got = ranked(&c, &request);
        prop_assert!(got.len() <= k);
        let expected: Vec<(String, f64)> =
            fused.iter().take(k).map(|h| (h.id.to_string(), h.score)).collect();
        let fused_own: HashMap<String, f64> =
            fused.iter().map(|h| (h.id.to_string(), h.score)).collect();
        same_ranking(&got, &expected, &fused_own);
        for (id, _) in &got {
            prop_assert!(passes[id.as_str()], "{id} fails the filter");
        }
    }
}

fn small(dir: &Path) -> Collection {
    let mut c = create(dir, VectorKind::Hnsw);
    let mut docs = Vec::new();
    for i in 0..30 {
        let mut d = Document::new(format!("d{i}"), "", format!("sepsis cytokine note {i}"));
        d.vector = Some((0..DIM).map(|j| ((i * 7 + j) % 11) as f32 + 0.5).collect());
        d.fields = fields(json!({
            "source": SOURCES[i % 3],
            "year": 2000 + i as i64,
            "tags": [TAGS[i % 4]],
            "url": format!("https://example.org/{i}"),
        }));
        docs.push(d);
    }
    c.bulk_load(&docs, || {}).unwrap();
    c
}

#[test]
fn fields_are_typed_stored_and_returned() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = small(dir.path());
    let kinds: Vec<(String, FieldType)> = c
        .fields()
        .specs()
        .iter()
        .map(|s| (s.name.clone(), s.kind))
        .collect();
    assert!(
        kinds.contains(&("year".into(), FieldType::Integer)),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&("tags".into(), FieldType::String)),
        "{kinds:?}"
    );
    // The manifest keeps the types: a reopened collection has them.
    let reopened = Collection::open(&dir.path().join("c")).unwrap();
    assert_eq!(reopened.fields(), c.fields());
    assert_eq!(
        c.get("d4").unwrap().unwrap().fields["url"],
        json!("https://example.org/4")
    );

    // A value of another type: named by document and field, and nothing of the batch lands.
    let mut bad = Document::new("new", "", "fresh text");
    bad.vector = Some(vec![1.0; DIM]);
    bad.fields = fields(json!({"year": "2020"}));
    let mut good = Document::new("good", "", "more text");
    good.vector = Some(vec![1.0; DIM]);
    good.fields = fields(json!({"lang": "en"}));
    let err = c.add(&[good, bad], None).unwrap_err();
    assert!(matches!(err, Error::InvalidField { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("\"new\"") && message.contains("\"year\"") && message.contains("integers"),
        "{message}"
    );
    assert!(c.get("good").unwrap().is_none());
    assert_eq!(c.fields().kind("lang"), None);
    assert_eq!(c.len(), 30);

    // Returned with hits when asked, and only then.
    let request = SearchRequest::new("sepsis", 3)
        .with_mode(Mode::Sparse)
        .with_filter(Some(Filter::eq("source", "trials")));
    let plain = c.run(&request).unwrap();
    assert!(
        plain
            .hits
            .iter()
            .all(|h| h.text.is_none() && h.fields.is_none())
    );
    let asked = c
        .run(&request.with_fields(FieldSelection::new(["text", "url"])))
        .unwrap();
    let hit = &asked.hits[0];
    assert!(
        hit.text
            .as_deref()
            .unwrap()
            .starts_with("sepsis cytokine note")
    );
    let returned = hit.fields.as_ref().unwrap();
    assert_eq!(returned.keys().collect::<Vec<_>>(), ["url"]);
    let json = serde_json::to_value(hit).unwrap();
    assert!(json["fields"]["url"].is_string(), "{json}");
}

#[test]
fn bad_filters_name_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let c = small(dir.path());
    let run = |f: Value| {
        let filter = Filter::from_json(&f).unwrap();
        c.run(
            &SearchRequest::new("sepsis", 5)
                .with_mode(Mode::Sparse)
                .with_filter(Some(filter)),
        )
        .unwrap_err()
        .to_string()
    };
    let unknown = run(json!({"field": "colour", "eq": "red"}));
    assert!(
        unknown.starts_with("filter: unknown field \"colour\""),
        "{unknown}"
    );
    assert!(unknown.contains("year (integer)"), "{unknown}");
    let wrong = run(json!({"field": "year", "gte": "recent"}));
    assert!(
        wrong.contains("\"year\"") && wrong.contains("integers"),
        "{wrong}"
    );
    let range = run(json!({"field": "source", "gt": "a"}));
    assert!(range.contains("apply to numbers and dates"), "{range}");
    // A name no document has returns nothing (a field may be on some documents only).
    let hits = c
        .run(
            &SearchRequest::new("sepsis", 5)
                .with_mode(Mode::Sparse)
                .with_fields(FieldSelection::new(["colour"])),
        )
        .unwrap()
        .hits;
    assert!(
        hits.iter()
            .all(|h| h.fields.as_ref().is_some_and(|f| f.is_empty()))
    );
}

#[test]
fn pages_are_slices_of_the_deeper_search() {
    let dir = tempfile::tempdir().unwrap();
    let c = small(dir.path());
    for mode in [Mode::Sparse, Mode::Dense, Mode::Hybrid] {
        let v: Vec<f32> = (0..DIM).map(|j| (j % 5) as f32 + 1.0).collect();
        let request = |k: usize, offset: usize| {
            let r = SearchRequest::new("sepsis note", k)
                .with_mode(mode)
                .with_offset(offset);
            if mode == Mode::Sparse {
                r
            } else {
                r.with_vector(v.clone())
            }
        };
        let deep = ranked(&c, &request(20, 0));
        let page2 = ranked(&c, &request(10, 10));
        assert_eq!(page2, deep[10..20].to_vec(), "{mode:?}");
        // Beyond the results: an empty page.
        assert!(ranked(&c, &request(10, 40)).is_empty());
    }
    let err = c
        .run(&SearchRequest::new("sepsis", 10).with_offset(9_995))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("offset: offset + k is 10005"), "{err}");
}

#[test]
fn filtered_hnsw_returns_min_k_matches() {
    let dir = tempfile::tempdir().unwrap();
    let c = small(dir.path());
    let v: Vec<f32> = (0..DIM).map(|j| (j % 3) as f32 + 1.0).collect();
    for (filter, matches) in [
        (json!({"field": "source", "eq": "pubmed"}), 10),
        (json!({"field": "year", "gte": 2027}), 3),
        (json!({"not": {"field": "tags", "in": ["a"]}}), 22),
        (json!({"field": "id", "eq": "nope"}), 0),
    ] {
        let request = SearchRequest::new("", 10)
            .with_mode(Mode::Dense)
            .with_vector(v.clone())
            .with_filter(Some(Filter::from_json(&filter).unwrap()));
        assert_eq!(ranked(&c, &request).len(), matches.min(10), "{filter}");
    }
}

#[test]
fn delete_by_filter_commits_once_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = small(dir.path());
    let filter = Filter::from_json(&json!({"field": "year", "lt": 2010})).unwrap();
    let committed = c.delete_where(Some(&filter)).unwrap();
    assert_eq!(committed.deleted, 10);
    assert_eq!(c.len(), 20);
    assert!(c.get("d3").unwrap().is_none() && c.get("d12").unwrap().is_some());
    let unknown = Filter::from_json(&json!({"field": "colour", "eq": 1})).unwrap();
    assert!(c.delete_where(Some(&unknown)).is_err());
    assert_eq!(c.len(), 20);
    assert_eq!(c.delete_where(None).unwrap().deleted, 20);
    assert!(c.is_empty());
}

#[test]
fn a_writer_s_new_fields_are_seen_after_reload() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = small(dir.path());
    let mut w = c.writer().unwrap();
    let mut d = Document::new("late", "", "sepsis late note");
    d.vector = Some(vec![1.0; DIM]);
    d.fields = fields(json!({"pages": 12}));
    w.upsert(&d).unwrap();
    w.commit().unwrap();
    drop(w);
    c.reload().unwrap();
    assert_eq!(c.fields().kind("pages"), Some(FieldType::Integer));
    assert_eq!(c.manifest().format_version, hybrid_search::FORMAT_VERSION);
    let filter = Filter::from_json(&json!({"field": "pages", "gte": 10})).unwrap();
    let hits = ranked(
        &c,
        &SearchRequest::new("sepsis", 10)
            .with_mode(Mode::Sparse)
            .with_filter(Some(filter)),
    );
    assert_eq!(hits.len(), 1);
}

#[test]
fn hybrid_pages_stay_within_the_fusion_depth() {
    let dir = tempfile::tempdir().unwrap();
    let c = small(dir.path());
    let depth = c.hybrid_options().depth;
    let err = c
        .run(
            &SearchRequest::new("sepsis", 10)
                .with_mode(Mode::Hybrid)
                .with_offset(depth),
        )
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("offset: offset + k is"), "{err}");
    assert!(err.contains("fusion depth"), "{err}");
}

#[test]
fn documents_read_back_are_written_back_the_same() {
    let body = r#"[{"id": "a", "text": "x", "fields": {"year": 1}, "metadata": {"y": [{"z": 2}, {"z": 3}]}}]"#;
    let docs = hybrid_search::eval::parse_documents("body", body).unwrap();
    assert_eq!(
        serde_json::to_value(&docs[0].fields).unwrap(),
        json!({"year": 1, "metadata.y.z": [2, 3]})
    );
    let twice = r#"{"id": "a", "text": "x", "a.b": 1, "a": {"b": 2}}"#;
    let err = hybrid_search::eval::parse_documents("body", twice)
        .unwrap_err()
        .to_string();
    assert!(err.contains("\"a.b\" is given twice"), "{err}");
}

/// Above `FILTER_EXACT_MATCHES` matches the dense leg searches the HNSW graph with the filter
/// as its predicate: every hit passes the filter, `min(k, matches)` come back, and they are
/// close to the exact filtered top k.
#[test]
fn filtered_graph_search_above_the_exact_threshold() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = create(dir.path(), VectorKind::Hnsw);
    let n = hybrid_search::defaults::FILTER_EXACT_MATCHES + 5_000;
    let mut rng = hybrid_search::dense::SplitMix64::new(3);
    let docs: Vec<Document> = (0..n)
        .map(|i| {
            let mut d = Document::new(format!("d{i}"), "", "sepsis note");
            d.vector = Some((0..DIM).map(|_| rng.normal() as f32).collect());
            d.fields = fields(json!({"odd": !i.is_multiple_of(7)}));
            d
        })
        .collect();
    c.bulk_load(&docs, || {}).unwrap();
    let filter = Filter::eq("odd", true);
    let passing: Vec<&Document> = docs
        .iter()
        .filter(|d| filter.matches(&d.id, &d.fields))
        .collect();
    assert!(passing.len() > hybrid_search::defaults::FILTER_EXACT_MATCHES);
    let mut recall = 0.0;
    let queries = 20;
    for _ in 0..queries {
        let q: Vec<f32> = (0..DIM).map(|_| rng.normal() as f32).collect();
        let got = ranked(
            &c,
            &SearchRequest::new("", 10)
                .with_mode(Mode::Dense)
                .with_vector(q.clone())
                .with_filter(Some(filter.clone())),
        );
        assert_eq!(got.len(), 10);
        let mut exact: Vec<(f32, &str)> = passing
            .iter()
            .map(|d| (cosine(&q, d.vector.as_ref().unwrap()), d.id.as_str()))
            .collect();
        exact.sort_by(|a, b| b.0.total_cmp(&a.0));
        let truth: Vec<&str> = exact[..10].iter().map(|(_, id)| *id).collect();
        for (id, _) in &got {
            let i: usize = id[1..].parse().unwrap();
            assert!(!i.is_multiple_of(7), "{id} fails the filter");
        }
        recall += got
            .iter()
            .filter(|(id, _)| truth.contains(&id.as_str()))
            .count() as f64
            / 10.0;
    }
    // Random 32-d vectors are easy for the graph; the bound leaves room for its approximation.
    assert!(
        recall / queries as f64 >= 0.9,
        "recall {}",
        recall / queries as f64
    );
}
