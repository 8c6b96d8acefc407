//! `verify`: whether a collection is whole and both legs hold the same documents.

use std::collections::HashMap;
use std::fs;

use serde::Serialize;

use crate::collection::Snapshot;
use crate::dense_leg::DENSE_DIR;
use crate::error::Result;

/// What [`Snapshot::verify`] found.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct VerifyReport {
    /// Live documents in the sparse leg.
    pub documents: u64,
    /// Documents holding vectors in the dense leg (`None` without a readable dense leg).
    pub vectors: Option<usize>,
    /// Vector segments the last commit lists (`None` without a dense leg).
    pub segments: Option<usize>,
    /// Vectors of deleted or replaced documents still in segments (dropped by merges).
    pub deleted_vectors: usize,
    /// Inconsistencies and damage: the collection is sound when there are none.
    pub problems: Vec<String>,
    /// Harmless findings (files left by interrupted commits).
    pub notes: Vec<String>,
}

impl VerifyReport {
    /// Whether no problem was found.
    pub fn is_sound(&self) -> bool {
        self.problems.is_empty()
    }
}

/// The first five items of a list, and how many more.
pub(crate) fn first_few(items: &[String]) -> String {
    let mut out = items.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
    if items.len() > 5 {
        out.push_str(&format!(" and {} more", items.len() - 5));
    }
    out
}

impl Snapshot {
    /// Checks that the collection is whole and both legs hold the same documents: every live
    /// document readable, its id and internal key unique, the commit record ahead of every
    /// key, and (with a dense leg) every live document's vectors in exactly one segment.
    /// Problems are reported, not repaired; leftovers of interrupted commits and vectors of
    /// deleted documents awaiting a merge are notes.
    ///
    /// # Errors
    ///
    /// [`Error::Sparse`](crate::Error::Sparse) when the BM25 index cannot be read at all; problems found are reported
    /// in the [`VerifyReport`], not as errors.
    pub fn verify(&self) -> Result<VerifyReport> {
        let mut report = VerifyReport {
            documents: self.sparse.num_docs(),
            ..VerifyReport::default()
        };
        let live = self.sparse.live_keys()?;
        if live.len() as u64 != report.documents {
            report.problems.push(format!(
                "the sparse index counts {} documents but lists {} live keys",
                report.documents,
                live.len()
            ));
        }
        let mut ids_seen: HashMap<&str, u64> = HashMap::with_capacity(live.len());
        let mut keys_seen: HashMap<u64, &str> = HashMap::with_capacity(live.len());
        for (key, id) in &live {
            if let Some(other) = ids_seen.insert(id, *key) {
                report.problems.push(format!(
                    "document id {id:?} is live twice (keys {other} and {key})"
                ));
            }
            if let Some(other) = keys_seen.insert(*key, id) {
                report.problems.push(format!(
                    "internal key {key} is used by two live documents, {other:?} and {id:?}"
                ));
            }
        }
        let record = &self.record;
        if let Some(max) = live.iter().map(|(k, _)| *k).max()
            && max >= record.next_key
        {
            report.problems.push(format!(
                "the commit record's next key {} is not above the largest key in use {max}",
                record.next_key
            ));
        }
        let mut unreadable = Vec::new();
        for (_, id) in &live {
            match self.sparse.get(id) {
                Ok(Some(_)) => {}
                Ok(None) => unreadable.push(format!("{id:?} (not found by its id)")),
                Err(e) => unreadable.push(format!("{id:?} ({e})")),
            }
        }
        if !unreadable.is_empty() {
            report.problems.push(format!(
                "{} stored documents cannot be read: {}",
                unreadable.len(),
                first_few(&unreadable)
            ));
        }
        if self.manifest.dense.is_some() {
            report.segments = Some(record.segments.len());
            match self.segments() {
                Err(e) => report.problems.push(e.to_string()),
                Ok((_, segments)) => {
                    let mut holders: HashMap<u64, usize> = HashMap::with_capacity(live.len());
                    for segment in segments {
                        let keys = segment.index.keys();
                        let unheld: Vec<String> = keys
                            .iter()
                            .filter(|k| !segment.index.contains(**k))
                            .map(|k| k.to_string())
                            .collect();
                        if !unheld.is_empty() {
                            report.problems.push(format!(
                                "segment {} lists {} keys it holds no vector for: {}",
                                segment.file,
                                unheld.len(),
                                first_few(&unheld)
                            ));
                        }
                        for key in keys {
                            if keys_seen.contains_key(&key) {
                                *holders.entry(key).or_insert(0) += 1;
                            } else {
                                report.deleted_vectors += 1;
                            }
                        }
                    }
                    report.vectors = Some(holders.len());
                    // A document with nothing to encode has no vector by design.
                    let mut textless = 0;
                    let missing: Vec<String> = live
                        .iter()
                        .filter(|(key, _)| !holders.contains_key(key))
                        .filter(|(_, id)| {
                            let empty = self.sparse.get(id).ok().flatten().is_some_and(|doc| {
                                !hybrid_search_document::has_text_to_encode(&format!(
                                    "{} {}",
                                    doc.title, doc.text
                                ))
                            });
                            textless += usize::from(empty);
                            !empty
                        })
                        .map(|(_, id)| format!("{id:?}"))
                        .collect();
                    if textless > 0 {
                        report.notes.push(format!(
                            "{textless} documents have no text to encode (blank, or only emoji \
                             or punctuation) and so no vector; BM25 finds them"
                        ));
                    }
                    if !missing.is_empty() {
                        report.problems.push(format!(
                            "{} documents have no vector: {}",
                            missing.len(),
                            first_few(&missing)
                        ));
                    }
                    let doubled: Vec<String> = live
                        .iter()
                        .filter(|(key, _)| holders.get(key).is_some_and(|n| *n > 1))
                        .map(|(key, id)| format!("{id:?} (key {key})"))
                        .collect();
                    if !doubled.is_empty() {
                        report.problems.push(format!(
                            "{} documents have vectors in more than one segment: {}",
                            doubled.len(),
                            first_few(&doubled)
                        ));
                    }
                    if report.deleted_vectors > 0 {
                        report.notes.push(format!(
                            "{} keys of deleted or replaced documents still hold vectors; \
                             merges drop them",
                            report.deleted_vectors
                        ));
                    }
                }
            }
            let dense_dir = self.dir.join(DENSE_DIR);
            if let Ok(entries) = fs::read_dir(&dense_dir) {
                for entry in entries.flatten() {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if !record.segments.iter().any(|s| s.file == name) {
                        report.notes.push(format!(
                            "{} is not part of the last commit (left by an interrupted commit \
                             or merge, or kept for readers of the previous commit; a later \
                             commit removes it)",
                            entry.path().display()
                        ));
                    }
                }
            }
        }
        Ok(report)
    }
}
