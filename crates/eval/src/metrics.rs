//! Retrieval metrics computed as `trec_eval` (and `pytrec_eval`) computes them.
//!
//! Choices, all following `trec_eval`:
//!
//! - **Ranking order.** Before scoring, each query's list is put in `trec_eval` order: score
//!   descending, ties broken by doc id descending (byte-wise string comparison); the rank a
//!   system wrote is ignored. A NaN score sorts as negative infinity. Duplicate doc ids are
//!   dropped after sorting, keeping the first (highest-ranked) one. Metrics therefore do not
//!   depend on the order of the input list.
//! - **Relevance.** A grade above 0 is relevant; a grade of 0 or below, and an unjudged
//!   document, are non-relevant.
//! - **nDCG@k** (`ndcg_cut_k`): gain = grade for relevant documents (0 otherwise), discount
//!   `log2(rank + 1)` with ranks from 1; the ideal DCG sorts all positive grades of the query's
//!   qrels in descending order and cuts at k.
//! - **Recall@k** (`recall_k`): relevant documents in the top k / all relevant documents.
//! - **MRR@k**: 1 / rank of the first relevant document in the top k, else 0.
//! - **Averaging** (`trec_eval -c`): the mean is over every query of the qrels with at least
//!   one relevant document; a query absent from the run scores 0. Run queries without
//!   judgments are ignored.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::dataset::Qrels;

/// A ranked run: query id -> list of (doc id, score), in any order.
pub type Run = HashMap<String, Vec<(String, f32)>>;

/// Mean metrics over the evaluated queries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    /// Mean nDCG@10.
    pub ndcg_at_10: f64,
    /// Mean Recall@100.
    pub recall_at_100: f64,
    /// Mean MRR@10 (reciprocal rank of the first relevant document within the top 10).
    pub mrr_at_10: f64,
    /// How many queries were averaged: those of the qrels with at least one relevant document.
    pub queries: usize,
}

/// The metrics of one query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryScores {
    /// The query id.
    pub query_id: String,
    /// nDCG@10.
    pub ndcg_at_10: f64,
    /// Recall@100.
    pub recall_at_100: f64,
    /// MRR@10.
    pub mrr_at_10: f64,
}

/// Evaluates `run` against `qrels`: the means and the per-query scores (sorted by query id).
///
/// Every query of `qrels` with at least one relevant (grade > 0) document is scored, and a
/// query missing from `run` scores 0, as `trec_eval -c` does. With no such query the means
/// are 0 and `queries` is 0.
pub fn evaluate(qrels: &Qrels, run: &Run) -> (Scores, Vec<QueryScores>) {
    let mut ids: Vec<&String> = qrels
        .iter()
        .filter(|(_, judged)| judged.values().any(|&g| g > 0))
        .map(|(id, _)| id)
        .collect();
    ids.sort();
    let empty: Vec<(String, f32)> = Vec::new();
    let per_query: Vec<QueryScores> = ids
        .into_iter()
        .map(|qid| {
            let judged = &qrels[qid];
            let ranked = run.get(qid).unwrap_or(&empty);
            let order = ordered_ids(ranked);
            QueryScores {
                query_id: qid.clone(),
                ndcg_at_10: ndcg_ordered(10, judged, &order),
                recall_at_100: recall_ordered(100, judged, &order),
                mrr_at_10: mrr_ordered(10, judged, &order),
            }
        })
        .collect();
    let n = per_query.len();
    let mean = |f: fn(&QueryScores) -> f64| {
        if n == 0 {
            0.0
        } else {
            per_query.iter().map(f).sum::<f64>() / n as f64
        }
    };
    let scores = Scores {
        ndcg_at_10: mean(|q| q.ndcg_at_10),
        recall_at_100: mean(|q| q.recall_at_100),
        mrr_at_10: mean(|q| q.mrr_at_10),
        queries: n,
    };
    (scores, per_query)
}

/// nDCG@k of one ranked list (any order; see the module docs), 0 when nothing is relevant.
pub fn ndcg_at(k: usize, judged: &HashMap<String, i32>, ranked: &[(String, f32)]) -> f64 {
    ndcg_ordered(k, judged, &ordered_ids(ranked))
}

/// Recall@k of one ranked list (any order; see the module docs), 0 when nothing is relevant.
pub fn recall_at(k: usize, judged: &HashMap<String, i32>, ranked: &[(String, f32)]) -> f64 {
    recall_ordered(k, judged, &ordered_ids(ranked))
}

/// MRR@k of one ranked list (any order; see the module docs): 1 / rank of the first relevant
/// document within the top k, else 0.
pub fn mrr_at(k: usize, judged: &HashMap<String, i32>, ranked: &[(String, f32)]) -> f64 {
    mrr_ordered(k, judged, &ordered_ids(ranked))
}

