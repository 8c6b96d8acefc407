//! Score normalisations for the convex combination.

use serde::{Deserialize, Serialize};

use crate::FusionError;

/// How one leg's raw scores are mapped onto a common scale before the convex combination.
///
/// Every normalisation is computed over the list the leg returned for this query (its
/// statistics — min, max, mean, standard deviation — are those of that list), in `f64`.
///
/// # Documents the leg did not return
///
/// A document found by another leg but not by this one is never dropped: it gets an explicit
/// normalised score for this leg, the *missing-leg score*. It is the normalised value of the
/// lowest score the leg returned. Reasoning: a leg returns its best documents, so a document it
/// did not return scores at most like the worst one it did return; without its real score,
/// that bound is the best estimate we have, and it keeps the value inside the range the leg
/// actually produced. Consequence: the last document of a leg's list and a document the leg
/// did not return get the same score from that leg.
///
/// When the caller knows better ([`crate::ConvexLeg::absent`]: a BM25 leg that returned fewer
/// documents than asked for scored every other document 0), the missing-leg score is the
/// normalised value of that known score instead (clamped as the normalisation clamps, and
/// never above the lowest returned score's).
///
/// **Degenerate lists.** When every returned score is equal (which includes a leg that returned
/// a single document) there is no spread to normalise, and each variant says below what its
/// found documents and its missing-leg score get. For every variant the found documents then
/// score strictly above the missing-leg score (unless all of them sit at a theoretical
/// minimum), so that a leg which found one document (or several equal ones), such as the one
/// exact BM25 match of a query, still lifts them above the documents it did not find. A leg
/// that returned nothing gives every document 0.
///
/// **Order.** For every variant a document the leg returned never gets less from the leg than
/// a document it did not return: every normalisation is non-decreasing in the score and the
/// missing-leg score is that of a score at or below the lowest returned one. No variant
/// produces a NaN: the divisions are guarded by the degenerate case.
///
/// # Monotonicity
///
/// With [`MinMax`](Self::MinMax) (and with RRF), raising one document's score in one leg never
/// lowers its fused rank: its own normalised score cannot fall and no other document's can
/// rise. [`Theoretical`](Self::Theoretical) has the same property in exact arithmetic.
/// [`ZScore`](Self::ZScore) and [`Dbsf`](Self::Dbsf) do **not**: the mean and standard
/// deviation move with the raised score, and with them every other normalised score and the
/// missing-leg score. For example, when the top document of a leg pulls further ahead, the
/// rest of the list (and the missing-leg score) moves up towards the mean, and a document the
/// leg did not return can overtake it (see this crate's tests for worked cases).
///
/// Source: Bruch, Gai, Ingber, "An Analysis of Fusion Functions for Hybrid Retrieval",
/// ACM TOIS 42(1), 2023 (min-max, z-score and theoretical min-max normalisation).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Normalization {
    /// Min-max over the returned list: `(s - min) / (max - min)`, in `[0, 1]`.
    ///
    /// Missing-leg score: 0 (the normalised `min`). Degenerate list (all scores equal, or a
    /// single hit): every found document gets 1, the missing-leg score stays 0.
    #[default]
    MinMax,
    /// Z-score: `(s - mean) / std` with the population standard deviation
    /// (`std = sqrt(sum((s - mean)^2) / n)`). Unbounded; negative below the mean.
    ///
    /// Missing-leg score: the lowest z of the list, `(min - mean) / std`. Degenerate list
    /// (`std = 0`): every found document gets 0 (it is at the mean) and the missing-leg score
    /// is -1, one unit below, the least a list of two different scores puts between its top
    /// and bottom.
    ZScore,
    /// Distribution-based score fusion (DBSF) normalisation: the bounds are `mean ± 3 std`
    /// (as in Qdrant), then min-max with those bounds, clipped to `[0, 1]` (Qdrant does not
    /// clip, and in its fusion a document a list did not return adds 0; `docs/scale-out.md`):
    /// `clamp((s - (mean - 3 std)) / (6 std), 0, 1)`. `std` is the sample standard deviation
    /// (`n - 1` in the denominator), as in Qdrant.
    ///
    /// Missing-leg score: the normalised (clipped) value of the list's lowest score.
    /// Degenerate list (all scores equal, or a single hit): every found document gets 0.5 — the
    /// value of a score at the mean, and Qdrant's choice — and the missing-leg score is 0.
    ///
    /// Source: M. Mazzeschi, "Distribution-based Score Fusion (DBSF)", 2023; Qdrant's
    /// `Fusion::Dbsf`.
    Dbsf,
    /// Theoretical min-max: `clamp((s - lower) / (upper - lower), 0, 1)` with bounds known
    /// from the scoring function rather than from the list.
    ///
    /// `upper: None` means "no finite theoretical maximum": the list's maximum is used
    /// instead (BM25 is unbounded above). See [`Normalization::cosine`] (`[-1, 1]`, i.e.
    /// `(s + 1) / 2`) and [`Normalization::bm25`] (`s / max`).
    ///
    /// Missing-leg score: the normalised value of the list's lowest score (for example
    /// `(min + 1) / 2` for cosine, `min / max` for BM25). Degenerate list (all scores equal,
    /// or a single hit): the found documents get their normalised score (1 for BM25, whose
    /// single hit is the list's maximum) and the missing-leg score is 0, the theoretical
    /// minimum's, unless the caller knows the missing documents' score. If `upper` is `None`
    /// and the list's maximum is `<= lower`, every score is at or below the theoretical
    /// minimum and maps to 0 (as does the missing-leg score).
    Theoretical {
        /// The scoring function's theoretical minimum (finite).
        lower: f32,
        /// The scoring function's theoretical maximum (finite, `> lower`), or `None` to use the
        /// maximum of the returned list.
        upper: Option<f32>,
    },
}

