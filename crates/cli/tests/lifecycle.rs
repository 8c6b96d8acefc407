//! The document lifecycle through the binary on a tiny random model: add, delete, verify,
//! repair, explain and tune, and what bad input and damaged files do (a clear error, no
//! committed document lost).

mod common;

use std::path::{Path, PathBuf};

use common::{beir_fixture, err, hs, index_with_model, ok, problems, s};
use hybrid_search::dense::TinyModel;

/// The fixture corpus indexed with a tiny model into `dir/idx`: (index, model).
fn dense_fixture(dir: &Path) -> (PathBuf, PathBuf) {
    let (index, model) = (dir.join("idx"), dir.join("tiny"));
    TinyModel::default().write(&model).unwrap();
    index_with_model(&index, &model, &[]);
    (index, model)
}

fn documents(index: &Path) -> u64 {
    let v: serde_json::Value =
        serde_json::from_str(&ok(&["verify", "--index", s(index), "--json"])).unwrap();
    assert_eq!(v["problems"].as_array().unwrap().len(), 0, "{v}");
    assert_eq!(v["documents"], v["vectors"], "{v}");
    v["documents"].as_u64().unwrap()
}

fn search_json(index: &Path, model: &Path, extra: &[&str], query: &str) -> serde_json::Value {
    let mut args = vec!["search", "--index", s(index), "--model", s(model), "--json"];
    args.extend_from_slice(extra);
    args.push(query);
    serde_json::from_str(&ok(&args)).unwrap()
}

#[test]
fn add_delete_verify_and_explain() {
    let tmp = tempfile::tempdir().unwrap();
    let (index, model) = dense_fixture(tmp.path());
    assert_eq!(documents(&index), 30);

    let file = tmp.path().join("more.jsonl");
    std::fs::write(
        &file,
        "{\"_id\": \"new-1\", \"title\": \"Zebrafish\", \"text\": \"zebrafish fins regenerate\"}\n\
         {\"_id\": \"en-02\", \"title\": \"Replaced\", \"text\": \"tocilizumab replaced text\"}\n",
    )
    .unwrap();
    let out = hs(&["add", "--index", s(&index), "--model", s(&model), s(&file)]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("1 new, 1 replaced"), "{stderr}");
    assert_eq!(documents(&index), 31);

    // Hybrid is the default; --explain gives each leg's rank, raw and normalised score.
    let v = search_json(&index, &model, &["--explain", "-k", "3"], "zebrafish");
    assert_eq!(v["mode"], "hybrid");
    let hit = &v["hits"][0];
    assert_eq!(hit["id"], "new-1");
    let legs = hit["legs"].as_array().unwrap();
    assert_eq!(legs.len(), 2);
    assert_eq!(
        (&legs[0]["leg"], &legs[0]["rank"]),
        (&"sparse".into(), &1.into())
    );
    assert!(legs[1]["raw_score"].is_number() && legs[1]["normalized"].is_number());
    let sum = legs[0]["contribution"].as_f64().unwrap() + legs[1]["contribution"].as_f64().unwrap();
    assert!((sum - hit["score"].as_f64().unwrap()).abs() < 1e-9);
    let text = ok(&[
        "search",
        "--index",
        s(&index),
        "--model",
        s(&model),
        "--explain",
        "-k",
        "1",
        "zebrafish",
    ]);
    assert!(
        text.contains("hybrid: convex") && text.contains("sparse rank 1"),
        "{text}"
    );
    assert!(text.contains("dense  rank"), "{text}");
    // Without --explain no per-leg detail.
    let v = search_json(&index, &model, &[], "zebrafish");
    assert!(v["hits"][0].get("legs").is_none(), "{v}");

    let out = hs(&["delete", "--index", s(&index), "new-1", "absent"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("deleted 1 of 2"));
    assert_eq!(documents(&index), 30);
    let v = search_json(
        &index,
        &model,
        &["--mode", "dense", "-k", "30"],
        "zebrafish",
    );
    assert!(
        v["hits"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["id"] != "new-1")
    );
}

#[test]
fn bad_input_and_another_model_leave_the_collection_as_it_was() {
    let tmp = tempfile::tempdir().unwrap();
    let (index, model) = dense_fixture(tmp.path());
    let good = "{\"_id\": \"new-1\", \"text\": \"zebrafish\"}\n";
    let cases = [
        (
            "broken.jsonl",
            format!("{good}{{\"_id\": \"x\", \"text\": \n"),
            "line 2",
        ),
        ("dup.jsonl", format!("{good}{good}"), "duplicate"),
    ];
    for (name, body, what) in cases {
        let path = tmp.path().join(name);
        std::fs::write(&path, body).unwrap();
        let msg = err(&["add", "--index", s(&index), "--model", s(&model), s(&path)]);
        assert!(msg.contains(name) && msg.contains(what), "{name}: {msg}");
        assert_eq!(documents(&index), 30, "{name}");
    }
    let other = tmp.path().join("other");
    TinyModel {
        seed: 9,
        ..TinyModel::default()
    }
    .write(&other)
    .unwrap();
    let path = tmp.path().join("ok.jsonl");
    std::fs::write(&path, good).unwrap();
    let msg = err(&["add", "--index", s(&index), "--model", s(&other), s(&path)]);
    assert!(
        msg.contains("fingerprint") && msg.contains("--model"),
        "{msg}"
    );
    assert_eq!(documents(&index), 30);
}

#[test]
fn damaged_files_are_named_and_vectors_can_be_rebuilt() {
    let tmp = tempfile::tempdir().unwrap();
    let (index, model) = dense_fixture(tmp.path());
    let vectors = index.join("dense/seg-00000000.hnsw");
    let bytes = std::fs::read(&vectors).unwrap();
    std::fs::write(&vectors, &bytes[..bytes.len() - 100]).unwrap();

    let msg = problems(&["verify", "--index", s(&index)]);
    assert!(msg.contains("1 problems"), "{msg}");
    let out = String::from_utf8(hs(&["verify", "--index", s(&index)]).stdout).unwrap();
    assert!(
        out.contains("seg-00000000.hnsw") && out.contains("repair"),
        "{out}"
    );
    // Search still answers, from the sparse leg, and says so.
    let out = hs(&[
        "search",
        "--index",
        s(&index),
        "--model",
        s(&model),
        "--json",
        "tocilizumab",
    ]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("sparse leg only"));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (&v["mode"], &v["hits"][0]["id"]),
        (&"sparse".into(), &"en-02".into())
    );
    // Writing is refused until the vectors are rebuilt; nothing is lost.
    let file = tmp.path().join("one.jsonl");
    std::fs::write(&file, "{\"_id\": \"n\", \"text\": \"x\"}\n").unwrap();
    let msg = err(&["add", "--index", s(&index), "--model", s(&model), s(&file)]);
    assert!(msg.contains("repair"), "{msg}");
    ok(&["repair", "--index", s(&index), "--model", s(&model)]);
    assert_eq!(documents(&index), 30);
    let v = search_json(&index, &model, &[], "tocilizumab");
    assert_eq!(v["mode"], "hybrid");

    // The sparse leg holds the documents: a missing or truncated file there is named, with
    // what to do.
    let segment = std::fs::read_dir(index.join("sparse"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "store"))
        .unwrap();
    std::fs::write(&segment, b"truncated").unwrap();
    let msg = err(&["search", "--index", s(&index), "x"]);
    assert!(
        msg.contains(".store") && msg.contains("rebuild it") && msg.contains("backup"),
        "{msg}"
    );
    std::fs::remove_file(&segment).unwrap();
    let msg = err(&["verify", "--index", s(&index)]);
    assert!(msg.contains(".store") && msg.contains("sparse/"), "{msg}");
    std::fs::write(index.join("manifest.json"), "{\"format_version\": ").unwrap();
    let msg = err(&["verify", "--index", s(&index)]);
    assert!(
        msg.contains("manifest.json") && msg.contains("rebuilt"),
        "{msg}"
    );
}

