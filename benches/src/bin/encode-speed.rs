//! Encoding speed of a dense model on SciFact abstracts: passages per second when encoding a
//! corpus slice in batches, and the median latency of encoding one query.
//!
//! ```text
//! RAYON_NUM_THREADS=2 cargo run --release -p hybrid-search-benches --bin encode-speed -- \
//!     models/all-MiniLM-L6-v2 [as-stored|f32|q4_0|int8] [passages=500] [batch=32] [queries=50] \
//!     [kernel-rows]
//! ```
//!
//! `kernel-rows` (Q4_0 only) sets how many tokens per batch may still go through candle's
//! quantized kernel (default 8; `max` for always, as the quantized-kernel figures in
//! `docs/benchmarks.md`).
//!
//! The thread count is candle's (`RAYON_NUM_THREADS`, default: the physical cores). Passages
//! are the first `passages` SciFact documents as `title + " " + text`, truncated to the model's
//! maximum length, as sentence-transformers encodes them; queries are the first test queries.

use std::time::Instant;

use hybrid_search::dense::{Device, Encoder, TextKind, WeightFormat};
use hybrid_search_benches::{load_or_skip, scifact_path};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(model) = args.first() else {
        eprintln!(
            "usage: encode-speed MODEL_DIR [as-stored|f32|q4_0|int8] [passages] [batch] [queries]"
        );
        std::process::exit(2);
    };
    let format = match args.get(1).map(String::as_str).unwrap_or("as-stored") {
        "as-stored" => WeightFormat::AsStored,
        "f32" => WeightFormat::F32,
        "q4_0" => WeightFormat::Q4_0,
        "int8" => WeightFormat::Int8,
        other => {
            eprintln!("unknown format {other}: as-stored, f32, q4_0 or int8");
            std::process::exit(2);
        }
    };
    let number = |i: usize, default: usize| {
        args.get(i)
            .map(|s| s.parse().expect("a number"))
            .unwrap_or(default)
    };
    let (passages, batch, queries) = (number(2, 500), number(3, 32), number(4, 50));
    let Some(data) = load_or_skip("SciFact", &scifact_path(), "test") else {
        std::process::exit(1);
    };
    let started = Instant::now();
    let encoder =
        Encoder::load_with(model.as_ref(), &Device::Cpu, format).unwrap_or_else(|e| panic!("{e}"));
    let load_s = started.elapsed().as_secs_f64();
    let texts = hybrid_search_benches::passages(&data, passages);
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    // Warm up (thread pools, allocator) on a few passages.
    encoder
        .encode(&refs[..refs.len().min(8)], TextKind::Passage, batch)
        .unwrap();
    let started = Instant::now();
    let vectors = encoder.encode(&refs, TextKind::Passage, batch).unwrap();
    let secs = started.elapsed().as_secs_f64();
    let mut latencies: Vec<f64> = data
        .queries
        .iter()
        .take(queries)
        .map(|q| {
            let t = Instant::now();
            encoder
                .encode(&[q.text.as_str()], TextKind::Query, 1)
                .unwrap();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    let median = latencies
        .get(latencies.len() / 2)
        .copied()
        .unwrap_or(f64::NAN);
    println!(
        "{model} {} ({}) threads={} load {load_s:.2} s | {} passages in {secs:.1} s = {:.1} passages/s (batch {batch}) | query median {median:.1} ms over {}",
        encoder.weights().format,
        match format {
            WeightFormat::Int8 => hybrid_search::dense::int8_kernel_name(),
            _ => hybrid_search::dense::f32_kernel_name(),
        },
        std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "default".into()),
        vectors.len(),
        vectors.len() as f64 / secs,
        latencies.len(),
    );
}
