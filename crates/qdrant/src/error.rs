//! The error type of the Qdrant integration.

use std::path::PathBuf;

/// What can go wrong syncing to, exporting for or searching through Qdrant.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The engine collection failed (reading it, encoding queries).
    #[error(transparent)]
    Engine(#[from] hybrid_search::Error),
    /// Writing the export file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The Qdrant server cannot be reached, refused a request, or holds a collection that does
    /// not fit the engine collection.
    #[error("{backend}: {message}")]
    Qdrant {
        /// `Qdrant at URL, collection "NAME"`.
        backend: String,
        /// What went wrong and what to do.
        message: String,
    },
}

/// The result type of the Qdrant integration.
pub type Result<T, E = Error> = std::result::Result<T, E>;
