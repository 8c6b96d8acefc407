//! The collection on disk: manifest, the sparse leg and the commit record.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use hybrid_search_dense::{Encoder, TextKind, VectorIndex};
use hybrid_search_eval::Document;
use hybrid_search_fusion::{FusedHit, Fusion};
use hybrid_search_sparse::{AnalyzerConfig, Bm25Index, Bm25Writer, SparseDoc};

use crate::dense_leg::{self, DENSE_DIR, DenseManifest, DenseOptions, DenseWriter, EncodeProgress};
use crate::error::{Error, Result};
use crate::snippet::{query_terms, snippet_for_terms};

/// The on-disk format version this code writes. Version 1 (no dense leg) is still read.
pub const FORMAT_VERSION: u32 = 2;

const MANIFEST: &str = "manifest.json";
const SPARSE_DIR: &str = "sparse";
/// Indexing memory for tantivy's writer (split across its threads).
const WRITER_HEAP: usize = 256 << 20;

/// `manifest.json`: what a collection is and how its text is analysed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// On-disk format version.
    pub format_version: u32,
    /// Analyzer settings used for both documents and queries.
    pub analyzer: AnalyzerConfig,
    /// The version of hybrid-search that created the collection.
    pub created_by: String,
    /// The dense leg, when the collection was built with a model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dense: Option<DenseManifest>,
}

/// Which leg answers a search.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// BM25 over the analysed text.
    #[default]
    Sparse,
    /// Nearest passages to the query's vector.
    Dense,
    /// Both legs, fused ([`HybridOptions`]).
    Hybrid,
}

/// How the hybrid mode blends the legs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HybridOptions {
    /// The fusion method and its settings.
    pub fusion: Fusion,
    /// Candidates taken from each leg (at least the number of results asked for).
    pub depth: usize,
}

impl Default for HybridOptions {
    /// Reciprocal rank fusion (k = 60, equal weights) over the top 100 of each leg.
    fn default() -> Self {
        Self {
            fusion: Fusion::default(),
            depth: 100,
        }
    }
}

/// The engine's record stored as the payload of every sparse commit.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct CommitRecord {
    /// The next internal key to hand out.
    next_key: u64,
    /// The generation of the dense vectors this commit goes with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dense_generation: Option<u64>,
}

/// One search result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    /// External document id.
    pub id: String,
    /// Title.
    pub title: String,
    /// The best-matching stretch of the text, matches marked with `**`.
    pub snippet: String,
    /// The answering leg's score: BM25, or cosine similarity for dense.
    pub score: f32,
}

/// A collection: a folder holding a manifest and the search legs.
pub struct Collection {
    dir: PathBuf,
    manifest: Manifest,
    sparse: Bm25Index,
    dense: Option<DenseLeg>,
}

