//! Parity with Qdrant's engine: a collection is exported (`hybrid-search qdrant export`), its
//! points loaded into Qdrant Edge (the PyPI package `qdrant-edge-py`, Qdrant's segments
//! in-process) with the settings `sync` creates, and every query's legs and Qdrant's own
//! fusions run there (`scripts/qdrant_edge_parity.py`). The answers must equal the embedded
//! engine's: BM25 scores to 1e-4, dense top-10 with exact search, Qdrant's RRF equal to the
//! engine's formula on the same lists (up to the order of tied scores), and nDCG@10 within
//! 0.003 in the sparse, dense and hybrid modes (the collection's fusion in the engine, and
//! Qdrant's RRF and DBSF). The fixture and SciFact tests run every query again under filters
//! (documents given fields, `sync`'s payload and payload indexes, each filter translated by
//! [`QdrantFilter`] and given to each leg and prefetch): the same comparisons hold, and no
//! document Qdrant returns fails the filter.
//!
//! Python with qdrant-edge-py: `$HYBRID_SEARCH_EDGE_PYTHON`, else
//! `target/qdrant-edge-venv/bin/python` (made by `scripts/fetch-qdrant-edge.sh`). Without
//! it the tests say so and pass, unless `HYBRID_SEARCH_REQUIRE_EDGE=1` (set by
//! `scripts/test.sh`). The SciFact and KorQuAD tests also need `../shared/data` and the models
//! of `scripts/fetch-models.sh`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use rayon::prelude::*;
use serde_json::json;

use hybrid_search::defaults::{EVAL_DEPTH_FUSED_MIN, EVAL_DEPTH_ONE_LEG};
use hybrid_search::dense::{Device, Encoder, TinyModel, WeightFormat};
use hybrid_search::eval::metrics;
use hybrid_search::sparse::{Fields, Filter};
use hybrid_search::{
    AnalyzerConfig, AnalyzerKind, Collection, Dataset, DenseOptions, FusionOverrides, IdList,
    LegFilter, LegLists, LegQuery, Legs, LocalLegs, Mode, SearchRequest, Snapshot, VectorKind,
    load_encoder, locate_model,
};
use hybrid_search_qdrant::fusion::explain;
use hybrid_search_qdrant::{QdrantFilter, ServerFusion};

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Python with qdrant-edge-py, or `None` (after saying so) when it is absent and not required.
fn edge_python() -> Option<PathBuf> {
    let python = std::env::var_os("HYBRID_SEARCH_EDGE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/qdrant-edge-venv/bin/python"));
    if python.exists() {
        return Some(python);
    }
    let message = format!(
        "no Python with qdrant-edge-py at {} (make it with scripts/fetch-qdrant-edge.sh, or \
         set HYBRID_SEARCH_EDGE_PYTHON)",
        python.display()
    );
    if std::env::var("HYBRID_SEARCH_REQUIRE_EDGE").is_ok_and(|v| v == "1") {
        panic!("{message}");
    }
    eprintln!("skipping: {message}");
    None
}

/// One query's answers from Qdrant Edge, as a [`Legs`] backend.
#[derive(Debug, Clone, Default, serde::Deserialize)]
struct EdgeRow {
    id: String,
    filter: Option<String>,
    sparse: Vec<(String, f32)>,
    dense: Vec<(String, f32)>,
    rrf: Vec<(String, f32)>,
    dbsf: Vec<(String, f32)>,
}

struct EdgeAnswer {
    row: EdgeRow,
    fusion: Option<ServerFusion>,
}

fn ids(list: &[(String, f32)], depth: usize) -> IdList {
    list.iter()
        .take(depth)
        .map(|(id, s)| (Arc::from(id.as_str()), *s))
        .collect()
}

impl Legs for EdgeAnswer {
    fn describe(&self) -> String {
        "Qdrant Edge".into()
    }

    fn search(&self, _: &Snapshot, query: &LegQuery<'_>) -> hybrid_search::Result<LegLists> {
        let depth = query.depth;
        let sparse = match query.sparse {
            true => ids(&self.row.sparse, depth),
            false => Vec::new(),
        };
        let dense = match query.dense {
            Some(_) => ids(&self.row.dense, depth),
            None => Vec::new(),
        };
        let fused = match (self.fusion, query.fused, query.dense) {
            (Some(fusion), Some(k), Some(_)) => {
                let server = match fusion {
                    ServerFusion::Rrf => ids(&self.row.rrf, k),
                    ServerFusion::Dbsf => ids(&self.row.dbsf, k),
                };
                Some(explain(fusion, &sparse, &dense, Some(server), depth)?)
            }
            _ => None,
        };
        Ok(LegLists {
            sparse,
            dense: Ok(dense),
            fused,
        })
    }
}

