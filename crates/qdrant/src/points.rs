//! What `sync` sends: the Qdrant collection's settings and one point per live document.

use std::hash::Hasher;

use serde::Serialize;
use uuid::Uuid;

use hybrid_search::Collection;
use hybrid_search::dense::Metric;
use hybrid_search::sparse::{Bm25Stats, FieldSchema, FieldSpec, SparseVector};
use hybrid_search::{PointData, VectorKind};

use crate::filter::payload_fields;

/// The named dense vector: one vector per window of the document, compared with the query's by
/// MaxSim (the best window's similarity, as the engine ranks a windowed document).
pub const DENSE_VECTOR: &str = "dense";
/// The named sparse vector: the document's side of BM25 (no IDF modifier: the IDF is in the
/// query's vector, from the engine collection's statistics).
pub const SPARSE_VECTOR: &str = "bm25";
/// The payload key holding the external id.
pub const DOC_ID: &str = "doc_id";
/// The payload key holding the point's digest (what `sync` compares to skip unchanged points).
pub const DIGEST: &str = "digest";
/// The collection metadata key holding [`CollectionSpec`] as `sync` last wrote it.
pub const METADATA_KEY: &str = "hybrid_search";

/// The UUID namespace of point ids: UUID v5 of the URL `https://hybrid-search.invalid/doc-id`
/// in the URL namespace.
pub fn id_namespace() -> Uuid {
    Uuid::new_v5(
        &Uuid::NAMESPACE_URL,
        b"https://hybrid-search.invalid/doc-id",
    )
}

/// The point id of the document with external id `doc_id`: UUID v5 (RFC 9562, SHA-1 of the
/// name in a namespace) of `doc_id`'s UTF-8 bytes in [`id_namespace`]. Stable across runs,
/// machines and versions; in Python:
/// `uuid.uuid5(uuid.uuid5(uuid.NAMESPACE_URL, "https://hybrid-search.invalid/doc-id"), doc_id)`.
pub fn point_id(doc_id: &str) -> Uuid {
    Uuid::new_v5(&id_namespace(), doc_id.as_bytes())
}

/// The dense vector's settings in Qdrant.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct DenseSpec {
    /// Components per vector.
    pub size: usize,
    /// `Cosine` or `Dot`, as the collection's vector index compares vectors.
    pub distance: String,
    /// Always `max_sim`: a point holds one vector per window.
    pub multivector: String,
    /// The HNSW beam width the engine searches with (`hnsw_ef` of Qdrant's dense queries).
    pub hnsw_ef: usize,
}

/// The model that made the dense vectors.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct ModelSpec {
    /// The model directory's name.
    pub name: String,
    /// The fingerprint of its weights (the engine's manifest record).
    pub weights_checksum: String,
}

/// The Qdrant collection `sync` creates for an engine collection, and what its points were
/// computed with (stored in the collection's metadata under [`METADATA_KEY`]).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct CollectionSpec {
    /// The dense vector, when the engine collection has a dense leg.
    pub dense: Option<DenseSpec>,
    /// The sparse vector's name ([`SPARSE_VECTOR`]).
    pub sparse: String,
    /// The model of the dense vectors.
    pub model: Option<ModelSpec>,
    /// The analyzer settings of the engine collection (its manifest's record).
    pub analyzer: serde_json::Value,
    /// `N` and `avgdl` the document vectors were computed with.
    pub bm25: Bm25Spec,
    /// The documents' fields and their types (a payload index each); empty in the metadata
    /// of a sync made before fields existed.
    #[serde(default)]
    pub fields: Vec<FieldSpec>,
}

/// The BM25 statistics of a sync, as stored in the collection's metadata.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
pub struct Bm25Spec {
    /// Documents in the engine's segments, deleted ones included.
    pub docs: u64,
    /// Live documents.
    pub live_docs: u64,
    /// `avgdl` of the analysed field.
    pub avg_len: f32,
    /// `avgdl` of the bigram field.
    pub avg_len_bigrams: f32,
}

impl From<Bm25Stats> for Bm25Spec {
    fn from(s: Bm25Stats) -> Self {
        Self {
            docs: s.docs,
            live_docs: s.live_docs,
            avg_len: s.avg_len,
            avg_len_bigrams: s.avg_len_bigrams,
        }
    }
}

impl CollectionSpec {
    /// The spec of `collection` at the commit it is on.
    ///
    /// # Errors
    ///
    /// [`hybrid_search::Error::Sparse`] when the BM25 statistics cannot be read.
    pub fn of(collection: &Collection) -> hybrid_search::Result<Self> {
        let manifest = collection.manifest();
        let dense = manifest.dense.as_ref();
        Ok(Self {
            dense: dense.map(|d| DenseSpec {
                size: d.vectors.dim,
                distance: match d.vectors.metric {
                    Metric::Cosine => "Cosine",
                    Metric::InnerProduct => "Dot",
                }
                .to_string(),
                multivector: "max_sim".to_string(),
                hnsw_ef: match d.kind {
                    VectorKind::Hnsw => d.vectors.expansion_search,
                    VectorKind::Exact => d.vectors.expansion_search.max(128),
                },
            }),
            sparse: SPARSE_VECTOR.to_string(),
            model: dense.map(|d| ModelSpec {
                name: d.model.name.clone(),
                weights_checksum: d.model.weights.checksum.clone(),
            }),
            analyzer: serde_json::to_value(&manifest.analyzer).unwrap_or_default(),
            bm25: collection.bm25_stats()?.into(),
            fields: manifest.fields.specs().to_vec(),
        })
    }

