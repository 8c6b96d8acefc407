//! The error type of the eval crate.

use std::path::{Path, PathBuf};

/// What can go wrong while reading datasets and run files.
///
/// Every message names the file, the 1-based line number where one applies, and what was
/// expected there.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Opening or reading a file or folder failed.
    #[error("{path}: cannot read: {source}")]
    Io {
        /// The file or folder involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A file is compressed in a format the readers do not decompress (gzip files are read as
    /// they are).
    #[error(
        "{path}: the file is compressed ({format}), not text; decompress it first (gzip files, \
         .gz, are read as they are)"
    )]
    Compressed {
        /// The file involved.
        path: PathBuf,
        /// The compression format its first bytes show.
        format: &'static str,
    },
    /// A file or line is not valid UTF-8.
    #[error(
        "{path} line {line}: not valid UTF-8 (expected UTF-8 text; re-save the file as UTF-8): {source}"
    )]
    Utf8 {
        /// The file involved.
        path: PathBuf,
        /// The 1-based line number.
        line: usize,
        /// The underlying error.
        #[source]
        source: std::str::Utf8Error,
    },
    /// A line of a JSONL file is not valid JSON.
    #[error("{path} line {line}: not valid JSON (expected {expected}): {source}")]
    JsonLine {
        /// The file involved.
        path: PathBuf,
        /// The 1-based line number.
        line: usize,
        /// What a line of this file should hold.
        expected: &'static str,
        /// The underlying error.
        #[source]
        source: serde_json::Error,
    },
    /// A JSONL record lacks a required field or has a field of the wrong type.
    #[error("{path} line {line}: {problem} (expected {expected})")]
    Record {
        /// The file involved.
        path: PathBuf,
        /// The 1-based line number.
        line: usize,
        /// What is wrong with the record.
        problem: String,
        /// What a line of this file should hold.
        expected: &'static str,
    },
    /// Two records of one file share an id.
    #[error(
        "{path} line {line}: duplicate id {id:?}, already used on line {first_line} (expected every id to be unique)"
    )]
    DuplicateId {
        /// The file involved.
        path: PathBuf,
        /// The repeated id.
        id: String,
        /// The 1-based line of the first record with this id.
        first_line: usize,
        /// The 1-based line of the repeated record.
        line: usize,
    },
    /// A line of a BEIR qrels file is malformed.
    #[error(
        "{path} line {line}: {problem} (expected `query-id<TAB>corpus-id<TAB>score` with an integer score)"
    )]
    Qrels {
        /// The file involved.
        path: PathBuf,
        /// The 1-based line number.
        line: usize,
        /// What is wrong with the line.
        problem: String,
    },
    /// A BEIR folder has no `qrels/<split>.tsv` for the requested split.
    #[error(
        "{path}: no qrels for split {split:?} (expected qrels/{split}.tsv); splits available in qrels/: {}",
        if .available.is_empty() { "none".to_string() } else { .available.join(", ") }
    )]
    MissingSplit {
        /// The qrels file that was looked for.
        path: PathBuf,
        /// The requested split.
        split: String,
        /// The splits that do exist (file stems of `qrels/*.tsv`), sorted.
        available: Vec<String>,
    },
    /// A qrels line judges a query that `queries.jsonl` does not contain.
    #[error(
        "{path} line {line}: query id {id:?} is not in {queries} (expected every judged query to have its text there)"
    )]
    UnknownQuery {
        /// The qrels file.
        path: PathBuf,
        /// The 1-based line of the first judgment of this query.
        line: usize,
        /// The query id.
        id: String,
        /// The queries file that lacks it.
        queries: PathBuf,
    },
    /// A SQuAD (KorQuAD) JSON file does not parse or does not have the SQuAD structure.
    #[error(
        "{path}: not a SQuAD JSON file (expected {{\"data\":[{{\"title\",\"paragraphs\":[{{\"context\",\"qas\":[{{\"id\",\"question\"}}]}}]}}]}}): {source}"
    )]
    Squad {
        /// The file involved.
        path: PathBuf,
        /// The underlying error (it carries the line and column).
        #[source]
        source: serde_json::Error,
    },
    /// Two questions of a SQuAD file share an id.
    #[error(
        "{path}: duplicate question id {id:?} in {second}, already used in {first} (expected every question id to be unique)"
    )]
    DuplicateQuestion {
        /// The file involved.
        path: PathBuf,
        /// The repeated id.
        id: String,
        /// Where the id was first used, as `article A, paragraph P` (0-based).
        first: String,
        /// Where it was used again.
        second: String,
    },
    /// A path is not one of the dataset layouts this crate reads.
    #[error(
        "{path}: {reason}; expected one of: a BEIR folder containing corpus.jsonl (with queries.jsonl and qrels/<split>.tsv), a SQuAD/KorQuAD file ending .json, or a JSONL corpus file ending .jsonl"
    )]
    UnknownFormat {
        /// The path given.
        path: PathBuf,
        /// Why it was not recognised.
        reason: &'static str,
    },
    /// Evaluation was asked of a JSONL corpus, which has no queries.
    #[error("{path}: a JSONL corpus has no queries; evaluate with a BEIR folder or SQuAD JSON")]
    NoQueries {
        /// The corpus file.
        path: PathBuf,
    },
    /// A line of a TREC run file is malformed.
    #[error("{path} line {line}: {problem} (expected `query-id Q0 doc-id rank score tag`)")]
    RunLine {
        /// The file involved.
        path: PathBuf,
        /// The 1-based line number.
        line: usize,
        /// What is wrong with the line.
        problem: String,
    },
}

impl Error {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The result type of the eval crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
