//! Tuning the hybrid mode's fusion settings (and pseudo-relevance feedback) on labelled
//! queries.
//!
//! Each query's two legs are retrieved once per feedback setting tried, as deep as the
//! deepest setting; every fusion setting of the grid then only re-fuses those lists (pure
//! arithmetic), so a grid of a few hundred settings costs little more than one evaluation per
//! feedback setting.

use std::sync::Arc;

use rayon::prelude::*;

use hybrid_search_eval::metrics::{self, Run, Scores};
use hybrid_search_eval::{Qrels, Query};
use hybrid_search_fusion::{ConvexSettings, Fusion, LegList, Normalization, RrfSettings};

use crate::collection::Snapshot;
use crate::defaults::EVAL_DEPTH_FUSED_MIN;
use crate::error::Result;
use crate::legs::sparse_list;
use crate::manifest::HybridOptions;
use crate::prf::{Prf, Rm3, Rocchio};

/// One tried setting and its scores.
#[derive(Debug, Clone, PartialEq)]
pub struct TuneRow {
    /// The setting.
    pub options: HybridOptions,
    /// The pseudo-relevance feedback the legs were searched with.
    pub prf: Prf,
    /// Its metrics on the labelled queries.
    pub scores: Scores,
}

/// The settings `hybrid-search tune` tries: reciprocal rank fusion with k in {10, 20, 40, 60,
/// 100} and the dense leg weighted 0.5 to 2 times the sparse leg; convex combinations with
/// alpha 0.1 to 0.9 in steps of 0.05 under each of the four normalisations; each over the top
/// 100 and the top 1000 candidates of each leg.
pub fn default_grid() -> Vec<HybridOptions> {
    let mut fusions = Vec::new();
    for k in [10.0, 20.0, 40.0, 60.0, 100.0] {
        for dense_weight in [0.5, 0.75, 1.0, 1.5, 2.0] {
            fusions.push(Fusion::Rrf(RrfSettings {
                k,
                sparse_weight: 1.0,
                dense_weight,
            }));
        }
    }
    let norms = [
        (Normalization::MinMax, Normalization::MinMax),
        (Normalization::ZScore, Normalization::ZScore),
        (Normalization::Dbsf, Normalization::Dbsf),
        (Normalization::cosine(), Normalization::bm25()),
    ];
    for (dense, sparse) in norms {
        for step in 2..=18 {
            fusions.push(Fusion::Convex(ConvexSettings {
                alpha: step as f32 * 0.05,
                dense,
                sparse,
            }));
        }
    }
    [100, 1000]
        .into_iter()
        .flat_map(|depth| {
            fusions
                .iter()
                .map(move |&fusion| HybridOptions { fusion, depth })
        })
        .collect()
}

/// The feedback settings `hybrid-search tune` tries: none, RM3 on BM25, Rocchio on the dense
/// leg, and both, each with its default settings ([`Rm3::default`], [`Rocchio::default`]).
pub fn default_prf_grid() -> Vec<Prf> {
    let (rm3, rocchio) = (Some(Rm3::default()), Some(Rocchio::default()));
    vec![
        Prf::OFF,
        Prf { rm3, rocchio: None },
        Prf { rm3: None, rocchio },
        Prf { rm3, rocchio },
    ]
}

/// Evaluates every setting of `grid` under each feedback setting of `prfs` on `queries` (with
/// their query vectors, in order) against `qrels`; rows come back best nDCG@10 first (ties:
/// the earlier feedback setting, then the earlier setting of the grid). Each fused list holds
/// `max(depth, 100)` documents, as `hybrid-search eval` ranks them.
///
/// # Errors
///
/// [`Error::NoModel`](crate::Error::NoModel) or [`Error::DenseDamaged`](crate::Error::DenseDamaged) without a usable dense leg; [`Error::Fusion`](crate::Error::Fusion)
/// for an invalid setting in `grid`; [`Error::Sparse`](crate::Error::Sparse) when BM25 fails.
pub fn tune(
    collection: &Snapshot,
    queries: &[Query],
    vectors: &[Vec<f32>],
    qrels: &Qrels,
    grid: &[HybridOptions],
    prfs: &[Prf],
) -> Result<Vec<TuneRow>> {
    let deepest = grid
        .iter()
        .map(|o| o.depth)
        .max()
        .unwrap_or(EVAL_DEPTH_FUSED_MIN);
    let mut rows = Vec::new();
    for (p, prf) in prfs.iter().enumerate() {
        let legs = legs_with(collection, queries, vectors, deepest, prf)?;
        let fused = fuse_grid(queries, qrels, grid, &legs, *prf)?;
        rows.extend(fused.into_iter().map(|(i, row)| ((p, i), row)));
    }
    rows.sort_by(|(i, a), (j, b)| {
        b.scores
            .ndcg_at_10
            .total_cmp(&a.scores.ndcg_at_10)
            .then(i.cmp(j))
    });
    Ok(rows.into_iter().map(|(_, row)| row).collect())
}

/// Both legs' lists of each query, `depth` deep, each leg searched with its feedback.
type Lists = (Vec<(Arc<str>, f32)>, Vec<(Arc<str>, f32)>);

fn legs_with(
    collection: &Snapshot,
    queries: &[Query],
    vectors: &[Vec<f32>],
    depth: usize,
    prf: &Prf,
) -> Result<Vec<Lists>> {
    queries
        .par_iter()
        .zip(vectors)
        .map(|(q, v)| {
            let legs = crate::legs::LocalLegs;
            let mut terms = collection.sparse.query_terms(&q.text)?;
            if let Some(rm3) = &prf.rm3 {
                terms = collection.rm3_expanded(&legs, &q.text, &terms, None, rm3)?;
            }
            let mut v = std::borrow::Cow::Borrowed(v.as_slice());
            if let Some(rocchio) = &prf.rocchio {
                v = std::borrow::Cow::Owned(
                    collection.rocchio_moved(&legs, &q.text, &v, None, rocchio)?,
                );
            }
            Ok((
                collection.search_ids(&terms, depth, None)?,
                collection.dense_search_ids(&v, depth, None)?,
            ))
        })
        .collect()
}

/// Every setting of `grid` fused over `legs`, scored: (position in the grid, row).
fn fuse_grid(
    queries: &[Query],
    qrels: &Qrels,
    grid: &[HybridOptions],
    legs: &[Lists],
    prf: Prf,
) -> Result<Vec<(usize, TuneRow)>> {
    grid.par_iter()
        .enumerate()
        .map(|(i, options)| {
            let keep = options.depth.max(EVAL_DEPTH_FUSED_MIN);
            let mut run = Run::with_capacity(queries.len());
            for (q, (sparse, dense)) in queries.iter().zip(legs) {
                let depth = options.depth;
                let fused = options.fusion.fuse_lists(
                    sparse_list(&sparse[..depth.min(sparse.len())], depth),
                    LegList::new(&dense[..depth.min(dense.len())]),
                )?;
                let ranked = fused
                    .into_iter()
                    .take(keep)
                    .map(|h| (h.id.to_string(), h.score as f32))
                    .collect();
                run.insert(q.id.clone(), ranked);
            }
            let (scores, _) = metrics::evaluate(qrels, &run);
            Ok((
                i,
                TuneRow {
                    options: *options,
                    prf,
                    scores,
                },
            ))
        })
        .collect()
}