#[test]
fn tune_prints_the_table_and_stores_the_winner() {
    let tmp = tempfile::tempdir().unwrap();
    let (index, model) = dense_fixture(tmp.path());
    let beir = beir_fixture(
        tmp.path(),
        &[("q1", "tocilizumab"), ("q2", "HbA1c")],
        &[("train", &[("q1", "en-02"), ("q2", "ko-01")])],
    );
    let tune = |extra: &[&str]| {
        let mut args = vec![
            "tune",
            "--index",
            s(&index),
            "--dataset",
            s(&beir),
            "--model",
            s(&model),
        ];
        args.extend_from_slice(extra);
        ok(&args)
    };
    let table = tune(&["--dry-run", "--top", "3"]);
    // 186 fusion settings, each without feedback, with RM3, Rocchio and both.
    assert!(table.contains("744 settings on 2 queries"), "{table}");
    assert!(
        table.contains("rank  nDCG@10") && table.contains("dry run"),
        "{table}"
    );
    let manifest = std::fs::read_to_string(index.join("manifest.json")).unwrap();
    assert!(!manifest.contains("\"search\""), "a dry run stores nothing");

    let v: serde_json::Value = serde_json::from_str(&tune(&["--json"])).unwrap();
    let best = &v["rows"][0];
    assert_eq!(v["rows"].as_array().unwrap().len(), 744);
    assert_eq!(v["tuned"]["ndcg@10"], serde_json::Value::Null);
    assert_eq!(v["tuned"]["ndcg_at_10"], best["ndcg@10"]);
    // Searches without fusion flags now use the stored winner, and eval reproduces its score.
    let search = search_json(&index, &model, &[], "tocilizumab");
    assert_eq!(search["fusion"], best["fusion"]);
    let out = ok(&[
        "eval",
        "--index",
        s(&index),
        "--dataset",
        s(&beir),
        "--split",
        "train",
        "--model",
        s(&model),
        "--json",
    ]);
    let eval: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(eval["ndcg@10"], best["ndcg@10"]);
    assert_eq!(eval["fusion"], best["fusion"]);
}
