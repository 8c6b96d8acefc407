//! The dense leg of a collection: which model made its vectors, and its vector segments.
//!
//! Vectors live in immutable segments, `dense/seg-<id>.<hnsw|exact>`, one written by each
//! commit that added vectors (and by each merge). A commit writes its new segment (under a
//! temporary name, fsynced, then renamed) before the sparse commit, and the sparse commit's
//! record lists the live segments, so the sparse commit is the one atomic switch for both legs:
//! a crash before it leaves the previous list in force (the orphaned file is removed later).
//! Deleting a document writes nothing here: the sparse leg's deletions are the tombstones (a
//! vector whose key is not a live document is skipped by searches and dropped by merges).
//! Format 2 collections kept all vectors in one `dense/vectors-<generation>` file; such a file
//! is read as one segment.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use hybrid_search_dense::{
    Encoder, ExactIndex, HnswIndex, LongText, Metric, ModelDescription, Scalar, TextKind,
    VectorIndex, VectorSettings, WeightsInfo,
};
use hybrid_search_document::{Document, has_text_to_encode, passage_text};
use hybrid_search_sparse::Bm25Index;

use crate::error::{Error, Result};

pub(crate) const DENSE_DIR: &str = "dense";

/// Inputs encoded per forward pass.
pub const DEFAULT_BATCH: usize = 32;

/// Documents staged before the dense writer encodes them (and user-supplied vectors staged
/// before they are inserted): a write holds at most this many passages' text in memory.
pub const STAGE_DOCUMENTS: usize = 512;

/// Which vector index holds the collection's vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VectorKind {
    /// usearch's HNSW graph: approximate, sub-linear search.
    #[default]
    Hnsw,
    /// Every vector compared with the query: exact, linear in the collection.
    Exact,
}

impl VectorKind {
    fn extension(self) -> &'static str {
        match self {
            VectorKind::Hnsw => "hnsw",
            VectorKind::Exact => "exact",
        }
    }
}

/// The model a collection's vectors were made with, as recorded in its manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRecord {
    /// The model directory's name (`all-MiniLM-L6-v2`); found again under `models/`.
    pub name: String,
    /// Where the model was when the collection was built (absolute), tried first when the
    /// collection is opened again ([`crate::model_candidates`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// The weights file and its fingerprint.
    pub weights: WeightsInfo,
    /// Dimensions, pooling, normalisation, maximum length and prefixes (stored inline).
    #[serde(flatten)]
    pub description: ModelDescription,
}

impl ModelRecord {
    /// The record of `encoder`.
    pub fn of(encoder: &Encoder) -> Self {
        Self {
            name: encoder
                .dir()
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            path: std::fs::canonicalize(encoder.dir()).ok(),
            weights: encoder.weights().clone(),
            description: encoder.description().clone(),
        }
    }

    /// What differs between this record and `other`, ignoring the directory's name, how the
    /// matrices run (a Q4_0 file run dequantised gives the same vectors up to rounding) and
    /// the maximum length.
    pub fn differences(&self, other: &ModelRecord) -> Vec<String> {
        let mut out = Vec::new();
        let mut differ = |what: &str, a: String, b: String| {
            if a != b {
                out.push(format!("{what} {a} vs {b}"));
            }
        };
        let (mine, theirs) = (&self.description, &other.description);
        differ(
            "weights file",
            self.weights.file.clone(),
            other.weights.file.clone(),
        );
        differ(
            "weights fingerprint",
            self.weights.checksum.clone(),
            other.weights.checksum.clone(),
        );
        differ("dimensions", mine.dim.to_string(), theirs.dim.to_string());
        differ(
            "pooling",
            format!("{:?}", mine.pooling),
            format!("{:?}", theirs.pooling),
        );
        differ(
            "normalisation",
            mine.normalize.to_string(),
            theirs.normalize.to_string(),
        );
        differ(
            "query prefix",
            format!("{:?}", mine.query_prefix),
            format!("{:?}", theirs.query_prefix),
        );
        differ(
            "passage prefix",
            format!("{:?}", mine.passage_prefix),
            format!("{:?}", theirs.passage_prefix),
        );
        out
    }
}