impl Normalization {
    /// Cosine similarity, theoretically in `[-1, 1]`: `(s + 1) / 2`.
    pub const fn cosine() -> Self {
        Self::Theoretical {
            lower: -1.0,
            upper: Some(1.0),
        }
    }

    /// BM25, theoretically in `[0, ∞)`: `s / max` with the list's maximum as the upper bound.
    pub const fn bm25() -> Self {
        Self::Theoretical {
            lower: 0.0,
            upper: None,
        }
    }

    /// Checks the parameters: [`Theoretical`](Self::Theoretical) bounds must be finite with
    /// `upper > lower`. The other variants are always valid.
    ///
    /// # Errors
    ///
    /// [`FusionError::InvalidBounds`] when the bounds are not finite or not increasing.
    pub fn validate(&self) -> Result<(), FusionError> {
        match *self {
            Self::Theoretical { lower, upper } => {
                let ok = lower.is_finite()
                    && upper.is_none_or(|upper| upper.is_finite() && upper > lower);
                if ok {
                    Ok(())
                } else {
                    Err(FusionError::InvalidBounds { lower, upper })
                }
            }
            Self::MinMax | Self::ZScore | Self::Dbsf => Ok(()),
        }
    }

    /// Normalises a list of finite scores: the normalised scores, in list order, and the
    /// missing-leg score. Assumes `self` is valid and every score finite.
    #[cfg(test)]
    pub(crate) fn apply(&self, scores: &[f32]) -> (Vec<f64>, f64) {
        self.apply_absent(scores, None)
    }

