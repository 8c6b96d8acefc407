//! Numeric parity with the reference implementation (sentence-transformers on PyTorch, float32):
//! `../shared/models/<name>/reference.json` holds token ids and pooled vectors for three
//! sentences. The models come from `scripts/fetch-models.sh` (run by `scripts/test.sh`); outside
//! CI a missing model skips the test with a message, in CI it fails.

use std::path::PathBuf;

use hybrid_search_dense::{Encoder, LongText, TextKind, WeightFormat};
use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn load(name: &str, format: WeightFormat) -> Option<(Encoder, Value)> {
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
    let encoder = Encoder::load_with(&dir, &candle_core::Device::Cpu, format).unwrap();
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

/// Checks token ids, and pooled vectors against the reference: max |diff| before
/// normalisation below `max_diff`, cosine after it above `min_cosine`; batched with padding
/// (the three sentences differ in length) and one by one (cosine to the batched vector above
/// `min_padded`). Returns the worst cosine to the reference.
fn check(
    encoder: &Encoder,
    reference: &Value,
    max_diff: f32,
    min_cosine: f64,
    min_padded: f64,
) -> f64 {
    let items = reference["items"].as_array().unwrap();
    let mut worst = 1.0f64;
    for kind in [TextKind::Query, TextKind::Passage] {
        // E5 references mark queries by their `query: ` input; MiniLM has no prefixes.
        let prefix = match kind {
            TextKind::Query => &encoder.description().query_prefix,
            TextKind::Passage => &encoder.description().passage_prefix,
        };
        let mine: Vec<&Value> = items
            .iter()
            .filter(|i| {
                let input = i["input"].as_str().unwrap();
                let text = i["text"].as_str().unwrap();
                *input == format!("{prefix}{text}")
                    && (kind == TextKind::Passage || !prefix.is_empty())
            })
            .collect();
        if mine.is_empty() {
            continue;
        }
        let texts: Vec<&str> = mine.iter().map(|i| i["text"].as_str().unwrap()).collect();
        let raw = encoder.encode_unnormalized(&texts, kind, 8).unwrap();
        let normalized = encoder.encode(&texts, kind, 8).unwrap();
        for (i, item) in mine.iter().enumerate() {
            let name = item["name"].as_str().unwrap();
            let ids: Vec<u32> = item["token_ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u32)
                .collect();
            assert_eq!(
                encoder.token_ids(texts[i], kind).unwrap(),
                ids,
                "{name}: token ids"
            );
            let expected = floats(&item["embedding_unnormalized"]);
            let diff = raw[i]
                .iter()
                .zip(&expected)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            let cos = cosine(&normalized[i], &floats(&item["embedding"]));
            eprintln!(
                "{} {name}: max |diff| {diff:.2e}, cosine {cos:.8}",
                encoder.weights().format
            );
            assert!(diff < max_diff, "{name}: max |diff| {diff}");
            assert!(cos > min_cosine, "{name}: cosine {cos}");
            worst = worst.min(cos);
            // One by one: f32 gives the same vector up to rounding; Q4_0 quantises each
            // activation row to Q8_0 either way, but a one-row product takes candle's GEMV path,
            // which sums in another order.
            let single = encoder.encode(&[texts[i]], kind, 1).unwrap();
            let same = cosine(&single[0], &normalized[i]);
            eprintln!("  alone vs batched: cosine {same:.8}");
            assert!(
                same > min_padded,
                "{name}: padding changed the vector ({same})"
            );
        }
    }
    worst
}

#[test]
fn all_minilm_l6_v2_matches_the_reference() {
    let Some((encoder, reference)) = load("all-MiniLM-L6-v2", WeightFormat::AsStored) else {
        return;
    };
    let d = encoder.description();
    assert_eq!((d.dim, d.max_seq_length, d.normalize), (384, 256, true));
    assert_eq!(encoder.weights().format, "f32");
    check(&encoder, &reference, 1e-4, 0.99999, 0.999999);
}

#[test]
fn multilingual_e5_small_dequantized_to_f32_matches_the_reference() {
    let Some((encoder, reference)) = load("multilingual-e5-small", WeightFormat::F32) else {
        return;
    };
    let d = encoder.description();
    assert_eq!((d.dim, d.max_seq_length, d.normalize), (384, 512, true));
    assert_eq!(
        (d.query_prefix.as_str(), d.passage_prefix.as_str()),
        ("query: ", "passage: ")
    );
    assert_eq!(encoder.weights().format, "f32");
    check(&encoder, &reference, 1e-4, 0.99999, 0.999999);
}

#[test]
fn multilingual_e5_small_runs_from_its_q4_0_file() {
    let Some((encoder, reference)) = load("multilingual-e5-small", WeightFormat::AsStored) else {
        return;
    };
    let mut encoder = encoder;
    assert_eq!(encoder.weights().format, "q4_0");
    // candle's quantized kernel multiplies the Q4_0 weights with activations quantised to Q8_0
    // blocks, so its vectors differ from the f32 reference by more than rounding (>= 0.999 is
    // asked for).
    encoder.set_quantized_kernel_rows(usize::MAX);
    let worst = check(&encoder, &reference, 0.5, 0.999, 0.9999);
    eprintln!("q4_0 kernel: worst cosine to the reference {worst:.6}");
    // The default path dequantises each Q4_0 matrix for a batch of more than 8 tokens: the
    // reference's own (dequantised) weights, so f32 parity.
    encoder.set_quantized_kernel_rows(0);
    let worst = check(&encoder, &reference, 1e-4, 0.99999, 0.999999);
    eprintln!("q4_0 dequantised per call: worst cosine to the reference {worst:.8}");
}

/// The int8 path (`WeightFormat::Int8`): weights per output channel (7 bits where the kernel
/// may saturate), activations per token, so a vector is the same alone or batched, and within
/// a cosine of 0.995 of PyTorch's f32 vector (the bound this test states; the measured worst is
/// printed).
#[test]
fn the_int8_path_stays_close_to_the_reference() {
    for name in ["all-MiniLM-L6-v2", "multilingual-e5-small"] {
        let Some((encoder, reference)) = load(name, WeightFormat::Int8) else {
            return;
        };
        assert_eq!(encoder.weights().format, "int8");
        let worst = check(&encoder, &reference, 0.5, 0.99, 0.999999);
        eprintln!(
            "{name} int8 ({}): worst cosine to the reference {worst:.6}",
            hybrid_search_dense::int8_kernel_name()
        );
    }
}

#[test]
fn long_passages_split_into_overlapping_windows() {
    let Some((encoder, _)) = load("all-MiniLM-L6-v2", WeightFormat::AsStored) else {
        return;
    };
    let sentence = "Interleukin-6 (IL-6) levels rise in sepsis and predict mortality. ";
    let text = sentence.repeat(60);
    let max = encoder.description().max_seq_length;
    let truncated = encoder.token_ids(&text, TextKind::Passage).unwrap();
    assert_eq!(truncated.len(), max);
    let overlap = 64;
    let windows = encoder
        .windows(&text, TextKind::Passage, LongText::Windows { overlap })
        .unwrap();
    assert!(windows.len() > 2, "{} windows", windows.len());
    assert_eq!(
        windows[0], truncated,
        "the first window is the truncated text"
    );
    let full = encoder
        .windows(&text, TextKind::Passage, LongText::Windows { overlap: 0 })
        .unwrap();
    let content: usize = full.iter().map(|w| w.len() - 2).sum();
    let whole = encoder
        .windows(sentence, TextKind::Passage, LongText::Truncate)
        .unwrap();
    assert!(
        content >= 60 * (whole[0].len() - 2),
        "windows cover the whole text"
    );
    for w in &windows {
        assert!(w.len() <= max);
        assert_eq!((w[0], w[w.len() - 1]), (truncated[0], truncated[max - 1]));
    }
    // Consecutive windows share `overlap` tokens (all but the last, which ends at the text's end).
    let (a, b) = (&windows[0][1..max - 1], &windows[1][1..]);
    assert_eq!(a[a.len() - overlap..], b[..overlap]);
    // A short text is one window, identical to its truncated form.
    let short = encoder
        .windows(sentence, TextKind::Passage, LongText::Windows { overlap })
        .unwrap();
    assert_eq!(
        short,
        vec![encoder.token_ids(sentence, TextKind::Passage).unwrap()]
    );
    let vectors = encoder.encode_ids(&windows, 8, &|_| {}).unwrap();
    assert_eq!(vectors.len(), windows.len());
}
