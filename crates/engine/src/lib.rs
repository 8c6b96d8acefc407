//! hybrid-search as an embedded library: a [`Collection`] on disk that holds the search legs and
//! their settings, with one document lifecycle (upsert, delete, commit) and the whole search
//! pipeline.
//!
//! - **Handle and snapshot**: a [`Collection`] is the handle writes go through; every search
//!   reads a [`Snapshot`], one commit's immutable state (held by `Arc`,
//!   [`Collection::snapshot`]; the handle dereferences to its current one). A write returns
//!   what it committed and the next snapshot ([`Committed`]).
//! - **Search**: [`Snapshot::run`] takes a [`SearchRequest`] (query text or vector, `k`, mode,
//!   [`FusionOverrides`], a separate query encoder, a cross-encoder [`Rerank`], explain) and
//!   returns [`SearchResults`]; [`Snapshot::search`] is the one-line form,
//!   [`Snapshot::run_batch`] the form for many queries, and [`Snapshot::rank`] the ranked half
//!   (ids and scores, no stored document read). The legs are answered by [`LocalLegs`] unless
//!   the request names other [`Legs`] (a Qdrant cluster). A hybrid search whose dense leg
//!   cannot answer falls back to BM25 and says why ([`Degraded`]).
//! - **Evaluation**: [`evaluate`] runs a request template for every labelled query of a
//!   dataset and scores the runs as `trec_eval` does; [`tune`] picks fusion settings.
//! - **Defaults**: every default is named in [`defaults`], with where it came from.
//! - **Models**: [`Collection::attach_model`] finds the dense leg's model at the path it was
//!   built with, then in the data folder (`$HYBRID_SEARCH_HOME`) and `models/` folders.
//!
//! `docs/architecture.md` describes the layout and the invariants (what a commit switches, who
//! may write, what a reader sees).
//!
//! It re-exports the component crates ([`sparse`], [`dense`], [`eval`], [`fusion`]) and keeps
//! the on-disk layout:
//!
//! ```text
//! my-collection/
//!   manifest.json   format version, analyzer settings, the dense model's record
//!   write.lock      the write lock: one writer at a time, across processes
//!   sparse/         tantivy BM25 index (external id, internal key, title, text); each commit
//!                   carries the engine's record (next key, the live vector segments)
//!   dense/          seg-<id>.hnsw (usearch) or .exact, keyed by internal key: one segment
//!                   per commit that added vectors, folded together by merges
//! ```
//!
//! # Example
//!
//! A collection with both legs: documents are added in one commit, searched in the default
//! hybrid mode (BM25 and vectors, fused), and every hit says what each leg gave it.
//! `cargo run --release -p hybrid-search --example embedded` does the same with
//! all-MiniLM-L6-v2; here a tiny random model stands in, so the example runs anywhere.
//!
//! ```
//! use std::sync::Arc;
//!
//! use hybrid_search::dense::{Device, Encoder, TinyModel};
//! use hybrid_search::{AnalyzerConfig, AnalyzerKind, Collection, DenseOptions, Document, Mode};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let model = dir.path().join("model"); // a real one: "models/all-MiniLM-L6-v2"
//! TinyModel::default().write(&model).unwrap();
//! let encoder = Arc::new(Encoder::load(&model, &Device::Cpu).unwrap());
//! let options = DenseOptions::for_encoder(&encoder);
//! let mut collection = Collection::create_with(
//!     &dir.path().join("docs"),
//!     AnalyzerConfig::for_kind(AnalyzerKind::En),
//!     Some((encoder, options)),
//! )
//! .unwrap();
//! let doc = |id: &str, text: &str| Document::new(id, "", text);
//! collection
//!     .add(&[doc("d1", "IL-6 drives the acute phase response."),
//!            doc("d2", "HbA1c reflects glucose over three months.")], None)
//!     .unwrap();
//!
//! let results = collection.search("IL-6", 10).unwrap();
//! assert_eq!(results.mode, Mode::Hybrid);
//! let top = &results.hits[0];
//! assert_eq!(top.id, "d1"); // BM25 matched only d1
//! for leg in &top.legs {
//!     println!("{}: rank {:?}, raw {:?}, normalised {:.3}, adds {:.3}",
//!         leg.leg, leg.rank, leg.raw_score, leg.normalized, leg.contribution);
//! }
//!
//! collection.delete(&["d2"]).unwrap();
//! assert!(collection.verify().unwrap().is_sound());
//! ```

mod collection;
pub mod defaults;
mod dense_leg;
mod error;
mod evaluate;
mod failpoint;
mod integrity;
mod legs;
mod lock;
mod manifest;
mod model;
mod prf;
mod remote;
mod request;
mod rerank;
mod search;
mod snippet;
mod tune;
mod writer;

pub use collection::{Collection, Snapshot};
pub use dense_leg::{
    DenseManifest, DenseOptions, EncodeProgress, MERGE_FACTOR, ModelRecord, STAGE_DOCUMENTS,
    VectorKind, locate_model,
};
pub use error::{Error, ErrorKind, Result, Setting};
pub use evaluate::{EvalReport, EvalStage, evaluate, query_vectors};
pub use failpoint::FAILPOINT_VAR;
pub use hybrid_search_dense as dense;
pub use hybrid_search_document::{
    Document, MAX_ID_CHARS, check_id, passage_text, show_number, vector_from_f64,
};
pub use hybrid_search_eval as eval;
pub use hybrid_search_eval::{Dataset, Query};
pub use hybrid_search_fusion as fusion;
pub use hybrid_search_sparse as sparse;
pub use hybrid_search_sparse::{
    AnalyzerConfig, AnalyzerKind, Condition, DecompoundMode, FieldSchema, FieldSpec, FieldType,
    Fields, Filter, StopWords,
};
pub use integrity::VerifyReport;
pub use legs::{
    BackendFusion, IdList, LegFilter, LegLists, LegQuery, Legs, LocalLegs, sparse_list,
};
pub use lock::{LOCK_FILE, Wait};
pub use manifest::{FORMAT_VERSION, HybridOptions, Manifest, Mode, SearchDefaults, TuneRecord};
pub use model::{ModelChoice, load_encoder, model_candidates};
pub use prf::{Prf, Rm3, Rocchio};
pub use remote::PointData;
pub use request::{
    FieldSelection, FusionMethod, FusionOverrides, NormChoice, Rerank, Resolved, SearchRequest,
};
pub use rerank::{FirstStage, RerankOptions};
pub use search::{Degraded, Hit, Ranked, RerankInfo, SearchResults};
pub use snippet::snippet;
pub use tune::{TuneRow, default_grid, default_prf_grid, tune};
pub use writer::{CollectionWriter, Committed};
