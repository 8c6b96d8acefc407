//! Training examples from a labelled dataset: one per (query, relevant document), with hard
//! negatives mined from a first-stage searcher (the passages it ranks highest that are not
//! judged relevant, best first), as DPR (Karpukhin et al. 2020) mines BM25 negatives.

use std::collections::HashMap;

use rayon::prelude::*;

use hybrid_search_document::{Document, passage_text};
use hybrid_search_eval::Dataset;

use crate::TrainExample;

/// What mining needs from a search engine: a ranked list of ids, and a document's passage.
/// The engine's collection implements it through a small adapter in the CLI; tests use a map.
pub trait Searcher: Sync {
    /// The searcher's error.
    type Error: Send;

    /// The ids of the top `k` documents for `query`, best first.
    ///
    /// # Errors
    ///
    /// Whatever the searcher reports.
    fn top_ids(&self, query: &str, k: usize) -> Result<Vec<String>, Self::Error>;

    /// The document `id` (`None` when the searcher does not hold it).
    ///
    /// # Errors
    ///
    /// Whatever the searcher reports.
    fn document(&self, id: &str) -> Result<Option<Document>, Self::Error>;
}

/// The examples of a dataset split and what went into them.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingSet {
    /// One per (query, relevant document in the corpus), in the dataset's query order and the
    /// documents' id order.
    pub examples: Vec<TrainExample>,
    /// Queries with at least one example.
    pub queries: usize,
    /// Examples that got at least one hard negative.
    pub with_negatives: usize,
    /// Relevant documents judged for the split that the corpus lacks (their judgements are
    /// skipped).
    pub missing_judged: usize,
    /// Whether the searcher held none of the first 1,000 relevant documents checked: its
    /// negatives then come from another corpus than the dataset's.
    pub foreign_searcher: bool,
}

/// Builds the examples of `dataset` (its split's queries with a relevant document in its
/// corpus), each with up to `hard_negatives` negatives from `searcher`: for every query the
/// searcher's top `hard_negatives + relevant` hits, relevant ones skipped, the first
/// `hard_negatives` kept (fewer when the searcher has fewer). Without a searcher, or with
/// `hard_negatives` 0, examples have no negatives. `on_query` runs after each query is mined
/// (a progress bar); queries are mined in parallel.
///
/// # Errors
///
/// The searcher's first error.
pub fn training_set<S: Searcher>(
    dataset: &Dataset,
    searcher: Option<&S>,
    hard_negatives: usize,
    on_query: &(dyn Fn() + Sync),
) -> Result<TrainingSet, S::Error> {
    let corpus: HashMap<&str, &Document> =
        dataset.corpus.iter().map(|d| (d.id.as_str(), d)).collect();
    let mut missing_judged = 0usize;
    // (query, its relevant documents in id order), in the dataset's query order.
    let mut labelled: Vec<(&str, Vec<&str>)> = Vec::new();
    for query in &dataset.queries {
        let Some(judged) = dataset.qrels.get(&query.id) else {
            continue;
        };
        let mut relevant: Vec<&str> = judged
            .iter()
            .filter(|&(_, &grade)| grade > 0)
            .map(|(id, _)| id.as_str())
            .collect();
        relevant.sort_unstable();
        let before = relevant.len();
        relevant.retain(|id| corpus.contains_key(id));
        missing_judged += before - relevant.len();
        if !relevant.is_empty() {
            labelled.push((query.text.as_str(), relevant));
        }
    }
    let mut foreign_searcher = false;
    let negatives: Vec<Vec<String>> = match searcher {
        Some(searcher) if hard_negatives > 0 && !labelled.is_empty() => {
            let mut found = 0;
            for id in labelled.iter().flat_map(|(_, r)| r.iter()).take(1000) {
                if searcher.document(id)?.is_some() {
                    found += 1;
                }
            }
            foreign_searcher = found == 0;
            mine(searcher, &labelled, hard_negatives, on_query)?
        }
        _ => vec![Vec::new(); labelled.len()],
    };
    let mut examples = Vec::new();
    let mut with_negatives = 0;
    for ((query, relevant), negatives) in labelled.iter().zip(&negatives) {
        for id in relevant {
            if !negatives.is_empty() {
                with_negatives += 1;
            }
            examples.push(TrainExample {
                query: query.to_string(),
                positive: passage_text(corpus[id]),
                negatives: negatives.clone(),
            });
        }
    }
    Ok(TrainingSet {
        examples,
        queries: labelled.len(),
        with_negatives,
        missing_judged,
        foreign_searcher,
    })
}

/// For each query, the passages of the searcher's top hits that are not among its relevant
/// documents, the first `n` (best first).
fn mine<S: Searcher>(
    searcher: &S,
    labelled: &[(&str, Vec<&str>)],
    n: usize,
    on_query: &(dyn Fn() + Sync),
) -> Result<Vec<Vec<String>>, S::Error> {
    labelled
        .par_iter()
        .map(|(query, relevant)| {
            // Asking for n + |relevant| hits leaves n that are not relevant when the
            // searcher has them.
            let hits = searcher.top_ids(query, n + relevant.len())?;
            let mut negatives = Vec::with_capacity(n);
            for id in hits {
                if negatives.len() == n {
                    break;
                }
                if relevant.contains(&id.as_str()) {
                    continue;
                }
                if let Some(doc) = searcher.document(&id)? {
                    negatives.push(passage_text(&doc));
                }
            }
            on_query();
            Ok(negatives)
        })
        .collect()
}
