//! Reranking a result list with a cross-encoder.
//!
//! A first-stage list (sparse, dense or fused: a [`Ranked`]) is cheap to compute over the whole
//! collection; a cross-encoder reads the query and one passage together and judges them better,
//! but costs a transformer forward pass per pair, so it only reorders the top `depth` hits.
//!
//! What the reranked list holds:
//!
//! - the first `min(depth, hits)` hits, reordered by their new score (descending; equal scores
//!   keep their first-stage order):
//!   - with [`RerankOptions::weight`] 1, the cross-encoder's logit alone;
//!   - with a weight `w` below 1 (0.2 by default), `w * logit' + (1 - w) * first'`, where `logit'` and `first'`
//!     are the logit and the first-stage score min-max normalised over the reranked hits (as
//!     Elasticsearch's rescorer blends `query_weight` and `rescore_query_weight`): a
//!     cross-encoder that is weaker than the first stage on some queries then refines the list
//!     instead of replacing it;
//! - after them the other hits, in their first-stage order with their first-stage scores.
//!
//! The two parts' scores are on different scales, so the list order, not `score`, is the
//! ranking of a reranked list (a TREC run made from one must use rank-derived scores). Every
//! hit keeps its `legs`, so explain output still shows what each leg gave it, and
//! [`Reranked::before`] keeps each reranked hit's first-stage rank and score and its logit.

use std::cmp::Ordering;

use serde::Serialize;

use hybrid_search_dense::CrossEncoder;

use crate::collection::Snapshot;
use crate::error::{Error, Result, Setting};
use crate::search::{Ranked, StoredDocs};
use hybrid_search_document::passage_text;

/// Where a reranked hit stood in the first-stage list, and what the cross-encoder said of it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FirstStage {
    /// 1-based rank in the first-stage list.
    pub rank: usize,
    /// The first-stage score (BM25, cosine or fused).
    pub score: f64,
    /// The cross-encoder's logit for the hit.
    pub logit: f32,
}

/// How to rerank: how many hits, and how much the cross-encoder's judgement counts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RerankOptions {
    /// Hits from the top of the first-stage list that the cross-encoder scores and reorders.
    pub depth: usize,
    /// Weight of the cross-encoder's normalised logit against the normalised first-stage
    /// score, in [0, 1] (see the module documentation); 1 orders by the logit alone.
    pub weight: f64,
}

impl Default for RerankOptions {
    /// The top [`RERANK_DEPTH`](crate::defaults::RERANK_DEPTH) (20), blended at
    /// [`RERANK_WEIGHT_SCIFACT_DEV`](crate::defaults::RERANK_WEIGHT_SCIFACT_DEV) (0.2): the
    /// weight measured best on held-out queries; the logit alone (weight 1) hurt.
    fn default() -> Self {
        Self {
            depth: crate::defaults::RERANK_DEPTH,
            weight: crate::defaults::RERANK_WEIGHT_SCIFACT_DEV,
        }
    }
}

