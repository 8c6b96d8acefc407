//! Criterion benchmarks of the BM25 (sparse) leg: analysis, indexing and querying on SciFact
//! (English) and KorQuAD 1.0 dev (Korean).
//!
//! Groups:
//!
//! - `analysis/en`, `analysis/auto-english`: analysing every SciFact document (title, newline,
//!   abstract) with the `en` and `auto` analyzers; throughput in bytes of input text. The text
//!   has no Hangul, so `auto` should be close to `en`.
//! - `analysis/ko`, `analysis/auto-korean`: analysing every KorQuAD context with the `ko` and
//!   `auto` analyzers; throughput in bytes of input text.
//! - `index/scifact`, `index/korquad`: building a fresh collection in a temporary folder with the
//!   `auto` analyzer (upsert every document, commit, wait for merges); throughput in documents.
//!   Creating the folder and deleting it afterwards are not timed.
//! - `query/scifact-k10`, `query/scifact-k1000`, `query/korquad-k10`: running the SciFact test
//!   queries (300), or the first 1000 KorQuAD questions, one at a time through
//!   the collection's sparse leg (`LocalLegs` with `LegQuery::sparse`) against a collection built
//!   once beforehand; throughput in queries.
//!
//! The data is read in place from `shared/data` next to the repository; a data set that is
//! missing is reported and its benchmarks skipped. The Korean analyzers need the ko-dic
//! dictionary (`models/ko-dic/lindera`, found from the working folder). Run with:
//!
//! ```text
//! cargo bench -p hybrid-search-benches
//! cargo bench -p hybrid-search-benches -- query/   # one group
//! ```

use std::hint::black_box;
use std::sync::OnceLock;

use criterion::measurement::WallTime;
use criterion::{BatchSize, BenchmarkGroup, Criterion, Throughput};
use hybrid_search::sparse::Analyzer;
use hybrid_search::{AnalyzerConfig, AnalyzerKind, Dataset, LegQuery, Legs, LocalLegs};
use hybrid_search_benches::{
    build_collection, document_text, korquad_path, load_or_skip, scifact_path,
};

/// Number of KorQuAD questions the query benchmark runs.
const KORQUAD_QUERIES: usize = 1000;

/// SciFact with its `test` queries, loaded once per process.
fn scifact() -> Option<&'static Dataset> {
    static DATA: OnceLock<Option<Dataset>> = OnceLock::new();
    DATA.get_or_init(|| load_or_skip("SciFact", &scifact_path(), "test"))
        .as_ref()
}

/// KorQuAD 1.0 dev, loaded once per process.
fn korquad() -> Option<&'static Dataset> {
    static DATA: OnceLock<Option<Dataset>> = OnceLock::new();
    DATA.get_or_init(|| load_or_skip("KorQuAD", &korquad_path(), "dev"))
        .as_ref()
}

/// The analyzer of `kind`, or `None` (with a message) when it cannot be built, e.g. because
/// ko-dic is missing.
fn analyzer_or_skip(kind: AnalyzerKind) -> Option<Analyzer> {
    match Analyzer::new(&AnalyzerConfig::for_kind(kind)) {
        Ok(analyzer) => Some(analyzer),
        Err(e) => {
            eprintln!("skipping the {kind:?} analyzer benchmarks: {e}");
            None
        }
    }
}

/// Analyses every text; the token count is returned so the work cannot be optimised away.
fn analyze_all(analyzer: &Analyzer, texts: &[String]) -> usize {
    texts
        .iter()
        .map(|text| analyzer.analyze(text).expect("analysis succeeds").len())
        .sum()
}

