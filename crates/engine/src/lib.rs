//! hybrid-search as an embedded library: a [`Collection`] on disk that holds the search legs and
//! their settings, with one document lifecycle (upsert, delete, commit) and search.
//!
//! This crate is a facade: it re-exports the component crates ([`sparse`], [`eval`]) and keeps
//! the on-disk layout:
//!
//! ```text
//! my-collection/
//!   manifest.json   format version, analyzer settings, the dense model's record
//!   sparse/         tantivy BM25 index (external id, internal key, title, text); each commit
//!                   carries the engine's record (next key, dense generation)
//!   dense/          vectors-<generation>.hnsw (usearch) or .exact, keyed by internal key
//! ```
//!
//! # Example
//!
//! ```
//! use hybrid_search::{AnalyzerConfig, AnalyzerKind, Collection, Document};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("docs");
//! let mut collection =
//!     Collection::create(&path, AnalyzerConfig::for_kind(AnalyzerKind::En)).unwrap();
//! let mut writer = collection.writer().unwrap();
//! writer.upsert(&Document { id: "d1".into(), title: "Cytokines".into(),
//!     text: "IL-6 drives the acute phase response.".into() }).unwrap();
//! writer.upsert(&Document { id: "d2".into(), title: "Diabetes".into(),
//!     text: "HbA1c reflects glucose over three months.".into() }).unwrap();
//! writer.commit().unwrap();
//! collection.reload().unwrap();
//!
//! let hits = collection.search("IL-6", 10).unwrap().hits;
//! assert_eq!(hits[0].id, "d1");
//! ```

mod collection;
mod dense_leg;
mod error;
mod snippet;
mod tune;

pub use collection::{
    Collection, CollectionWriter, FORMAT_VERSION, Hit, HybridOptions, Manifest, Mode, Ranked,
    SearchDefaults, SearchResults, TuneRecord, VerifyReport,
};
pub use dense_leg::{
    DenseManifest, DenseOptions, EncodeProgress, ModelRecord, VectorKind, locate_model,
};
pub use error::{Error, Result};
pub use hybrid_search_dense as dense;
pub use hybrid_search_eval as eval;
pub use hybrid_search_eval::{Dataset, Document, Query};
pub use hybrid_search_fusion as fusion;
pub use hybrid_search_sparse as sparse;
pub use hybrid_search_sparse::{AnalyzerConfig, AnalyzerKind, DecompoundMode, StopWords};
pub use snippet::snippet;
pub use tune::{TuneRow, default_grid, tune};
