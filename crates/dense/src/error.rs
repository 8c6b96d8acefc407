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
}

impl Error {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn candle(path: &Path, source: candle_core::Error) -> Self {
        Error::Candle {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The dense crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
