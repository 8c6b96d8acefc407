//! Vector indexes: where document embeddings are stored and searched by similarity.
//!
//! Two implementations share the small [`VectorIndex`] trait:
//!
//! - [`ExactIndex`] compares the query with every stored vector. It is the ground truth the
//!   approximate index is measured against, and for small collections it is also the simplest
//!   and fastest choice.
//! - [`HnswIndex`] is an HNSW graph over [usearch](https://github.com/unum-cloud/USearch): sub-linear
//!   search, approximate results.
//!
//! A key (a document) may hold several vectors, one per window of a long document; a search
//! ranks keys by their best window and returns each key once.
//!
//! Both indexes save atomically: they write `<path>.tmp`, fsync it and rename it over `<path>`,
//! so a crash leaves either the old index or the new one under the real name, never half of one.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// What a rebuild hint in error messages tells the user to run.
const REBUILD: &str = "re-run `hybrid-search index` to rebuild it";

/// How two vectors are compared. Similarities are always "higher is better".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Cosine similarity, in `[-1, 1]`. Independent of vector length.
    Cosine,
    /// The dot product. Equals cosine similarity for L2-normalised vectors, and is cheaper.
    InnerProduct,
}

/// How [`HnswIndex`] stores vector components. Smaller types save memory at some precision;
/// [`ExactIndex`] always keeps `f32` (it is the reference).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scalar {
    /// 32-bit floats: exact.
    F32,
    /// IEEE half precision.
    F16,
    /// bfloat16: the range of `f32` with 8 bits of mantissa.
    BF16,
    /// 8-bit integers; meant for L2-normalised vectors (components in `[-1, 1]`).
    I8,
}

/// How a vector index is built. The engine stores this in its manifest, so an index is always
/// reopened with the settings it was built with.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct VectorSettings {
    /// Number of components per vector (the encoder's output size).
    pub dim: usize,
    /// The similarity.
    pub metric: Metric,
    /// The stored component type (HNSW only).
    pub scalar: Scalar,
    /// HNSW: graph edges per node. More gives better recall, more memory and slower inserts.
    pub connectivity: usize,
    /// HNSW: candidate list size while inserting. More gives a better graph and slower inserts.
    pub expansion_add: usize,
    /// HNSW: candidate list size while searching. More gives better recall and slower searches;
    /// usearch never uses less than the number of results asked for.
    pub expansion_search: usize,
}

impl VectorSettings {
    /// Cosine similarity, `f32` components and usearch's usual HNSW defaults (connectivity 16,
    /// expansion 128 for inserts and 64 for searches).
    pub fn new(dim: usize) -> Self {
        VectorSettings {
            dim,
            metric: Metric::Cosine,
            scalar: Scalar::F32,
            connectivity: 16,
            expansion_add: 128,
            expansion_search: 64,
        }
    }

    /// Rejects settings no index can be built with.
    fn validate(&self) -> Result<()> {
        if self.dim == 0 || u32::try_from(self.dim).is_err() {
            return Err(index_error(
                None,
                format!(
                    "vector dimension {} is out of range (1 to {})",
                    self.dim,
                    u32::MAX
                ),
            ));
        }
        Ok(())
    }
}

/// A store of vectors under `u64` keys, searched by similarity.
///
/// `u64::MAX` is reserved (usearch uses it to mark deleted entries) and cannot be added.
pub trait VectorIndex: Send + Sync {
    /// The settings the index was built with.
    fn settings(&self) -> &VectorSettings;

    /// Number of distinct keys (not vectors: a key may hold several).
    fn len(&self) -> usize;

    /// Whether no key is stored.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stores one more vector under `key`. A key may receive several vectors (one per window of
    /// a long document); a search scores the key by its best one.
    ///
    /// # Errors
    ///
    /// [`Error::Index`] for a vector of the wrong length, or when the index refuses it (a
    /// read-only view).
    fn add(&mut self, key: u64, vector: &[f32]) -> Result<()>;

    /// Removes every vector of `key`; returns how many there were (0 if the key is absent).
    ///
    /// # Errors
    ///
    /// [`Error::Index`] when the index refuses it (a read-only view).
    fn remove(&mut self, key: u64) -> Result<usize>;

    /// Whether `key` holds at least one vector.
    fn contains(&self, key: u64) -> bool;

    /// Up to `k` distinct keys, each with its best similarity (cosine similarity, or the dot
    /// product for [`Metric::InnerProduct`]), best first; equal similarities by key, ascending.
    ///
    /// # Errors
    ///
    /// [`Error::Index`] for a query of the wrong length, or when the search fails.
    fn search(&self, query: &[f32], k: usize) -> Result<Vec<(u64, f32)>> {
        self.search_filtered(query, k, &|_| true)
    }

    /// [`VectorIndex::search`] over the keys `keep` accepts only: up to `k` distinct accepted
    /// keys, best first. The engine passes "is this key a live document", so vectors of deleted
    /// documents (tombstones until a merge drops them) never take a place in the results.
    ///
    /// # Errors
    ///
    /// [`Error::Index`] for a query of the wrong length, or when the search fails.
    fn search_filtered(
        &self,
        query: &[f32],
        k: usize,
        keep: &dyn Fn(u64) -> bool,
    ) -> Result<Vec<(u64, f32)>>;

    /// Up to `k` of `keys` (sorted ascending), each with its best similarity, best first,
    /// found by comparing the query with every vector of those keys this index holds: exact,
    /// and linear in `keys` rather than in the index (a filtered search that leaves few
    /// documents, where a graph search would have to walk past most of the graph).
    ///
    /// # Errors
    ///
    /// [`Error::Index`] for a query of the wrong length, or when the vectors cannot be read.
    fn search_among(&self, query: &[f32], k: usize, keys: &[u64]) -> Result<Vec<(u64, f32)>> {
        check_vector(self.settings(), query, "the query")?;
        let mut scores = ExactScores::new(self.settings().metric, query);
        for (key, vectors) in self.vectors_of_many(keys)? {
            for v in vectors {
                scores.add(key, &v);
            }
        }
        Ok(scores.top(k))
    }