/// The collection's own legs, with the engine's equivalent of a server fusion: what the
/// engine ranks when it fuses as Qdrant does.
struct EngineLegs(Option<ServerFusion>);

impl Legs for EngineLegs {
    fn describe(&self) -> String {
        "the engine".into()
    }

    fn search(&self, snapshot: &Snapshot, query: &LegQuery<'_>) -> hybrid_search::Result<LegLists> {
        let mut lists = LocalLegs.search(snapshot, query)?;
        if let (Some(fusion), Some(_), Some(_)) = (self.0, query.fused, query.dense) {
            let dense = lists.dense?;
            lists.fused = Some(explain(fusion, &lists.sparse, &dense, None, query.depth)?);
            lists.dense = Ok(dense);
        }
        Ok(lists)
    }
}

/// The exported query vectors, by query id.
fn exported_queries(export: &Path) -> HashMap<String, Option<Vec<f32>>> {
    let text = std::fs::read_to_string(export).unwrap();
    text.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["type"] == "query")
        .map(|v| {
            let dense = v["vector"]["dense"].as_array().map(|a| {
                a.iter()
                    .map(|x| x.as_f64().unwrap() as f32)
                    .collect::<Vec<f32>>()
            });
            (v["id"].as_str().unwrap().to_string(), dense)
        })
        .collect()
}

/// Score lists equal position by position within `tol` (ties may order ids differently).
fn assert_scores_match(what: &str, qdrant: &IdList, engine: &IdList, tol: f32) -> f32 {
    assert_eq!(qdrant.len(), engine.len(), "{what}: list lengths differ");
    let mut worst = 0.0f32;
    for (i, (a, b)) in qdrant.iter().zip(engine).enumerate() {
        let d = (a.1 - b.1).abs();
        worst = worst.max(d);
        assert!(
            d <= tol,
            "{what}: rank {}: Qdrant {} {} vs engine {} {}",
            i + 1,
            a.0,
            a.1,
            b.0,
            b.1
        );
    }
    // The same documents, but where neighbouring scores tie within `tol` (the last position
    // may tie with a document the cut left out).
    let last = engine.len().saturating_sub(1);
    for (i, (a, b)) in qdrant.iter().zip(engine).enumerate() {
        let tied = |j: usize| {
            engine
                .get(j)
                .is_some_and(|(_, s)| (s - b.1).abs() <= tol.max(1e-6))
        };
        if a.0 != b.0 {
            assert!(
                i == last || (i > 0 && tied(i - 1)) || tied(i + 1),
                "{what}: rank {}: Qdrant {} vs engine {} with no tie",
                i + 1,
                a.0,
                b.0
            );
        }
    }
    worst
}

/// Checks Qdrant's RRF list (`k` = 61 with ranks from 0) against the engine's formula (`k` =
/// 60, ranks from 1) on Qdrant's own leg lists: each document's fused score must be
/// `sum 1 / (60 + rank)` over the legs whose top `depth` hold it. A leg's tied scores come in
/// no set order (a query with another limit may order them differently), so a document's rank
/// in a leg may be any position of its tie group: the score must lie between the sums over the
/// group's last and first positions. Returns the largest amount a score falls outside them
/// (asserted to be at most 1e-6), and checks the list is sorted.
fn rrf_outside_tie_bounds(what: &str, row: &EdgeRow, depth: usize) -> f32 {
    // Per leg: document -> (first, last) 1-based rank of its tie group.
    let spans = |list: &[(String, f32)]| -> HashMap<String, (usize, usize)> {
        let mut out = HashMap::new();
        let mut start = 0;
        while start < list.len() {
            let mut end = start;
            while end + 1 < list.len() && (list[end + 1].1 - list[end].1).abs() <= 1e-6 {
                end += 1;
            }
            for (id, _) in &list[start..=end] {
                out.insert(id.clone(), (start + 1, end + 1));
            }
            start = end + 1;
        }
        out
    };
    let legs = [spans(&row.sparse), spans(&row.dense)];
    let mut worst = 0.0f32;
    for (i, (id, score)) in row.rrf.iter().enumerate() {
        let (mut lo, mut hi) = (0.0f64, 0.0f64);
        for leg in &legs {
            if let Some(&(first, last)) = leg.get(id) {
                if last <= depth {
                    lo += 1.0 / (60.0 + last as f64);
                }
                if first <= depth {
                    hi += 1.0 / (60.0 + first as f64);
                }
            }
        }
        let s = f64::from(*score);
        let outside = (lo - s).max(s - hi).max(0.0) as f32;
        worst = worst.max(outside);
        assert!(
            outside <= 1e-6,
            "{what} RRF: rank {}: {id} scores {s}, the engine's formula gives {lo} to {hi}",
            i + 1
        );
        if i > 0 {
            assert!(
                row.rrf[i - 1].1 >= *score,
                "{what} RRF: not sorted at {}",
                i + 1
            );
        }
    }
    worst
}