/// The loaded dense leg: vectors of the last commit seen, the key -> id map of the live
/// documents, and the encoder once one is attached.
struct DenseLeg {
    encoder: Option<Arc<Encoder>>,
    vectors: Box<dyn VectorIndex>,
    generation: Option<u64>,
    ids: Arc<HashMap<u64, Arc<str>>>,
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, e))?;
    let file = fs::File::open(&tmp).map_err(|e| Error::io(&tmp, e))?;
    file.sync_all().map_err(|e| Error::io(&tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

impl Collection {
    /// Creates a new, empty collection in `dir` (created if missing; it must be empty).
    pub fn create(dir: &Path, analyzer: AnalyzerConfig) -> Result<Self> {
        Self::create_with(dir, analyzer, None)
    }

    /// Creates a new, empty collection in `dir` with a dense leg made by `encoder` when given.
    pub fn create_with(
        dir: &Path,
        analyzer: AnalyzerConfig,
        dense: Option<(Arc<Encoder>, DenseOptions)>,
    ) -> Result<Self> {
        if Self::exists(dir) {
            return Err(Error::NotEmpty(dir.to_path_buf()));
        }
        if dir.exists() {
            let mut entries = fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
            if entries.next().is_some() {
                return Err(Error::NotEmpty(dir.to_path_buf()));
            }
        }
        let sparse_dir = dir.join(SPARSE_DIR);
        fs::create_dir_all(&sparse_dir).map_err(|e| Error::io(&sparse_dir, e))?;
        let sparse = Bm25Index::create(&sparse_dir, &analyzer)?;
        let mut leg = None;
        let dense_manifest = match dense {
            Some((encoder, options)) => {
                let dense_dir = dir.join(DENSE_DIR);
                fs::create_dir_all(&dense_dir).map_err(|e| Error::io(&dense_dir, e))?;
                let m = DenseManifest::new(&encoder, options);
                leg = Some(DenseLeg {
                    vectors: dense_leg::load_vectors(dir, &m, None)?,
                    encoder: Some(encoder),
                    generation: None,
                    ids: Arc::default(),
                });
                Some(m)
            }
            None => None,
        };
        let manifest = Manifest {
            format_version: FORMAT_VERSION,
            analyzer,
            created_by: format!("hybrid-search {}", env!("CARGO_PKG_VERSION")),
            dense: dense_manifest,
        };
        let json = serde_json::to_vec_pretty(&manifest).expect("manifest serialises");
        // The manifest is written last: a folder without one is not a collection yet.
        write_atomic(&dir.join(MANIFEST), &json)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            manifest,
            sparse,
            dense: leg,
        })
    }

    /// Whether `dir` holds a collection (its manifest is written last, so a half-created folder
    /// is not one).
    pub fn exists(dir: &Path) -> bool {
        dir.join(MANIFEST).is_file()
    }

    /// Opens the collection in `dir` at its last commit.
    pub fn open(dir: &Path) -> Result<Self> {
        let path = dir.join(MANIFEST);
        if !path.is_file() {
            return Err(Error::NotACollection(dir.to_path_buf()));
        }
        let bytes = fs::read(&path).map_err(|e| Error::io(&path, e))?;
        let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| Error::Manifest {
            path: path.clone(),
            message: format!("not a valid manifest ({e}); the collection must be rebuilt"),
        })?;
        if !(1..=FORMAT_VERSION).contains(&manifest.format_version) {
            return Err(Error::Manifest {
                path,
                message: format!(
                    "format version {} is not supported by this build (version {FORMAT_VERSION}); \
                     use a matching hybrid-search or rebuild the collection",
                    manifest.format_version
                ),
            });
        }
        let sparse = Bm25Index::open(&dir.join(SPARSE_DIR), &manifest.analyzer)?;
        let mut collection = Self {
            dir: dir.to_path_buf(),
            manifest,
            sparse,
            dense: None,
        };
        collection.load_dense(None)?;
        Ok(collection)
    }

    /// (Re)loads the dense leg at the generation the last commit names, keeping `encoder`.
    fn load_dense(&mut self, encoder: Option<Arc<Encoder>>) -> Result<()> {
        let Some(manifest) = &self.manifest.dense else {
            return Ok(());
        };
        let generation = self.commit_record()?.dense_generation;
        let same = self
            .dense
            .as_ref()
            .is_some_and(|d| d.generation == generation);
        let vectors = match self.dense.take() {
            Some(leg) if same => leg.vectors,
            _ => dense_leg::load_vectors(&self.dir, manifest, generation)?,
        };
        let ids: HashMap<u64, Arc<str>> = self.sparse.live_keys()?.into_iter().collect();
        self.dense = Some(DenseLeg {
            encoder,
            vectors,
            generation,
            ids: Arc::new(ids),
        });
        Ok(())
    }

    /// Attaches the model that makes query vectors (and vectors for new documents); it must be
    /// the model the collection's vectors were made with.
    pub fn attach_encoder(&mut self, encoder: Arc<Encoder>) -> Result<()> {
        let Some(manifest) = &self.manifest.dense else {
            return Err(Error::NoModel(
                self.dir.clone(),
                "this collection was built without a dense leg, and one cannot be added to it; \
                 index the documents into a new folder with `hybrid-search index --model`"
                    .into(),
            ));
        };
        manifest.check(&encoder, &self.dir)?;
        if let Some(leg) = &mut self.dense {
            leg.encoder = Some(encoder);
        }
        Ok(())
    }

    /// The attached encoder, if any.
    pub fn encoder(&self) -> Option<&Arc<Encoder>> {
        self.dense.as_ref().and_then(|d| d.encoder.as_ref())
    }

    fn dense_leg(&self) -> Result<(&DenseLeg, &Arc<Encoder>)> {
        let leg = self.dense.as_ref().ok_or_else(|| {
            Error::NoModel(
                self.dir.clone(),
                "this collection has no dense leg; build it with `hybrid-search index --model DIR`"
                    .into(),
            )
        })?;
        let encoder = leg.encoder.as_ref().ok_or_else(|| {
            Error::NoModel(
                self.dir.clone(),
                "the dense leg needs the model its vectors were made with; pass --model DIR \
                 (or attach_encoder in the library)"
                    .into(),
            )
        })?;
        Ok((leg, encoder))
    }

    /// Query vectors for `queries`, batched.
    pub fn encode_queries(&self, queries: &[&str]) -> Result<Vec<Vec<f32>>> {
        let (_, encoder) = self.dense_leg()?;
        Ok(encoder.encode(queries, TextKind::Query, dense_leg::DEFAULT_BATCH)?)
    }

    /// The top `k` documents for a query vector as (external id, cosine similarity).
    pub fn dense_search_ids(&self, vector: &[f32], k: usize) -> Result<Vec<(Arc<str>, f32)>> {
        let leg = self.dense.as_ref().ok_or_else(|| {
            Error::NoModel(self.dir.clone(), "this collection has no dense leg".into())
        })?;
        Ok(leg
            .vectors
            .search(vector, k)?
            .into_iter()
            .filter_map(|(key, score)| leg.ids.get(&key).map(|id| (id.clone(), score)))
            .collect())
    }

    /// Opens the collection in `dir`, or creates it with `analyzer` if the folder has none.
    pub fn open_or_create(dir: &Path, analyzer: AnalyzerConfig) -> Result<Self> {
        if Self::exists(dir) {
            Self::open(dir)
        } else {
            Self::create(dir, analyzer)
        }
    }

    /// The collection's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The BM25 leg.
    pub fn sparse(&self) -> &Bm25Index {
        &self.sparse
    }

    /// Number of documents at the last commit seen.
    pub fn len(&self) -> u64 {
        self.sparse.num_docs()
    }

    /// Whether the collection holds no documents.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sees the last commit (after a [`CollectionWriter::commit`]).
    pub fn reload(&mut self) -> Result<()> {
        self.sparse.reload()?;
        let encoder = self.dense.as_ref().and_then(|d| d.encoder.clone());
        self.load_dense(encoder)
    }

    fn commit_record(&self) -> Result<CommitRecord> {
        match self.sparse.commit_payload()? {
            None => Ok(CommitRecord::default()),
            Some(payload) => serde_json::from_str(&payload).map_err(|e| Error::Commit {
                path: self.dir.clone(),
                message: format!(
                    "the last commit's record is unreadable ({e}); rebuild the collection"
                ),
            }),
        }
    }

    /// A writer; only one may exist at a time (tantivy holds a lock on the index). A
    /// collection with a dense leg needs its encoder attached.
    pub fn writer(&mut self) -> Result<CollectionWriter> {
        let record = self.commit_record()?;
        let dense = match (&self.manifest.dense, &self.dense) {
            (Some(manifest), Some(leg)) => {
                let (_, encoder) = self.dense_leg()?;
                Some(DenseWriter {
                    dir: self.dir.clone(),
                    manifest: manifest.clone(),
                    encoder: encoder.clone(),
                    vectors: dense_leg::load_vectors(&self.dir, manifest, record.dense_generation)?,
                    generation: record.dense_generation,
                    keys: leg.ids.iter().map(|(k, id)| (id.to_string(), *k)).collect(),
                    pending: Vec::new(),
                    undo: Vec::new(),
                    changed: false,
                    progress: None,
                })
            }
            _ => None,
        };
        Ok(CollectionWriter {
            sparse: self.sparse.writer(WRITER_HEAP)?,
            next_key: record.next_key,
            dense_generation: record.dense_generation,
            dense,
        })
    }

    /// The top `k` documents from the leg `mode` names, as (external id, score), ranked.
    pub fn search_ids_with(
        &self,
        query: &str,
        k: usize,
        mode: Mode,
    ) -> Result<Vec<(Arc<str>, f32)>> {
        match mode {
            Mode::Sparse => self.search_ids(query, k),
            Mode::Dense => {
                let vector = self.encode_queries(&[query])?;
                self.dense_search_ids(&vector[0], k)
            }
            Mode::Hybrid => Ok(self
                .hybrid_ids(query, None, k, &HybridOptions::default())?
                .into_iter()
                .map(|h| (h.id, h.score as f32))
                .collect()),
        }
    }

    /// The top `k` documents of both legs fused: each leg's top `options.depth` (at least `k`)
    /// blended by `options.fusion`, with every leg's raw score, rank and normalised score kept
    /// per hit for explanations. `vector` is the query's vector when already encoded.
    pub fn hybrid_ids(
        &self,
        query: &str,
        vector: Option<&[f32]>,
        k: usize,
        options: &HybridOptions,
    ) -> Result<Vec<FusedHit<Arc<str>>>> {
        let depth = options.depth.max(k);
        let sparse = self.search_ids(query, depth)?;
        let encoded;
        let vector = match vector {
            Some(v) => v,
            None => {
                encoded = self.encode_queries(&[query])?;
                &encoded[0]
            }
        };
        let dense = self.dense_search_ids(vector, depth)?;
        let mut fused = options.fusion.fuse(&sparse, &dense)?;
        fused.truncate(k);
        Ok(fused)
    }

    /// The top `k` documents as (external id, score), ranked. Ids are shared, not copied.
    pub fn search_ids(&self, query: &str, k: usize) -> Result<Vec<(Arc<str>, f32)>> {
        Ok(self
            .sparse
            .search(query, k)?
            .into_iter()
            .map(|h| (h.id, h.score))
            .collect())
    }

    /// The top `k` documents by BM25 with title and snippet.
    pub fn search(&self, query: &str, k: usize) -> Result<Vec<Hit>> {
        self.search_with(query, k, Mode::Sparse)
    }

    /// The top `k` documents from the leg `mode` names, with title and snippet.
    pub fn search_with(&self, query: &str, k: usize, mode: Mode) -> Result<Vec<Hit>> {
        self.hits(query, self.search_ids_with(query, k, mode)?)
    }

    /// Ranked (id, score) pairs of `query` turned into hits with title and snippet.
    pub fn hits(&self, query: &str, ranked: Vec<(Arc<str>, f32)>) -> Result<Vec<Hit>> {
        let analyzer = self.sparse.analyzer();
        let wanted = query_terms(analyzer, query);
        let mut hits = Vec::new();
        for (id, score) in ranked {
            let doc = self.sparse.get(&id)?;
            let (title, text) = doc.map(|d| (d.title, d.text)).unwrap_or_default();
            let snippet = snippet_for_terms(analyzer, &wanted, &text, 240);
            hits.push(Hit {
                id: id.to_string(),
                title,
                snippet,
                score,
            });
        }
        Ok(hits)
    }

    /// Upserts `docs` in one commit, merges the load into one segment and reloads; `on_doc` runs
    /// after each upsert (a progress bar). On error nothing of `docs` is committed.
    pub fn bulk_load(&mut self, docs: &[Document], on_doc: impl FnMut()) -> Result<()> {
        self.bulk_load_with(docs, on_doc, None)
    }

    /// [`Collection::bulk_load`], with `on_encoded` told (inputs encoded, inputs in all) while
    /// the dense leg encodes the documents.
    pub fn bulk_load_with(
        &mut self,
        docs: &[Document],
        mut on_doc: impl FnMut(),
        on_encoded: Option<EncodeProgress>,
    ) -> Result<()> {
        let mut writer = self.writer()?;
        if let Some(dense) = &mut writer.dense {
            dense.progress = on_encoded;
        }
        for doc in docs {
            writer.upsert(doc)?;
            on_doc();
        }
        writer.commit()?;
        writer.optimize()?;
        writer.finish()?;
        self.reload()
    }

    /// The stored document with external id `id`.
    pub fn get(&self, id: &str) -> Result<Option<Document>> {
        Ok(self.sparse.get(id)?.map(|d| Document {
            id: d.id,
            title: d.title,
            text: d.text,
        }))
    }
}