    /// Every distinct key, in no particular order.
    fn keys(&self) -> Vec<u64>;

    /// The vectors stored under `key` (one per window), as `f32` (dequantised for smaller
    /// scalar types); empty when the key is absent.
    ///
    /// # Errors
    ///
    /// [`Error::Index`] when the vectors cannot be read back.
    fn vectors_of(&self, key: u64) -> Result<Vec<Vec<f32>>>;

    /// The vectors of each of `keys` that this index holds (one per window), as
    /// [`VectorIndex::vectors_of`] gives them; keys it does not hold are left out.
    ///
    /// # Errors
    ///
    /// [`Error::Index`] when the vectors cannot be read back.
    fn vectors_of_many(&self, keys: &[u64]) -> Result<HashMap<u64, Vec<Vec<f32>>>> {
        let mut out = HashMap::with_capacity(keys.len());
        for &key in keys {
            let vectors = self.vectors_of(key)?;
            if !vectors.is_empty() {
                out.insert(key, vectors);
            }
        }
        Ok(out)
    }

    /// Calls `f(key, vector)` for every stored vector (a merge reads a segment this way).
    ///
    /// # Errors
    ///
    /// [`Error::Index`] when the vectors cannot be read back.
    fn for_each_vector(&self, f: &mut dyn FnMut(u64, &[f32])) -> Result<()> {
        for key in self.keys() {
            for vector in self.vectors_of(key)? {
                f(key, &vector);
            }
        }
        Ok(())
    }

    /// Adds many `(key, vector)` pairs; an index may add them in parallel. The result is the
    /// same set of vectors as adding them one by one.
    ///
    /// # Errors
    ///
    /// [`Error::Index`] for a vector of the wrong length, or when the index refuses it.
    fn add_batch(&mut self, items: &[(u64, Vec<f32>)]) -> Result<()> {
        for (key, vector) in items {
            self.add(*key, vector)?;
        }
        Ok(())
    }

    /// Writes the index to `path` atomically (through `<path>.tmp`, fsynced, then renamed).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] or [`Error::Index`] when the file cannot be written; the previous file at
    /// `path`, if any, is left whole.
    fn save(&self, path: &Path) -> Result<()>;
}

/// Share of the exact top-`k` keys that the approximate top-`k` also holds: 1.0 is perfect.
/// When the exact list is shorter than `k`, it is measured against what the exact list holds;
/// with nothing to find (an empty exact list or `k == 0`) the recall is 1.0.
pub fn recall_at(exact: &[(u64, f32)], approx: &[(u64, f32)], k: usize) -> f64 {
    let wanted = &exact[..k.min(exact.len())];
    if wanted.is_empty() {
        return 1.0;
    }
    let found = &approx[..k.min(approx.len())];
    let hits = wanted
        .iter()
        .filter(|(key, _)| found.iter().any(|(other, _)| other == key))
        .count();
    hits as f64 / wanted.len() as f64
}

// ---------------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------------

fn index_error(path: Option<&Path>, message: impl Into<String>) -> Error {
    Error::Index {
        path: path.map(Path::to_path_buf),
        message: message.into(),
    }
}

/// Checks a vector's size against the settings and rejects NaN and infinities, which would
/// poison every similarity they touch.
fn check_vector(settings: &VectorSettings, vector: &[f32], what: &str) -> Result<()> {
    if vector.len() != settings.dim {
        return Err(index_error(
            None,
            format!(
                "{what} has {} dimensions but the index holds {}-dimensional vectors",
                vector.len(),
                settings.dim
            ),
        ));
    }
    if let Some(at) = vector.iter().position(|x| !x.is_finite()) {
        return Err(index_error(
            None,
            format!("{what} has a non-finite component at position {at}"),
        ));
    }
    Ok(())
}

fn check_key(key: u64) -> Result<()> {
    if key == u64::MAX {
        return Err(index_error(
            None,
            "key u64::MAX is reserved (it marks deleted entries)",
        ));
    }
    Ok(())
}

