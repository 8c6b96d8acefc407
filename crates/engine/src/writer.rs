//! Writing: the single writer of a collection (upserts, deletes, the commit protocol that
//! switches both legs at once, vector-segment merges and clean-up) and the write calls of
//! [`Collection`] built on it.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hybrid_search_document::Document;
use hybrid_search_sparse::{Bm25Index, Bm25Writer, FieldSchema, SparseDoc};

use crate::collection::{
    Collection, KeyMap, SMALL_WRITE_DOCS, SMALL_WRITER_HEAP, SPARSE_DIR, Snapshot, WRITER_HEAP,
};
use crate::dense_leg::{self, DENSE_DIR, DenseWriter, EncodeProgress, Segment, SegmentRecord};
use crate::error::{Error, Result};
use crate::failpoint;
use crate::lock::WriteLock;
use crate::manifest::{CommitRecord, FORMAT_VERSION, read_manifest, write_manifest};

/// Maps tantivy's own writer-lock error (a writer of an older hybrid-search holds it) to
/// [`Error::Busy`].
pub(crate) fn sparse_writer_error(dir: &Path, e: hybrid_search_sparse::Error) -> Error {
    match e {
        e if e.is_lock_busy() => Error::Busy {
            collection: dir.to_path_buf(),
            lock: dir.join(SPARSE_DIR).join(".tantivy-writer.lock"),
        },
        e => Error::Sparse(e),
    }
}

/// What a write committed: how many documents it added (ids new to the collection), replaced
/// (ids that were live) and deleted (ids that were live), what it noticed without failing
/// (a merge that failed and will be retried, a file it could not remove), and the snapshot
/// of the commit it made, on which later searches run.
#[derive(Clone)]
#[non_exhaustive]
pub struct Committed {
    /// Upserted ids that no live document had.
    pub added: usize,
    /// Upserted ids that replaced a live document.
    pub replaced: usize,
    /// Deleted ids that a live document had (deleting an unknown id is not an error).
    pub deleted: usize,
    /// Problems after the commit was durable: the commit stands.
    pub warnings: Vec<String>,
    /// The commit made.
    pub snapshot: Arc<Snapshot>,
}

impl std::fmt::Debug for Committed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Committed")
            .field("added", &self.added)
            .field("replaced", &self.replaced)
            .field("deleted", &self.deleted)
            .field("warnings", &self.warnings)
            .field("documents", &self.snapshot.len())
            .finish()
    }
}

/// The changes staged since a writer's last commit, by id: the last operation on an id wins.
#[derive(Default)]
pub(crate) struct Staged {
    /// Upserted ids and the internal key of their new document.
    pub(crate) upserted: HashMap<Arc<str>, u64>,
    /// Deleted ids (not upserted again after).
    pub(crate) deleted: HashSet<Arc<str>>,
}

/// What a writer's last commit changed.
#[derive(Default)]
pub(crate) struct CommitCounts {
    pub(crate) added: usize,
    pub(crate) replaced: usize,
    pub(crate) deleted: usize,
    /// The changes by id, or `None` for a load into an empty collection (every id new).
    pub(crate) changes: Option<Staged>,
}

/// Adds and deletes documents; nothing is visible, and nothing committed is lost, until
/// [`CollectionWriter::commit`]. Dropping a writer without committing discards its changes.
/// The writer holds the collection's write lock until it is dropped.
pub struct CollectionWriter {
    pub(crate) dir: PathBuf,
    pub(crate) sparse: Bm25Writer,
    pub(crate) next_key: u64,
    /// The record of the last commit.
    pub(crate) base: CommitRecord,
    /// Whether the next commit replaces every segment (repair).
    pub(crate) rebuild: bool,
    /// Segments of the last commit that are open (the reader's, and those this writer made),
    /// by file name; the others are opened when a merge needs them.
    pub(crate) segments: HashMap<String, Arc<Segment>>,
    pub(crate) dense: Option<DenseWriter>,
    /// Problems after a durable commit.
    pub(crate) warnings: Vec<String>,
    /// The ids written so far, while the collection had no committed document when this
    /// writer started (until its first commit): such ids need no delete before their insert.
    pub(crate) fresh_ids: Option<HashSet<String>>,
    /// Set when an operation failed part way (an encoder or disk error): the staged changes
    /// may be incomplete, so every call fails until [`CollectionWriter::rollback`].
    pub(crate) poisoned: Option<String>,
    /// BM25 at the commit the writer started from: whether an id was live before it.
    pub(crate) base_docs: Bm25Index,
    /// The changes since the last commit (not kept for a load into an empty collection).
    pub(crate) staged: Staged,
    /// Ids this writer committed, and whether they are live after its commits.
    pub(crate) settled: HashMap<Arc<str>, bool>,
    /// What the last commit changed.
    pub(crate) last: CommitCounts,
    /// The documents' fields: the last commit's, and those the staged documents add.
    pub(crate) fields: FieldSchema,
    /// The fields of the last commit (the manifest's).
    pub(crate) committed_fields: FieldSchema,
    /// Declared last, so dropped last: tantivy's writer (and its lock) goes first. Taken out
    /// by [`Collection::commit_writer`], which holds it until the next snapshot is taken, so
    /// no other process commits in between (the key -> id map it carries over is this
    /// commit's).
    pub(crate) lock: Option<WriteLock>,
}

