//! Every default of the engine, in one place, each named for where it came from. The CLI's
//! flags, the library's `Default` impls and the documentation all refer to these.
//!
//! | what | value | source |
//! |---|---|---|
//! | results per search | [`RESULTS`] = 10 | the usual first page; nDCG@10 judges it |
//! | hybrid fusion | [`fusion_tuned_on_scifact_train`]: convex, theoretical bounds, alpha 0.85, depth 100 | `hybrid-search tune` on SciFact train (BM25 + all-MiniLM-L6-v2); it also beat RRF on SciFact test, KorQuAD and Cranfield (`docs/benchmarks.md`) |
//! | RRF when chosen without settings | k = 60, equal weights ([`hybrid_search_fusion::RrfSettings::default`]) | Cormack, Clarke & Büttcher 2009 |
//! | reranking depth | [`RERANK_DEPTH`] = 20 | the depth measured in `docs/benchmarks.md` (cost grows linearly with it) |
//! | reranking weight | [`RERANK_WEIGHT_SCIFACT_DEV`] = 0.2 | best of 0-1 on 101 held-out SciFact train queries; weight 1 (the logit alone) gave nDCG@10 0.4913 there against 0.7775 without reranking (on test: 0.4826 against 0.7594) |
//! | evaluation depth, one leg | [`EVAL_DEPTH_ONE_LEG`] = 1000 | a TREC run's customary depth |
//! | evaluation depth, hybrid | at least [`EVAL_DEPTH_FUSED_MIN`] = 100 | what Recall@100 reads; deeper when the fusion depth is |
//! | queries per forward pass | [`QUERY_BATCH`] = 32 | sentence-transformers' default batch |
//!
//! A collection tuned on its own labelled queries stores its own fusion settings
//! ([`crate::SearchDefaults`]); they replace [`fusion_tuned_on_scifact_train`] for it.

use hybrid_search_fusion::{ConvexSettings, Fusion, Normalization};

use crate::manifest::HybridOptions;

/// Results a search returns when the caller does not say (`-k`).
pub const RESULTS: usize = 10;

/// Hits the cross-encoder reorders by default (`--rerank-depth`).
pub const RERANK_DEPTH: usize = 20;

/// The cross-encoder's weight against the first stage by default (`--rerank-weight`): the best
/// on held-out SciFact train queries in `docs/benchmarks.md`.
pub const RERANK_WEIGHT_SCIFACT_DEV: f64 = 0.2;

/// Documents an evaluation ranks per query with one leg.
pub const EVAL_DEPTH_ONE_LEG: usize = 1000;

/// The fewest documents an evaluation ranks per query in the hybrid mode (it ranks
/// `max(depth, this)`).
pub const EVAL_DEPTH_FUSED_MIN: usize = 100;

/// Queries encoded per forward pass when many are encoded at once (`eval`, `tune`).
pub const QUERY_BATCH: usize = 32;

/// The hybrid settings of a collection that was not tuned: a convex combination over the top
/// 100 of each leg with theoretical-bounds normalisation (cosine from [-1, 1], BM25 from
/// [0, the list's best]) and dense weight 0.85, the setting `hybrid-search tune` chose on
/// SciFact's train split (BM25 + all-MiniLM-L6-v2).
pub fn fusion_tuned_on_scifact_train() -> HybridOptions {
    HybridOptions {
        fusion: Fusion::Convex(ConvexSettings {
            alpha: 0.85,
            dense: Normalization::cosine(),
            sparse: Normalization::bm25(),
        }),
        depth: 100,
    }
}

/// A filtered dense search compares the query with each matching document's vectors (exact)
/// when the filter matches at most this many documents, and searches the HNSW graph with the
/// filter as its predicate otherwise, as Qdrant's query planner switches to a full scan below
/// its `full_scan_threshold`. Measured in `docs/benchmarks.md` ("Filters").
pub const FILTER_EXACT_MATCHES: usize = 20_000;

/// The deepest a search pages: `offset + k` at most this many hits (Elasticsearch's
/// `index.max_result_window` is the same 10,000).
pub const MAX_RESULT_WINDOW: usize = 10_000;