/// `ranked` in `trec_eval` order: score descending, ties by doc id descending, duplicate doc
/// ids dropped (the first after sorting is kept).
pub fn trec_order(ranked: &[(String, f32)]) -> Vec<(String, f32)> {
    let mut seen = HashSet::new();
    sorted_refs(ranked)
        .into_iter()
        .filter(|(id, _)| seen.insert(id.as_str()))
        .cloned()
        .collect()
}

fn sorted_refs(ranked: &[(String, f32)]) -> Vec<&(String, f32)> {
    let key = |s: f32| if s.is_nan() { f32::NEG_INFINITY } else { s };
    let mut refs: Vec<&(String, f32)> = ranked.iter().collect();
    refs.sort_by(|a, b| {
        key(b.1)
            .partial_cmp(&key(a.1))
            .unwrap_or(Ordering::Equal)
            .then_with(|| b.0.cmp(&a.0))
    });
    refs
}

/// The doc ids of `ranked` in `trec_eval` order, without duplicates.
fn ordered_ids(ranked: &[(String, f32)]) -> Vec<&str> {
    let mut seen = HashSet::new();
    sorted_refs(ranked)
        .into_iter()
        .map(|(id, _)| id.as_str())
        .filter(|id| seen.insert(*id))
        .collect()
}

fn grade(judged: &HashMap<String, i32>, doc: &str) -> i32 {
    judged.get(doc).copied().unwrap_or(0)
}

fn ndcg_ordered(k: usize, judged: &HashMap<String, i32>, order: &[&str]) -> f64 {
    let discount = |i: usize| (i as f64 + 2.0).log2(); // rank i + 1 -> log2(rank + 1)
    let dcg: f64 = order
        .iter()
        .take(k)
        .enumerate()
        .map(|(i, doc)| f64::from(grade(judged, doc).max(0)) / discount(i))
        .sum();
    let mut ideal: Vec<i32> = judged.values().copied().filter(|&g| g > 0).collect();
    ideal.sort_unstable_by(|a, b| b.cmp(a));
    let idcg: f64 = ideal
        .iter()
        .take(k)
        .enumerate()
        .map(|(i, &g)| f64::from(g) / discount(i))
        .sum();
    if idcg > 0.0 { dcg / idcg } else { 0.0 }
}

fn recall_ordered(k: usize, judged: &HashMap<String, i32>, order: &[&str]) -> f64 {
    let relevant = judged.values().filter(|&&g| g > 0).count();
    if relevant == 0 {
        return 0.0;
    }
    let found = order
        .iter()
        .take(k)
        .filter(|doc| grade(judged, doc) > 0)
        .count();
    found as f64 / relevant as f64
}