/// Best first; equal similarities by key, ascending. A total order, so results are deterministic.
fn by_similarity(a: &(u64, f32), b: &(u64, f32)) -> std::cmp::Ordering {
    b.1.total_cmp(&a.1).then(a.0.cmp(&b.0))
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Eight independent sums let the compiler vectorise the loop (a single running sum cannot
    // be reordered under IEEE rules).
    let mut sums = [0.0f32; 8];
    let (a_chunks, b_chunks) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a_chunks
        .remainder()
        .iter()
        .zip(b_chunks.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a_chunks.zip(b_chunks) {
        for ((sum, x), y) in sums.iter_mut().zip(x).zip(y) {
            *sum += x * y;
        }
    }
    sums.iter().sum::<f32>() + tail
}

/// `1 / |v|` for cosine; 0 for a zero vector, whose cosine similarity is taken as 0.
fn inverse_norm(v: &[f32]) -> f32 {
    let norm = dot(v, v).sqrt();
    if norm > 0.0 { 1.0 / norm } else { 0.0 }
}

/// What a vector's dot product is scaled by under `metric`: `1 / |v|` for cosine, 1 for the
/// inner product.
fn metric_scale(metric: Metric, v: &[f32]) -> f32 {
    match metric {
        Metric::Cosine => inverse_norm(v),
        Metric::InnerProduct => 1.0,
    }
}

/// [`VectorIndex::search_among`]'s scoring: each vector added is scored exactly against the
/// query under the metric, and the best `k` distinct keys are kept at the end.
struct ExactScores<'q> {
    metric: Metric,
    query: &'q [f32],
    query_scale: f32,
    scored: Vec<(u64, f32)>,
}

impl<'q> ExactScores<'q> {
    fn new(metric: Metric, query: &'q [f32]) -> Self {
        Self {
            metric,
            query,
            query_scale: metric_scale(metric, query),
            scored: Vec::new(),
        }
    }

    fn add(&mut self, key: u64, v: &[f32]) {
        let score = dot(self.query, v) * metric_scale(self.metric, v) * self.query_scale;
        self.scored.push((key, score));
    }

    fn top(mut self, k: usize) -> Vec<(u64, f32)> {
        if self.scored.is_empty() || k == 0 {
            return Vec::new();
        }
        top_distinct(&mut self.scored, k)
    }
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(".tmp");
    PathBuf::from(name)
}

/// Runs `write` on `<path>.tmp` (which must leave the file's content on disk, fsynced), then
/// renames it over `path` and syncs the folder so the rename itself survives a crash. On
/// failure the temporary file is removed and `path` is untouched.
fn save_atomically(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let tmp = tmp_path(path);
    let result = write(&tmp).and_then(|()| fs::rename(&tmp, path).map_err(|e| Error::io(path, e)));
    if result.is_err() {
        // Best effort: the error being returned matters more than a leftover temporary file.
        let _ = fs::remove_file(&tmp);
    }
    result?;
    sync_parent(path);
    Ok(())
}

/// Makes a rename durable. Best effort: some filesystems refuse to fsync a directory, and the
/// index file itself is already complete on disk.
fn sync_parent(path: &Path) {
    #[cfg(unix)]
    {
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        if let Ok(dir) = File::open(parent) {
            let _ = dir.sync_all();
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

fn search_threads() -> usize {
    std::thread::available_parallelism().map_or(1, NonZeroUsize::get)
}

// ---------------------------------------------------------------------------------------------
// ExactIndex
// ---------------------------------------------------------------------------------------------

const EXACT_MAGIC: &[u8; 4] = b"HSVX";
const EXACT_VERSION: u32 = 1;
/// Magic, version, dimension, vector count.
const EXACT_HEADER: u64 = 4 + 4 + 4 + 8;

/// Brute force: every search compares the query with every stored vector. Exact by
/// construction, so it is the reference for [`HnswIndex`]; for a few tens of thousands of
/// vectors it is also fast enough on its own.
///
/// Its file format (little-endian): `b"HSVX"`, format version (`u32`), dimension (`u32`), vector
/// count (`u64`), then per vector its key (`u64`) and `dim` `f32` components.
pub struct ExactIndex {
    settings: VectorSettings,
    /// Key of each stored vector (row).
    keys: Vec<u64>,
    /// The rows, `dim` components each, back to back.
    data: Vec<f32>,
    /// Per row: `1 / |v|` for cosine, 1 for the inner product.
    scales: Vec<f32>,
    /// Vectors per key.
    counts: HashMap<u64, usize>,
}

impl fmt::Debug for ExactIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExactIndex")
            .field("settings", &self.settings)
            .field("keys", &self.counts.len())
            .field("vectors", &self.keys.len())
            .finish()
    }
}

impl ExactIndex {
    /// An empty index. Only `dim` and `metric` of the settings matter to it.
    ///
    /// # Errors
    ///
    /// [`Error::Index`] when the settings cannot make an index (a dimension of 0, or usearch
    /// refusing them).
    pub fn new(settings: VectorSettings) -> Result<Self> {
        settings.validate()?;
        Ok(ExactIndex {
            settings,
            keys: Vec::new(),
            data: Vec::new(),
            scales: Vec::new(),
            counts: HashMap::new(),
        })
    }

    /// Every stored vector with its key, in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &[f32])> {
        self.keys
            .iter()
            .copied()
            .zip(self.data.chunks_exact(self.settings.dim))
    }

    /// Checks the file's header and length (a missing, truncated or foreign file is an
    /// error) without reading its vectors.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the file cannot be read; [`Error::Index`] naming the file when it is
    /// truncated or not such an index.
    pub fn check_file(path: &Path, settings: &VectorSettings) -> Result<()> {
        Self::open_checked(path, settings).map(|_| ())
    }

    /// Opens the file and checks its header and length; returns the reader after the header
    /// and the vector count.
    fn open_checked(path: &Path, settings: &VectorSettings) -> Result<(BufReader<File>, u64)> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let file_len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        let bad = |message: String| index_error(Some(path), format!("{message}; {REBUILD}"));
        if file_len < EXACT_HEADER {
            return Err(bad(format!(
                "truncated exact vector index ({file_len} bytes, shorter than its header)"
            )));
        }
        let mut reader = BufReader::new(file);
        let mut header = [0u8; EXACT_HEADER as usize];
        reader
            .read_exact(&mut header)
            .map_err(|e| Error::io(path, e))?;
        if &header[0..4] != EXACT_MAGIC {
            return Err(bad("not an exact vector index (wrong magic bytes)".into()));
        }
        let version = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if version != EXACT_VERSION {
            return Err(bad(format!(
                "exact vector index format version {version}, this build reads version {EXACT_VERSION}"
            )));
        }
        let dim = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
        if dim as usize != settings.dim {
            return Err(bad(format!(
                "the index holds {dim}-dimensional vectors but the settings say {}",
                settings.dim
            )));
        }
        let count = u64::from_le_bytes([
            header[12], header[13], header[14], header[15], header[16], header[17], header[18],
            header[19],
        ]);
        // Checked so that a corrupt count cannot overflow into a plausible length.
        let row_bytes = 8 + 4 * u64::from(dim);
        let expected = count
            .checked_mul(row_bytes)
            .and_then(|n| n.checked_add(EXACT_HEADER));
        match expected {
            Some(expected) if expected == file_len => Ok((reader, count)),
            Some(expected) if expected > file_len => Err(bad(format!(
                "truncated exact vector index ({file_len} bytes, {expected} expected for {count} vectors)"
            ))),
            _ => Err(bad(format!(
                "corrupt exact vector index ({file_len} bytes do not fit {count} vectors)"
            ))),
        }
    }

    /// Reads an index written by [`VectorIndex::save`]; its dimension must match `settings`.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the file cannot be read; [`Error::Index`] naming the file when it is
    /// damaged, not such an index, or of another dimension.
    pub fn load(path: &Path, settings: VectorSettings) -> Result<Self> {
        settings.validate()?;
        let bad = |message: String| index_error(Some(path), format!("{message}; {REBUILD}"));
        let (mut reader, count) = Self::open_checked(path, &settings)?;
        let row_bytes = 8 + 4 * settings.dim as u64;
        // The length check above bounds `count` by the file size, so these fit in memory as
        // well as the file fits on disk.
        let count =
            usize::try_from(count).map_err(|_| bad("too many vectors for this platform".into()))?;
        let mut index = ExactIndex::new(settings)?;
        index.keys.reserve_exact(count);
        index.data.reserve_exact(count * index.settings.dim);
        index.scales.reserve_exact(count);
        let mut row = vec![0u8; row_bytes as usize];
        let mut vector = vec![0f32; index.settings.dim];
        for _ in 0..count {
            reader
                .read_exact(&mut row)
                .map_err(|e| Error::io(path, e))?;
            let (key, components) = row.split_at(8);
            let mut key_bytes = [0u8; 8];
            key_bytes.copy_from_slice(key);
            let key = u64::from_le_bytes(key_bytes);
            for (value, bytes) in vector.iter_mut().zip(components.chunks_exact(4)) {
                *value = f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
            }
            if check_key(key).is_err() || vector.iter().any(|x| !x.is_finite()) {
                return Err(bad(format!(
                    "corrupt exact vector index (bad entry for key {key})"
                )));
            }
            index.push(key, &vector);
        }
        Ok(index)
    }

    fn push(&mut self, key: u64, vector: &[f32]) {
        let scale = metric_scale(self.settings.metric, vector);
        self.keys.push(key);
        self.data.extend_from_slice(vector);
        self.scales.push(scale);
        *self.counts.entry(key).or_insert(0) += 1;
    }

    fn write_to(&self, tmp: &Path) -> Result<()> {
        let io = |e| Error::io(tmp, e);
        let file = File::create(tmp).map_err(io)?;
        let mut out = BufWriter::new(file);
        out.write_all(EXACT_MAGIC).map_err(io)?;
        out.write_all(&EXACT_VERSION.to_le_bytes()).map_err(io)?;
        // `validate` guarantees the dimension fits a u32.
        out.write_all(&(self.settings.dim as u32).to_le_bytes())
            .map_err(io)?;
        out.write_all(&(self.keys.len() as u64).to_le_bytes())
            .map_err(io)?;
        for (key, row) in self
            .keys
            .iter()
            .zip(self.data.chunks_exact(self.settings.dim))
        {
            out.write_all(&key.to_le_bytes()).map_err(io)?;
            for value in row {
                out.write_all(&value.to_le_bytes()).map_err(io)?;
            }
        }
        let file = out.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)
    }
}

