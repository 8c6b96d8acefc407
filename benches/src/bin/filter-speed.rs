//! Filtered search on a collection with fields (`benches/filters.sh`): for a filter on the
//! synthetic corpus's `bucket` field (uniform over 0..10,000, so `bucket < 10,000 s` matches a
//! share `s` of the documents) at selectivities 100% (no filter), 50%, 10%, 1%, 0.1% and 0.01%:
//!
//! - hits returned against `min(k, matches)` for every query, dense and hybrid;
//! - recall@10 of the filtered dense search against exact filtered search (cosine over every
//!   matching document's vector, computed here from the corpus file);
//! - p50 / p95 of filtered hybrid and dense searches, the query vectors encoded beforehand (the
//!   search alone: filter, both legs, fusion, titles and snippets).
//!
//! ```text
//! cargo run --release -p hybrid-search-benches --bin filter-speed -- COLLECTION CORPUS QUERIES
//! ```
//!
//! `CORPUS` is the `corpus.jsonl` the collection was indexed from (its vectors and `bucket`
//! values), `QUERIES` a BEIR folder whose queries are searched (synth-corpus's `queries/`).

use std::path::Path;
use std::time::Instant;

use hybrid_search::eval::{load_dataset, stream_corpus};
use hybrid_search::{Collection, Filter, Mode, ModelChoice, SearchRequest, query_vectors};

const K: usize = 10;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = (p * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank]
}

fn p50_p95(mut times: Vec<f64>) -> (f64, f64) {
    times.sort_by(f64::total_cmp);
    (percentile(&times, 0.5), percentile(&times, 0.95))
}

fn unit(v: &[f32]) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter().map(|x| x / norm).collect()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let usage = "usage: filter-speed COLLECTION CORPUS QUERIES [QUERY_COUNT]";
    let dir = args.next().expect(usage);
    let corpus = args.next().expect(usage);
    let queries_dir = args.next().expect(usage);
    let limit: usize = args.next().map_or(200, |n| n.parse().expect(usage));

    let mut collection = Collection::open(Path::new(&dir)).unwrap_or_else(|e| panic!("{e}"));
    collection
        .attach_model(&ModelChoice::default())
        .unwrap_or_else(|e| panic!("{e}"));
    let snapshot = collection.snapshot();
    snapshot.warm().unwrap();
    let data = load_dataset(Path::new(&queries_dir), "test").unwrap_or_else(|e| panic!("{e}"));
    let texts: Vec<&str> = data
        .queries
        .iter()
        .take(limit)
        .map(|q| q.text.as_str())
        .collect();
    let vectors = query_vectors(&snapshot, None, &texts, &|_| {}).unwrap();

    // The corpus's vectors (unit length, as cosine sees them) and buckets, by id.
    let mut docs: Vec<(String, i64, Vec<f32>)> = Vec::new();
    for doc in stream_corpus(Path::new(&corpus)).unwrap() {
        let doc = doc.unwrap();
        let bucket = doc.fields["bucket"].as_i64().expect("a bucket field");
        docs.push((doc.id, bucket, unit(doc.vector.as_ref().expect("vectors"))));
    }
    println!(
        "{} documents, {} queries, k = {K}, filter {{\"field\": \"bucket\", \"lt\": 10000 s}}, \
         exact dense search below {} matches",
        docs.len(),
        texts.len(),
        hybrid_search::defaults::FILTER_EXACT_MATCHES
    );
    println!("selectivity  matches  min(k,m) ok  recall@10  dense p50/p95 ms  hybrid p50/p95 ms");
    for share in [1.0, 0.5, 0.1, 0.01, 0.001, 0.0001] {
        let below = (10_000.0 * share) as i64;
        let filter = (share < 1.0).then(|| {
            Filter::from_json(&serde_json::json!({"field": "bucket", "lt": below})).unwrap()
        });
        let matching: Vec<&(String, i64, Vec<f32>)> =
            docs.iter().filter(|(_, b, _)| *b < below).collect();
        let wanted = K.min(matching.len());
        let (mut dense_times, mut hybrid_times) = (Vec::new(), Vec::new());
        let (mut recall, mut counts_ok) = (0.0, 0usize);
        for (i, (text, vector)) in texts.iter().zip(&vectors).enumerate() {
            let request = |mode: Mode| {
                SearchRequest::new(text, K)
                    .with_mode(mode)
                    .with_vector(vector.clone())
                    .with_filter(filter.clone())
            };
            // Warm-up: the first queries of each selectivity are not timed.
            let started = Instant::now();
            let dense = snapshot.run(&request(Mode::Dense)).unwrap();
            let dense_ms = started.elapsed().as_secs_f64() * 1e3;
            let started = Instant::now();
            let hybrid = snapshot.run(&request(Mode::Hybrid)).unwrap();
            let hybrid_ms = started.elapsed().as_secs_f64() * 1e3;
            if i >= 5 {
                dense_times.push(dense_ms);
                hybrid_times.push(hybrid_ms);
            }
            if dense.hits.len() == wanted && hybrid.hits.len() == wanted {
                counts_ok += 1;
            }
            // Exact filtered top 10 by cosine.
            let q = unit(vector);
            let mut exact: Vec<(f32, &str)> = matching
                .iter()
                .map(|(id, _, v)| {
                    (
                        q.iter().zip(v).map(|(a, b)| a * b).sum::<f32>(),
                        id.as_str(),
                    )
                })
                .collect();
            let k = wanted.min(exact.len());
            if k > 0 {
                exact.select_nth_unstable_by(k - 1, |a, b| b.0.total_cmp(&a.0));
                let truth: std::collections::HashSet<&str> =
                    exact[..k].iter().map(|(_, id)| *id).collect();
                let found = dense
                    .hits
                    .iter()
                    .filter(|h| truth.contains(h.id.as_str()))
                    .count();
                recall += found as f64 / k as f64;
            } else {
                recall += 1.0;
            }
        }
        let (d50, d95) = p50_p95(dense_times);
        let (h50, h95) = p50_p95(hybrid_times);
        println!(
            "{:>10.2}%  {:>7}  {:>5}/{:<5}  {:>9.4}  {:>7.2} / {:<7.2}  {:>7.2} / {:<7.2}",
            share * 100.0,
            matching.len(),
            counts_ok,
            texts.len(),
            recall / texts.len() as f64,
            d50,
            d95,
            h50,
            h95
        );
    }
}