impl CollectionWriter {
    /// Adds `doc`, replacing the document with the same id if there is one. A document with a
    /// `vector` has that vector stored (it must have the model's dimensions and finite values)
    /// instead of its text encoded.
    ///
    /// # Errors
    ///
    /// [`Error::Commit`] when an earlier call left the staged changes incomplete;
    /// [`Error::InvalidId`] for an id that breaks the id rule
    /// ([`hybrid_search_document::check_id`]);
    /// [`Error::InvalidVector`] for a supplied vector of another dimension (or a collection
    /// without a dense leg); [`Error::InvalidVectorValues`] for one with values that cannot be
    /// used (not finite, all zeros); [`Error::Dense`] or
    /// [`Error::Sparse`] when staging fails.
    pub fn upsert(&mut self, doc: &Document) -> Result<()> {
        self.check_poisoned()?;
        let result = self.upsert_inner(doc);
        self.poison_on(&result);
        result
    }

    /// Fails when an earlier call left the staged changes incomplete.
    pub(crate) fn check_poisoned(&self) -> Result<()> {
        match &self.poisoned {
            Some(cause) => Err(Error::InvalidOption(format!(
                "this writer's changes are incomplete after an earlier error ({cause}); call \
                 rollback (or drop the writer) and write them again"
            ))),
            None => Ok(()),
        }
    }

    /// Marks the writer unusable after an error that may have left a change half staged
    /// (errors found before anything changes, a bad vector or a missing model, do not).
    pub(crate) fn poison_on<T>(&mut self, result: &Result<T>) {
        if let Err(e) = result
            && !matches!(
                e,
                Error::InvalidVector { .. }
                    | Error::InvalidVectorValues { .. }
                    | Error::InvalidId { .. }
                    | Error::InvalidField { .. }
                    | Error::NoModel(..)
                    | Error::NoDenseLeg(..)
            )
        {
            self.poisoned = Some(e.to_string());
        }
    }

    pub(crate) fn upsert_inner(&mut self, doc: &Document) -> Result<()> {
        hybrid_search_document::check_id(&doc.id).map_err(|message| Error::InvalidId {
            id: hybrid_search_document::show_id(&doc.id),
            message,
        })?;
        let key = self.next_key;
        let invalid = |field: String, message: String| Error::InvalidField {
            id: doc.id.clone(),
            field,
            message,
        };
        if !doc.fields.is_empty() && !self.base_docs.has_fields() {
            return Err(invalid(
                String::new(),
                "it has fields, and this collection was made before documents had fields; \
                 build it again (`hybrid-search index` into a new folder) to store fields"
                    .into(),
            ));
        }
        // Typed before anything is staged: a document that does not fit changes nothing.
        let known = self.fields.specs().len();
        let typed = self
            .fields
            .typed(&doc.fields)
            .map_err(|e| invalid(e.field.clone(), e.to_string()))?;
        let staged = self.stage(doc, key, typed.as_ref());
        if staged.is_err() {
            self.fields.truncate(known);
        }
        staged
    }

