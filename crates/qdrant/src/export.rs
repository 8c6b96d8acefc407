//! `hybrid-search qdrant export`: the points `sync` would send (and a dataset's query vectors)
//! as JSON Lines, to inspect them or load them into Qdrant by other means.
//!
//! The file's lines, each a JSON object with a `type`:
//!
//! - `{"type": "collection", ...}` first: the [`CollectionSpec`] (named vectors, model,
//!   analyzer, the BM25 statistics of the points).
//! - `{"type": "point", "id": UUID, "vector": {"dense": [[f32; dim], ...], "bm25": {"indices":
//!   [u32], "values": [f32]}}, "payload": {"doc_id", "title", "text", "fields", "digest"}}` per
//!   live document ([`Point`]; `fields` only when it has some).
//! - `{"type": "query", "id", "text", "vector": {"dense": [f32; dim], "bm25": {...}}}` per query
//!   of the dataset, when one is given: the vectors a search through Qdrant sends.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use hybrid_search::sparse::{CollisionReport, SparseVector};
use hybrid_search::{Collection, Dataset, query_vectors};

use prost::Message;

use crate::client::point_struct;
use crate::error::{Error, Result};
use crate::points::{CollectionSpec, Point};

/// What [`export`] wrote.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExportReport {
    /// Points written.
    pub points: u64,
    /// Queries written.
    pub queries: u64,
    /// Bytes of the point lines (the collection and query lines left out).
    pub point_bytes: u64,
    /// Bytes the same points take in `sync`'s gRPC upserts (protobuf encoded length of each
    /// point).
    pub grpc_point_bytes: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Terms that shared an id with another term of the same document (their weights added).
    pub merged_terms: u64,
    /// Distinct terms of the index and the ids they hash to.
    pub collisions: CollisionReport,
    /// The collection spec written first.
    pub spec: CollectionSpec,
}

/// One line of the export.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Line<'a> {
    Collection(&'a CollectionSpec),
    Point(&'a Point),
    Query(QueryLine<'a>),
}

#[derive(Serialize)]
struct QueryLine<'a> {
    id: &'a str,
    text: &'a str,
    vector: QueryVectors,
}

/// A query's vectors as a search through Qdrant sends them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueryVectors {
    /// The query's dense vector (absent without a dense leg or its model).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dense: Option<Vec<f32>>,
    /// The query's side of BM25.
    pub bm25: SparseVector,
}

/// Points (and vectors) are written this many at a time.
pub const BATCH: usize = 256;

/// Writes the points of `collection` (and the query vectors of `dataset`) to `out` as JSON
/// Lines (the format is in this module's documentation). `progress(done, total)` is called
/// after each batch of points. The file is written under a temporary name and renamed when
/// complete.
///
/// # Errors
///
/// [`Error::Io`] when `out` cannot be written; [`Error::Engine`] when the collection cannot be
/// read or the queries cannot be encoded.
pub fn export(
    collection: &Collection,
    out: &Path,
    dataset: Option<&Dataset>,
    progress: &dyn Fn(u64, u64),
) -> Result<ExportReport> {
    let started = Instant::now();
    let io = |source: std::io::Error| Error::Io {
        path: out.to_path_buf(),
        source,
    };
    let tmp = out.with_file_name(format!(
        ".{}.tmp",
        out.file_name()
            .map_or("export".into(), |n| n.to_string_lossy())
    ));
    let mut w = BufWriter::new(File::create(&tmp).map_err(io)?);
    let spec = CollectionSpec::of(collection)?;
    write_line(&mut w, &Line::Collection(&spec)).map_err(io)?;
    let dense_leg = spec.dense.is_some();
    let total = collection.len();
    let (mut points, mut point_bytes, mut merged_terms) = (0u64, 0u64, 0u64);
    let mut grpc_point_bytes = 0u64;
    let mut failed = None;
    collection
        .for_each_point(BATCH, &mut |batch| {
            for data in batch {
                merged_terms += u64::from(data.doc.merged_terms);
                let point = Point::of(data, dense_leg, collection.fields());
                grpc_point_bytes += point_struct(point.clone()).encoded_len() as u64;
                match write_line(&mut w, &Line::Point(&point)) {
                    Ok(n) => point_bytes += n,
                    Err(e) => {
                        failed = Some(e);
                        return Err(hybrid_search::Error::InvalidOption("write failed".into()));
                    }
                }
                points += 1;
            }
            progress(points, total);
            Ok(())
        })
        .map_err(|e| match failed.take() {
            Some(io_err) => io(io_err),
            None => e.into(),
        })?;
    let mut queries = 0;
    if let Some(dataset) = dataset {
        let texts: Vec<&str> = dataset.queries.iter().map(|q| q.text.as_str()).collect();
        let dense = match (dense_leg, collection.encoder()) {
            (true, Some(_)) => Some(query_vectors(collection, None, &texts, &|_| {})?),
            _ => None,
        };
        for (i, q) in dataset.queries.iter().enumerate() {
            let line = QueryLine {
                id: &q.id,
                text: &q.text,
                vector: QueryVectors {
                    dense: dense.as_ref().map(|d| d[i].clone()),
                    bm25: collection.query_sparse_vector(&q.text)?,
                },
            };
            write_line(&mut w, &Line::Query(line)).map_err(io)?;
            queries += 1;
        }
    }
    w.flush().map_err(io)?;
    w.get_ref().sync_all().map_err(io)?;
    drop(w);
    std::fs::rename(&tmp, out).map_err(io)?;
    Ok(ExportReport {
        points,
        queries,
        point_bytes,
        grpc_point_bytes,
        seconds: started.elapsed().as_secs_f64(),
        merged_terms,
        collisions: collection
            .sparse()
            .term_id_collisions()
            .map_err(hybrid_search::Error::from)?,
        spec,
    })
}

/// Writes one JSON line; returns its length in bytes.
fn write_line(w: &mut impl Write, line: &Line<'_>) -> std::io::Result<u64> {
    let mut bytes = serde_json::to_vec(line)?;
    bytes.push(b'\n');
    w.write_all(&bytes)?;
    Ok(bytes.len() as u64)
}
