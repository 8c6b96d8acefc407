//! Legs answered somewhere else: a vector database that holds the collection's documents as
//! points (a Qdrant cluster, `hybrid-search-qdrant`). The engine still analyses the query,
//! weighs its terms with the collection's BM25 statistics, encodes it, fuses and reranks; the
//! remote side only finds the top documents of each leg.
//!
//! [`Snapshot::for_each_point`] gives what such a backend stores per document: the BM25
//! vector ([`SparseVector`], whose dot product with [`Snapshot::query_sparse_vector`] is the
//! engine's BM25 score) and the document's dense vectors (one per window).

use hybrid_search_sparse::{Bm25Stats, DocumentVector, QueryTerms, SparseVector};

use crate::collection::Snapshot;
use crate::error::{Error, Result};

/// A live document as a remote backend stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct PointData {
    /// External id, title, text and the BM25 vector.
    pub doc: DocumentVector,
    /// The document's dense vectors (one per window); empty without a dense leg.
    pub dense: Vec<Vec<f32>>,
}

impl Snapshot {
    /// The query's side of BM25 ([`hybrid_search_sparse::Bm25Index::query_vector`]).
    ///
    /// # Errors
    ///
    /// [`Error::Sparse`] when the query cannot be analysed.
    pub fn query_sparse_vector(&self, query: &str) -> Result<SparseVector> {
        Ok(self.sparse.query_vector(query)?)
    }

    /// [`Snapshot::query_sparse_vector`] of a query already analysed.
    ///
    /// # Errors
    ///
    /// [`Error::Sparse`] when a document frequency cannot be read.
    pub fn query_sparse_vector_of(&self, query: &QueryTerms) -> Result<SparseVector> {
        Ok(self.sparse.query_vector_of(query)?)
    }

    /// The BM25 statistics of the commit this collection is on.
    ///
    /// # Errors
    ///
    /// [`Error::Sparse`] when the index cannot be read.
    pub fn bm25_stats(&self) -> Result<Bm25Stats> {
        Ok(self.sparse.bm25_stats()?)
    }

    /// Calls `f` with every live document's [`PointData`], `batch` at a time, in index order,
    /// all from the commit this collection is on. Returns the BM25 statistics the sparse
    /// vectors were computed with.
    ///
    /// # Errors
    ///
    /// [`Error::DenseDamaged`] when the vector segments cannot be read, [`Error::Sparse`] when
    /// the index cannot, and whatever `f` returns.
    pub fn for_each_point(
        &self,
        batch: usize,
        f: &mut dyn FnMut(Vec<PointData>) -> Result<()>,
    ) -> Result<Bm25Stats> {
        let segments = match &self.manifest.dense {
            Some(_) => Some(self.segments()?.1),
            None => None,
        };
        self.sparse
            .for_each_document_vector::<Error>(batch, &mut |docs: Vec<DocumentVector>| {
                let keys: Vec<u64> = docs.iter().map(|d| d.key).collect();
                let mut found = std::collections::HashMap::new();
                for segment in segments.into_iter().flatten() {
                    for (key, vectors) in segment.index.vectors_of_many(&keys)? {
                        found.entry(key).or_insert_with(Vec::new).extend(vectors);
                    }
                }
                let points = docs
                    .into_iter()
                    .map(|doc| PointData {
                        dense: found.remove(&doc.key).unwrap_or_default(),
                        doc,
                    })
                    .collect();
                f(points)
            })
    }
}
