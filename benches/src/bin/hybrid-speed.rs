//! Query latency of a collection in each mode, one query at a time with the model loaded:
//! p50, p95 and mean of the whole `search` call (query encoding, both legs, fusion, stored
//! documents and snippets for the top 10).
//!
//! ```text
//! cargo run --release -p hybrid-search-benches --bin hybrid-speed -- data/sf-mini-win \
//!     ../shared/data/scifact test
//! ```
//!
//! The collection's model is found as `search` finds it; the hybrid mode uses the collection's
//! default fusion settings. Queries run in dataset order, after 10 warm-up queries. With a
//! cross-encoder directory (`train-reranker`) and a depth after them, a fourth row times hybrid
//! searches whose top `depth` the cross-encoder reorders, its matrices in int8 (the default) or
//! `f32` (an optional last argument). The query encoder runs in the engine's default format.

use std::path::Path;
use std::time::Instant;

use std::sync::Arc;

use hybrid_search::dense::{CrossEncoder, Device, WeightFormat};
use hybrid_search::eval::load_dataset;
use hybrid_search::{Collection, Mode, ModelChoice, Rerank, RerankOptions, SearchRequest};

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = (p * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank]
}

/// Runs `search` on the first 10 queries to warm up, then times it on each query one at a
/// time: "p50  p95  mean" in milliseconds, formatted for the table.
fn timed(queries: &[&str], mut search: impl FnMut(&str)) -> String {
    for q in queries.iter().take(10) {
        search(q);
    }
    let mut times: Vec<f64> = queries
        .iter()
        .map(|q| {
            let started = Instant::now();
            search(q);
            started.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    format!(
        "{:>7.2}  {:>7.2}  {:>8.2}",
        percentile(&times, 0.5),
        percentile(&times, 0.95),
        mean
    )
}

/// Peak resident memory of this process so far (Linux), in MiB.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let usage = "usage: hybrid-speed COLLECTION_DIR DATASET [SPLIT] [QUERIES] [RERANKER_DIR DEPTH [int8|f32]]";
    let dir = args.next().expect(usage);
    let dataset = args.next().expect(usage);
    let split = args.next().unwrap_or_else(|| "test".into());
    let limit: usize = args.next().map_or(300, |n| n.parse().expect(usage));
    let reranker = args.next().map(|dir| {
        let depth: usize = args.next().expect(usage).parse().expect(usage);
        let format = match args.next().as_deref() {
            None | Some("int8") => WeightFormat::Int8,
            Some("f32") => WeightFormat::F32,
            Some(_) => panic!("{usage}"),
        };
        Rerank {
            model: Arc::new(
                CrossEncoder::load_with(Path::new(&dir), &Device::Cpu, format).unwrap(),
            ),
            options: RerankOptions {
                depth,
                ..RerankOptions::default()
            },
        }
    });

    let mut collection = Collection::open(Path::new(&dir)).unwrap_or_else(|e| panic!("{e}"));
    collection
        .attach_model(&ModelChoice::default())
        .unwrap_or_else(|e| panic!("{e}"));
    let data = load_dataset(Path::new(&dataset), &split).unwrap_or_else(|e| panic!("{e}"));
    let queries: Vec<&str> = data
        .queries
        .iter()
        .take(limit)
        .map(|q| q.text.as_str())
        .collect();
    let options = collection.hybrid_options();
    println!(
        "{} queries of {dataset} ({split}) on {dir}, k = 10, hybrid: {:?} depth {}",
        queries.len(),
        options.fusion,
        options.depth
    );
    println!("mode     p50 ms   p95 ms   mean ms");
    for mode in [Mode::Sparse, Mode::Dense, Mode::Hybrid] {
        let line = timed(&queries, |q| {
            let request = SearchRequest::new(q, 10).with_mode(mode);
            let results = collection.run(&request).unwrap();
            assert!(results.degraded.is_none(), "{:?}", results.degraded);
        });
        println!("{:<7} {line}", mode.as_str());
    }
    if let Some(rerank) = &reranker {
        let line = timed(&queries, |q| {
            let request = SearchRequest::new(q, 10)
                .with_mode(Mode::Hybrid)
                .with_rerank(rerank.clone());
            collection.run(&request).unwrap();
        });
        println!(
            "{:<7} {line}  (hybrid, top {} reranked, weight {})",
            "rerank", rerank.options.depth, rerank.options.weight
        );
    }
    if let Some(mib) = peak_rss_mib() {
        println!("peak RSS {mib:.0} MiB");
    }
}
