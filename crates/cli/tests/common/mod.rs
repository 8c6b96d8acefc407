//! Helpers shared by the CLI's test files: run the binary, expect success or failure, find
//! the fixtures.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn hs(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hybrid-search"))
        .args(args)
        .output()
        .expect("runs")
}

pub fn ok(args: &[&str]) -> String {
    let out = hs(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs a command that cannot run and returns its stderr: exit status 2 to 7, by the kind of
/// failure (`crates/cli/src/main.rs`; [`err_with`] checks which).
pub fn err(args: &[&str]) -> String {
    let out = hs(args);
    assert!(
        matches!(out.status.code(), Some(2..=7)),
        "{args:?} should fail with a status from 2 to 7, not {:?}",
        out.status.code()
    );
    String::from_utf8(out.stderr).unwrap()
}

/// [`err`] for a command that must fail with exit status `status`.
pub fn err_with(status: i32, args: &[&str]) -> String {
    let out = hs(args);
    assert_eq!(
        out.status.code(),
        Some(status),
        "{args:?} should fail with status {status}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stderr).unwrap()
}

/// Runs `verify` on a collection with problems (exit status 1) and returns its stderr.
#[allow(dead_code)]
pub fn problems(args: &[&str]) -> String {
    let out = hs(args);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{args:?} should find problems (status 1)"
    );
    String::from_utf8(out.stderr).unwrap()
}

pub fn fixture(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures")
        .join(name);
    p.to_str().unwrap().to_string()
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

pub fn top_ids(index: &Path, query: &str, k: &str) -> Vec<String> {
    let out = ok(&["search", "--index", s(index), "-k", k, "--json", query]);
    hit_ids(&serde_json::from_str(&out).unwrap())
}

/// The ids of a `search --json` output's hits, in order.
pub fn hit_ids(v: &serde_json::Value) -> Vec<String> {
    v["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_str().unwrap().to_string())
        .collect()
}

/// Indexes the fixture corpus with the default analyzer into `dir/idx`.
pub fn indexed_fixture(dir: &Path) -> PathBuf {
    let index = dir.join("idx");
    let dataset = fixture("medical.jsonl");
    ok(&["index", "--index", s(&index), "--dataset", &dataset]);
    index
}

/// A BEIR folder `dir/beir` over the fixture corpus with `queries` (id, text) and, per split,
/// its qrels (query id, relevant document id).
pub fn beir_fixture(
    dir: &Path,
    queries: &[(&str, &str)],
    qrels: &[(&str, &[(&str, &str)])],
) -> PathBuf {
    let beir = dir.join("beir");
    std::fs::create_dir_all(beir.join("qrels")).unwrap();
    std::fs::copy(fixture("medical.jsonl"), beir.join("corpus.jsonl")).unwrap();
    let lines: String = queries
        .iter()
        .map(|(id, text)| format!("{}\n", serde_json::json!({"_id": id, "text": text})))
        .collect();
    std::fs::write(beir.join("queries.jsonl"), lines).unwrap();
    for (split, pairs) in qrels {
        let mut tsv = String::from("query-id\tcorpus-id\tscore\n");
        for (q, d) in *pairs {
            tsv.push_str(&format!("{q}\t{d}\t1\n"));
        }
        std::fs::write(beir.join("qrels").join(format!("{split}.tsv")), tsv).unwrap();
    }
    beir
}

/// Indexes the fixture corpus into `index` with both legs, the dense one made by `model`;
/// `extra` adds `index` flags.
pub fn index_with_model(index: &Path, model: &Path, extra: &[&str]) {
    let dataset = fixture("medical.jsonl");
    let mut args = vec!["index", "--index", s(index), "--dataset", &dataset];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--model", s(model)]);
    ok(&args);
}

/// A collection `dir/idx` over the fixture corpus (`en` analyzer) with a dense leg made by a
/// tiny model `dir/tiny` wide enough that encoding, not process start, takes most of an
/// `add`'s time. Returns (collection, model).
pub fn tiny_model_collection(dir: &Path) -> (PathBuf, PathBuf) {
    let (index, model) = (dir.join("idx"), dir.join("tiny"));
    hybrid_search::dense::TinyModel {
        hidden: 128,
        max_seq_length: 64,
        ..hybrid_search::dense::TinyModel::default()
    }
    .write(&model)
    .unwrap();
    index_with_model(&index, &model, &["--analyzer", "en"]);
    (index, model)
}
pub mod http;