    /// Stages `doc` under `key` in both legs, its fields typed.
    fn stage(
        &mut self,
        doc: &Document,
        key: u64,
        typed: Option<&hybrid_search_sparse::TypedFields>,
    ) -> Result<()> {
        match &mut self.dense {
            Some(dense) => dense.upsert(doc, key)?,
            None if doc.vector.is_some() => {
                return Err(Error::InvalidVector {
                    id: doc.id.clone(),
                    message: "this collection has no dense leg (it was built without a \
                              model); leave the field out, or index into a collection built \
                              with a model"
                        .into(),
                });
            }
            None => {}
        }
        self.next_key += 1;
        let sparse_doc = SparseDoc {
            id: doc.id.clone(),
            key,
            title: doc.title.clone(),
            text: doc.text.clone(),
            fields: Default::default(),
        };
        // Loading into an empty collection: an id not seen before needs no delete.
        let new_id = self
            .fresh_ids
            .as_mut()
            .is_some_and(|seen| seen.insert(doc.id.clone()));
        if new_id {
            self.sparse.insert(&sparse_doc, typed)?;
        } else {
            self.sparse.upsert(&sparse_doc, typed)?;
        }
        if self.fresh_ids.is_none() {
            let id: Arc<str> = Arc::from(doc.id.as_str());
            self.staged.deleted.remove(&id);
            self.staged.upserted.insert(id, key);
        }
        Ok(())
    }

    /// Deletes the document with external id `id` (no error if there is none).
    ///
    /// # Errors
    ///
    /// [`Error::Busy`] when another writer holds the collection; [`Error::Sparse`] or
    /// [`Error::Io`] when writing fails (nothing is deleted then).
    pub fn delete(&mut self, id: &str) -> Result<()> {
        self.check_poisoned()?;
        self.sparse.delete(id);
        match &mut self.fresh_ids {
            Some(fresh) => {
                fresh.remove(id);
            }
            None => {
                let id: Arc<str> = Arc::from(id);
                self.staged.upserted.remove(&id);
                self.staged.deleted.insert(id);
            }
        }
        let result = match &mut self.dense {
            Some(dense) => dense.forget_id(id),
            None => Ok(()),
        };
        self.poison_on(&result);
        result
    }

    pub(crate) fn dense_dir(&self) -> PathBuf {
        self.dir.join(DENSE_DIR)
    }

    /// Makes every change since the last commit durable and visible to [`Collection::reload`].
    ///
    /// The new documents' vectors are encoded and written first, as one new segment file; the
    /// sparse commit, whose record lists the live segments, then switches both legs at once.
    /// Files that neither this commit nor the one before it lists are removed afterwards
    /// (a failure there is kept as a warning: the commit stands).
    ///
    /// Merging vector segments is left to [`Collection::add`], [`Collection::delete`] and the
    /// other collection-level writes, which run the merge policy after their commit.
    ///
    /// # Errors
    ///
    /// [`Error::Commit`] when an earlier call left the staged changes incomplete;
    /// [`Error::NoModel`], [`Error::Dense`], [`Error::Sparse`] or [`Error::Io`] when encoding or
    /// writing fails (the last commit stays as it was).
    pub fn commit(&mut self) -> Result<()> {
        let _span = tracing::info_span!("commit", collection = %self.dir.display()).entered();
        self.check_poisoned()?;
        let result = self.commit_inner();
        if result.is_err() {
            self.poisoned = result.as_ref().err().map(ToString::to_string);
        }
        result
    }

    pub(crate) fn commit_inner(&mut self) -> Result<()> {
        // Counted before anything is written: a lookup that fails leaves no file behind.
        let counts = self.count_staged()?;
        let mut record = CommitRecord {
            next_key: self.next_key,
            dense_generation: None,
            segments: if self.rebuild {
                Vec::new()
            } else {
                self.base.segments.clone()
            },
            next_segment: self.base.next_segment,
        };
        let mut segments = if self.rebuild {
            HashMap::new()
        } else {
            self.segments.clone()
        };
        let mut written = None;
        if let Some(dense) = &mut self.dense
            && let Some(index) = dense.take_segment()?
        {
            let file = dense_leg::segment_file(dense.manifest.kind, record.next_segment);
            let path = self.dir.join(DENSE_DIR).join(&file);
            index.save(&path)?;
            failpoint::hit("after-vector-segment");
            record.next_segment += 1;
            record.segments.push(SegmentRecord {
                file: file.clone(),
                keys: index.len() as u64,
            });
            segments.insert(file.clone(), Arc::new(Segment { file, index }));
            written = Some(path);
        }
        let new_fields = self.fields != self.committed_fields;
        if new_fields {
            // The new fields' types are recorded just before the commit that brings them: a
            // commit whose documents have a field the manifest does not list never becomes
            // durable. A commit that fails puts the last commit's fields back (best effort: a
            // type left behind only refuses values of another type until the next write).
            let mut manifest = read_manifest(&self.dir)?;
            manifest.fields = self.fields.clone();
            write_manifest(&self.dir, &manifest)?;
        }
        if let Err(e) = self.sparse.commit(&record.payload()) {
            if let Some(path) = written {
                let _ = fs::remove_file(path);
            }
            if new_fields && let Ok(mut manifest) = read_manifest(&self.dir) {
                manifest.fields = self.committed_fields.clone();
                let _ = write_manifest(&self.dir, &manifest);
            }
            return Err(e.into());
        }
        failpoint::hit("after-sparse-commit");
        self.rebuild = false;
        self.fresh_ids = None;
        if let Some(changes) = &counts.changes {
            for id in changes.upserted.keys() {
                self.settled.insert(id.clone(), true);
            }
            for id in &changes.deleted {
                self.settled.insert(id.clone(), false);
            }
        }
        self.last = counts;
        self.committed_fields = self.fields.clone();
        segments.retain(|file, _| record.segments.iter().any(|s| &s.file == file));
        self.segments = segments;
        let previous = std::mem::replace(&mut self.base, record);
        self.clean_up(&previous);
        Ok(())
    }

