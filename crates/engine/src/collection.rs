//! The collection on disk: manifest, the sparse leg and the commit record.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use hybrid_search_eval::Document;
use hybrid_search_sparse::{AnalyzerConfig, Bm25Index, Bm25Writer, SparseDoc};

use crate::error::{Error, Result};
use crate::snippet::{query_terms, snippet_for_terms};

/// The on-disk format version this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;

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
}

/// The engine's record stored as the payload of every sparse commit.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct CommitRecord {
    /// The next internal key to hand out.
    next_key: u64,
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
    /// BM25 score.
    pub score: f32,
}

/// A collection: a folder holding a manifest and the search legs.
pub struct Collection {
    dir: PathBuf,
    manifest: Manifest,
    sparse: Bm25Index,
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
        let manifest = Manifest {
            format_version: FORMAT_VERSION,
            analyzer,
            created_by: format!("hybrid-search {}", env!("CARGO_PKG_VERSION")),
        };
        let json = serde_json::to_vec_pretty(&manifest).expect("manifest serialises");
        // The manifest is written last: a folder without one is not a collection yet.
        write_atomic(&dir.join(MANIFEST), &json)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            manifest,
            sparse,
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
        if manifest.format_version != FORMAT_VERSION {
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
        Ok(Self {
            dir: dir.to_path_buf(),
            manifest,
            sparse,
        })
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
        Ok(self.sparse.reload()?)
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

    /// A writer; only one may exist at a time (tantivy holds a lock on the index).
    pub fn writer(&mut self) -> Result<CollectionWriter> {
        let record = self.commit_record()?;
        Ok(CollectionWriter {
            sparse: self.sparse.writer(WRITER_HEAP)?,
            next_key: record.next_key,
        })
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

    /// The top `k` documents with title and snippet.
    pub fn search(&self, query: &str, k: usize) -> Result<Vec<Hit>> {
        let analyzer = self.sparse.analyzer();
        let wanted = query_terms(analyzer, query);
        let mut hits = Vec::new();
        for h in self.sparse.search(query, k)? {
            let doc = self.sparse.get(&h.id)?;
            let (title, text) = doc.map(|d| (d.title, d.text)).unwrap_or_default();
            let snippet = snippet_for_terms(analyzer, &wanted, &text, 240);
            hits.push(Hit {
                id: h.id.to_string(),
                title,
                snippet,
                score: h.score,
            });
        }
        Ok(hits)
    }

    /// Upserts `docs` in one commit, merges the load into one segment and reloads; `on_doc` runs
    /// after each upsert (a progress bar). On error nothing of `docs` is committed.
    pub fn bulk_load(&mut self, docs: &[Document], mut on_doc: impl FnMut()) -> Result<()> {
        let mut writer = self.writer()?;
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
        Ok(())
    }

    /// Deletes the document with external id `id` (no error if there is none).
    pub fn delete(&mut self, id: &str) {
        self.sparse.delete(id);
    }

    /// Makes every change since the last commit durable and visible to [`Collection::reload`].
    pub fn commit(&mut self) -> Result<()> {
        let record = CommitRecord {
            next_key: self.next_key,
        };
        let payload = serde_json::to_string(&record).expect("record serialises");
        self.sparse.commit(&payload)?;
        Ok(())
    }

    /// Discards every change since the last commit.
    pub fn rollback(&mut self) -> Result<()> {
        Ok(self.sparse.rollback()?)
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