fn mrr_ordered(k: usize, judged: &HashMap<String, i32>, order: &[&str]) -> f64 {
    order
        .iter()
        .take(k)
        .position(|doc| grade(judged, doc) > 0)
        .map_or(0.0, |i| 1.0 / (i as f64 + 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn judged(pairs: &[(&str, i32)]) -> HashMap<String, i32> {
        pairs.iter().map(|&(d, g)| (d.to_string(), g)).collect()
    }

    fn ranked(pairs: &[(&str, f32)]) -> Vec<(String, f32)> {
        pairs.iter().map(|&(d, s)| (d.to_string(), s)).collect()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn graded_gains() {
        let j = judged(&[("a", 3), ("b", 2), ("c", 0), ("d", 1)]);
        // Given out of order; trec order is x (0.9), a (0.8), c (0.7), b (0.6).
        let r = ranked(&[("b", 0.6), ("x", 0.9), ("c", 0.7), ("a", 0.8)]);
        // DCG@10 = 0/log2 2 + 3/log2 3 + 0/log2 4 + 2/log2 5 = 1.89279 + 0.86135 = 2.75414
        // IDCG@10 (grades 3, 2, 1) = 3/log2 2 + 2/log2 3 + 1/log2 4 = 3 + 1.26186 + 0.5 = 4.76186
        // nDCG@10 = 2.75414 / 4.76186 = 0.57838
        let dcg = 3.0 / 3f64.log2() + 2.0 / 5f64.log2();
        let idcg = 3.0 + 2.0 / 3f64.log2() + 0.5;
        assert!(close(ndcg_at(10, &j, &r), dcg / idcg));
        assert!((ndcg_at(10, &j, &r) - 0.57838).abs() < 1e-5);
        // nDCG@2 = (3/log2 3) / (3 + 2/log2 3) = 1.89279 / 4.26186 = 0.44412
        assert!(close(
            ndcg_at(2, &j, &r),
            (3.0 / 3f64.log2()) / (3.0 + 2.0 / 3f64.log2())
        ));
        // Recall: relevant = {a, b, d}; top 100 holds a and b -> 2/3; top 2 holds a -> 1/3.
        assert!(close(recall_at(100, &j, &r), 2.0 / 3.0));
        assert!(close(recall_at(2, &j, &r), 1.0 / 3.0));
        // First relevant (a) at rank 2 -> 1/2; within the top 1 there is none -> 0.
        assert!(close(mrr_at(10, &j, &r), 0.5));
        assert_eq!(mrr_at(1, &j, &r), 0.0);
    }

    #[test]
    fn negative_grade_is_non_relevant() {
        let j = judged(&[("a", -1), ("b", 1)]);
        let r = ranked(&[("a", 2.0), ("b", 1.0)]);
        // DCG = 0 + 1/log2 3; IDCG = 1 (only b is relevant) -> 0.63093
        assert!(close(ndcg_at(10, &j, &r), 1.0 / 3f64.log2()));
        assert!(close(recall_at(10, &j, &r), 1.0));
        assert!(close(mrr_at(10, &j, &r), 0.5));
    }

    #[test]
    fn ties_break_by_doc_id_descending() {
        let j = judged(&[("a", 1)]);
        let r = ranked(&[("a", 1.0), ("b", 1.0), ("c", 1.0)]);
        // Equal scores: order c, b, a, so a is at rank 3.
        assert_eq!(
            trec_order(&r),
            ranked(&[("c", 1.0), ("b", 1.0), ("a", 1.0)])
        );
        // MRR = 1/3; nDCG = (1/log2 4) / 1 = 0.5; a is outside the top 2.
        assert!(close(mrr_at(10, &j, &r), 1.0 / 3.0));
        assert!(close(ndcg_at(10, &j, &r), 0.5));
        assert_eq!(recall_at(2, &j, &r), 0.0);
        assert_eq!(mrr_at(2, &j, &r), 0.0);
        // Comparison is by string, not number: "9" > "10".
        let j = judged(&[("10", 1)]);
        let r = ranked(&[("10", 1.0), ("9", 1.0)]);
        assert!(close(mrr_at(10, &j, &r), 0.5));
    }

    #[test]
    fn duplicates_keep_the_first_after_sorting() {
        let j = judged(&[("a", 1)]);
        // Sorted: b 0.9, a 0.5, a 0.1 -> duplicates dropped -> b, a. MRR = 1/2, recall 1 (not 2).
        let r = ranked(&[("a", 0.5), ("b", 0.9), ("a", 0.1)]);
        assert!(close(mrr_at(10, &j, &r), 0.5));
        assert!(close(recall_at(10, &j, &r), 1.0));
        assert_eq!(trec_order(&r), ranked(&[("b", 0.9), ("a", 0.5)]));
        // The higher-scored copy wins wherever it is in the input: a 0.9 -> rank 1.
        let r = ranked(&[("a", 0.1), ("b", 0.5), ("a", 0.9)]);
        assert!(close(mrr_at(10, &j, &r), 1.0));
    }

    #[test]
    fn nan_scores_sort_last() {
        let j = judged(&[("a", 1)]);
        let r = ranked(&[("a", f32::NAN), ("b", -5.0)]);
        assert!(close(mrr_at(10, &j, &r), 0.5));
    }

    #[test]
    fn evaluate_counts_missing_queries_as_zero() {
        let qrels: Qrels = HashMap::from([
            ("q1".to_string(), judged(&[("a", 1)])),
            ("q2".to_string(), judged(&[("b", 2), ("c", 0)])),
            // No relevant document: not averaged.
            ("q3".to_string(), judged(&[("c", 0)])),
        ]);
        let run: Run = HashMap::from([
            ("q1".to_string(), ranked(&[("a", 1.0)])),
            // Not judged: ignored.
            ("q4".to_string(), ranked(&[("z", 1.0)])),
        ]);
        let (scores, per_query) = evaluate(&qrels, &run);
        // q1 scores 1 on every metric, q2 (absent from the run) scores 0: means (1 + 0) / 2.
        assert_eq!(scores.queries, 2);
        assert!(close(scores.ndcg_at_10, 0.5));
        assert!(close(scores.recall_at_100, 0.5));
        assert!(close(scores.mrr_at_10, 0.5));
        let ids: Vec<&str> = per_query.iter().map(|q| q.query_id.as_str()).collect();
        assert_eq!(ids, ["q1", "q2"]);
        assert_eq!(
            per_query[1],
            QueryScores {
                query_id: "q2".into(),
                ndcg_at_10: 0.0,
                recall_at_100: 0.0,
                mrr_at_10: 0.0
            }
        );
    }

    #[test]
    fn evaluate_two_queries_graded() {
        let qrels: Qrels = HashMap::from([
            ("q1".to_string(), judged(&[("a", 2), ("b", 1)])),
            ("q2".to_string(), judged(&[("c", 1)])),
        ]);
        let run: Run = HashMap::from([
            ("q1".to_string(), ranked(&[("b", 3.0), ("a", 2.0)])),
            (
                "q2".to_string(),
                ranked(&[("x", 3.0), ("y", 2.0), ("c", 1.0)]),
            ),
        ]);
        // q1: DCG = 1/1 + 2/log2 3 = 2.26186; IDCG = 2 + 1/log2 3 = 2.63093 -> 0.85972.
        //     recall 2/2 = 1; MRR 1.
        // q2: DCG = 1/log2 4 = 0.5; IDCG = 1 -> 0.5; recall 1; MRR 1/3.
        let q1 = (1.0 + 2.0 / 3f64.log2()) / (2.0 + 1.0 / 3f64.log2());
        let (scores, _) = evaluate(&qrels, &run);
        assert!(close(scores.ndcg_at_10, (q1 + 0.5) / 2.0));
        assert!((scores.ndcg_at_10 - 0.67986).abs() < 1e-5);
        assert!(close(scores.recall_at_100, 1.0));
        assert!(close(scores.mrr_at_10, (1.0 + 1.0 / 3.0) / 2.0));
    }

    #[test]
    fn evaluate_empty() {
        let (scores, per_query) = evaluate(&Qrels::new(), &Run::new());
        assert_eq!(scores, Scores::default());
        assert!(per_query.is_empty());
    }

    #[test]
    fn cut_at_zero_is_zero() {
        let j = judged(&[("a", 1)]);
        let r = ranked(&[("a", 1.0)]);
        assert_eq!(ndcg_at(0, &j, &r), 0.0);
        assert_eq!(recall_at(0, &j, &r), 0.0);
        assert_eq!(mrr_at(0, &j, &r), 0.0);
    }

    fn judged_strategy() -> impl Strategy<Value = HashMap<String, i32>> {
        prop::collection::hash_map("d[0-9]", -1i32..5, 0..10)
    }

    fn ranked_strategy() -> impl Strategy<Value = Vec<(String, f32)>> {
        // Few distinct scores so that ties and duplicate ids are common.
        prop::collection::vec(
            ("[dx][0-9]", (0u8..4).prop_map(|s| f32::from(s) * 0.5)),
            0..30,
        )
    }

    proptest! {
        #[test]
        fn metrics_are_within_unit_interval(
            j in judged_strategy(), r in ranked_strategy(), k in 0usize..25,
        ) {
            for m in [ndcg_at(k, &j, &r), recall_at(k, &j, &r), mrr_at(k, &j, &r)] {
                prop_assert!((0.0..=1.0).contains(&m), "metric {m} out of [0, 1]");
            }
        }

        #[test]
        fn ideal_ranking_has_ndcg_one(
            j in judged_strategy().prop_filter("needs a relevant doc", |j| j.values().any(|&g| g > 0)),
            k in 1usize..15,
        ) {
            let mut docs: Vec<(&String, i32)> = j.iter().map(|(d, &g)| (d, g)).collect();
            docs.sort_by_key(|d| std::cmp::Reverse(d.1));
            let n = docs.len();
            let r: Vec<(String, f32)> =
                docs.iter().enumerate().map(|(i, (d, _))| ((*d).clone(), (n - i) as f32)).collect();
            let v = ndcg_at(k, &j, &r);
            prop_assert!((v - 1.0).abs() < 1e-12, "nDCG@{k} of the ideal ranking is {v}");
        }

        #[test]
        fn permuting_the_run_changes_nothing(
            j in judged_strategy(),
            (r, shuffled) in ranked_strategy().prop_flat_map(|r| (Just(r.clone()), Just(r).prop_shuffle())),
            k in 1usize..15,
        ) {
            prop_assert_eq!(ndcg_at(k, &j, &r), ndcg_at(k, &j, &shuffled));
            prop_assert_eq!(recall_at(k, &j, &r), recall_at(k, &j, &shuffled));
            prop_assert_eq!(mrr_at(k, &j, &r), mrr_at(k, &j, &shuffled));
            let qrels: Qrels = HashMap::from([("q".to_string(), j)]);
            let a = evaluate(&qrels, &HashMap::from([("q".to_string(), r)]));
            let b = evaluate(&qrels, &HashMap::from([("q".to_string(), shuffled)]));
            prop_assert_eq!(a, b);
        }
    }
}