    /// Counts what the staged changes add, replace and delete, against the commit the writer
    /// started from and its own commits since (one term lookup per id), and takes them.
    fn count_staged(&mut self) -> Result<CommitCounts> {
        if let Some(fresh) = &self.fresh_ids {
            return Ok(CommitCounts {
                added: fresh.len(),
                ..CommitCounts::default()
            });
        }
        let staged = std::mem::take(&mut self.staged);
        let live = |id: &Arc<str>| -> Result<bool> {
            match self.settled.get(id) {
                Some(live) => Ok(*live),
                None => Ok(self.base_docs.contains(id)?),
            }
        };
        let mut counts = CommitCounts::default();
        for id in staged.upserted.keys() {
            if live(id)? {
                counts.replaced += 1;
            } else {
                counts.added += 1;
            }
        }
        for id in &staged.deleted {
            if live(id)? {
                counts.deleted += 1;
            }
        }
        counts.changes = Some(staged);
        Ok(counts)
    }

    /// Removes files neither the last commit nor `previous` lists; problems become warnings.
    pub(crate) fn clean_up(&mut self, previous: &CommitRecord) {
        if self.dense.is_none() {
            return;
        }
        let keep: Vec<&SegmentRecord> = self
            .base
            .segments
            .iter()
            .chain(&previous.segments)
            .collect();
        self.warnings
            .extend(dense_leg::remove_unreferenced(&self.dir, &keep));
    }

    /// Merges vector segments when the merge policy asks for it
    /// ([`dense_leg::merge_candidates`]): the live vectors of the chosen segments (`sparse`,
    /// at the last commit, says which keys are live) go into one new segment, and a commit
    /// that changes nothing else switches to it. Crash-safe like a commit. Returns whether it
    /// merged.
    pub(crate) fn merge_segments(
        &mut self,
        sparse: &Bm25Index,
        live_keys: impl FnOnce() -> Result<HashSet<u64>>,
    ) -> Result<bool> {
        let Some(dense) = &self.dense else {
            return Ok(false);
        };
        let chosen = dense_leg::merge_candidates(&self.base.segments);
        if chosen.is_empty() {
            return Ok(false);
        }
        let _span = tracing::info_span!("merge", segments = chosen.len()).entered();
        let mut merged = dense_leg::new_index(&dense.manifest)?;
        let mut items = Vec::new();
        let live = live_keys()?;
        for file in &chosen {
            let opened;
            let index = match self.segments.get(file) {
                Some(segment) => &segment.index,
                None => {
                    opened = dense_leg::open_segment(&self.dir, &dense.manifest, file, sparse)?;
                    &opened
                }
            };
            index.for_each_vector(&mut |key, vector| {
                if live.contains(&key) {
                    items.push((key, vector.to_vec()));
                }
            })?;
        }
        items.sort_by_key(|(key, _)| *key);
        merged.add_batch(&items)?;
        drop(items);
        let file = dense_leg::segment_file(dense.manifest.kind, self.base.next_segment);
        let path = self.dense_dir().join(&file);
        let mut record = self.base.clone();
        if !merged.is_empty() {
            merged.save(&path)?;
            failpoint::hit("mid-merge");
            record.next_segment += 1;
        }
        let position = record
            .segments
            .iter()
            .position(|s| chosen.contains(&s.file))
            .unwrap_or(record.segments.len());
        record.segments.retain(|s| !chosen.contains(&s.file));
        let mut segments = self.segments.clone();
        segments.retain(|file, _| !chosen.contains(file));
        if !merged.is_empty() {
            record.segments.insert(
                position,
                SegmentRecord {
                    file: file.clone(),
                    keys: merged.len() as u64,
                },
            );
            segments.insert(
                file.clone(),
                Arc::new(Segment {
                    file,
                    index: merged,
                }),
            );
        }
        if let Err(e) = self.sparse.commit(&record.payload()) {
            let _ = fs::remove_file(&path);
            return Err(e.into());
        }
        self.segments = segments;
        let previous = std::mem::replace(&mut self.base, record);
        self.clean_up(&previous);
        Ok(true)
    }