impl RerankOptions {
    /// Checks a depth of at least 1 and a weight in [0, 1].
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRequest`] naming the setting.
    pub fn validate(&self) -> Result<()> {
        if self.depth == 0 {
            return Err(Error::InvalidRequest {
                setting: Setting::RerankDepth,
                problem: "must be at least 1".into(),
            });
        }
        check_weight(self.weight)
    }
}

/// A weight in [0, 1], else [`Error::InvalidRequest`].
fn check_weight(weight: f64) -> Result<()> {
    if (0.0..=1.0).contains(&weight) {
        Ok(())
    } else {
        Err(Error::InvalidRequest {
            setting: Setting::RerankWeight,
            problem: format!("must be between 0 and 1, got {weight}"),
        })
    }
}

/// A result list reordered by a cross-encoder (see the module documentation).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Reranked {
    /// The reordered list: its first `before.len()` hits are the reranked ones, scored by the
    /// cross-encoder's logit; the rest follow unchanged.
    pub results: Ranked,
    /// For each reranked hit, in the new order: where it stood before.
    pub before: Vec<FirstStage>,
}

/// Reranks the top `options.depth` hits of `ranked` (a list of `collection`'s documents for
/// `query`) with `reranker`: each hit's stored passage (`title + " " + text`, what the dense leg
/// encodes) is scored against the query, and those hits are reordered by the logit, or by its
/// blend with the first-stage score when `options.weight` is below 1 (see the module
/// documentation). Hits past the depth keep their order after them. A hit whose document is no
/// longer stored is scored with an empty passage. Depth 0 (or an empty list) leaves the list
/// as it is. A weight outside [0, 1] is an [`Error::InvalidRequest`].
///
/// # Errors
///
/// [`Error::InvalidRequest`] for a weight outside [0, 1]; [`Error::Dense`] when the cross-encoder
/// fails; [`Error::Sparse`] when a stored document cannot be read.
pub(crate) fn rerank(
    collection: &Snapshot,
    query: &str,
    ranked: Ranked,
    reranker: &CrossEncoder,
    options: &RerankOptions,
    docs: &mut StoredDocs,
) -> Result<Reranked> {
    check_weight(options.weight)?;
    let mut ranked = ranked;
    let mut hits = std::mem::take(&mut ranked.hits);
    let n = options.depth.min(hits.len());
    let mut passages = Vec::with_capacity(n);
    for hit in &hits[..n] {
        let doc = docs.get(collection, &hit.id)?;
        passages.push(doc.map_or_else(String::new, |d| passage_of(&d)));
    }
    let texts: Vec<&str> = passages.iter().map(String::as_str).collect();
    let logits = if n == 0 {
        Vec::new()
    } else {
        reranker.score(query, &texts)?
    };
    let tail = hits.split_off(n);
    let firsts: Vec<f64> = hits.iter().map(|h| h.score).collect();
    let scores = blend(&logits, &firsts, options.weight);
    let mut head: Vec<_> = hits
        .into_iter()
        .zip(logits.iter().zip(scores))
        .enumerate()
        .map(|(i, (hit, (&logit, score)))| (i, hit, logit, score))
        .collect();
    // Stable: equal scores keep their first-stage order. A NaN sorts last.
    head.sort_by(|a, b| by_score(b.3, a.3));
    let mut before = Vec::with_capacity(n);
    let mut hits = Vec::with_capacity(n + tail.len());
    for (i, mut hit, logit, score) in head {
        before.push(FirstStage {
            rank: i + 1,
            score: hit.score,
            logit,
        });
        hit.score = score;
        hits.push(hit);
    }
    hits.extend(tail);
    ranked.hits = hits;
    Ok(Reranked {
        results: ranked,
        before,
    })
}

/// The passage a cross-encoder reads for a stored document: as [`passage_text`] gives it.
fn passage_of(doc: &hybrid_search_sparse::SparseDoc) -> String {
    passage_text(&hybrid_search_document::Document {
        id: doc.id.clone(),
        title: doc.title.clone(),
        text: doc.text.clone(),
        vector: None,
        fields: Default::default(),
    })
}

/// The reranked hits' new scores: the logits themselves at weight 1, else
/// `weight * minmax(logit) + (1 - weight) * minmax(first)`. A list whose values are all equal
/// normalises to 0.
fn blend(logits: &[f32], firsts: &[f64], weight: f64) -> Vec<f64> {
    if weight >= 1.0 {
        return logits.iter().map(|&l| f64::from(l)).collect();
    }
    let logits: Vec<f64> = logits.iter().map(|&l| f64::from(l)).collect();
    let (l, f) = (min_max(&logits), min_max(firsts));
    l.iter()
        .zip(f)
        .map(|(l, f)| weight * l + (1.0 - weight) * f)
        .collect()
}

/// `values` scaled to [0, 1] by their minimum and maximum (NaN stays NaN).
fn min_max(values: &[f64]) -> Vec<f64> {
    let finite = values.iter().copied().filter(|v| v.is_finite());
    let lo = finite.clone().fold(f64::INFINITY, f64::min);
    let hi = finite.fold(f64::NEG_INFINITY, f64::max);
    values
        .iter()
        .map(|&v| {
            if hi > lo {
                (v - lo) / (hi - lo)
            } else {
                0.0 * v
            }
        })
        .collect()
}

/// `a` against `b` with NaN below every number.
fn by_score(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (false, false) => a.total_cmp(&b),
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use hybrid_search_dense::{Device, TinyModel};
    use hybrid_search_eval::Document;
    use hybrid_search_sparse::{AnalyzerConfig, AnalyzerKind};

    use super::*;
    use crate::Collection;
    use crate::manifest::{HybridOptions, Mode};
    use crate::request::{FusionOverrides, SearchRequest};

    /// A sparse collection whose documents all contain "cell", so a search for it finds all.
    fn collection(dir: &std::path::Path) -> Collection {
        let mut c =
            Collection::create(&dir.join("idx"), AnalyzerConfig::for_kind(AnalyzerKind::En))
                .unwrap();
        let words = [
            "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel",
        ];
        let mut w = c.writer().unwrap();
        for (i, word) in words.iter().enumerate() {
            w.upsert(&Document {
                id: format!("d{i}"),
                title: word.to_string(),
                // Earlier documents repeat the term more: a clear BM25 order.
                text: format!("{} {word}", "cell ".repeat(words.len() - i)),
                vector: None,
                fields: Default::default(),
            })
            .unwrap();
        }
        w.commit().unwrap();
        c.reload().unwrap();
        c
    }

    #[test]
    fn reorders_the_top_hits_by_the_cross_encoder_and_keeps_the_rest() {
        let tmp = tempfile::tempdir().unwrap();
        let c = collection(tmp.path());
        let base = tmp.path().join("tiny");
        TinyModel {
            seed: 3,
            ..TinyModel::default()
        }
        .write_cross_encoder(&base)
        .unwrap();
        let reranker = CrossEncoder::load(&base, &Device::Cpu).unwrap();
        let ranked = c
            .rank(
                &SearchRequest::new("cell", 8)
                    .with_mode(Mode::Sparse)
                    .with_fusion(FusionOverrides::exactly(HybridOptions::default())),
            )
            .unwrap();
        assert_eq!(ranked.hits.len(), 8);
        let first: Vec<Arc<str>> = ranked.hits.iter().map(|h| h.id.clone()).collect();

        let depth = 5;
        // What the cross-encoder says of the top 5, computed directly.
        let passages: Vec<String> = first[..depth]
            .iter()
            .map(|id| passage_text(&c.get(id).unwrap().unwrap()))
            .collect();
        let texts: Vec<&str> = passages.iter().map(String::as_str).collect();
        let logits = reranker.score("cell", &texts).unwrap();
        let mut expected: Vec<usize> = (0..depth).collect();
        expected.sort_by(|&a, &b| by_score(f64::from(logits[b]), f64::from(logits[a])));
        assert_ne!(
            expected,
            (0..depth).collect::<Vec<_>>(),
            "the random head should disagree with BM25 somewhere (pick another seed)"
        );

        let options = |depth, weight| RerankOptions { depth, weight };
        let out = rerank(
            &c,
            "cell",
            ranked.clone(),
            &reranker,
            &options(depth, 1.0),
            &mut StoredDocs::default(),
        )
        .unwrap();
        let hits = &out.results.hits;
        assert_eq!(hits.len(), 8);
        for (pos, &i) in expected.iter().enumerate() {
            assert_eq!(hits[pos].id, first[i]);
            assert_eq!(hits[pos].score, f64::from(logits[i]));
            assert_eq!(hits[pos].legs, ranked.hits[i].legs, "legs kept for explain");
            assert_eq!(
                out.before[pos],
                FirstStage {
                    rank: i + 1,
                    score: ranked.hits[i].score,
                    logit: logits[i],
                }
            );
        }
        // Past the depth: untouched.
        assert_eq!(&hits[depth..], &ranked.hits[depth..]);
        assert_eq!(out.results.mode, ranked.mode);

        // A depth past the list reranks all of it; depth 0 changes nothing.
        let all = rerank(
            &c,
            "cell",
            ranked.clone(),
            &reranker,
            &options(100, 1.0),
            &mut StoredDocs::default(),
        )
        .unwrap();
        assert_eq!(all.before.len(), 8);
        let none = rerank(
            &c,
            "cell",
            ranked.clone(),
            &reranker,
            &options(0, 1.0),
            &mut StoredDocs::default(),
        )
        .unwrap();
        assert_eq!(none.results, ranked);
        assert!(none.before.is_empty());

        // Weight 0 keeps the first-stage order; a weight in between blends the min-max
        // normalised logit and first-stage score.
        let kept = rerank(
            &c,
            "cell",
            ranked.clone(),
            &reranker,
            &options(depth, 0.0),
            &mut StoredDocs::default(),
        )
        .unwrap();
        let kept_ids: Vec<_> = kept.results.hits.iter().map(|h| h.id.clone()).collect();
        assert_eq!(kept_ids, first);
        let w = 0.4;
        let blended = rerank(
            &c,
            "cell",
            ranked.clone(),
            &reranker,
            &options(depth, w),
            &mut StoredDocs::default(),
        )
        .unwrap();
        let norm = |v: Vec<f64>| {
            let (lo, hi) = v
                .iter()
                .fold((f64::MAX, f64::MIN), |(l, h), &x| (l.min(x), h.max(x)));
            v.into_iter().map(move |x| (x - lo) / (hi - lo))
        };
        let l = norm(logits.iter().map(|&x| f64::from(x)).collect());
        let f = norm(ranked.hits[..depth].iter().map(|h| h.score).collect());
        let want: Vec<f64> = l.zip(f).map(|(l, f)| w * l + (1.0 - w) * f).collect();
        for (hit, first) in blended.results.hits.iter().zip(&blended.before) {
            assert!((hit.score - want[first.rank - 1]).abs() < 1e-12);
            assert_eq!(first.logit, logits[first.rank - 1]);
        }
        assert!(
            blended.results.hits[..depth]
                .windows(2)
                .all(|p| p[0].score >= p[1].score)
        );
        let err = rerank(
            &c,
            "cell",
            ranked,
            &reranker,
            &options(depth, 1.5),
            &mut StoredDocs::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("between 0 and 1"), "{err}");
    }

    #[test]
    fn a_reranker_can_be_shared_across_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<CrossEncoder>();
    }

    #[test]
    fn nan_sorts_last() {
        let mut v = [1.0, f64::NAN, 3.0, -2.0];
        v.sort_by(|a, b| by_score(*b, *a));
        assert_eq!(&v[..3], &[3.0, 1.0, -2.0]);
        assert!(v[3].is_nan());
    }
}