/// The manifest's record of the dense leg.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DenseManifest {
    /// The model.
    pub model: ModelRecord,
    /// What happens to passages longer than the model's limit.
    pub long_text: LongText,
    /// The vector index.
    pub kind: VectorKind,
    /// The vector index's settings.
    pub vectors: VectorSettings,
}

/// How a new collection's dense leg is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DenseOptions {
    /// What happens to passages longer than the model's limit.
    pub long_text: LongText,
    /// The vector index.
    pub kind: VectorKind,
    /// How HNSW stores vector components (usearch quantises; an exact index keeps `f32`).
    pub scalar: Scalar,
}

impl DenseOptions {
    /// The defaults for `encoder`: windows overlapping by a quarter of the model's length (the
    /// choice measured on SciFact, `docs/benchmarks.md`), in an HNSW index.
    pub fn for_encoder(encoder: &Encoder) -> Self {
        Self {
            long_text: LongText::Windows {
                overlap: encoder.description().max_seq_length / 4,
            },
            kind: VectorKind::Hnsw,
            scalar: Scalar::F32,
        }
    }
}

impl DenseManifest {
    pub(crate) fn new(encoder: &Encoder, options: DenseOptions) -> Self {
        let mut vectors = VectorSettings::new(encoder.description().dim);
        // Wider than usearch's default 64: near-duplicate passages (windows of one document,
        // boilerplate) crowd a narrow beam.
        vectors.expansion_search = 128;
        if options.kind == VectorKind::Hnsw {
            vectors.scalar = options.scalar;
        }
        Self {
            model: ModelRecord::of(encoder),
            long_text: options.long_text,
            kind: options.kind,
            vectors,
        }
    }

    /// Checks that `encoder` is the model this collection's vectors were made with.
    pub(crate) fn check(&self, encoder: &Encoder, collection: &Path) -> Result<()> {
        let theirs = ModelRecord::of(encoder);
        let differences = self.model.differences(&theirs);
        if differences.is_empty() {
            return Ok(());
        }
        Err(Error::ModelMismatch {
            collection: collection.to_path_buf(),
            model: encoder.dir().to_path_buf(),
            message: format!(
                "the collection's vectors were made with {} ({}); this model differs: {}. \
                 Use the collection's model, or rebuild the collection",
                self.model.name,
                self.model.weights.file,
                differences.join(", ")
            ),
        })
    }
}

/// The record of one vector segment in a commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SegmentRecord {
    /// The file's name in `dense/`.
    pub file: String,
    /// Distinct keys it holds (live or not) when it was written.
    pub keys: u64,
}

/// One opened vector segment.
pub(crate) struct Segment {
    /// The file's name in `dense/`.
    pub file: String,
    pub index: Box<dyn VectorIndex>,
}

/// The file name of segment `id`.
pub(crate) fn segment_file(kind: VectorKind, id: u64) -> String {
    format!("seg-{id:08}.{}", kind.extension())
}

/// The file name of a format 2 collection's vectors of `generation` (read as one segment).
pub(crate) fn legacy_file(kind: VectorKind, generation: u64) -> String {
    format!("vectors-{generation:08}.{}", kind.extension())
}

/// Whether `name` is a file of the dense leg (a segment, a format 2 generation, or a
/// temporary file of either).
pub(crate) fn is_vector_file(name: &str) -> bool {
    name.starts_with("seg-") || name.starts_with("vectors-")
}

/// An empty, writable index of the collection's kind.
pub(crate) fn new_index(manifest: &DenseManifest) -> Result<Box<dyn VectorIndex>> {
    let settings = manifest.vectors.clone();
    Ok(match manifest.kind {
        VectorKind::Hnsw => Box::new(HnswIndex::new(settings)?),
        VectorKind::Exact => Box::new(ExactIndex::new(settings)?),
    })
}