    /// Discards every change since the last commit.
    ///
    /// # Errors
    ///
    /// [`Error::Sparse`] when the index cannot be reset.
    pub fn rollback(&mut self) -> Result<()> {
        self.sparse.rollback()?;
        self.poisoned = None;
        self.staged = Staged::default();
        if let Some(fresh) = &mut self.fresh_ids {
            fresh.clear();
        }
        if let Some(dense) = &mut self.dense {
            dense.rollback();
        }
        self.next_key = self.base.next_key;
        self.fields = self.committed_fields.clone();
        Ok(())
    }

    /// Merges the committed documents into one BM25 segment: call after a bulk load for the
    /// fastest deep (k = 1000) searches. The merge replaces segments atomically; nothing is
    /// lost if it is interrupted.
    ///
    /// # Errors
    ///
    /// [`Error::Sparse`] when the merge fails (the commits stand).
    pub fn optimize(&mut self) -> Result<()> {
        self.sparse.merge_all()?;
        Ok(())
    }

    /// Waits for background merges, so the folder is compact when the process exits.
    ///
    /// # Errors
    ///
    /// [`Error::Sparse`] when a background merge fails (the commits stand).
    pub fn finish(self) -> Result<()> {
        Ok(self.sparse.wait_merging_threads()?)
    }
}

impl Collection {
    /// Refuses a write when the last commit's segments are missing or cut short.
    pub(crate) fn check_dense_writable(&self) -> Result<()> {
        match self.dense.as_ref().and_then(|leg| leg.damage.as_ref()) {
            Some(message) => Err(Error::DenseDamaged {
                collection: self.dir.clone(),
                message: message.clone(),
            }),
            None => Ok(()),
        }
    }

    /// A writer; one at a time per collection, across processes (the collection's write lock,
    /// waited for as [`Collection::set_write_wait`] says, else [`Error::Busy`]). Once the lock
    /// is held the collection is reloaded, so the writer starts from the last commit whoever
    /// made it. With a dense leg, the vectors must be readable, and adding documents without
    /// vectors needs the encoder attached (deleting does not).
    ///
    /// # Errors
    ///
    /// [`Error::Busy`] when another writer holds the collection (see
    /// [`Collection::set_write_wait`]); [`Error::DenseDamaged`] when the last commit's vector
    /// segments are missing or cut; [`Error::Sparse`] or [`Error::Io`] when the index cannot be
    /// opened for writing.
    pub fn writer(&mut self) -> Result<CollectionWriter> {
        self.writer_inner(false, None)
    }

