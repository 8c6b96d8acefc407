//! A hybrid-search collection served by a Qdrant cluster, with the engine's own analysis,
//! BM25 statistics, encoders and fusion.
//!
//! - [`sync`] makes a Qdrant collection equal to an engine collection: one point per live
//!   document ([`point_id`]: UUID v5 of the external id), its dense vectors under the named
//!   multivector [`DENSE_VECTOR`] (one per window, MaxSim), its side of BM25 under the named
//!   sparse vector [`SPARSE_VECTOR`], id, title and text as payload, and the document's fields
//!   under [`FIELDS_KEY`] with a payload index per field.
//! - [`QdrantLegs`] answers the legs of the engine's searches ([`hybrid_search::Legs`]): the
//!   engine analyses the query, weighs its terms with the collection's IDF, encodes it, and
//!   fuses, or lets Qdrant fuse with RRF or DBSF ([`ServerFusion`]; each hit's legs explained
//!   by [`fusion::explain`]). A search's filter goes to every leg and prefetch as the Qdrant
//!   filter that selects the same documents ([`QdrantFilter`]).
//! - [`export()`] writes what `sync` sends as JSON Lines.
//!
//! BM25 is exact: the sparse dot product equals tantivy's score
//! ([`hybrid_search::sparse::SparseVector`], `docs/scale-out.md`). Term ids are hashes, so two
//! terms can share one ([`hybrid_search::sparse::term_id`]).

mod client;
mod error;
pub mod export;
pub mod filter;
pub mod fusion;
mod points;

pub use client::{
    Client, DEFAULT_SYNC_BATCH, LegsOptions, QDRANT_RRF_K, QdrantLegs, RemoteCollection,
    SyncOptions, SyncReport, Target, sync,
};
pub use error::{Error, Result};
pub use export::{ExportReport, QueryVectors, export};
pub use filter::{FIELDS_KEY, QdrantFilter, payload_key};
pub use fusion::ServerFusion;
pub use points::{
    Bm25Spec, CollectionSpec, DENSE_VECTOR, DIGEST, DOC_ID, DenseSpec, METADATA_KEY, ModelSpec,
    Point, PointPayload, PointVectors, SPARSE_VECTOR, id_namespace, point_id,
};
