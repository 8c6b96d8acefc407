//! The dense crate's error type.

use std::path::{Path, PathBuf};

/// What can go wrong loading or running an encoder.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading a model file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A model directory is missing a file or holds something unusable.
    #[error("{path}: {message}")]
    Model {
        /// The model directory or file.
        path: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },
    /// candle failed while loading or running the model.
    #[error("{path}: {source}")]
    Candle {
        /// The model directory or file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: candle_core::Error,
    },
    /// A vector index cannot be used: a vector of the wrong size, an unreadable, truncated or
    /// mismatched index file, or a failure inside usearch.
    #[error("{}{message}", path_prefix(.path))]
    Index {
        /// The index file, when the problem concerns one.
        path: Option<PathBuf>,
        /// What is wrong and what to do.
        message: String,
    },
}

/// `"<path>: "`, or nothing without a path.
fn path_prefix(path: &Option<PathBuf>) -> String {
    path.as_ref()
        .map(|p| format!("{}: ", p.display()))
        .unwrap_or_default()
}

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// A candle error while working on `path`.
    pub fn candle(path: &Path, source: candle_core::Error) -> Self {
        Error::Candle {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The dense crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