    /// A writer; with `rebuild`, the dense leg starts from no segments and every live document
    /// waits to be encoded again.
    /// `documents`: how many documents the write holds, when known (a small write gets a
    /// small, single-threaded BM25 writer).
    pub(crate) fn writer_inner(
        &mut self,
        rebuild: bool,
        documents: Option<usize>,
    ) -> Result<CollectionWriter> {
        let lock = WriteLock::acquire(&self.dir, self.wait)?;
        // Another writer may have committed (or changed the manifest) since this was opened.
        self.reload()?;
        // The commits this writer makes list segments: older builds must not read them. An
        // `auto` collection made without ko-dic records the dictionary at its first write with
        // one, which may bring Korean documents (it is checked at every open from then on).
        let dictionary = self
            .sparse
            .analyzer()
            .dictionary()
            .filter(|_| self.manifest.dictionary.is_none())
            .map(|d| d.fingerprint.clone());
        if self.manifest.format_version < FORMAT_VERSION || dictionary.is_some() {
            let mut upgraded = self.manifest.clone();
            upgraded.format_version = FORMAT_VERSION;
            upgraded.dictionary = upgraded.dictionary.or(dictionary);
            write_manifest(&self.dir, &upgraded)?;
            self.current_mut().manifest = upgraded;
        }
        let mut segments = HashMap::new();
        let dense = match &self.manifest.dense {
            Some(manifest) => {
                let leg = self.dense.as_ref().expect("loaded with the manifest");
                let mut writer = DenseWriter::new(&self.dir, manifest, leg.encoder.clone());
                if rebuild {
                    self.dense_leg()?;
                    let mut live = self.sparse.live_keys()?;
                    live.sort_unstable_by_key(|(key, _)| *key);
                    for (key, id) in live {
                        if let Some(doc) = self.sparse.get(&id)? {
                            let passage = hybrid_search_document::passage_text(&Document {
                                id: doc.id,
                                title: doc.title,
                                text: doc.text,
                                vector: None,
                                fields: Default::default(),
                            });
                            if hybrid_search_document::has_text_to_encode(&passage) {
                                writer.pending.push((key, passage));
                            }
                        }
                    }
                } else {
                    self.check_dense_writable()?;
                    let leg = self.dense.as_ref().expect("loaded with the manifest");
                    segments = leg.open_segments();
                }
                Some(writer)
            }
            None => None,
        };
        // With the collection's lock held, tantivy's own lock can be busy only for a moment:
        // the previous writer releases it just after (or, when its process exits, about when)
        // it releases the collection's. A writer of an older build holds it for good.
        let mut tries = 0;
        let sparse = loop {
            let writer = match documents {
                Some(n) if n <= SMALL_WRITE_DOCS => {
                    self.sparse.writer_with_threads(Some(1), SMALL_WRITER_HEAP)
                }
                _ => self.sparse.writer(WRITER_HEAP),
            };
            match writer {
                Ok(writer) => break writer,
                Err(e) => match sparse_writer_error(&self.dir, e) {
                    Error::Busy { .. } if tries < 100 => {
                        tries += 1;
                        std::thread::sleep(std::time::Duration::from_millis(50));
                    }
                    e => return Err(e),
                },
            }
        };
        Ok(CollectionWriter {
            lock: Some(lock),
            dir: self.dir.clone(),
            sparse,
            next_key: self.record.next_key,
            base: self.record.clone(),
            rebuild,
            segments,
            dense,
            warnings: Vec::new(),
            fresh_ids: (self.sparse.num_docs() == 0).then(HashSet::new),
            poisoned: None,
            base_docs: self.sparse.clone(),
            staged: Staged::default(),
            settled: HashMap::new(),
            last: CommitCounts::default(),
            fields: self.manifest.fields.clone(),
            committed_fields: self.manifest.fields.clone(),
        })
    }

    /// Rebuilds the dense leg's vectors from the stored documents (after the vector files were
    /// lost or damaged, see [`Error::DenseDamaged`]) and commits them as one new segment.
    /// Every document is encoded from its text: vectors that were supplied with documents are
    /// stored nowhere else, so they are replaced by the model's.
    /// Needs the collection's model attached. Returns the number of documents encoded.
    ///
    /// # Errors
    ///
    /// [`Error::NoModel`] without a dense leg or an attached encoder; [`Error::Busy`] when
    /// another writer holds the collection; [`Error::Dense`], [`Error::Sparse`] or [`Error::Io`]
    /// when encoding or writing fails (the last commit stays as it was).
    pub fn repair_dense(&mut self, on_encoded: Option<EncodeProgress>) -> Result<usize> {
        let mut writer = self.writer_inner(true, None)?;
        let Some(dense) = &mut writer.dense else {
            return Err(Error::NoDenseLeg(
                self.dir.clone(),
                "this collection has no dense leg to repair".into(),
            ));
        };
        dense.progress = on_encoded;
        let documents = dense.pending.len();
        let committed = self.commit_writer(writer, false)?;
        self.warnings.extend(committed.warnings);
        Ok(documents)
    }

