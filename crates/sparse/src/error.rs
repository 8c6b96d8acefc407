//! The error type of the sparse crate.

use std::path::{Path, PathBuf};

/// What can go wrong in text analysis and the BM25 index.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The Korean dictionary is missing, damaged or could not be built.
    #[error("Korean dictionary: {0}")]
    Dictionary(String),
    /// lindera failed to load the dictionary or to segment text.
    #[error("lindera: {0}")]
    Lindera(String),
    /// tantivy reported an error.
    #[error(transparent)]
    Tantivy(#[from] tantivy::TantivyError),
    /// An analyzer setting is not valid.
    #[error("invalid analyzer setting: {0}")]
    Config(String),
    /// A filter does not fit the index's fields (the message names where and why).
    #[error("{0}")]
    Filter(String),
}

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// Whether this is tantivy's writer lock held by another writer
    /// (`LockFailure(LockError::LockBusy)`), matched by type.
    pub fn is_lock_busy(&self) -> bool {
        matches!(
            self,
            Error::Tantivy(tantivy::TantivyError::LockFailure(
                tantivy::directory::error::LockError::LockBusy,
                _
            ))
        )
    }
}

/// The result type of the sparse crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
