//! One module per command: each has its flags (`Args`, parsed into engine options without
//! I/O) and a `run` that opens what it needs, calls the engine, and hands the result to
//! [`crate::render`].

pub mod analyze;
pub mod documents;
pub mod eval;
pub mod index;
pub mod search;
pub mod train;
pub mod tune;
pub mod verify;
