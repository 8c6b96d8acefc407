//! The dense leg of a collection: which model made its vectors, and the vector index files.
//!
//! Vectors live in `dense/vectors-<generation>.<hnsw|exact>`. A commit writes the next
//! generation's file (under a temporary name, then renamed) before the sparse commit, and the
//! sparse commit's record names the generation, so the sparse commit is the one atomic switch
//! for both legs: a crash before it leaves the previous generation in force (the orphaned file
//! is removed by the next commit).

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use hybrid_search_dense::{
    Encoder, ExactIndex, HnswIndex, LongText, ModelDescription, TextKind, VectorIndex,
    VectorSettings, WeightsInfo,
};
use hybrid_search_eval::Document;

use crate::error::{Error, Result};

pub(crate) const DENSE_DIR: &str = "dense";

/// Inputs encoded per forward pass.
pub const DEFAULT_BATCH: usize = 32;

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
        }
    }
}

impl DenseManifest {
    pub(crate) fn new(encoder: &Encoder, options: DenseOptions) -> Self {
        let mut vectors = VectorSettings::new(encoder.description().dim);
        // Wider than usearch's default 64: near-duplicate passages (windows of one document,
        // boilerplate) crowd a narrow beam.
        vectors.expansion_search = 128;
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
                 Pass --model with the collection's model, or rebuild the collection",
                self.model.name,
                self.model.weights.file,
                differences.join(", ")
            ),
        })
    }
}

/// The vector file of `generation`.
pub(crate) fn vectors_path(dir: &Path, kind: VectorKind, generation: u64) -> PathBuf {
    dir.join(DENSE_DIR)
        .join(format!("vectors-{generation:08}.{}", kind.extension()))
}

/// Loads the vectors of `generation`, or an empty index before the first commit.
pub(crate) fn load_vectors(
    dir: &Path,
    manifest: &DenseManifest,
    generation: Option<u64>,
) -> Result<Box<dyn VectorIndex>> {
    let settings = manifest.vectors.clone();
    let index: Box<dyn VectorIndex> = match (generation, manifest.kind) {
        (None, VectorKind::Hnsw) => Box::new(HnswIndex::new(settings)?),
        (None, VectorKind::Exact) => Box::new(ExactIndex::new(settings)?),
        (Some(g), kind) => {
            let path = vectors_path(dir, kind, g);
            match kind {
                VectorKind::Hnsw => Box::new(HnswIndex::load(&path, settings)?),
                VectorKind::Exact => Box::new(ExactIndex::load(&path, settings)?),
            }
        }
    };
    Ok(index)
}

/// Removes vector files other than `keep` (orphans of interrupted commits, old generations).
pub(crate) fn remove_stale(dir: &Path, keep: &Path) -> Result<()> {
    let dense = dir.join(DENSE_DIR);
    let entries = fs::read_dir(&dense).map_err(|e| Error::io(&dense, e))?;
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path != keep && name.to_string_lossy().starts_with("vectors-") {
            fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
        }
    }
    Ok(())
}

/// The text a passage encoder sees for a document: `title + " " + text` (each trimmed; just
/// the one that is not empty when the other is), as BEIR's dense baselines and MTEB encode
/// corpora. Training examples and the reranker use the same text.
pub fn passage_text(doc: &Document) -> String {
    match (doc.title.trim(), doc.text.trim()) {
        ("", text) => text.to_string(),
        (title, "") => title.to_string(),
        (title, text) => format!("{title} {text}"),
    }
}

/// Progress of encoding: (inputs done, inputs in this flush).
pub type EncodeProgress = Box<dyn Fn(usize, usize) + Send + Sync>;

