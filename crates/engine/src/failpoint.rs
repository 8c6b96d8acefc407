//! Named crash points for crash tests: when the environment variable
//! `HYBRID_SEARCH_FAILPOINT` names a point, the process aborts there (as a power cut or a
//! `kill -9` would stop it), so a test can land a crash exactly between two steps of a commit
//! or merge instead of hoping a random kill does.
//!
//! The points: `after-vector-segment` (a commit's new segment is on disk, the sparse commit
//! not yet), `after-sparse-commit` (the commit is durable, nothing cleaned up), `mid-merge`
//! (a merged segment is on disk, the commit switching to it not yet) and `during-cleanup`
//! (after the first unreferenced file was removed).

/// The environment variable naming the point to abort at.
pub const FAILPOINT_VAR: &str = "HYBRID_SEARCH_FAILPOINT";

/// Aborts the process when [`FAILPOINT_VAR`] names `point`.
pub(crate) fn hit(point: &str) {
    if std::env::var_os(FAILPOINT_VAR).is_some_and(|v| v == point) {
        eprintln!("failpoint {point}: aborting");
        std::process::abort();
    }
}
