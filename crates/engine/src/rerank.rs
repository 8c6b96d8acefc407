//! Reranking a result list with a cross-encoder.
//!
//! A first-stage list (sparse, dense or fused: a [`Ranked`]) is cheap to compute over the whole
//! collection; a cross-encoder reads the query and one passage together and judges them better,
//! but costs a transformer forward pass per pair, so it only reorders the top `depth` hits.
//!
//! What the reranked list holds:
//!
//! - the first `min(depth, hits)` hits, in cross-encoder order (logit descending; equal
//!   logits keep their first-stage order), each with `score` set to its cross-encoder logit;
//! - after them the other hits, in their first-stage order with their first-stage scores.
//!
//! The two parts' scores are on different scales, so the list order, not `score`, is the
//! ranking of a reranked list (a TREC run made from one must use rank-derived scores). Every
//! hit keeps its `legs`, so explain output still shows what each leg gave it, and
//! [`Reranked::before`] keeps each reranked hit's first-stage rank and score.

use std::cmp::Ordering;

use serde::Serialize;

use hybrid_search_dense::train::CrossEncoder;

use crate::collection::{Collection, Ranked};
use crate::dense_leg::passage_text;
use crate::error::Result;

/// Where a reranked hit stood in the first-stage list.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FirstStage {
    /// 1-based rank in the first-stage list.
    pub rank: usize,
    /// The first-stage score (BM25, cosine or fused).
    pub score: f64,
}

/// A result list reordered by a cross-encoder (see the module documentation).
#[derive(Debug, Clone, PartialEq)]
pub struct Reranked {
    /// The reordered list: its first `before.len()` hits are the reranked ones, scored by the
    /// cross-encoder's logit; the rest follow unchanged.
    pub results: Ranked,
    /// For each reranked hit, in the new order: where it stood before.
    pub before: Vec<FirstStage>,
}

/// Reranks the top `depth` hits of `ranked` (a list of `collection`'s documents for `query`)
/// with `reranker`: each hit's stored passage (`title + " " + text`, what the dense leg
/// encodes) is scored against the query, and those hits are reordered by the logit. Hits past
/// `depth` keep their order after them. A hit whose document is no longer stored is scored
/// with an empty passage. `depth` 0 (or an empty list) leaves the list as it is.
pub fn rerank(
    collection: &Collection,
    query: &str,
    ranked: Ranked,
    reranker: &CrossEncoder,
    depth: usize,
) -> Result<Reranked> {
    let Ranked {
        mode,
        fallback,
        mut hits,
    } = ranked;
    let n = depth.min(hits.len());
    let mut passages = Vec::with_capacity(n);
    for hit in &hits[..n] {
        let doc = collection.get(&hit.id)?;
        passages.push(doc.map(|d| passage_text(&d)).unwrap_or_default());
    }
    let texts: Vec<&str> = passages.iter().map(String::as_str).collect();
    let logits = if n == 0 {
        Vec::new()
    } else {
        reranker.score(query, &texts)?
    };
    let tail = hits.split_off(n);
    let mut head: Vec<_> = hits
        .into_iter()
        .zip(logits)
        .enumerate()
        .map(|(i, (hit, logit))| (i, hit, logit))
        .collect();
    // Stable: equal logits keep their first-stage order. A NaN logit sorts last.
    head.sort_by(|a, b| by_logit(b.2, a.2));
    let mut before = Vec::with_capacity(n);
    let mut hits = Vec::with_capacity(n + tail.len());
    for (i, mut hit, logit) in head {
        before.push(FirstStage {
            rank: i + 1,
            score: hit.score,
        });
        hit.score = f64::from(logit);
        hits.push(hit);
    }
    hits.extend(tail);
    Ok(Reranked {
        results: Ranked {
            mode,
            fallback,
            hits,
        },
        before,
    })
}

/// `a` against `b` with NaN below every number.
fn by_logit(a: f32, b: f32) -> Ordering {
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
    use crate::collection::{HybridOptions, Mode};

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
        TinyModel::default().write(&base).unwrap();
        let reranker = CrossEncoder::from_base(&base, 3, &Device::Cpu).unwrap();
        let ranked = c
            .rank("cell", None, 8, Mode::Sparse, &HybridOptions::default())
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
        expected.sort_by(|&a, &b| by_logit(logits[b], logits[a]));
        assert_ne!(
            expected,
            (0..depth).collect::<Vec<_>>(),
            "the random head should disagree with BM25 somewhere (pick another seed)"
        );

        let out = rerank(&c, "cell", ranked.clone(), &reranker, depth).unwrap();
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
                    score: ranked.hits[i].score
                }
            );
        }
        // Past the depth: untouched.
        assert_eq!(&hits[depth..], &ranked.hits[depth..]);
        assert_eq!(out.results.mode, ranked.mode);

        // A depth past the list reranks all of it; depth 0 changes nothing.
        let all = rerank(&c, "cell", ranked.clone(), &reranker, 100).unwrap();
        assert_eq!(all.before.len(), 8);
        let none = rerank(&c, "cell", ranked.clone(), &reranker, 0).unwrap();
        assert_eq!(none.results, ranked);
        assert!(none.before.is_empty());
    }

    #[test]
    fn a_reranker_can_be_shared_across_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<CrossEncoder>();
    }

    #[test]
    fn nan_sorts_last() {
        let mut v = [1.0, f32::NAN, 3.0, -2.0];
        v.sort_by(|a, b| by_logit(*b, *a));
        assert_eq!(&v[..3], &[3.0, 1.0, -2.0]);
        assert!(v[3].is_nan());
    }
}