    /// Commits `writer` (the durable point), merges vector segments when the merge policy
    /// asks for it, waits for tantivy's merges, and takes the next snapshot once, with the
    /// writer's segments handed over and the key -> id map of the snapshot before updated
    /// with the commit's changes (when that snapshot had built one). Anything that fails
    /// after the commit is durable becomes a warning of the [`Committed`].
    pub(crate) fn commit_writer(
        &mut self,
        mut writer: CollectionWriter,
        optimize: bool,
    ) -> Result<Committed> {
        let before = self.current.clone();
        writer.commit()?;
        if writer.committed_fields != self.manifest.fields {
            self.current_mut().manifest.fields = writer.committed_fields.clone();
        }
        let counts = std::mem::take(&mut writer.last);
        let ids = updated_ids(&before, counts.changes.as_ref());
        let mut warnings = Vec::new();
        let after = |writer: &mut CollectionWriter| -> Result<()> {
            if optimize {
                writer.optimize()?;
            }
            let live_keys = || -> Result<HashSet<u64>> {
                Ok(match &ids {
                    Some(ids) => ids.keys().copied().collect(),
                    None => {
                        let sparse = before.sparse.reopen()?;
                        sparse.live_keys()?.into_iter().map(|(k, _)| k).collect()
                    }
                })
            };
            writer.merge_segments(&before.sparse, live_keys)?;
            Ok(())
        };
        if let Err(e) = after(&mut writer) {
            warnings.push(format!(
                "the commit is durable, but what follows it failed: {e}"
            ));
        }
        warnings.append(&mut writer.warnings);
        let fresh: Vec<Arc<Segment>> = writer.segments.values().cloned().collect();
        // The collection's lock is held until the next snapshot is taken: another process
        // committing in between would make the key -> id map computed here another commit's.
        let lock = writer.lock.take();
        if let Err(e) = writer.finish() {
            warnings.push(format!(
                "waiting for the BM25 index's background merges: {e}"
            ));
        }
        let reloaded = self.reload_with(fresh.clone(), ids.clone()).or_else(|_| {
            // Once more (an I/O hiccup): searches would otherwise miss the commit until the
            // next write.
            self.reload_with(fresh, ids)
        });
        drop(lock);
        if let Err(e) = reloaded {
            warnings.push(format!("reloading after the commit: {e}"));
        }
        Ok(Committed {
            added: counts.added,
            replaced: counts.replaced,
            deleted: counts.deleted,
            warnings,
            snapshot: self.current.clone(),
        })
    }

    /// Upserts `docs` in one commit, merges the load into one segment and reloads; `on_doc` runs
    /// after each upsert (a progress bar). On error nothing of `docs` is committed.
    ///
    /// # Errors
    ///
    /// Those of [`Collection::add`]; nothing of `docs` is committed on error.
    pub fn bulk_load(&mut self, docs: &[Document], on_doc: impl FnMut()) -> Result<Committed> {
        self.bulk_load_with(docs, on_doc, None)
    }

    /// [`Collection::bulk_load`], with `on_encoded` told (inputs encoded, inputs queued so
    /// far) while the dense leg encodes the documents.
    ///
    /// # Errors
    ///
    /// Those of [`Collection::add`]; nothing of `docs` is committed on error.
    pub fn bulk_load_with(
        &mut self,
        docs: &[Document],
        on_doc: impl FnMut(),
        on_encoded: Option<EncodeProgress>,
    ) -> Result<Committed> {
        self.upsert_stream(
            docs.iter()
                .map(|d| Ok::<_, Error>(std::borrow::Cow::Borrowed(d))),
            on_doc,
            on_encoded,
            true,
        )
    }

    /// Upserts `docs` (a document whose id exists is replaced) in one commit covering both
    /// legs, and reloads. Unlike [`Collection::bulk_load`] it leaves segment merging to the
    /// merge policies, so adding to a large collection does not rewrite it: the commit writes
    /// one new vector segment holding just these documents' vectors. On error, or if the
    /// process dies, nothing of `docs` is committed and the last commit stays whole.
    ///
    /// # Errors
    ///
    /// [`Error::Busy`] when another writer holds the collection; [`Error::InvalidVector`] for a
    /// supplied vector that does not fit; [`Error::NoModel`] when documents need encoding and no
    /// encoder is attached; [`Error::Dense`], [`Error::Sparse`] or [`Error::Io`] when writing
    /// fails. Nothing of `docs` is committed then.
    pub fn add(
        &mut self,
        docs: &[Document],
        on_encoded: Option<EncodeProgress>,
    ) -> Result<Committed> {
        self.upsert_sized(
            docs.iter()
                .map(|d| Ok::<_, Error>(std::borrow::Cow::Borrowed(d))),
            || {},
            on_encoded,
            false,
            Some(docs.len()),
        )
    }