impl VectorIndex for ExactIndex {
    fn settings(&self) -> &VectorSettings {
        &self.settings
    }

    fn len(&self) -> usize {
        self.counts.len()
    }

    fn add(&mut self, key: u64, vector: &[f32]) -> Result<()> {
        check_key(key)?;
        check_vector(&self.settings, vector, "the vector")?;
        self.push(key, vector);
        Ok(())
    }

    fn remove(&mut self, key: u64) -> Result<usize> {
        let Some(removed) = self.counts.remove(&key) else {
            return Ok(0);
        };
        // Compact the rows in place, keeping their order.
        let dim = self.settings.dim;
        let mut kept = 0;
        for row in 0..self.keys.len() {
            if self.keys[row] == key {
                continue;
            }
            if kept != row {
                self.keys[kept] = self.keys[row];
                self.scales[kept] = self.scales[row];
                self.data
                    .copy_within(row * dim..(row + 1) * dim, kept * dim);
            }
            kept += 1;
        }
        self.keys.truncate(kept);
        self.scales.truncate(kept);
        self.data.truncate(kept * dim);
        Ok(removed)
    }

    fn contains(&self, key: u64) -> bool {
        self.counts.contains_key(&key)
    }

    fn search_filtered(
        &self,
        query: &[f32],
        k: usize,
        keep: &dyn Fn(u64) -> bool,
    ) -> Result<Vec<(u64, f32)>> {
        check_vector(&self.settings, query, "the query")?;
        if k == 0 || self.keys.is_empty() {
            return Ok(Vec::new());
        }
        let query_scale = metric_scale(self.settings.metric, query);
        let mut scored: Vec<(u64, f32)> = self
            .keys
            .iter()
            .zip(&self.scales)
            .zip(self.data.chunks_exact(self.settings.dim))
            .filter(|((key, _), _)| keep(**key))
            .map(|((&key, &scale), row)| (key, dot(query, row) * scale * query_scale))
            .collect();
        if scored.is_empty() {
            return Ok(Vec::new());
        }
        Ok(top_distinct(&mut scored, k))
    }

    fn search_among(&self, query: &[f32], k: usize, keys: &[u64]) -> Result<Vec<(u64, f32)>> {
        // Already exact: the same scores as an unfiltered search, over the listed keys.
        self.search_filtered(query, k, &|key| keys.binary_search(&key).is_ok())
    }

    fn keys(&self) -> Vec<u64> {
        self.counts.keys().copied().collect()
    }

