//! Fusion of ranked result lists for hybrid search: pure functions that blend one ranked list
//! per retrieval *leg* (BM25, dense vectors, ...) into a single ranking.
//!
//! - **Reciprocal rank fusion** ([`reciprocal_rank_fusion`]):
//!   `score(d) = sum over legs of w_leg / (k + rank_leg(d))`, ranks from 1, `k = 60` by
//!   default; a leg that did not return `d` contributes 0. Cormack, Clarke, Büttcher,
//!   SIGIR 2009.
//! - **Convex combination** ([`convex_combination`]):
//!   `score(d) = sum over legs of w_leg * norm_leg(s_leg(d))` with weights summing to 1 — for
//!   two legs `alpha * norm(dense(d)) + (1 - alpha) * norm(sparse(d))` — with a per-leg
//!   [`Normalization`]: min-max, z-score, distribution-based (DBSF, `mean ± 3 std`) or
//!   theoretical bounds (cosine `(s + 1) / 2`, BM25 `s / max`). A document a leg did not return
//!   gets the normalised value of that leg's lowest returned score (0 for min-max). Bruch, Gai,
//!   Ingber, ACM TOIS 2023.
//! - **Settings** ([`Fusion`], serde): the method and its parameters for the sparse and dense
//!   legs, e.g. a collection's stored default; [`Fusion::fuse`] applies them.
//!
//! Inputs are ranked lists, best first, of `(id, score)` with any id type
//! `K: Clone + Eq + Hash + Ord` (the engine uses `Arc<str>`). Outputs ([`FusedHit`]) hold every
//! id of every list exactly once, sorted by fused score descending and then by id ascending —
//! a total, deterministic order — with one explain entry ([`LegScore`]) per leg: raw score,
//! 1-based rank, normalised score (or RRF term), contribution, and whether the leg found the
//! document. Nothing is truncated: take a prefix for a top-k. NaN or infinite scores, invalid
//! parameters and duplicate ids within a list are rejected with a [`FusionError`], so fused
//! scores are always finite.
//!
//! # Example
//!
//! ```
//! use hybrid_search_fusion::{ConvexSettings, Fusion, Leg, Normalization};
//!
//! // Best first: BM25 scores and cosine similarities.
//! let sparse = [("doc-a", 14.2), ("doc-b", 9.1), ("doc-c", 3.5)];
//! let dense = [("doc-c", 0.83), ("doc-d", 0.80), ("doc-a", 0.42)];
//!
//! // The default: RRF with k = 60 and equal weights.
//! // doc-a: 1/61 + 1/63 = 0.032266, doc-c: 1/63 + 1/61 (the same), doc-b: 1/62, doc-d: 1/62.
//! let fused = Fusion::default().fuse(&sparse, &dense).unwrap();
//! let ids: Vec<_> = fused.iter().map(|hit| hit.id).collect();
//! assert_eq!(ids, ["doc-a", "doc-c", "doc-b", "doc-d"]); // ties: id ascending
//! let explain = fused[3].leg(Leg::Sparse).unwrap();
//! assert!(!explain.found && explain.contribution == 0.0); // doc-d: no BM25 hit
//!
//! // Convex combination, dense weight 0.7, cosine bounds for the dense leg.
//! let convex = Fusion::Convex(ConvexSettings {
//!     alpha: 0.7,
//!     dense: Normalization::cosine(),
//!     sparse: Normalization::MinMax,
//! });
//! let fused = convex.fuse(&sparse, &dense).unwrap();
//! // doc-c: 0.7 * (0.83 + 1) / 2 + 0.3 * 0 = 0.6405
//! // doc-a: 0.7 * (0.42 + 1) / 2 + 0.3 * 1 = 0.797
//! // doc-d: 0.7 * (0.80 + 1) / 2 + 0.3 * 0 (missing: BM25's lowest, doc-c, normalises to 0)
//! //        = 0.63
//! // doc-b: 0.7 * 0.71 (missing: the dense leg's lowest, 0.42) + 0.3 * (9.1 - 3.5) / 10.7
//! //        = 0.497 + 0.157009 = 0.654009
//! let ids: Vec<_> = fused.iter().map(|hit| hit.id).collect();
//! assert_eq!(ids, ["doc-a", "doc-b", "doc-c", "doc-d"]);
//! assert!((fused[0].score - 0.797).abs() < 1e-6);
//! ```

mod error;
mod fuse;
mod normalization;
mod settings;

pub use error::FusionError;
pub use fuse::{
    ConvexLeg, FusedHit, Leg, LegList, LegScore, RrfLeg, convex_combination, reciprocal_rank_fusion,
};
pub use normalization::Normalization;
pub use settings::{ConvexSettings, DEFAULT_RRF_K, Fusion, RrfSettings};
