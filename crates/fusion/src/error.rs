//! The error type of the fusion crate.

use crate::Leg;

/// Why a fusion could not be computed: invalid settings or invalid input lists.
///
/// Every fusion function checks its settings and inputs before computing anything, so a
/// returned list never contains NaN or infinite scores.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum FusionError {
    /// The RRF constant `k` is not a finite number greater than 0.
    #[error("RRF k must be a finite number greater than 0, got {0}")]
    InvalidRrfK(f32),
    /// A leg weight is negative, NaN or infinite.
    #[error("the weight of the {leg} leg must be a finite number >= 0, got {weight}")]
    InvalidWeight {
        /// The leg whose weight is invalid.
        leg: Leg,
        /// The invalid weight.
        weight: f32,
    },
    /// The convex-combination `alpha` is outside `[0, 1]` (or NaN).
    #[error("convex alpha must be in [0, 1], got {0}")]
    InvalidAlpha(f32),
    /// The weights of a convex combination do not sum to 1 (within `1e-4`).
    #[error("convex-combination weights must sum to 1, they sum to {0}")]
    WeightsNotConvex(f32),
    /// The bounds of [`Normalization::Theoretical`](crate::Normalization::Theoretical) are
    /// not finite or `upper <= lower`.
    #[error(
        "theoretical bounds must be finite with upper > lower, got lower {lower}, upper {upper:?}"
    )]
    InvalidBounds {
        /// The lower bound given.
        lower: f32,
        /// The upper bound given, if any.
        upper: Option<f32>,
    },
    /// A leg's list holds a NaN or infinite score.
    #[error("the {leg} leg has a non-finite score ({score}) at rank {rank}")]
    NonFiniteScore {
        /// The leg whose list holds the score.
        leg: Leg,
        /// The 1-based rank (list position) of the score.
        rank: usize,
        /// The offending score.
        score: f32,
    },
    /// A leg's list holds the same id twice.
    #[error("the {leg} leg returns the same id twice, again at rank {rank}")]
    DuplicateId {
        /// The leg whose list holds the duplicate.
        leg: Leg,
        /// The 1-based rank (list position) of the second occurrence.
        rank: usize,
    },
}
