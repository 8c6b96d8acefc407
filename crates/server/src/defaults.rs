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

/// How long a client has to send a request's head (its request line and headers), from the
/// first byte of the request (`--header-timeout`); the connection is closed after it.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a client has to send a request's whole body once its head is in
/// (`--body-timeout`): 16 MiB in 30 s is about 0.5 MiB/s. A request counts against the queue
/// only once its body is read, so a client that stalls part way holds no place in it; after
/// this time it is answered 408 and its connection closed.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);
