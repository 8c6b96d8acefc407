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

pub fn err(args: &[&str]) -> String {
    let out = hs(args);
    assert!(!out.status.success(), "{args:?} should fail");
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
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
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