/// Opens segment `file` read-only (HNSW files are memory-mapped, exact ones read). A format 2
/// HNSW file does not list its keys; they are taken from the live documents of `sparse`
/// (which such a file held exactly).
pub(crate) fn open_segment(
    dir: &Path,
    manifest: &DenseManifest,
    file: &str,
    sparse: &Bm25Index,
) -> Result<Box<dyn VectorIndex>> {
    let path = dir.join(DENSE_DIR).join(file);
    let settings = manifest.vectors.clone();
    Ok(match manifest.kind {
        VectorKind::Hnsw => {
            let mut index = HnswIndex::view(&path, settings)?;
            if !index.lists_keys() {
                index.assume_keys(sparse.live_keys()?.into_iter().map(|(key, _)| key));
            }
            Box::new(index)
        }
        VectorKind::Exact => Box::new(ExactIndex::load(&path, settings)?),
    })
}

/// Checks segment `file` without opening it: present, and its footer (HNSW) or header
/// (exact) agrees with its length, so a missing or truncated file is found at once.
pub(crate) fn check_segment(dir: &Path, manifest: &DenseManifest, file: &str) -> Result<()> {
    let path = dir.join(DENSE_DIR).join(file);
    match manifest.kind {
        VectorKind::Hnsw => HnswIndex::check_file(&path)?,
        VectorKind::Exact => ExactIndex::check_file(&path, &manifest.vectors)?,
    }
    Ok(())
}

/// Segments to merge, if any: segments fall in tiers by size (tier `t` holds
/// `MERGE_FACTOR^t` to `MERGE_FACTOR^(t+1) - 1` keys), and the smallest tier holding
/// `MERGE_FACTOR` segments is merged into one, as Lucene's log merge policy does. The number
/// of segments thus stays below `MERGE_FACTOR` per tier, about `MERGE_FACTOR x log(N)` in all.
pub(crate) fn merge_candidates(segments: &[SegmentRecord]) -> Vec<String> {
    let tier = |keys: u64| {
        let mut t = 0;
        let mut n = keys.max(1);
        while n >= MERGE_FACTOR {
            n /= MERGE_FACTOR;
            t += 1;
        }
        t
    };
    let mut tiers: std::collections::BTreeMap<u32, Vec<&SegmentRecord>> = Default::default();
    for s in segments {
        tiers.entry(tier(s.keys)).or_default().push(s);
    }
    tiers
        .into_values()
        .find(|group| group.len() as u64 >= MERGE_FACTOR)
        .map(|group| group.into_iter().map(|s| s.file.clone()).collect())
        .unwrap_or_default()
}

/// Segments of one size tier that trigger a merge ([`merge_candidates`]).
pub const MERGE_FACTOR: u64 = 8;

/// Removes the dense leg's files that neither `keep` list names (orphans of interrupted
/// commits and merges, segments merged away): the files of the last commit and of the one
/// before it are kept, so a reader that opened the previous commit can still open its
/// segments (Lucene's deletion policy keeps the last commit; keeping one more covers readers
/// between reading the commit and opening its files). Returns what could not be removed.
pub(crate) fn remove_unreferenced(dir: &Path, keep: &[&SegmentRecord]) -> Vec<String> {
    let dense = dir.join(DENSE_DIR);
    let mut problems = Vec::new();
    let Ok(entries) = fs::read_dir(&dense) else {
        return problems;
    };
    let mut removed_one = false;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !is_vector_file(&name) || keep.iter().any(|s| s.file == name) {
            continue;
        }
        let path = entry.path();
        if let Err(e) = fs::remove_file(&path) {
            problems.push(format!("could not remove {}: {e}", path.display()));
        } else if !removed_one {
            removed_one = true;
            crate::failpoint::hit("during-cleanup");
        }
    }
    problems
}

/// Progress of encoding: (inputs done, inputs in this flush).
pub type EncodeProgress = Box<dyn Fn(usize, usize) + Send + Sync>;

/// The dense half of a [`crate::CollectionWriter`]: builds the one new segment of the next
/// commit. Documents are staged and encoded [`STAGE_DOCUMENTS`] at a time; vectors supplied
/// with the documents are inserted as they are.
pub(crate) struct DenseWriter {
    pub dir: PathBuf,
    pub manifest: DenseManifest,
    /// Needed to add documents without vectors; deleting works without it.
    pub encoder: Option<Arc<Encoder>>,
    /// The new segment, created at the first vector.
    pub open: Option<Box<dyn VectorIndex>>,
    /// Documents waiting to be encoded: (key, passage text).
    pub pending: Vec<(u64, String)>,
    /// Supplied vectors waiting to be inserted.
    pub supplied: Vec<(u64, Vec<f32>)>,
    /// The key of every id written since the last commit.
    pub written: HashMap<String, u64>,
    pub progress: Option<EncodeProgress>,
    /// Inputs encoded and queued so far (for the progress callback).
    pub encoded: (usize, usize),
}

