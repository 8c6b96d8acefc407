//! Benchmarks of hybrid-search.