    fn vectors_of(&self, key: u64) -> Result<Vec<Vec<f32>>> {
        if !self.counts.contains_key(&key) {
            return Ok(Vec::new());
        }
        Ok(self
            .iter()
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| v.to_vec())
            .collect())
    }

    fn vectors_of_many(&self, keys: &[u64]) -> Result<HashMap<u64, Vec<Vec<f32>>>> {
        // One pass over the rows, not one per key.
        let wanted: HashSet<u64> = keys.iter().copied().collect();
        let mut out: HashMap<u64, Vec<Vec<f32>>> = HashMap::with_capacity(keys.len());
        for (key, vector) in self.iter().filter(|(key, _)| wanted.contains(key)) {
            out.entry(key).or_default().push(vector.to_vec());
        }
        Ok(out)
    }

    fn for_each_vector(&self, f: &mut dyn FnMut(u64, &[f32])) -> Result<()> {
        // One pass over the rows (`vectors_of` per key would scan them once per key).
        self.iter().for_each(|(key, vector)| f(key, vector));
        Ok(())
    }

    fn save(&self, path: &Path) -> Result<()> {
        save_atomically(path, |tmp| self.write_to(tmp))
    }
}

/// The `k` best distinct keys of per-vector scores. Partially sorts only as many rows as it
/// needs: the best `m` rows hold every key's best row among them, and with the total order of
/// [`by_similarity`] any key outside them ranks below all of them, so once they hold `k`
/// distinct keys those are the answer.
fn top_distinct(scored: &mut [(u64, f32)], k: usize) -> Vec<(u64, f32)> {
    let n = scored.len();
    let mut m = k.min(n);
    loop {
        if m < n {
            scored.select_nth_unstable_by(m - 1, by_similarity);
        }
        let mut head = scored[..m].to_vec();
        head.sort_unstable_by(by_similarity);
        let mut seen = HashSet::with_capacity(k);
        let mut result = Vec::with_capacity(k);
        for (key, similarity) in head {
            if seen.insert(key) {
                result.push((key, similarity));
                if result.len() == k {
                    return result;
                }
            }
        }
        if m == n {
            return result;
        }
        m = m.saturating_mul(4).min(n);
    }
}

// ---------------------------------------------------------------------------------------------
// HnswIndex
// ---------------------------------------------------------------------------------------------

const HNSW_MAGIC: &[u8; 4] = b"HSVH";
/// Version 2 stores the distinct keys before the footer; version 1 (read only) did not.
const HNSW_VERSION: u32 = 2;
/// Magic, version, distinct key count, length of the usearch part.
const HNSW_FOOTER: u64 = 4 + 4 + 8 + 8;
/// First capacity reserved; it doubles from there.
const HNSW_MIN_CAPACITY: usize = 64;

/// An HNSW graph (usearch): approximate, sub-linear search.
///
/// The index is created with usearch's `multi` option, so a key may hold several vectors.
/// usearch's own search then returns one entry per *vector*, so the same key can come back
/// several times; [`VectorIndex::search`] asks for more results until it has `k` distinct keys
/// (or the index is exhausted) and keeps each key's best similarity.
///
/// The file is usearch's own serialisation, then the distinct keys (`u64` each), then a
/// 24-byte footer: `b"HSVH"`, format version (`u32`, 2), number of distinct keys (`u64`) and
/// the length of the usearch part (`u64`), all little-endian. usearch reads its part and
/// ignores what follows, so the file still opens with plain usearch tools; the key list lets a
/// merge enumerate the keys (usearch cannot) and the footer makes a truncated file detectable
/// before usearch reads it. Version 1 files (no key list) still open.
///
/// [`HnswIndex::view`] maps a file read-only instead of loading it: opening costs next to
/// nothing whatever the size, pages are read as searches touch them, and the view cannot be
/// changed (an immutable segment).
pub struct HnswIndex {
    settings: VectorSettings,
    index: usearch::Index,
    /// The distinct keys (empty for a version 1 file until [`HnswIndex::assume_keys`]).
    keys: HashSet<u64>,
    /// A version 1 file's distinct key count, while its keys are unknown.
    unlisted: Option<usize>,
    /// Whether the index is a read-only view of its file.
    viewed: bool,
    /// usearch fails a search outright when more threads search at once than it has reserved
    /// per-thread buffers for; this makes the excess wait instead.
    search_slots: Slots,
}

impl fmt::Debug for HnswIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HnswIndex")
            .field("settings", &self.settings)
            .field("keys", &self.len())
            .field("vectors", &self.index.size())
            .field("capacity", &self.index.capacity())
            .field("viewed", &self.viewed)
            .finish()
    }
}

fn usearch_options(settings: &VectorSettings) -> usearch::IndexOptions {
    usearch::IndexOptions {
        dimensions: settings.dim,
        metric: match settings.metric {
            Metric::Cosine => usearch::MetricKind::Cos,
            Metric::InnerProduct => usearch::MetricKind::IP,
        },
        quantization: match settings.scalar {
            Scalar::F32 => usearch::ScalarKind::F32,
            Scalar::F16 => usearch::ScalarKind::F16,
            Scalar::BF16 => usearch::ScalarKind::BF16,
            Scalar::I8 => usearch::ScalarKind::I8,
        },
        connectivity: settings.connectivity,
        expansion_add: settings.expansion_add,
        expansion_search: settings.expansion_search,
        multi: true,
    }
}

/// What the end of an HNSW file says.
struct HnswTail {
    version: u32,
    keys: usize,
    usearch_len: u64,
}

