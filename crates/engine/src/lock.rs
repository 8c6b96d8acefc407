//! The collection's write lock: one writer at a time, across processes.
//!
//! The lock is an advisory lock (`flock` on Unix) on `<collection>/write.lock`, taken before a
//! writer reads any state and released when the writer is dropped (or its process dies, so a
//! crash never leaves a stale lock behind). Searches never take it.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// The lock file's name in the collection folder.
pub const LOCK_FILE: &str = "write.lock";

/// How long a writer waits for the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Wait {
    /// Fail at once with [`Error::Busy`] when another writer holds it.
    #[default]
    No,
    /// Wait up to this long, then fail with [`Error::Busy`].
    For(Duration),
    /// Wait as long as it takes.
    Forever,
}

/// A held write lock; released on drop.
#[derive(Debug)]
pub(crate) struct WriteLock {
    _file: File,
}

impl WriteLock {
    /// Takes the lock of the collection in `dir`.
    pub(crate) fn acquire(dir: &Path, wait: Wait) -> Result<Self> {
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        let busy = |path: PathBuf| Error::Busy {
            collection: dir.to_path_buf(),
            lock: path,
        };
        match wait {
            Wait::Forever => file.lock().map_err(|e| Error::io(&path, e))?,
            Wait::No | Wait::For(_) => {
                let deadline = match wait {
                    Wait::For(d) => Some(Instant::now() + d),
                    _ => None,
                };
                loop {
                    match file.try_lock() {
                        Ok(()) => break,
                        Err(std::fs::TryLockError::WouldBlock) => {
                            if deadline.is_none_or(|d| Instant::now() >= d) {
                                return Err(busy(path));
                            }
                            std::thread::sleep(Duration::from_millis(20));
                        }
                        Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&path, e)),
                    }
                }
            }
        }
        Ok(Self { _file: file })
    }
}