    /// [`Normalization::apply`] where the raw score of the documents the leg did not return
    /// may be known (`absent`, finite): the missing-leg score is then the normalised value of
    /// `min(absent, lowest returned score)` instead of the lowest returned score's.
    pub(crate) fn apply_absent(&self, scores: &[f32], absent: Option<f32>) -> (Vec<f64>, f64) {
        let Some(stats) = Stats::of(scores) else {
            return (Vec::new(), 0.0);
        };
        let missing = absent.map_or(stats.min, |a| f64::from(a).min(stats.min));
        let map = |f: &dyn Fn(f64) -> f64| -> (Vec<f64>, f64) {
            (
                scores.iter().map(|&s| f(f64::from(s))).collect(),
                f(missing),
            )
        };
        let constant = |found: f64, missing: f64| (vec![found; scores.len()], missing);
        match *self {
            Self::MinMax => {
                if stats.degenerate() {
                    constant(1.0, 0.0)
                } else {
                    let range = stats.max - stats.min;
                    map(&|s| (s - stats.min) / range)
                }
            }
            Self::ZScore => {
                if stats.degenerate() {
                    constant(0.0, -1.0)
                } else {
                    let std = (stats.sum_sq_dev / stats.n).sqrt();
                    map(&|s| (s - stats.mean) / std)
                }
            }
            Self::Dbsf => {
                if stats.degenerate() {
                    constant(0.5, 0.0)
                } else {
                    // Not degenerate, so n >= 2 and the sample variance is defined and > 0.
                    let std = (stats.sum_sq_dev / (stats.n - 1.0)).sqrt();
                    let lo = stats.mean - 3.0 * std;
                    let width = 6.0 * std;
                    map(&|s| ((s - lo) / width).clamp(0.0, 1.0))
                }
            }
            Self::Theoretical { lower, upper } => {
                let lower = f64::from(lower);
                let upper = upper.map_or(stats.max, f64::from);
                if upper > lower {
                    let range = upper - lower;
                    let norm = |s: f64| ((s - lower) / range).clamp(0.0, 1.0);
                    if stats.degenerate() {
                        let missing = absent.map_or(0.0, |a| norm(f64::from(a).min(stats.min)));
                        (
                            scores.iter().map(|&s| norm(f64::from(s))).collect(),
                            missing,
                        )
                    } else {
                        map(&norm)
                    }
                } else {
                    constant(0.0, 0.0)
                }
            }
        }
    }
}

/// Summary statistics of a non-empty list of finite scores, in `f64`.
struct Stats {
    n: f64,
    min: f64,
    max: f64,
    mean: f64,
    /// `sum((s - mean)^2)`.
    sum_sq_dev: f64,
}

impl Stats {
    fn of(scores: &[f32]) -> Option<Self> {
        if scores.is_empty() {
            return None;
        }
        let values = || scores.iter().map(|&s| f64::from(s));
        let n = scores.len() as f64;
        let min = values().fold(f64::INFINITY, f64::min);
        let max = values().fold(f64::NEG_INFINITY, f64::max);
        let mean = values().sum::<f64>() / n;
        let sum_sq_dev = values().map(|s| (s - mean) * (s - mean)).sum::<f64>();
        Some(Self {
            n,
            min,
            max,
            mean,
            sum_sq_dev,
        })
    }

