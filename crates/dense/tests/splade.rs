//! SPLADE-tiny against the reference made by Hugging Face transformers (BertForMaskedLM,
//! float32) from the same files: `fixtures/splade-tiny-reference.json`, written by
//! `scripts/splade_reference.py`. The model comes from `scripts/fetch-models.sh` (run by
//! `scripts/test.sh`); outside CI a missing model skips the test with a message, in CI it fails.

use std::collections::HashMap;
use std::path::PathBuf;

use hybrid_search_dense::{Device, SpladeEncoder, WeightFormat};
use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn reference() -> Value {
    let path = repo().join("fixtures/splade-tiny-reference.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn load(format: WeightFormat) -> Option<SpladeEncoder> {
    let dir = repo().join("models/splade-tiny");
    if !dir.is_dir() {
        let msg = "models/splade-tiny missing; run scripts/fetch-models.sh";
        assert!(std::env::var_os("CI").is_none(), "{msg}");
        eprintln!("skipped: {msg}");
        return None;
    }
    Some(SpladeEncoder::load(&dir, &Device::Cpu, format).unwrap())
}

/// Cosine of two sparse vectors.
fn cosine(a: &HashMap<u32, f64>, b: &HashMap<u32, f64>) -> f64 {
    let dot: f64 = a.iter().map(|(k, x)| x * b.get(k).unwrap_or(&0.0)).sum();
    let norm = |v: &HashMap<u32, f64>| v.values().map(|x| x * x).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b))
}

/// Checks every reference text: the same token ids; every weight within `max_diff` of the
/// reference's (a term the reference has and the engine has not counts with weight 0); cosine
/// at least `min_cosine`. Returns the largest difference and the smallest cosine.
fn check(encoder: &SpladeEncoder, max_diff: f64, min_cosine: f64) -> (f64, f64) {
    let reference = reference();
    let texts: Vec<&Value> = reference["texts"].as_array().unwrap().iter().collect();
    let strings: Vec<&str> = texts.iter().map(|t| t["text"].as_str().unwrap()).collect();
    let vectors = encoder.encode(&strings).unwrap();
    let (mut worst_diff, mut worst_cosine) = (0f64, 1f64);
    for (t, got) in texts.iter().zip(&vectors) {
        let ids: Vec<u32> = t["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(encoder.tokenize(t["text"].as_str().unwrap()).unwrap(), ids);
        let want: HashMap<u32, f64> = t["vector"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p[0].as_u64().unwrap() as u32, p[1].as_f64().unwrap()))
            .collect();
        let got: HashMap<u32, f64> = got.iter().map(|&(i, w)| (i, f64::from(w))).collect();
        for id in want.keys().chain(got.keys()) {
            let diff = (want.get(id).unwrap_or(&0.0) - got.get(id).unwrap_or(&0.0)).abs();
            worst_diff = worst_diff.max(diff);
        }
        worst_cosine = worst_cosine.min(cosine(&want, &got));
    }
    assert!(
        worst_diff <= max_diff,
        "largest weight difference {worst_diff}"
    );
    assert!(worst_cosine >= min_cosine, "smallest cosine {worst_cosine}");
    (worst_diff, worst_cosine)
}

#[test]
fn f32_matches_transformers() {
    let Some(encoder) = load(WeightFormat::F32) else {
        return;
    };
    let (diff, cosine) = check(&encoder, 1e-4, 0.999_999);
    eprintln!("f32: largest difference {diff:.2e}, smallest cosine {cosine:.8}");
    // The heaviest term of the question about IL-6 is a word of the question.
    let v = &encoder
        .encode(&["What is the role of IL-6 in sepsis?"])
        .unwrap()[0];
    let best = v.iter().max_by(|a, b| a.1.total_cmp(&b.1)).unwrap();
    let term = encoder.term(best.0).unwrap();
    assert!(
        ["sep", "##sis", "il", "sepsis", "role"].contains(&term.as_str()),
        "{term}"
    );
}

#[test]
fn int8_stays_close_to_transformers() {
    let Some(encoder) = load(WeightFormat::Int8) else {
        return;
    };
    let (diff, cosine) = check(&encoder, 0.15, 0.99);
    eprintln!("int8: largest difference {diff:.3}, smallest cosine {cosine:.5}");
}

#[test]
fn a_model_without_the_masked_language_head_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tiny");
    hybrid_search_dense::TinyModel::default()
        .write(&dir)
        .unwrap();
    let err = SpladeEncoder::load(&dir, &Device::Cpu, WeightFormat::F32)
        .err()
        .expect("no head");
    assert!(
        err.to_string().contains("not a masked-language model"),
        "{err}"
    );
}