    /// Upserts the documents of a stream in one commit: they are staged in bounded batches
    /// (tantivy's indexing memory; [`dense_leg::STAGE_DOCUMENTS`] passages encoded at a time),
    /// so memory does not grow with the stream's text. The first error, from the stream (a bad
    /// line) or from a document (a bad vector), stops it and nothing is committed. `merge`
    /// also merges the BM25 index into one segment afterwards (a bulk load).
    ///
    /// # Errors
    ///
    /// The stream's own first error; those of [`Collection::add`]. Nothing of the stream is
    /// committed on error.
    pub fn upsert_stream<'a, E>(
        &mut self,
        docs: impl IntoIterator<Item = std::result::Result<std::borrow::Cow<'a, Document>, E>>,
        on_doc: impl FnMut(),
        on_encoded: Option<EncodeProgress>,
        merge: bool,
    ) -> std::result::Result<Committed, E>
    where
        E: From<Error>,
    {
        self.upsert_sized(docs, on_doc, on_encoded, merge, None)
    }

    /// [`Collection::upsert_stream`] of `documents` documents, when known.
    fn upsert_sized<'a, E>(
        &mut self,
        docs: impl IntoIterator<Item = std::result::Result<std::borrow::Cow<'a, Document>, E>>,
        mut on_doc: impl FnMut(),
        on_encoded: Option<EncodeProgress>,
        merge: bool,
        documents: Option<usize>,
    ) -> std::result::Result<Committed, E>
    where
        E: From<Error>,
    {
        let mut writer = self.writer_inner(false, documents)?;
        if let Some(dense) = &mut writer.dense {
            dense.progress = on_encoded;
        }
        if merge {
            writer.sparse.without_background_merges();
        }
        for doc in docs {
            let doc = doc?;
            writer.upsert(&doc)?;
            on_doc();
        }
        Ok(self.commit_writer(writer, merge)?)
    }

    /// Deletes the documents with these ids in one commit covering both legs, and reloads.
    /// Returns what it committed ([`Committed::deleted`]: how many of them existed). Nothing is
    /// written to the dense leg: the vectors of
    /// deleted documents are skipped by searches and dropped by the next merge of their
    /// segment.
    ///
    /// # Errors
    ///
    /// [`Error::Busy`] when another writer holds the collection; [`Error::Sparse`] or
    /// [`Error::Io`] when writing fails (nothing is deleted then).
    pub fn delete(&mut self, ids: &[&str]) -> Result<Committed> {
        let mut writer = self.writer_inner(false, Some(ids.len()))?;
        for id in ids {
            writer.delete(id)?;
        }
        self.commit_writer(writer, false)
    }

    /// Deletes every document `filter` matches, in one commit covering both legs (the
    /// documents matched are those of the last commit, found once the write lock is held).
    /// `None` deletes every document. [`Committed::deleted`] is how many there were.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRequest`] of the filter (an unknown field, a value of the wrong type);
    /// those of [`Collection::delete`]. Nothing is deleted on error.
    pub fn delete_where(
        &mut self,
        filter: Option<&hybrid_search_sparse::Filter>,
    ) -> Result<Committed> {
        let mut writer = self.writer_inner(false, None)?;
        let matched = match filter {
            Some(filter) => {
                let compiled = crate::legs::LegFilter::new(&self.current, filter)?;
                self.sparse.matching(&compiled.query)?
            }
            None => self.sparse.live_keys()?,
        };
        for (_, id) in &matched {
            writer.delete(id)?;
        }
        self.commit_writer(writer, false)
    }
}

/// The key -> id map of the commit after `before` with `changes` applied, when `before` has
/// built one: its entries for ids the commit did not touch, and the new key of each upserted
/// id. One pass over the map and no read of the index, where building it reads every live
/// document's key and id. `None` (built at the first dense search) otherwise.
fn updated_ids(before: &Snapshot, changes: Option<&Staged>) -> Option<Arc<KeyMap>> {
    let previous = before.dense.as_ref()?.ids.get()?;
    let changes = changes?;
    let _span = tracing::debug_span!(
        "update_key_map",
        documents = previous.len(),
        changed = changes.upserted.len() + changes.deleted.len()
    )
    .entered();
    let mut ids: KeyMap = HashMap::with_capacity(previous.len() + changes.upserted.len());
    ids.extend(
        previous
            .iter()
            .filter(|(_, id)| !changes.upserted.contains_key(*id) && !changes.deleted.contains(*id))
            .map(|(key, id)| (*key, id.clone())),
    );
    ids.extend(changes.upserted.iter().map(|(id, key)| (*key, id.clone())));
    Some(Arc::new(ids))
}
