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
