//! Evaluation for hybrid-search: dataset readers, retrieval metrics and TREC run files.
//!
//! - **Datasets** ([`detect_format`], [`read_corpus`], [`load_dataset`]): BEIR folders
//!   (`corpus.jsonl`, `queries.jsonl`, `qrels/<split>.tsv`), SQuAD/KorQuAD JSON files read in
//!   place as retrieval sets, and plain JSONL corpora. Errors name the file, the line and what
//!   was expected.
//! - **Metrics** ([`metrics`]): nDCG@10, Recall@100 and MRR@10 computed as `trec_eval` does
//!   (its ranking order and tie-breaking, `-c` averaging over all judged queries).
//! - **Run files** ([`trec`]): writing and reading TREC run files.
//!
//! # Example
//!
//! ```
//! use std::collections::HashMap;
//! use hybrid_search_eval::{read_corpus, metrics::{evaluate, Run}, Qrels};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("docs.jsonl");
//! std::fs::write(&path, concat!(
//!     r#"{"_id": "d1", "title": "Seoul", "text": "Capital of Korea."}"#, "\n",
//!     r#"{"id": 2, "text": "No title here."}"#, "\n",
//! )).unwrap();
//! let corpus = read_corpus(&path).unwrap();
//! assert_eq!(corpus.len(), 2);
//! assert_eq!((corpus[1].id.as_str(), corpus[1].title.as_str()), ("2", ""));
//!
//! let qrels: Qrels = HashMap::from([("q1".to_string(), HashMap::from([("d1".to_string(), 1)]))]);
//! let run: Run = HashMap::from([(
//!     "q1".to_string(),
//!     vec![("2".to_string(), 0.9), ("d1".to_string(), 0.5)],
//! )]);
//! let (scores, _per_query) = evaluate(&qrels, &run);
//! // d1 is relevant at rank 2: nDCG@10 = (1 / log2 3) / (1 / log2 2), MRR@10 = 1/2.
//! assert!((scores.ndcg_at_10 - 1.0 / 3f64.log2()).abs() < 1e-12);
//! assert_eq!(scores.mrr_at_10, 0.5);
//! assert_eq!(scores.recall_at_100, 1.0);
//! assert_eq!(scores.queries, 1);
//! ```

mod beir;
mod dataset;
mod error;
mod lines;
pub mod metrics;
mod squad;
pub mod trec;

pub use dataset::{
    Dataset, DatasetFormat, Document, DocumentStream, Qrels, Query, detect_format, load_dataset,
    parse_documents, read_corpus, stream_corpus,
};
pub use error::{Error, Result};
pub use metrics::{QueryScores, Run, Scores, evaluate};
