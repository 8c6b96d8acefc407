//! HNSW against exact search on a collection's real vectors: build time, queries per second
//! and recall@10, for a few search widths.
//!
//! ```text
//! hybrid-search index --index data/sf-exact --dataset ../shared/data/scifact \
//!     --model models/all-MiniLM-L6-v2 --vectors exact
//! cargo run --release -p hybrid-search-benches --bin hnsw-speed -- data/sf-exact
//! ```
//!
//! The collection must have been built with `--vectors exact` (its vectors are read back from
//! the exact index file, one segment after a bulk `index`); queries are SciFact's test queries
//! (or those of `DATASET SPLIT` given after the folder) encoded with the collection's model
//! (found under models/). Searches run one at a time on one thread. After the search widths,
//! the same graph is built with f16 and i8 components (`index --vector-scalar`, quantised by
//! usearch) and measured against exact f32 search.

use std::path::Path;
use std::time::Instant;

use hybrid_search::dense::{
    Device, Encoder, ExactIndex, HnswIndex, Scalar, TextKind, VectorIndex, recall_at,
};
use hybrid_search::{Collection, model_candidates};
use hybrid_search_benches::{load_or_skip, scifact_path};

fn main() {
    let dir = std::env::args()
        .nth(1)
        .expect("usage: hnsw-speed COLLECTION_DIR");
    let collection = Collection::open(Path::new(&dir)).unwrap_or_else(|e| panic!("{e}"));
    let dense = collection
        .manifest()
        .dense
        .clone()
        .expect("a collection with a dense leg");
    let file = std::fs::read_dir(Path::new(&dir).join("dense"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "exact"))
        .expect("built with --vectors exact");
    let exact = ExactIndex::load(&file, dense.vectors.clone()).unwrap();
    let model = model_candidates(&dense.model)
        .into_iter()
        .find(|d| d.is_dir())
        .expect("the collection's model (its recorded path, or models/<name>)");
    let encoder = Encoder::load(&model, &Device::Cpu).unwrap();
    let args: Vec<String> = std::env::args().collect();
    let data = match (args.get(2), args.get(3)) {
        (Some(path), split) => {
            hybrid_search::eval::load_dataset(Path::new(path), split.map_or("test", String::as_str))
                .unwrap_or_else(|e| panic!("{e}"))
        }
        _ => load_or_skip("SciFact", &scifact_path(), "test").expect("SciFact"),
    };
    let texts: Vec<&str> = data.queries.iter().map(|q| q.text.as_str()).collect();
    let queries = encoder.encode(&texts, TextKind::Query, 32).unwrap();
    let k = 10;

    let started = Instant::now();
    let truth: Vec<Vec<(u64, f32)>> = queries
        .iter()
        .map(|q| exact.search(q, k).unwrap())
        .collect();
    let exact_qps = queries.len() as f64 / started.elapsed().as_secs_f64();
    println!(
        "{} vectors of {} dims ({} documents); {} queries",
        exact.iter().count(),
        dense.vectors.dim,
        exact.len(),
        queries.len()
    );
    println!("exact: {exact_qps:.0} queries/s");

    let runs = [32, 64, 128, 256]
        .map(|e| (e, Scalar::F32))
        .into_iter()
        .chain([(128, Scalar::F16), (128, Scalar::I8)]);
    for (expansion, scalar) in runs {
        let mut settings = dense.vectors.clone();
        settings.expansion_search = expansion;
        settings.scalar = scalar;
        let mut hnsw = HnswIndex::new(settings).unwrap();
        let started = Instant::now();
        for (key, v) in exact.iter() {
            hnsw.add(key, v).unwrap();
        }
        let build = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let found: Vec<Vec<(u64, f32)>> =
            queries.iter().map(|q| hnsw.search(q, k).unwrap()).collect();
        let qps = queries.len() as f64 / started.elapsed().as_secs_f64();
        let recall: f64 = truth
            .iter()
            .zip(&found)
            .map(|(t, f)| recall_at(t, f, k))
            .sum::<f64>()
            / truth.len() as f64;
        println!(
            "hnsw {scalar:?} expansion_search {expansion:>3}: build {build:.2} s, {qps:.0} queries/s, recall@10 {recall:.4}"
        );
    }
}