impl DenseWriter {
    pub(crate) fn new(dir: &Path, manifest: &DenseManifest, encoder: Option<Arc<Encoder>>) -> Self {
        Self {
            dir: dir.to_path_buf(),
            manifest: manifest.clone(),
            encoder,
            open: None,
            pending: Vec::new(),
            supplied: Vec::new(),
            written: HashMap::new(),
            progress: None,
            encoded: (0, 0),
        }
    }

    pub(crate) fn upsert(&mut self, doc: &Document, key: u64) -> Result<()> {
        match &doc.vector {
            Some(vector) => {
                let vector = check_supplied(&doc.id, vector, &self.manifest.vectors)?;
                self.forget_id(&doc.id)?;
                self.supplied.push((key, vector.into_owned()));
            }
            None => {
                self.encoder()?;
                self.forget_id(&doc.id)?;
                // Nothing to encode (blank, only emoji or punctuation): no vector, so the
                // document is found by BM25 only and never ranks by an empty embedding.
                let passage = passage_text(doc);
                if has_text_to_encode(&passage) {
                    self.pending.push((key, passage));
                }
            }
        }
        self.written.insert(doc.id.clone(), key);
        if self.pending.len() >= STAGE_DOCUMENTS || self.supplied.len() >= STAGE_DOCUMENTS * 8 {
            self.flush()?;
        }
        Ok(())
    }

    /// A document written earlier by this writer is replaced or deleted: its vectors go.
    /// (Committed documents need nothing here: the sparse leg's deletion is the tombstone.)
    pub(crate) fn forget_id(&mut self, id: &str) -> Result<()> {
        if let Some(old) = self.written.remove(id) {
            self.pending.retain(|(k, _)| *k != old);
            self.supplied.retain(|(k, _)| *k != old);
            if let Some(open) = &mut self.open {
                open.remove(old)?;
            }
        }
        Ok(())
    }

    /// Back to the last commit: everything staged is dropped.
    pub(crate) fn rollback(&mut self) {
        self.pending.clear();
        self.supplied.clear();
        self.written.clear();
        self.open = None;
    }

    fn encoder(&self) -> Result<&Arc<Encoder>> {
        self.encoder.as_ref().ok_or_else(|| {
            Error::NoModel(
                self.dir.clone(),
                "adding documents to the dense leg needs the model its vectors were made with, \
                 and none is attached; attach it, or supply each document's \"vector\""
                    .into(),
            )
        })
    }

    fn open_index(&mut self) -> Result<&mut Box<dyn VectorIndex>> {
        if self.open.is_none() {
            self.open = Some(new_index(&self.manifest)?);
        }
        Ok(self.open.as_mut().expect("just created"))
    }

    /// Encodes the staged documents (all their windows) and inserts their vectors, and the
    /// staged supplied vectors.
    pub(crate) fn flush(&mut self) -> Result<()> {
        if !self.supplied.is_empty() {
            let supplied = std::mem::take(&mut self.supplied);
            self.open_index()?.add_batch(&supplied)?;
        }
        if self.pending.is_empty() {
            return Ok(());
        }
        let encoder = self.encoder()?.clone();
        let pending = std::mem::take(&mut self.pending);
        let long_text = self.manifest.long_text;
        let windows: Vec<Vec<Vec<u32>>> = pending
            .par_iter()
            .map(|(_, text)| encoder.windows(text, TextKind::Passage, long_text))
            .collect::<Result<_, _>>()?;
        let mut keys = Vec::new();
        let mut inputs = Vec::new();
        for ((key, _), ws) in pending.iter().zip(windows) {
            for w in ws {
                keys.push(*key);
                inputs.push(w);
            }
        }
        let (before, queued) = self.encoded;
        let total = queued + inputs.len();
        let done = std::sync::atomic::AtomicUsize::new(before);
        let progress = |n: usize| {
            let now = done.fetch_add(n, std::sync::atomic::Ordering::Relaxed) + n;
            if let Some(p) = &self.progress {
                p(now, total);
            }
        };
        let _span = tracing::debug_span!("encode", inputs = inputs.len()).entered();
        let vectors = encoder.encode_ids(&inputs, DEFAULT_BATCH, &progress)?;
        self.encoded = (before + inputs.len(), total);
        let open = self.open_index()?;
        // One at a time, in document order: the graph is the same as a one-shot build's.
        for (key, v) in keys.into_iter().zip(vectors) {
            open.add(key, &v)?;
        }
        Ok(())
    }

