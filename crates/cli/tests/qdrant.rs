//! `hybrid-search qdrant export`, and the errors of `qdrant sync` and `search --qdrant` that
//! need no server. (Searches through Qdrant's engine: crates/qdrant/tests.)

mod common;

use common::{beir_fixture, err, ok, s};

#[test]
fn export_writes_the_collection_points_and_queries() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("tiny");
    hybrid_search::dense::TinyModel::default()
        .write(&model)
        .unwrap();
    let index = tmp.path().join("idx");
    common::index_with_model(&index, &model, &[]);
    let beir = beir_fixture(
        tmp.path(),
        &[("q1", "IL-6 sepsis"), ("q2", "당뇨병 혈당")],
        &[("test", &[("q1", "en-01"), ("q2", "ko-01")])],
    );
    let out = tmp.path().join("points.jsonl");
    let text = ok(&[
        "qdrant",
        "export",
        "--index",
        s(&index),
        "--out",
        s(&out),
        "--queries",
        s(&beir),
        "--model",
        s(&model),
    ]);
    assert!(text.contains("30 points, 2 queries"), "{text}");
    assert!(text.contains("term ids:"), "{text}");
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1 + 30 + 2);
    let spec = &lines[0];
    assert_eq!(spec["type"], "collection");
    assert_eq!(spec["dense"]["distance"], "Cosine");
    assert_eq!(spec["dense"]["multivector"], "max_sim");
    assert_eq!(spec["bm25"]["live_docs"], 30);
    let point = lines
        .iter()
        .find(|l| l["type"] == "point" && l["payload"]["doc_id"] == "en-01")
        .unwrap();
    let dim = spec["dense"]["size"].as_u64().unwrap() as usize;
    assert_eq!(point["vector"]["dense"][0].as_array().unwrap().len(), dim);
    let bm25 = &point["vector"]["bm25"];
    let indices = bm25["indices"].as_array().unwrap();
    assert!(!indices.is_empty() && indices.len() == bm25["values"].as_array().unwrap().len());
    assert!(indices.windows(2).all(|w| w[0].as_u64() < w[1].as_u64()));
    assert_eq!(
        point["id"],
        hybrid_search_qdrant::point_id("en-01").to_string()
    );
    let query = &lines[31];
    assert_eq!(
        (&query["type"], &query["id"]),
        (&"query".into(), &"q1".into())
    );
    assert_eq!(query["vector"]["dense"].as_array().unwrap().len(), dim);
    // The query's BM25 vector meets the document's.
    let q_ids = query["vector"]["bm25"]["indices"].as_array().unwrap();
    assert!(q_ids.iter().any(|i| indices.contains(i)));
}

#[test]
fn qdrant_flags_fail_clearly_without_a_server() {
    let tmp = tempfile::tempdir().unwrap();
    let index = common::indexed_fixture(tmp.path());
    // Nothing listens on port 9 of this machine.
    let url = "http://127.0.0.1:9";
    let msg = err(&[
        "search",
        "--index",
        s(&index),
        "--qdrant",
        url,
        "--collection",
        "med",
        "IL-6",
    ]);
    assert!(msg.contains(url) && msg.contains("\"med\""), "{msg}");
    let msg = err(&[
        "qdrant",
        "sync",
        "--index",
        s(&index),
        "--url",
        url,
        "--collection",
        "med",
    ]);
    assert!(msg.contains("does not answer"), "{msg}");
    let msg = err(&[
        "search",
        "--index",
        s(&index),
        "--fusion",
        "server-rrf",
        "IL-6",
    ]);
    assert!(msg.contains("--qdrant URL --collection NAME"), "{msg}");
}