impl HnswIndex {
    /// An empty index.
    ///
    /// # Errors
    ///
    /// [`Error::Index`] when the settings cannot make an index (a dimension of 0, or usearch
    /// refusing them).
    pub fn new(settings: VectorSettings) -> Result<Self> {
        settings.validate()?;
        let index = usearch::Index::new(&usearch_options(&settings))
            .map_err(|e| index_error(None, format!("usearch could not create the index: {e}")))?;
        let threads = search_threads();
        index
            .reserve_capacity_and_threads(HNSW_MIN_CAPACITY, threads)
            .map_err(|e| index_error(None, format!("usearch could not reserve memory: {e}")))?;
        Ok(HnswIndex {
            settings,
            index,
            keys: HashSet::new(),
            unlisted: None,
            viewed: false,
            search_slots: Slots::new(threads),
        })
    }

    /// Reads an index written by [`VectorIndex::save`] into memory. Its dimension, metric and
    /// scalar type must match `settings`; a missing, truncated or foreign file is an error.
    /// The graph's connectivity is the file's; `expansion_add` and `expansion_search` are
    /// taken from `settings` (usearch does not store them), so the search beam can be changed
    /// by loading with other values.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the file cannot be read; [`Error::Index`] naming the file when it is
    /// damaged, not such an index, or of another dimension.
    pub fn load(path: &Path, settings: VectorSettings) -> Result<Self> {
        Self::open(path, settings, false)
    }

    /// Maps an index written by [`VectorIndex::save`] read-only (checked as
    /// [`HnswIndex::load`] checks it). Adding to or removing from a view is an error; the file
    /// must not be changed while the view lives (the engine never rewrites a segment file).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the file cannot be read; [`Error::Index`] naming the file when it is
    /// damaged, not such an index, or of another dimension.
    pub fn view(path: &Path, settings: VectorSettings) -> Result<Self> {
        Self::open(path, settings, true)
    }

    fn open(path: &Path, settings: VectorSettings, view: bool) -> Result<Self> {
        settings.validate()?;
        let bad = |message: String| index_error(Some(path), format!("{message}; {REBUILD}"));
        let path_str = path.to_str().ok_or_else(|| {
            index_error(
                Some(path),
                "usearch needs a UTF-8 path; move the collection to a UTF-8 path",
            )
        })?;
        let tail = read_hnsw_tail(path)?;

        // The header first: a mismatch gets a precise message before anything is allocated.
        let meta = usearch::Index::metadata(path_str)
            .map_err(|e| bad(format!("unreadable HNSW index header ({e})")))?;
        let expected = usearch_options(&settings);
        if meta.dimensions != settings.dim as u64 {
            return Err(bad(format!(
                "the index holds {}-dimensional vectors but the settings say {}",
                meta.dimensions, settings.dim
            )));
        }
        if meta.metric != expected.metric || meta.quantization != expected.quantization {
            return Err(bad(format!(
                "the index was built with metric {:?} and scalar {:?} but the settings say {:?} and {:?}",
                meta.metric, meta.quantization, settings.metric, settings.scalar
            )));
        }
        if !meta.multi {
            return Err(bad(
                "the index was not built for several vectors per key".into()
            ));
        }

        let index = usearch::Index::new(&expected)
            .map_err(|e| index_error(None, format!("usearch could not create the index: {e}")))?;
        let opened = if view {
            index.view(path_str)
        } else {
            index.load(path_str)
        };
        opened.map_err(|e| bad(format!("usearch could not open the HNSW index ({e})")))?;
        if index.dimensions() != settings.dim {
            return Err(bad(format!(
                "the index holds {}-dimensional vectors but the settings say {}",
                index.dimensions(),
                settings.dim
            )));
        }
        // usearch ignores bytes after its own data, so a usearch part cut short would borrow
        // the key list's or footer's bytes unnoticed; its length must match what the index
        // writes.
        let serialized = index.serialized_length() as u64;
        if serialized != tail.usearch_len {
            return Err(bad(format!(
                "corrupt HNSW index (the usearch part is {} bytes but holds an index of {serialized})",
                tail.usearch_len
            )));
        }
        let vectors = index.size();
        if tail.keys > vectors || (tail.keys == 0) != (vectors == 0) {
            return Err(bad(format!(
                "corrupt HNSW index ({} keys recorded for {vectors} vectors)",
                tail.keys
            )));
        }
        let (keys, unlisted) = if tail.version >= 2 {
            // The count is checked here; that each listed key is in the graph is `verify`'s
            // job (a lookup per key would make opening a large segment cost O(keys)).
            let keys = read_key_list(path, tail.usearch_len, tail.keys)?;
            if keys.len() != tail.keys {
                return Err(bad(
                    "corrupt HNSW index (its key list does not match its vectors)".into(),
                ));
            }
            (keys, None)
        } else {
            (HashSet::new(), Some(tail.keys))
        };
        // Search-time parameters are not part of usearch's file; take them from the settings.
        index.change_expansion_add(settings.expansion_add);
        index.change_expansion_search(settings.expansion_search);
        let threads = search_threads();
        let capacity = if view {
            index.size()
        } else {
            index.capacity().max(HNSW_MIN_CAPACITY)
        };
        index
            .reserve_capacity_and_threads(capacity, threads)
            .map_err(|e| {
                index_error(Some(path), format!("usearch could not reserve memory: {e}"))
            })?;
        Ok(HnswIndex {
            settings,
            index,
            keys,
            unlisted,
            viewed: view,
            search_slots: Slots::new(threads),
        })
    }

    /// Checks the file's footer and length (a missing, truncated or foreign file is an
    /// error) without opening the graph: cheap whatever the index's size.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the file cannot be read; [`Error::Index`] naming the file when it is
    /// truncated or not such an index.
    pub fn check_file(path: &Path) -> Result<()> {
        read_hnsw_tail(path).map(|_| ())
    }

    /// For a version 1 file, which did not list its keys: takes as its key list those of
    /// `candidates` it holds (the engine passes the live documents' keys; a version 1 file
    /// held exactly those). Does nothing for an index that knows its keys.
    pub fn assume_keys(&mut self, candidates: impl IntoIterator<Item = u64>) {
        if self.unlisted.take().is_some() {
            self.keys = candidates
                .into_iter()
                .filter(|k| self.index.contains(*k))
                .collect();
        }
    }