    /// Flushes and hands over the new segment (`None` when this commit adds no vector).
    pub(crate) fn take_segment(&mut self) -> Result<Option<Box<dyn VectorIndex>>> {
        self.flush()?;
        self.written.clear();
        Ok(self.open.take().filter(|index| !index.is_empty()))
    }
}

/// Checks a vector supplied with document `id` (empty for a query's vector) and returns it as
/// the collection compares it: the collection's dimensions, finite values, not all zeros;
/// under cosine similarity scaled to unit length (computed in `f64`, so components as large as
/// `f32` allows, whose squares overflow `f32`, still give a finite norm; a vector already of
/// unit length, as the models make, is kept as it is); under the inner product a length below
/// `sqrt(f32::MAX)` (about 1.8e19), so no product with another such vector overflows.
pub(crate) fn check_supplied<'v>(
    id: &str,
    vector: &'v [f32],
    settings: &VectorSettings,
) -> Result<std::borrow::Cow<'v, [f32]>> {
    let invalid = |message: String| Error::InvalidVectorValues {
        id: id.to_string(),
        message,
    };
    let dim = settings.dim;
    if vector.len() != dim {
        return Err(Error::InvalidVector {
            id: id.to_string(),
            message: format!(
                "it has {} values; this collection's model makes {dim}-dimensional vectors",
                vector.len()
            ),
        });
    }
    if let Some(at) = vector.iter().position(|x| !x.is_finite()) {
        return Err(invalid(format!("value {at} is not a finite number")));
    }
    let norm = vector
        .iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt();
    if norm == 0.0 {
        return Err(invalid(
            "every value is 0: a zero vector has no direction, so it is equally similar to \
             every document; leave \"vector\" out to have the text encoded"
                .into(),
        ));
    }
    match settings.metric {
        Metric::Cosine if (norm - 1.0).abs() <= 1e-6 => Ok(std::borrow::Cow::Borrowed(vector)),
        Metric::Cosine => Ok(std::borrow::Cow::Owned(
            vector
                .iter()
                // Each component of a unit vector is within [-1, 1]: the cast cannot overflow.
                .map(|&x| (f64::from(x) / norm) as f32)
                .collect(),
        )),
        Metric::InnerProduct if norm * norm >= f64::from(f32::MAX) => Err(invalid(format!(
            "its length is {norm:e}: an inner product with it would overflow a 32-bit float; \
             scale it to a length below 1.8e19 (unit length is usual)"
        ))),
        Metric::InnerProduct => Ok(std::borrow::Cow::Borrowed(vector)),
    }
}

/// Finds the model directory `name`: `$HYBRID_SEARCH_MODELS/<name>`, else `models/<name>`
/// under the data folder (`$HYBRID_SEARCH_HOME`), the working directory, the executable's
/// folder, or one of their parents (the repository's `scripts/fetch-models.sh` lays models
/// out in `models/`).
pub fn locate_model(name: &str) -> Option<PathBuf> {
    model_roots_with_env()
        .into_iter()
        .map(|root| root.join(name))
        .find(|dir| dir.is_dir())
}

/// The folders holding models, in the order they are tried.
pub(crate) fn model_roots_with_env() -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> = std::env::var_os("HYBRID_SEARCH_MODELS")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    roots.extend(hybrid_search_sparse::model_roots());
    roots
}