/// Adds and deletes documents; nothing is visible, and nothing committed is lost, until
/// [`CollectionWriter::commit`]. Dropping a writer without committing discards its changes.
pub struct CollectionWriter {
    sparse: Bm25Writer,
    next_key: u64,
    dense_generation: Option<u64>,
    dense: Option<DenseWriter>,
}

impl CollectionWriter {
    /// Adds `doc`, replacing the document with the same id if there is one.
    pub fn upsert(&mut self, doc: &Document) -> Result<()> {
        let key = self.next_key;
        self.next_key += 1;
        self.sparse.upsert(&SparseDoc {
            id: doc.id.clone(),
            key,
            title: doc.title.clone(),
            text: doc.text.clone(),
        })?;
        if let Some(dense) = &mut self.dense {
            dense.upsert(doc, key)?;
        }
        Ok(())
    }

    /// Deletes the document with external id `id` (no error if there is none).
    pub fn delete(&mut self, id: &str) -> Result<()> {
        self.sparse.delete(id);
        if let Some(dense) = &mut self.dense {
            dense.delete(id)?;
        }
        Ok(())
    }

    /// Makes every change since the last commit durable and visible to [`Collection::reload`].
    ///
    /// The dense vectors are encoded and written first, as a new generation file; the sparse
    /// commit, whose record names that generation, then switches both legs at once.
    pub fn commit(&mut self) -> Result<()> {
        let mut written = None;
        if let Some(dense) = &mut self.dense {
            dense.flush()?;
            if dense.changed {
                let generation = dense.generation.map_or(1, |g| g + 1);
                let path = dense_leg::vectors_path(&dense.dir, dense.manifest.kind, generation);
                dense.vectors.save(&path)?;
                written = Some((generation, path));
            }
        }
        let record = CommitRecord {
            next_key: self.next_key,
            dense_generation: written.as_ref().map(|(g, _)| *g).or(self.dense_generation),
        };
        let payload = serde_json::to_string(&record).expect("record serialises");
        self.sparse.commit(&payload)?;
        self.dense_generation = record.dense_generation;
        if let Some(dense) = &mut self.dense {
            dense.committed();
        }
        if let (Some(dense), Some((generation, path))) = (&mut self.dense, written) {
            dense.generation = Some(generation);
            dense_leg::remove_stale(&dense.dir, &path)?;
        }
        Ok(())
    }

    /// Discards every change since the last commit.
    pub fn rollback(&mut self) -> Result<()> {
        self.sparse.rollback()?;
        if let Some(dense) = &mut self.dense {
            dense.rollback()?;
        }
        Ok(())
    }

    /// Merges the committed documents into one segment: call after a bulk load for the fastest
    /// deep (k = 1000) searches. The merge replaces segments atomically; nothing is lost if it
    /// is interrupted.
    pub fn optimize(&mut self) -> Result<()> {
        self.sparse.merge_all()?;
        Ok(())
    }

    /// Waits for background merges, so the folder is compact when the process exits.
    pub fn finish(self) -> Result<()> {
        Ok(self.sparse.wait_merging_threads()?)
    }
}