    /// What differs between the vectors and model of `self` (the engine collection) and
    /// `other` (what a Qdrant collection holds), for an error message; empty when they fit.
    pub fn differences(&self, other: &CollectionSpec) -> Vec<String> {
        let mut out = Vec::new();
        if self.dense != other.dense {
            out.push(format!(
                "dense vector {} vs {}",
                describe_dense(&self.dense),
                describe_dense(&other.dense)
            ));
        }
        if self.model != other.model {
            let name = |m: &Option<ModelSpec>| {
                m.as_ref().map_or("none".to_string(), |m| {
                    format!("{} (weights {})", m.name, m.weights_checksum)
                })
            };
            out.push(format!(
                "model {} vs {}",
                name(&self.model),
                name(&other.model)
            ));
        }
        if self.analyzer != other.analyzer {
            out.push(format!("analyzer {} vs {}", self.analyzer, other.analyzer));
        }
        out
    }
}

fn describe_dense(d: &Option<DenseSpec>) -> String {
    d.as_ref().map_or("none".to_string(), |d| {
        format!("{} dimensions, {}", d.size, d.distance)
    })
}

/// One point as `sync` sends it and `export` writes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    /// [`point_id`] of the document's id.
    pub id: Uuid,
    /// The named vectors.
    pub vector: PointVectors,
    /// External id, title, text, fields and digest.
    pub payload: PointPayload,
}

/// A point's named vectors.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PointVectors {
    /// The document's dense vectors, one per window ([`DENSE_VECTOR`]); absent without a dense
    /// leg, and for a document with nothing to encode (it has no vector in the engine either).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dense: Option<Vec<Vec<f32>>>,
    /// The document's side of BM25 ([`SPARSE_VECTOR`]).
    pub bm25: SparseVector,
}

/// A point's payload.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PointPayload {
    /// The external id.
    pub doc_id: String,
    /// Title.
    pub title: String,
    /// Text.
    pub text: String,
    /// The document's fields, each value in its canonical form
    /// ([`crate::filter::payload_fields`]); left out when it has none.
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    pub fields: serde_json::Map<String, serde_json::Value>,
    /// FNV-1a (64 bits, hex) of the id, title, text, fields and dense vectors: what `sync`
    /// compares to skip unchanged points. The BM25 vector is left out: it changes with the corpus's
    /// `avgdl`, which `sync` compares once for all points.
    pub digest: String,
}

impl Point {
    /// The point of one document, its fields typed by `schema` (the collection's).
    pub fn of(data: PointData, dense_leg: bool, schema: &FieldSchema) -> Self {
        let doc = data.doc;
        let fields = payload_fields(&doc.fields, schema);
        let digest = digest(&doc.id, &doc.title, &doc.text, &fields, &data.dense);
        Point {
            id: point_id(&doc.id),
            vector: PointVectors {
                // A document with nothing to encode has no vector: the point has none either.
                dense: (dense_leg && !data.dense.is_empty()).then_some(data.dense),
                bm25: doc.vector,
            },
            payload: PointPayload {
                doc_id: doc.id.to_string(),
                title: doc.title,
                text: doc.text,
                fields,
                digest,
            },
        }
    }
}

/// FNV-1a 64 of the id, title and text (each followed by 0xff, which UTF-8 never holds), the
/// fields as JSON when there are any (so a document without fields keeps the digest it had
/// before fields existed), and the vectors' little-endian bytes.
fn digest(
    id: &str,
    title: &str,
    text: &str,
    fields: &serde_json::Map<String, serde_json::Value>,
    dense: &[Vec<f32>],
) -> String {
    let mut h = fnv::FnvHasher::default();
    for field in [id, title, text] {
        h.write(field.as_bytes());
        h.write_u8(0xff);
    }
    if !fields.is_empty() {
        h.write(
            serde_json::Value::Object(fields.clone())
                .to_string()
                .as_bytes(),
        );
        h.write_u8(0xff);
    }
    for v in dense {
        for x in v {
            h.write(&x.to_le_bytes());
        }
        h.write_u8(0xff);
    }
    format!("{:016x}", h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn point_ids_are_uuid5_of_the_document_id() {
        // Python: uuid.uuid5(uuid.uuid5(uuid.NAMESPACE_URL,
        //   "https://hybrid-search.invalid/doc-id"), "doc-1")
        let id = point_id("doc-1");
        assert_eq!(id.get_version_num(), 5);
        assert_eq!(id, point_id("doc-1"));
        assert_ne!(id, point_id("doc-2"));
        assert_eq!(
            id_namespace(),
            Uuid::new_v5(
                &Uuid::NAMESPACE_URL,
                "https://hybrid-search.invalid/doc-id".as_bytes()
            )
        );
    }

    #[test]
    fn digests_change_with_any_field_and_not_otherwise() {
        let v = vec![vec![0.5f32, -0.25]];
        let none = serde_json::Map::new();
        let base = digest("a", "t", "x", &none, &v);
        assert_eq!(base, digest("a", "t", "x", &none, &v));
        assert_ne!(base, digest("b", "t", "x", &none, &v));
        assert_ne!(base, digest("a", "", "tx", &none, &v));
        assert_ne!(base, digest("a", "t", "x", &none, &[vec![0.5, -0.26]]));
        let mut fields = serde_json::Map::new();
        fields.insert("year".into(), 2020.into());
        assert_ne!(base, digest("a", "t", "x", &fields, &v));
        assert_eq!(base.len(), 16);
    }
}
