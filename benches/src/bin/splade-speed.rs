//! Encoding speed of a SPLADE model on SciFact: passages per second, the mean number of
//! non-zero terms per passage and per query, and the median latency of encoding one query.
//!
//! ```text
//! RAYON_NUM_THREADS=2 cargo run --release -p hybrid-search-benches --bin splade-speed -- \
//!     models/splade-tiny [f32|int8] [passages=500] [queries=50]
//! ```
//!
//! Passages are the first `passages` SciFact documents as `title + " " + text`; queries are the
//! first test queries.

use std::time::Instant;

use hybrid_search::dense::{Device, SpladeEncoder, WeightFormat};
use hybrid_search_benches::{load_or_skip, scifact_path};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(model) = args.first() else {
        eprintln!("usage: splade-speed MODEL_DIR [f32|int8] [passages] [queries]");
        std::process::exit(2);
    };
    let format = match args.get(1).map(String::as_str).unwrap_or("int8") {
        "f32" => WeightFormat::F32,
        "int8" => WeightFormat::Int8,
        other => {
            eprintln!("unknown format {other}: f32 or int8");
            std::process::exit(2);
        }
    };
    let number = |i: usize, default: usize| {
        args.get(i)
            .map(|s| s.parse().expect("a number"))
            .unwrap_or(default)
    };
    let (passages, queries) = (number(2, 500), number(3, 50));
    let Some(data) = load_or_skip("SciFact", &scifact_path(), "test") else {
        std::process::exit(1);
    };
    let encoder =
        SpladeEncoder::load(model.as_ref(), &Device::Cpu, format).unwrap_or_else(|e| panic!("{e}"));
    let texts = hybrid_search_benches::passages(&data, passages);
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    encoder.encode(&refs[..refs.len().min(8)]).unwrap();
    let started = Instant::now();
    let vectors = encoder.encode(&refs).unwrap();
    let secs = started.elapsed().as_secs_f64();
    let terms = vectors.iter().map(Vec::len).sum::<usize>() as f64 / vectors.len() as f64;
    let mut query_terms = 0usize;
    let mut latencies: Vec<f64> = data
        .queries
        .iter()
        .take(queries)
        .map(|q| {
            let t = Instant::now();
            let v = encoder.encode(&[q.text.as_str()]).unwrap();
            query_terms += v[0].len();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    println!(
        "model={model} format={format:?} passages={} seconds={secs:.2} passages/s={:.1} \
         terms_per_passage={terms:.1} query_median_ms={:.2} terms_per_query={:.1}",
        refs.len(),
        refs.len() as f64 / secs,
        latencies[latencies.len() / 2],
        query_terms as f64 / latencies.len() as f64
    );
}