/// Benchmarks each `(name, kind)` analyzer over all of `texts`, with bytes as throughput.
fn bench_analyzers(
    group: &mut BenchmarkGroup<'_, WallTime>,
    texts: &[String],
    analyzers: &[(&str, AnalyzerKind)],
) {
    let bytes: usize = texts.iter().map(String::len).sum();
    group.throughput(Throughput::Bytes(bytes as u64));
    for &(name, kind) in analyzers {
        let Some(analyzer) = analyzer_or_skip(kind) else {
            continue;
        };
        group.bench_function(name, |b| {
            b.iter(|| analyze_all(&analyzer, black_box(texts)));
        });
    }
}

/// `analysis/*`: analyzer throughput on English and Korean text.
fn analysis(c: &mut Criterion) {
    let mut group = c.benchmark_group("analysis");
    group.sample_size(10);
    if let Some(dataset) = scifact() {
        let texts: Vec<String> = dataset.corpus.iter().map(document_text).collect();
        bench_analyzers(
            &mut group,
            &texts,
            &[
                ("en", AnalyzerKind::En),
                ("auto-english", AnalyzerKind::Auto),
            ],
        );
    }
    if let Some(dataset) = korquad() {
        let texts: Vec<String> = dataset.corpus.iter().map(|d| d.text.clone()).collect();
        bench_analyzers(
            &mut group,
            &texts,
            &[
                ("ko", AnalyzerKind::Ko),
                ("auto-korean", AnalyzerKind::Auto),
            ],
        );
    }
    group.finish();
}

/// `index/*`: building a collection from scratch with the `auto` analyzer.
fn index(c: &mut Criterion) {
    if analyzer_or_skip(AnalyzerKind::Auto).is_none() {
        return;
    }
    let mut group = c.benchmark_group("index");
    group.sample_size(10);
    for (name, dataset) in [("scifact", scifact()), ("korquad", korquad())] {
        let Some(dataset) = dataset else { continue };
        group.throughput(Throughput::Elements(dataset.corpus.len() as u64));
        group.bench_function(name, |b| {
            b.iter_batched(
                || tempfile::tempdir().expect("temporary folder"),
                |dir| {
                    let collection = build_collection(
                        &dir.path().join("collection"),
                        AnalyzerConfig::for_kind(AnalyzerKind::Auto),
                        &dataset.corpus,
                    )
                    .expect("indexing succeeds");
                    // Returned so the folder is deleted outside the timed section.
                    (collection, dir)
                },
                BatchSize::PerIteration,
            );
        });
    }
    group.finish();
}

/// `query/*`: sequential BM25-leg latency over a prebuilt collection.
fn query(c: &mut Criterion) {
    if analyzer_or_skip(AnalyzerKind::Auto).is_none() {
        return;
    }
    let mut group = c.benchmark_group("query");
    let sets = [
        ("scifact", scifact(), usize::MAX, &[10, 1000][..]),
        ("korquad", korquad(), KORQUAD_QUERIES, &[10][..]),
    ];
    for (name, dataset, max_queries, ks) in sets {
        let Some(dataset) = dataset else { continue };
        let dir = tempfile::tempdir().expect("temporary folder");
        let collection = build_collection(
            &dir.path().join("collection"),
            AnalyzerConfig::for_kind(AnalyzerKind::Auto),
            &dataset.corpus,
        )
        .expect("indexing succeeds");
        let queries: Vec<&str> = dataset
            .queries
            .iter()
            .take(max_queries)
            .map(|q| q.text.as_str())
            .collect();
        group.throughput(Throughput::Elements(queries.len() as u64));
        for &k in ks {
            group.bench_function(format!("{name}-k{k}"), |b| {
                b.iter(|| {
                    for &q in &queries {
                        let query = LegQuery::sparse(black_box(q), k);
                        black_box(LocalLegs.search(&collection, &query).expect("search"));
                    }
                });
            });
        }
    }
    group.finish();
}

/// What `criterion_group!`/`criterion_main!` would generate, written out because the macro's
/// public group function cannot carry documentation (the workspace warns on missing docs).
fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    analysis(&mut criterion);
    index(&mut criterion);
    query(&mut criterion);
    criterion.final_summary();
}
