//! One module per command (or pair of related commands): its flags (`*Args`, parsed into
//! engine options without I/O) and a function per command that opens what it needs, calls the
//! engine, and hands the result to [`crate::render`].

pub mod analyze;
pub mod documents;
pub mod eval;
pub mod index;
pub mod qdrant;
pub mod search;
pub mod serve;
pub mod train;
pub mod tune;
pub mod verify;