type Ranked = Vec<(String, f32)>;
/// One query's (under one filter) largest differences (BM25, dense, RRF), the documents checked
/// against its filter, and each mode's (engine, Qdrant) lists.
type QueryParity = ([f32; 3], usize, Vec<(Ranked, Ranked)>);

struct Parity {
    /// nDCG@10 (filter, mode, engine, Qdrant) per filter (`-`: none) and mode.
    ndcg: Vec<(String, &'static str, f64, f64)>,
    worst_bm25: f32,
    worst_dense: f32,
    worst_rrf: f32,
    /// Documents Qdrant returned under a filter, each checked against it.
    filtered_hits: usize,
}

/// Exports `collection` with `dataset`'s queries, runs them in Qdrant Edge (unfiltered and
/// under each of `filters`), and compares.
fn parity(
    collection: &Collection,
    dataset: &Dataset,
    filters: &[(&str, Filter)],
    python: &Path,
    tmp: &Path,
) -> Parity {
    let export = tmp.join("export.jsonl");
    let started = Instant::now();
    let report = hybrid_search_qdrant::export(collection, &export, Some(dataset), &|_, _| {})
        .expect("export");
    let bytes = std::fs::metadata(&export).unwrap().len();
    eprintln!(
        "export: {} points, {} queries, {:.1} s, {} bytes ({:.0} bytes per point line, {:.0} \
         per point in gRPC); term ids: {} terms -> {} ids, {} colliding ({:.4}%), {} merged \
         within a document",
        report.points,
        report.queries,
        started.elapsed().as_secs_f64(),
        bytes,
        report.point_bytes as f64 / report.points.max(1) as f64,
        report.grpc_point_bytes as f64 / report.points.max(1) as f64,
        report.collisions.terms,
        report.collisions.ids,
        report.collisions.colliding_terms,
        100.0 * report.collisions.colliding_terms as f64 / report.collisions.terms.max(1) as f64,
        report.merged_terms
    );
    // Each filter as Qdrant's (what a search through Qdrant sends) and compiled for the
    // engine's own legs.
    let filters_file = tmp.join("filters.jsonl");
    let mut lines = String::new();
    for (name, filter) in filters {
        let qdrant = QdrantFilter::translate(filter, collection.fields()).expect("translate");
        lines.push_str(&format!(
            "{}\n",
            serde_json::json!({"name": name, "filter": qdrant.to_json()})
        ));
    }
    std::fs::write(&filters_file, lines).unwrap();
    type Variant<'f> = (Option<&'f str>, Option<(&'f Filter, Arc<LegFilter>)>);
    let variants: Vec<Variant> = std::iter::once((None, None))
        .chain(filters.iter().map(|(name, f)| {
            let compiled = Arc::new(LegFilter::new(collection, f).expect("compile the filter"));
            (Some(*name), Some((f, compiled)))
        }))
        .collect();
    let fields_of: HashMap<&str, &Fields> = dataset
        .corpus
        .iter()
        .map(|d| (d.id.as_str(), &d.fields))
        .collect();
    let hybrid = collection.hybrid_options();
    let fused_depth = hybrid.depth.max(EVAL_DEPTH_FUSED_MIN);
    let answers = tmp.join("edge.jsonl");
    let status = Command::new(python)
        .arg(workspace().join("scripts/qdrant_edge_parity.py"))
        .arg(&export)
        .arg(&answers)
        .args(["--depth", &EVAL_DEPTH_ONE_LEG.to_string()])
        .args(["--fused-depth", &fused_depth.to_string()])
        .arg("--exact")
        .arg("--filters")
        .arg(&filters_file)
        .status()
        .expect("run the Qdrant Edge script");
    assert!(status.success(), "the Qdrant Edge script failed");
    if let Some(keep) = std::env::var_os("HYBRID_SEARCH_KEEP_PARITY") {
        std::fs::copy(&export, Path::new(&keep).join("export.jsonl")).unwrap();
        std::fs::copy(&answers, Path::new(&keep).join("edge.jsonl")).unwrap();
        std::fs::copy(&filters_file, Path::new(&keep).join("filters.jsonl")).unwrap();
    }
    let text = std::fs::read_to_string(&answers).unwrap();
    let mut rows: HashMap<(String, Option<String>), EdgeRow> = HashMap::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["type"] == "timing" {
            eprintln!("Qdrant Edge: {v}");
            continue;
        }
        let row: EdgeRow = serde_json::from_value(v).unwrap();
        rows.insert((row.id.clone(), row.filter.clone()), row);
    }
    let vectors = exported_queries(&export);
    let dense_leg = collection.manifest().dense.is_some();
    let modes: Vec<(&'static str, Mode, Option<ServerFusion>)> = if dense_leg {
        vec![
            ("sparse", Mode::Sparse, None),
            ("dense", Mode::Dense, None),
            ("hybrid", Mode::Hybrid, None),
            ("hybrid server-rrf", Mode::Hybrid, Some(ServerFusion::Rrf)),
            ("hybrid server-dbsf", Mode::Hybrid, Some(ServerFusion::Dbsf)),
        ]
    } else {
        vec![("sparse", Mode::Sparse, None)]
    };
    // Per query and variant: the largest differences (BM25, dense, RRF), the filtered hits
    // checked, and each mode's (engine, Qdrant) lists.
    let per_query: Vec<Vec<QueryParity>> = dataset
        .queries
        .par_iter()
        .map(|q| {
            variants
                .iter()
                .map(|(name, filter)| {
                    let row = &rows[&(q.id.clone(), name.map(str::to_string))];
                    let label = format!("query {} filter {}", q.id, name.unwrap_or("-"));
                    compare_query(
                        collection,
                        q,
                        row,
                        vectors[&q.id].as_deref(),
                        filter.as_ref().map(|(f, c)| (*f, c)),
                        &fields_of,
                        &modes,
                        fused_depth,
                        &label,
                    )
                })
                .collect()
        })
        .collect();
    let mut runs: HashMap<(Option<&str>, &str), (metrics::Run, metrics::Run)> = HashMap::new();
    let (mut worst_bm25, mut worst_dense, mut worst_rrf) = (0.0f32, 0.0f32, 0.0f32);
    let mut filtered_hits = 0;
    for (q, per_variant) in dataset.queries.iter().zip(per_query) {
        for ((name, _), (worst, checked, lists)) in variants.iter().zip(per_variant) {
            worst_bm25 = worst_bm25.max(worst[0]);
            worst_dense = worst_dense.max(worst[1]);
            worst_rrf = worst_rrf.max(worst[2]);
            filtered_hits += checked;
            for ((mode, _, _), (local, through)) in modes.iter().zip(lists) {
                let entry = runs.entry((*name, *mode)).or_default();
                entry.0.insert(q.id.clone(), local);
                entry.1.insert(q.id.clone(), through);
            }
        }
    }
    let mut ndcg = Vec::new();
    for (name, _) in &variants {
        for (mode, _, _) in &modes {
            let (local, through) = &runs[&(*name, *mode)];
            let (engine, _) = metrics::evaluate(&dataset.qrels, local);
            let (qdrant, _) = metrics::evaluate(&dataset.qrels, through);
            let name = name.unwrap_or("-").to_string();
            eprintln!(
                "filter {name}, {mode}: nDCG@10 engine {:.4}, through Qdrant {:.4}",
                engine.ndcg_at_10, qdrant.ndcg_at_10
            );
            ndcg.push((name, *mode, engine.ndcg_at_10, qdrant.ndcg_at_10));
        }
    }
    eprintln!(
        "largest differences: BM25 {worst_bm25:e}, dense top-10 {worst_dense:e}, RRF outside \
         its tie bounds {worst_rrf:e}; {filtered_hits} documents returned under a filter, each \
         passing it"
    );
    Parity {
        ndcg,
        worst_bm25,
        worst_dense,
        worst_rrf,
        filtered_hits,
    }
}

/// One query (under one filter or none): Qdrant Edge's legs against the engine's, score by
/// score; every document Qdrant returned under the filter passes it; and each mode's ranking
/// in the engine and through Qdrant. Returns the largest differences (BM25, dense, RRF), the
/// documents checked against the filter, and each mode's (engine, Qdrant) lists.
#[allow(clippy::too_many_arguments)]
fn compare_query(
    collection: &Collection,
    q: &hybrid_search::Query,
    row: &EdgeRow,
    vector: Option<&[f32]>,
    filter: Option<(&Filter, &Arc<LegFilter>)>,
    fields_of: &HashMap<&str, &Fields>,
    modes: &[(&'static str, Mode, Option<ServerFusion>)],
    fused_depth: usize,
    label: &str,
) -> QueryParity {
    let (mut worst_bm25, mut worst_dense, mut worst_rrf) = (0.0f32, 0.0f32, 0.0f32);
    let compiled = filter.map(|(_, c)| c.as_ref());
    let mut checked = 0;
    if let Some((f, _)) = filter {
        let empty = Fields::new();
        for list in [&row.sparse, &row.dense, &row.rrf, &row.dbsf] {
            for (id, _) in list {
                let fields = fields_of.get(id.as_str()).copied().unwrap_or(&empty);
                assert!(f.matches(id, fields), "{label}: {id} fails the filter");
                checked += 1;
            }
        }
    }
    // The legs, score by score.
    let engine_sparse = LocalLegs
        .search(
            collection,
            &LegQuery::sparse(&q.text, EVAL_DEPTH_ONE_LEG).with_filter(compiled),
        )
        .unwrap()
        .sparse;
    worst_bm25 = worst_bm25.max(assert_scores_match(
        &format!("{label} BM25"),
        &ids(&row.sparse, EVAL_DEPTH_ONE_LEG),
        &engine_sparse,
        1e-4,
    ));
    if let Some(v) = vector {
        let engine_dense = LocalLegs
            .search(
                collection,
                &LegQuery::dense(&q.text, v, 10).with_filter(compiled),
            )
            .unwrap()
            .dense
            .unwrap();
        worst_dense = worst_dense.max(assert_scores_match(
            &format!("{label} dense top-10"),
            &ids(&row.dense, 10),
            &engine_dense,
            1e-5,
        ));
        worst_rrf = worst_rrf.max(rrf_outside_tie_bounds(label, row, fused_depth));
    }
    let hybrid = collection.hybrid_options();
    let mut lists = Vec::with_capacity(modes.len());
    for (_, mode, fusion) in modes {
        let depth = if *mode == Mode::Hybrid {
            fused_depth
        } else {
            EVAL_DEPTH_ONE_LEG
        };
        let request = |legs: Arc<dyn Legs>| {
            let request = SearchRequest::new(&q.text, depth)
                .with_mode(*mode)
                .with_fusion(FusionOverrides::exactly(hybrid))
                .with_filter(filter.map(|(f, _)| f.clone()))
                .with_legs(legs);
            match vector {
                Some(v) if *mode != Mode::Sparse => request.with_vector(v.to_vec()),
                _ => request,
            }
        };
        let remote = EdgeAnswer {
            row: row.clone(),
            fusion: *fusion,
        };
        let through = collection.rank(&request(Arc::new(remote))).unwrap();
        // The engine's own legs; with a server fusion, fused by the engine's equivalent of it
        // (RRF k = 60; DBSF with Qdrant's rule for a missing document).
        let local = collection
            .rank(&request(Arc::new(EngineLegs(*fusion))))
            .unwrap();
        let as_run = |hits: Vec<hybrid_search::fusion::FusedHit<Arc<str>>>| {
            hits.into_iter()
                .map(|h| (h.id.to_string(), h.score as f32))
                .collect::<Vec<_>>()
        };
        lists.push((as_run(local.hits), as_run(through.hits)));
    }
    ([worst_bm25, worst_dense, worst_rrf], checked, lists)
}

fn assert_parity(p: &Parity) {
    for (filter, mode, engine, qdrant) in &p.ndcg {
        assert!(
            (engine - qdrant).abs() <= 0.003,
            "filter {filter}, {mode}: nDCG@10 {engine:.4} in the engine, {qdrant:.4} through \
             Qdrant"
        );
    }
    assert!(p.worst_bm25 <= 1e-4 && p.worst_dense <= 1e-5 && p.worst_rrf <= 1e-6);
}

/// A collection of `dataset`'s corpus in `dir`, with an exact vector index for `encoder`.
fn build(dir: &Path, dataset: &Dataset, encoder: Option<Arc<Encoder>>) -> Collection {
    let started = Instant::now();
    let dense = encoder.map(|e| {
        let options = DenseOptions {
            kind: VectorKind::Exact,
            ..DenseOptions::for_encoder(&e)
        };
        (e, options)
    });
    let mut collection =
        Collection::create_with(dir, AnalyzerConfig::for_kind(AnalyzerKind::Auto), dense).unwrap();
    collection.add(&dataset.corpus, None).unwrap();
    eprintln!(
        "indexed {} documents in {:.1} s",
        dataset.corpus.len(),
        started.elapsed().as_secs_f64()
    );
    collection
}

#[test]
fn fixture_corpus_ranks_the_same_in_qdrant_edge() {
    let Some(python) = edge_python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    // A BEIR folder: the medical fixture (Korean and English), each title as a query judged
    // to find its document.
    let beir = tmp.path().join("beir");
    std::fs::create_dir_all(beir.join("qrels")).unwrap();
    std::fs::copy(
        workspace().join("fixtures/medical.jsonl"),
        beir.join("corpus.jsonl"),
    )
    .unwrap();
    let corpus = hybrid_search::eval::read_corpus(&beir.join("corpus.jsonl")).unwrap();
    let mut queries = String::new();
    let mut qrels = String::from("query-id\tcorpus-id\tscore\n");
    for (i, d) in corpus.iter().enumerate() {
        let text = if d.title.is_empty() {
            d.text.chars().take(40).collect()
        } else {
            d.title.clone()
        };
        queries.push_str(&format!(
            "{}\n",
            serde_json::json!({"_id": format!("q{i}"), "text": text})
        ));
        qrels.push_str(&format!("q{i}\t{}\t1\n", d.id));
    }
    std::fs::write(beir.join("queries.jsonl"), queries).unwrap();
    std::fs::write(beir.join("qrels/test.tsv"), qrels).unwrap();
    let mut dataset = hybrid_search::eval::load_dataset(&beir, "test").unwrap();
    give_fields(&mut dataset);
    let model = tmp.path().join("model");
    TinyModel::default().write(&model).unwrap();
    let encoder = Arc::new(Encoder::load(&model, &Device::Cpu).unwrap());
    let collection = build(&tmp.path().join("c"), &dataset, Some(encoder));
    let first: Vec<&str> = dataset
        .corpus
        .iter()
        .take(3)
        .map(|d| d.id.as_str())
        .collect();
    let filter = |v: serde_json::Value| Filter::from_json(&v).unwrap();
    // Every condition and type (bool left out: see scripts/qdrant_edge_parity.py).
    let filters = [
        (
            "source-eq",
            filter(json!({"field": "source", "eq": "pubmed"})),
        ),
        (
            "source-in",
            filter(json!({"field": "source", "in": ["kci", "arxiv"]})),
        ),
        (
            "year-range",
            filter(json!({"field": "metadata.year", "gte": 2009.5, "lt": 2020})),
        ),
        (
            "year-in",
            filter(json!({"field": "metadata.year", "in": [2001, 2007, 2014]})),
        ),
        ("score-eq", filter(json!({"field": "score", "eq": 0.5}))),
        (
            "score-range",
            filter(json!({"field": "score", "gt": 0.25, "lte": 1.5})),
        ),
        (
            "score-missing",
            filter(json!({"field": "score", "exists": false})),
        ),
        (
            "published-eq",
            filter(json!({"field": "published", "eq": "2024-02-02"})),
        ),
        (
            "published-range",
            filter(
                json!({"field": "published", "gte": "2024-03-01", "lt": "2024-09-01T00:00:00+09:00"}),
            ),
        ),
        (
            "not-tags",
            filter(json!({"not": {"field": "tags", "in": ["t0"]}})),
        ),
        (
            "or-id-year",
            filter(
                json!({"or": [{"field": "id", "in": first}, {"field": "metadata.year", "eq": 2003}]}),
            ),
        ),
        (
            "and-source-tags",
            filter(
                json!({"and": [{"field": "source", "eq": "medline"}, {"field": "tags", "eq": "t1"}]}),
            ),
        ),
        ("no-id", filter(json!({"field": "id", "exists": false}))),
    ];
    let p = parity(&collection, &dataset, &filters, &python, tmp.path());
    assert_parity(&p);
    // Some BM25 score is large enough for 1e-4 to be a real bound.
    assert!(
        p.ndcg
            .iter()
            .filter(|(f, ..)| f == "-")
            .all(|(_, _, e, _)| *e > 0.0)
    );
    assert!(p.filtered_hits > 0);
}

/// Gives each document of `dataset` fields of every type, from its position (some without
/// `score`; `tags` an array): what the filtered runs filter on.
fn give_fields(dataset: &mut Dataset) {
    const SOURCES: [&str; 4] = ["pubmed", "kci", "arxiv", "medline"];
    for (i, d) in dataset.corpus.iter_mut().enumerate() {
        let mut set = |name: &str, value: serde_json::Value| {
            d.fields.insert(name.to_string(), value);
        };
        set("source", json!(SOURCES[i % 4]));
        set("metadata.year", json!(2000 + (i * 7) % 25));
        if i % 5 != 0 {
            set("score", json!((i % 9) as f64 * 0.25 + 0.25));
        }
        set(
            "published",
            json!(format!("2024-{:02}-{:02}", 1 + i % 12, 1 + i % 28)),
        );
        set(
            "tags",
            json!([format!("t{}", i % 3), format!("t{}", i % 5)]),
        );
        set("open", json!(i % 2 == 0));
    }
}

/// `../shared/data/<name>` and `models/<model>`, or `None` (after saying so).
fn real(name: &str, model: &str) -> Option<(PathBuf, PathBuf)> {
    let data = workspace().join("../shared/data").join(name);
    let Some(model_dir) = locate_model(model).or_else(|| {
        let d = workspace().join("models").join(model);
        d.is_dir().then_some(d)
    }) else {
        eprintln!("skipping: model {model} is absent (scripts/fetch-models.sh)");
        return None;
    };
    if !data.exists() {
        eprintln!("skipping: {} is absent", data.display());
        return None;
    }
    Some((data, model_dir))
}

/// Parity on a real dataset; with `filtered`, its documents get [`give_fields`] and every
/// query runs again under three filters (about half, a quarter and 2% of the corpus).
fn real_parity(data: &Path, split: &str, model: &Path, filtered: bool) {
    let Some(python) = edge_python() else { return };
    let mut dataset = hybrid_search::eval::load_dataset(data, split).unwrap();
    let filters = if filtered {
        give_fields(&mut dataset);
        let filter = |v: serde_json::Value| Filter::from_json(&v).unwrap();
        vec![
            (
                "year-half",
                filter(json!({"field": "metadata.year", "gte": 2012})),
            ),
            (
                "source-quarter",
                filter(json!({"field": "source", "eq": "pubmed"})),
            ),
            (
                "narrow",
                filter(
                    json!({"and": [{"field": "source", "eq": "kci"}, {"field": "metadata.year", "in": [2001, 2008]}]}),
                ),
            ),
        ]
    } else {
        Vec::new()
    };
    let encoder = load_encoder(model, WeightFormat::default()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let collection = build(&tmp.path().join("c"), &dataset, Some(encoder));
    let p = parity(&collection, &dataset, &filters, &python, tmp.path());
    assert_parity(&p);
    if filtered {
        assert!(p.filtered_hits > 0);
    }
}

#[test]
fn scifact_minilm_ranks_the_same_in_qdrant_edge() {
    let Some((data, model)) = real("scifact", "all-MiniLM-L6-v2") else {
        return;
    };
    real_parity(&data, "test", &model, true);
}

#[test]
fn korquad_e5_ranks_the_same_in_qdrant_edge() {
    let Some((data, model)) = real(
        "korquad-v1-dev/KorQuAD_v1.0_dev.json",
        "multilingual-e5-small",
    ) else {
        return;
    };
    real_parity(&data, "test", &model, false);
}