/// The dense half of a [`crate::CollectionWriter`]: vectors are encoded in batches when the
/// writer commits, then written as the next generation.
pub(crate) struct DenseWriter {
    pub dir: PathBuf,
    pub manifest: DenseManifest,
    /// Needed to add documents; deleting works without it.
    pub encoder: Option<Arc<Encoder>>,
    pub vectors: Box<dyn VectorIndex>,
    pub generation: Option<u64>,
    /// Key of every live or pending document, by external id.
    pub keys: HashMap<String, u64>,
    /// Documents waiting to be encoded: (key, passage text).
    pub pending: Vec<(u64, String)>,
    /// The previous key of every id changed since the last commit, oldest first.
    pub undo: Vec<(String, Option<u64>)>,
    pub changed: bool,
    pub progress: Option<EncodeProgress>,
}

impl DenseWriter {
    pub(crate) fn upsert(&mut self, doc: &Document, key: u64) -> Result<()> {
        self.encoder()?;
        let old = self.keys.insert(doc.id.clone(), key);
        self.undo.push((doc.id.clone(), old));
        if let Some(old) = old {
            self.forget(old)?;
        }
        self.pending.push((key, passage_text(doc)));
        self.changed = true;
        Ok(())
    }

    pub(crate) fn delete(&mut self, id: &str) -> Result<()> {
        if let Some(old) = self.keys.remove(id) {
            self.undo.push((id.to_string(), Some(old)));
            self.forget(old)?;
            self.changed = true;
        }
        Ok(())
    }

    /// After a commit: the changes are kept.
    pub(crate) fn committed(&mut self) {
        self.undo.clear();
        self.changed = false;
    }

    /// Back to the last commit: its vectors reloaded, the keys of changed ids restored.
    pub(crate) fn rollback(&mut self) -> Result<()> {
        self.pending.clear();
        for (id, old) in self.undo.drain(..).rev() {
            match old {
                Some(key) => self.keys.insert(id, key),
                None => self.keys.remove(&id),
            };
        }
        if self.changed {
            self.vectors = load_vectors(&self.dir, &self.manifest, self.generation)?;
            self.changed = false;
        }
        Ok(())
    }

    fn forget(&mut self, key: u64) -> Result<()> {
        self.vectors.remove(key)?;
        self.pending.retain(|(k, _)| *k != key);
        Ok(())
    }

    fn encoder(&self) -> Result<&Arc<Encoder>> {
        self.encoder.as_ref().ok_or_else(|| {
            Error::NoModel(
                self.dir.clone(),
                "adding documents to the dense leg needs the model its vectors were made with; \
                 pass --model DIR (or attach_encoder in the library)"
                    .into(),
            )
        })
    }

    /// Encodes the pending documents (all their windows) and adds the vectors.
    pub(crate) fn flush(&mut self) -> Result<()> {
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
        let total = inputs.len();
        let done = std::sync::atomic::AtomicUsize::new(0);
        let progress = |n: usize| {
            let now = done.fetch_add(n, std::sync::atomic::Ordering::Relaxed) + n;
            if let Some(p) = &self.progress {
                p(now, total);
            }
        };
        let vectors = encoder.encode_ids(&inputs, DEFAULT_BATCH, &progress)?;
        for (key, v) in keys.into_iter().zip(vectors) {
            self.vectors.add(key, &v)?;
        }
        Ok(())
    }
}

/// Finds the model directory `name`: under `$HYBRID_SEARCH_MODELS`, else `models/<name>` in
/// the working directory, the executable's folder, or one of their parents (the repository's
/// `scripts/fetch-models.sh` lays models out in `models/`).
pub fn locate_model(name: &str) -> Option<PathBuf> {
    let mut roots: Vec<PathBuf> = std::env::var_os("HYBRID_SEARCH_MODELS")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    for start in [std::env::current_dir().ok(), std::env::current_exe().ok()]
        .into_iter()
        .flatten()
    {
        roots.extend(start.ancestors().map(|d| d.join("models")));
    }
    roots
        .into_iter()
        .map(|root| root.join(name))
        .find(|dir| dir.is_dir())
}