    /// All scores equal. Tested on min/max rather than on the variance, which rounding can make
    /// a tiny non-zero number for a constant list.
    fn degenerate(&self) -> bool {
        self.min == self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(actual: &[f64], expected: &[f64]) {
        assert_eq!(actual.len(), expected.len(), "{actual:?} vs {expected:?}");
        for (a, e) in actual.iter().zip(expected) {
            assert!((a - e).abs() < 1e-6, "{actual:?} vs {expected:?}");
        }
    }

    #[test]
    fn min_max_by_hand() {
        // min 2, max 10, range 8: 10 -> 1, 6 -> 4/8, 2 -> 0; missing = norm(2) = 0.
        let (n, missing) = Normalization::MinMax.apply(&[10.0, 6.0, 2.0]);
        close(&n, &[1.0, 0.5, 0.0]);
        assert_eq!(missing, 0.0);
    }

    #[test]
    fn min_max_constant_and_single() {
        let (n, missing) = Normalization::MinMax.apply(&[3.0, 3.0, 3.0]);
        close(&n, &[1.0, 1.0, 1.0]);
        assert_eq!(missing, 0.0);
        let (n, missing) = Normalization::MinMax.apply(&[-7.5]);
        close(&n, &[1.0]);
        assert_eq!(missing, 0.0);
        // A constant list whose f64 mean is not exactly the value is still degenerate.
        let (n, _) = Normalization::ZScore.apply(&[0.1, 0.1, 0.1]);
        close(&n, &[0.0, 0.0, 0.0]);
    }

    #[test]
    fn z_score_by_hand() {
        // [4, 2, 0]: mean 2, population variance (4 + 0 + 4) / 3 = 8/3, std = sqrt(8/3).
        // z = (4-2)/sqrt(8/3) = 2 * sqrt(3/8) = sqrt(1.5) = 1.224744871..., 0, -1.224744871...
        let (n, missing) = Normalization::ZScore.apply(&[4.0, 2.0, 0.0]);
        let z = 1.5f64.sqrt();
        close(&n, &[z, 0.0, -z]);
        assert!((missing + z).abs() < 1e-12);
    }

    #[test]
    fn dbsf_by_hand() {
        // [4, 2, 0]: mean 2, sample variance 8 / 2 = 4, std 2; bounds 2 ± 6 = [-4, 8], width 12.
        // 4 -> 8/12 = 0.6667, 2 -> 6/12 = 0.5, 0 -> 4/12 = 0.3333; missing = norm(0) = 1/3.
        let (n, missing) = Normalization::Dbsf.apply(&[4.0, 2.0, 0.0]);
        close(&n, &[2.0 / 3.0, 0.5, 1.0 / 3.0]);
        assert!((missing - 1.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn dbsf_clips_outliers() {
        // Eleven 0s and one 12: n = 12, mean 1, sum of squared deviations 11 * 1 + 121 = 132,
        // sample variance 132 / 11 = 12, std = 3.4641; upper bound 1 + 10.392 = 11.39 < 12,
        // so the outlier clips to 1. The zeros: (0 - (1 - 10.392)) / 20.785 = 0.4519.
        let mut scores = vec![12.0];
        scores.extend([0.0; 11]);
        let (n, missing) = Normalization::Dbsf.apply(&scores);
        assert_eq!(n[0], 1.0);
        let std = 12f64.sqrt();
        let zero = (3.0 * std - 1.0) / (6.0 * std);
        assert!((zero - 0.451_88).abs() < 1e-5);
        close(&n[1..], &[zero; 11]);
        assert!((missing - zero).abs() < 1e-12);
    }

    #[test]
    fn dbsf_degenerate() {
        let (n, missing) = Normalization::Dbsf.apply(&[0.7]);
        close(&n, &[0.5]);
        assert_eq!(missing, 0.0);
    }

    #[test]
    fn theoretical_cosine_and_bm25() {
        // Cosine: (s + 1) / 2; 0.8 -> 0.9, -0.2 -> 0.4; missing = norm(-0.2) = 0.4.
        let (n, missing) = Normalization::cosine().apply(&[0.8, -0.2]);
        close(&n, &[0.9, 0.4]);
        assert!((missing - 0.4).abs() < 1e-7);
        // BM25: s / max; max 12: 12 -> 1, 3 -> 0.25; missing = 3/12 = 0.25.
        let (n, missing) = Normalization::bm25().apply(&[12.0, 3.0]);
        close(&n, &[1.0, 0.25]);
        assert_eq!(missing, 0.25);
        // Out-of-bounds scores clip.
        let (n, _) = Normalization::cosine().apply(&[1.5, -3.0]);
        close(&n, &[1.0, 0.0]);
        // All BM25 scores at 0: nothing above the theoretical minimum.
        let (n, missing) = Normalization::bm25().apply(&[0.0, 0.0]);
        close(&n, &[0.0, 0.0]);
        assert_eq!(missing, 0.0);
    }

    #[test]
    fn empty_list() {
        for norm in [
            Normalization::MinMax,
            Normalization::ZScore,
            Normalization::Dbsf,
            Normalization::cosine(),
            Normalization::bm25(),
        ] {
            assert_eq!(norm.apply(&[]), (Vec::new(), 0.0));
        }
    }

    #[test]
    fn validate_bounds() {
        assert!(Normalization::cosine().validate().is_ok());
        assert!(Normalization::bm25().validate().is_ok());
        for (lower, upper) in [
            (1.0, Some(1.0)),
            (1.0, Some(0.0)),
            (f32::NAN, None),
            (0.0, Some(f32::INFINITY)),
            (f32::NEG_INFINITY, Some(1.0)),
        ] {
            let norm = Normalization::Theoretical { lower, upper };
            assert!(
                matches!(norm.validate(), Err(FusionError::InvalidBounds { .. })),
                "{norm:?}"
            );
        }
    }
}
