//! Every default of the server in one place, with why: [`crate::Limits::default`],
//! [`crate::Options::new`] and the CLI's `serve` flags take them from here.

use std::time::Duration;

/// The largest request body, in MiB (`--max-body-mb`): a batch of a few thousand documents
/// with their vectors.
pub const MAX_BODY_MB: usize = 16;

/// The largest `k` and `fusion.depth` of a search (`--max-k`).
pub const MAX_K: usize = 1000;

/// The longest query, in characters: longer than any question, short enough that analysing
/// it costs nothing.
pub const MAX_QUERY_CHARS: usize = 4096;

/// Requests admitted at once, running or waiting (`--queue`); the next is answered 503.
pub const QUEUE: usize = 64;

/// How long a write waits for another process's writer before answering 409 `busy`.
pub const WRITE_WAIT: Duration = Duration::from_secs(5);