    /// Whether the index knows its keys (false for a version 1 file until
    /// [`HnswIndex::assume_keys`]).
    pub fn lists_keys(&self) -> bool {
        self.unlisted.is_none()
    }

    /// Whether this index is a read-only view of its file.
    pub fn is_view(&self) -> bool {
        self.viewed
    }

    fn write_to(&self, tmp: &Path) -> Result<()> {
        let tmp_str = tmp.to_str().ok_or_else(|| {
            index_error(
                Some(tmp),
                "usearch needs a UTF-8 path; move the collection to a UTF-8 path",
            )
        })?;
        self.index.save(tmp_str).map_err(|e| {
            index_error(Some(tmp), format!("usearch could not save the index: {e}"))
        })?;
        let io = |e| Error::io(tmp, e);
        let file = OpenOptions::new().append(true).open(tmp).map_err(io)?;
        let usearch_len = file.metadata().map_err(io)?.len();
        let mut out = BufWriter::new(file);
        let mut keys: Vec<u64> = self.keys.iter().copied().collect();
        keys.sort_unstable();
        for key in &keys {
            out.write_all(&key.to_le_bytes()).map_err(io)?;
        }
        out.write_all(HNSW_MAGIC).map_err(io)?;
        out.write_all(&HNSW_VERSION.to_le_bytes()).map_err(io)?;
        out.write_all(&(keys.len() as u64).to_le_bytes())
            .map_err(io)?;
        out.write_all(&usearch_len.to_le_bytes()).map_err(io)?;
        let file = out.into_inner().map_err(|e| io(e.into_error()))?;
        // usearch does not fsync; this flushes its part, the key list and the footer alike.
        file.sync_all().map_err(io)
    }

    fn writable(&self) -> Result<()> {
        if self.viewed || self.unlisted.is_some() {
            return Err(index_error(
                None,
                "this HNSW index is a read-only segment (a view of its file, or a version 1 \
                 file without a key list); build a new index to change it",
            ));
        }
        Ok(())
    }

    /// Grows the capacity (doubling) until `more` vectors fit; usearch fails an insert beyond
    /// its reserved capacity rather than growing by itself.
    fn reserve_for(&self, more: usize) -> Result<()> {
        let capacity = self.index.capacity();
        let needed = self.index.size().saturating_add(more);
        if needed <= capacity {
            return Ok(());
        }
        let mut wanted = capacity.max(HNSW_MIN_CAPACITY);
        while wanted < needed {
            wanted = wanted.saturating_mul(2);
        }
        self.index
            .reserve_capacity_and_threads(wanted, self.search_slots.total)
            .map_err(|e| {
                index_error(
                    None,
                    format!("usearch could not reserve room for {wanted} vectors: {e}"),
                )
            })
    }
}

/// Reads and checks the footer.
fn read_hnsw_tail(path: &Path) -> Result<HnswTail> {
    let bad = |message: String| index_error(Some(path), format!("{message}; {REBUILD}"));
    let io = |e| Error::io(path, e);
    let mut file = File::open(path).map_err(io)?;
    let file_len = file.metadata().map_err(io)?.len();
    if file_len < HNSW_FOOTER {
        return Err(bad(format!(
            "truncated HNSW index ({file_len} bytes, shorter than its footer)"
        )));
    }
    file.seek(SeekFrom::Start(file_len - HNSW_FOOTER))
        .map_err(io)?;
    let mut footer = [0u8; HNSW_FOOTER as usize];
    file.read_exact(&mut footer).map_err(io)?;
    if &footer[0..4] != HNSW_MAGIC {
        return Err(bad(
            "truncated or not an HNSW index written by hybrid-search (no footer at its end)".into(),
        ));
    }
    let version = u32::from_le_bytes([footer[4], footer[5], footer[6], footer[7]]);
    if !(1..=HNSW_VERSION).contains(&version) {
        return Err(bad(format!(
            "HNSW index format version {version}, this build reads versions 1 to {HNSW_VERSION}"
        )));
    }
    let mut word = [0u8; 8];
    word.copy_from_slice(&footer[8..16]);
    let keys = u64::from_le_bytes(word);
    word.copy_from_slice(&footer[16..24]);
    let usearch_len = u64::from_le_bytes(word);
    let listed = if version >= 2 {
        keys.checked_mul(8)
    } else {
        Some(0)
    };
    let expected = listed
        .and_then(|l| l.checked_add(usearch_len))
        .and_then(|l| l.checked_add(HNSW_FOOTER));
    if expected != Some(file_len) {
        return Err(bad(format!(
            "truncated or corrupt HNSW index ({file_len} bytes, the footer expects {})",
            expected.map_or_else(|| "more".to_string(), |e| e.to_string())
        )));
    }
    let keys =
        usize::try_from(keys).map_err(|_| bad(format!("corrupt HNSW index ({keys} keys)")))?;
    Ok(HnswTail {
        version,
        keys,
        usearch_len,
    })
}

