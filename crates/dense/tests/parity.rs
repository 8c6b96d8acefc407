//! Numeric parity with the reference implementation (sentence-transformers on PyTorch, float32):
//! `../shared/models/<name>/reference.json` holds token ids and pooled vectors for three
//! sentences. The models come from `scripts/fetch-models.sh` (run by `scripts/test.sh`); outside
//! CI a missing model skips the test with a message, in CI it fails.

use std::path::PathBuf;

use hybrid_search_dense::{Encoder, TextKind};
use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn load(name: &str) -> Option<(Encoder, Value)> {
    let dir = repo().join("models").join(name);
    let reference = repo()
        .join("../shared/models")
        .join(name)
        .join("reference.json");
    if !dir.is_dir() || !reference.is_file() {
        let msg = format!("{name}: model or reference missing; run scripts/fetch-models.sh");
        assert!(std::env::var_os("CI").is_none(), "{msg}");
        eprintln!("skipped: {msg}");
        return None;
    }
    let encoder = Encoder::load(&dir, &candle_core::Device::Cpu).unwrap();
    let reference: Value = serde_json::from_slice(&std::fs::read(reference).unwrap()).unwrap();
    Some((encoder, reference))
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

#[test]
fn all_minilm_l6_v2_matches_the_reference() {
    let Some((encoder, reference)) = load("all-MiniLM-L6-v2") else {
        return;
    };
    let d = encoder.description();
    assert_eq!((d.dim, d.max_seq_length, d.normalize), (384, 256, true));
    let items = reference["items"].as_array().unwrap();
    let texts: Vec<&str> = items.iter().map(|i| i["text"].as_str().unwrap()).collect();
    // Batched with padding (the three sentences differ in length) as well as one by one.
    let raw = encoder
        .encode_unnormalized(&texts, TextKind::Passage, 8)
        .unwrap();
    let normalized = encoder.encode(&texts, TextKind::Passage, 8).unwrap();
    for (i, item) in items.iter().enumerate() {
        let name = item["name"].as_str().unwrap();
        let ids: Vec<u32> = item["token_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(
            encoder.token_ids(texts[i], TextKind::Passage).unwrap(),
            ids,
            "{name}: token ids"
        );
        let expected = floats(&item["embedding_unnormalized"]);
        let max_diff = raw[i]
            .iter()
            .zip(&expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        let cos = cosine(&normalized[i], &floats(&item["embedding"]));
        eprintln!("{name}: max |diff| {max_diff:.2e}, cosine {cos:.8}");
        assert!(max_diff < 1e-4, "{name}: max |diff| {max_diff}");
        assert!(cos > 0.99999, "{name}: cosine {cos}");
        let single = encoder.encode(&[texts[i]], TextKind::Passage, 1).unwrap();
        assert!(
            cosine(&single[0], &normalized[i]) > 0.999999,
            "{name}: padding changed the vector"
        );
    }
}