/// Reads the key list of a version 2 file (`count` keys after the usearch part).
fn read_key_list(path: &Path, usearch_len: u64, count: usize) -> Result<HashSet<u64>> {
    let io = |e| Error::io(path, e);
    let mut file = File::open(path).map_err(io)?;
    file.seek(SeekFrom::Start(usearch_len)).map_err(io)?;
    let mut bytes = vec![0u8; count * 8];
    file.read_exact(&mut bytes).map_err(io)?;
    Ok(bytes
        .chunks_exact(8)
        .map(|b| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
        .collect())
}

impl VectorIndex for HnswIndex {
    fn settings(&self) -> &VectorSettings {
        &self.settings
    }

    fn len(&self) -> usize {
        self.unlisted.unwrap_or(self.keys.len())
    }

    fn add(&mut self, key: u64, vector: &[f32]) -> Result<()> {
        self.writable()?;
        check_key(key)?;
        check_vector(&self.settings, vector, "the vector")?;
        self.reserve_for(1)?;
        self.index
            .add(key, vector)
            .map_err(|e| index_error(None, format!("usearch could not add key {key}: {e}")))?;
        self.keys.insert(key);
        Ok(())
    }

    fn add_batch(&mut self, items: &[(u64, Vec<f32>)]) -> Result<()> {
        use rayon::prelude::*;
        self.writable()?;
        for (key, vector) in items {
            check_key(*key)?;
            check_vector(&self.settings, vector, "the vector")?;
        }
        self.reserve_for(items.len())?;
        // usearch inserts concurrently (one of its reserved thread contexts per insert); the
        // graph differs from a sequential build only in insertion order.
        let threads = self.search_slots.total;
        let index = &self.index;
        let slots = &self.search_slots;
        let pool_size = rayon::current_num_threads().min(threads).max(1);
        items
            .par_chunks(items.len().div_ceil(pool_size).max(1))
            .try_for_each(|chunk| {
                let _slot = slots.acquire();
                for (key, vector) in chunk {
                    index.add(*key, vector.as_slice()).map_err(|e| {
                        index_error(None, format!("usearch could not add key {key}: {e}"))
                    })?;
                }
                Ok::<(), Error>(())
            })?;
        self.keys.extend(items.iter().map(|(k, _)| *k));
        Ok(())
    }

    fn remove(&mut self, key: u64) -> Result<usize> {
        self.writable()?;
        let removed = self
            .index
            .remove(key)
            .map_err(|e| index_error(None, format!("usearch could not remove key {key}: {e}")))?;
        self.keys.remove(&key);
        Ok(removed)
    }

    fn contains(&self, key: u64) -> bool {
        self.index.contains(key)
    }

    fn search_filtered(
        &self,
        query: &[f32],
        k: usize,
        keep: &dyn Fn(u64) -> bool,
    ) -> Result<Vec<(u64, f32)>> {
        check_vector(&self.settings, query, "the query")?;
        let vectors = self.index.size();
        if k == 0 || vectors == 0 {
            return Ok(Vec::new());
        }
        let _slot = self.search_slots.acquire();
        // usearch searches with max(expansion_search, wanted) candidates, so asking for more
        // results also widens the search; no need to change the shared expansion setting
        // (which concurrent searches read).
        let mut wanted = k.min(vectors);
        loop {
            let matches = self
                .index
                .filtered_search(query, wanted, keep)
                .map_err(|e| index_error(None, format!("usearch search failed: {e}")))?;
            let found = matches.keys.len();
            let mut best: HashMap<u64, f32> = HashMap::with_capacity(found);
            for (&key, &distance) in matches.keys.iter().zip(&matches.distances) {
                // usearch's distances are `1 - cos` and `1 - dot`.
                let similarity = 1.0 - distance;
                best.entry(key)
                    .and_modify(|s| *s = s.max(similarity))
                    .or_insert(similarity);
            }
            // Fewer matches than asked means the filter left no more to find.
            if best.len() >= k || wanted >= vectors || found < wanted {
                let mut result: Vec<(u64, f32)> = best.into_iter().collect();
                result.sort_unstable_by(by_similarity);
                result.truncate(k);
                return Ok(result);
            }
            wanted = wanted.saturating_mul(2).min(vectors);
        }
    }

    fn search_among(&self, query: &[f32], k: usize, keys: &[u64]) -> Result<Vec<(u64, f32)>> {
        check_vector(&self.settings, query, "the query")?;
        // One buffer for every key's vectors, and no lookup for a key another segment holds.
        let listed = self.unlisted.is_none();
        let mut flat: Vec<f32> = Vec::new();
        let mut scores = ExactScores::new(self.settings.metric, query);
        for &key in keys {
            if listed && !self.keys.contains(&key) {
                continue;
            }
            let found = self
                .index
                .export(key, &mut flat)
                .map_err(|e| index_error(None, format!("usearch could not read key {key}: {e}")))?;
            for v in flat.chunks_exact(self.settings.dim).take(found) {
                scores.add(key, v);
            }
        }
        Ok(scores.top(k))
    }

    fn keys(&self) -> Vec<u64> {
        self.keys.iter().copied().collect()
    }

    fn vectors_of(&self, key: u64) -> Result<Vec<Vec<f32>>> {
        let mut flat: Vec<f32> = Vec::new();
        let found = self
            .index
            .export(key, &mut flat)
            .map_err(|e| index_error(None, format!("usearch could not read key {key}: {e}")))?;
        Ok(flat
            .chunks_exact(self.settings.dim)
            .take(found)
            .map(<[f32]>::to_vec)
            .collect())
    }

    fn save(&self, path: &Path) -> Result<()> {
        save_atomically(path, |tmp| self.write_to(tmp))
    }
}

/// A counting semaphore: at most `total` holders at once.
struct Slots {
    total: usize,
    free: Mutex<usize>,
    released: Condvar,
}

impl Slots {
    fn new(total: usize) -> Self {
        Slots {
            total,
            free: Mutex::new(total),
            released: Condvar::new(),
        }
    }

    fn acquire(&self) -> SlotGuard<'_> {
        // The counter stays consistent even if a holder panicked, so poisoning is ignored.
        let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
        while *free == 0 {
            free = self
                .released
                .wait(free)
                .unwrap_or_else(PoisonError::into_inner);
        }
        *free -= 1;
        SlotGuard(self)
    }
}

struct SlotGuard<'a>(&'a Slots);

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        let mut free = self.0.free.lock().unwrap_or_else(PoisonError::into_inner);
        *free += 1;
        self.0.released.notify_one();
    }
}
