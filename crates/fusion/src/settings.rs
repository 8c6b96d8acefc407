//! Serializable fusion settings for the two legs of hybrid search.

use std::hash::Hash;

use serde::{Deserialize, Serialize};

use crate::{
    ConvexLeg, FusedHit, FusionError, Leg, LegList, Normalization, RrfLeg, convex_combination,
    reciprocal_rank_fusion,
};

/// The RRF constant of Cormack et al.
pub const DEFAULT_RRF_K: f32 = 60.0;

/// How a sparse (BM25) and a dense (vector) result list are blended: a collection's stored
/// default, or a per-query override.
///
/// Serialized with a `method` tag; missing fields take their defaults:
///
/// ```
/// use hybrid_search_fusion::{ConvexSettings, Fusion, Normalization};
///
/// let rrf: Fusion = serde_json::from_str(r#"{"method": "rrf"}"#).unwrap();
/// assert_eq!(rrf, Fusion::default());
/// let convex: Fusion = serde_json::from_str(
///     r#"{"method": "convex", "alpha": 0.7, "dense": {"kind": "theoretical", "lower": -1.0, "upper": 1.0}}"#,
/// )
/// .unwrap();
/// assert_eq!(
///     convex,
///     Fusion::Convex(ConvexSettings {
///         alpha: 0.7,
///         dense: Normalization::cosine(),
///         sparse: Normalization::MinMax,
///     })
/// );
/// ```
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum Fusion {
    /// Reciprocal rank fusion (see [`reciprocal_rank_fusion`]).
    Rrf(RrfSettings),
    /// Convex combination of normalised scores (see [`convex_combination`]).
    Convex(ConvexSettings),
}

impl Default for Fusion {
    /// RRF with `k = 60` and equal weights.
    fn default() -> Self {
        Self::Rrf(RrfSettings::default())
    }
}

/// Settings of [`Fusion::Rrf`]: `score(d) = w_sparse / (k + rank_sparse(d)) + w_dense / (k +
/// rank_dense(d))`, a missing leg contributing 0.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RrfSettings {
    /// The rank constant `k`: finite, `> 0`. Default [`DEFAULT_RRF_K`] (60).
    pub k: f32,
    /// Weight of the sparse leg: finite, `>= 0`. Default 1.
    pub sparse_weight: f32,
    /// Weight of the dense leg: finite, `>= 0`. Default 1.
    pub dense_weight: f32,
}

impl Default for RrfSettings {
    fn default() -> Self {
        Self {
            k: DEFAULT_RRF_K,
            sparse_weight: 1.0,
            dense_weight: 1.0,
        }
    }
}

/// Settings of [`Fusion::Convex`]:
/// `score(d) = alpha * dense_norm(dense(d)) + (1 - alpha) * sparse_norm(sparse(d))`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConvexSettings {
    /// Weight of the dense leg, in `[0, 1]`; the sparse leg gets `1 - alpha`. Default 0.5.
    pub alpha: f32,
    /// Normalisation of the dense leg's scores. Default [`Normalization::MinMax`].
    pub dense: Normalization,
    /// Normalisation of the sparse leg's scores. Default [`Normalization::MinMax`].
    pub sparse: Normalization,
}

impl Default for ConvexSettings {
    fn default() -> Self {
        Self {
            alpha: 0.5,
            dense: Normalization::MinMax,
            sparse: Normalization::MinMax,
        }
    }
}

impl Fusion {
    /// Checks the settings, as [`Fusion::fuse`] does before fusing: RRF `k` finite and `> 0`,
    /// weights finite and `>= 0`, `alpha` in `[0, 1]`, theoretical bounds valid.
    ///
    /// # Errors
    ///
    /// The [`FusionError`] naming the first setting out of range.
    pub fn validate(&self) -> Result<(), FusionError> {
        match *self {
            Self::Rrf(RrfSettings {
                k,
                sparse_weight,
                dense_weight,
            }) => {
                if !(k.is_finite() && k > 0.0) {
                    return Err(FusionError::InvalidRrfK(k));
                }
                for (leg, weight) in [(Leg::Sparse, sparse_weight), (Leg::Dense, dense_weight)] {
                    if !(weight.is_finite() && weight >= 0.0) {
                        return Err(FusionError::InvalidWeight { leg, weight });
                    }
                }
                Ok(())
            }
            Self::Convex(ConvexSettings {
                alpha,
                dense,
                sparse,
            }) => {
                if !(0.0..=1.0).contains(&alpha) {
                    return Err(FusionError::InvalidAlpha(alpha));
                }
                dense.validate()?;
                sparse.validate()
            }
        }
    }

    /// Fuses a sparse and a dense ranked list (each best first, `(id, score)`).
    ///
    /// The result's explain entries ([`FusedHit::legs`]) are in the order sparse, dense. See
    /// [`reciprocal_rank_fusion`] and [`convex_combination`] for the formulas, the missing-leg
    /// rule, the order (score descending, then id ascending) and the errors. Nothing is
    /// truncated.
    ///
    /// # Errors
    ///
    /// A [`FusionError`] when the settings are not valid ([`Fusion::validate`]).
    pub fn fuse<K>(
        &self,
        sparse: &[(K, f32)],
        dense: &[(K, f32)],
    ) -> Result<Vec<FusedHit<K>>, FusionError>
    where
        K: Clone + Eq + Hash + Ord,
    {
        self.fuse_lists(LegList::new(sparse), LegList::new(dense))
    }

    /// [`Fusion::fuse`], with what is known about the documents each list does not hold
    /// ([`LegList::absent`], used by the convex combination).
    ///
    /// # Errors
    ///
    /// A [`FusionError`] when the settings are not valid ([`Fusion::validate`]).
    pub fn fuse_lists<K>(
        &self,
        sparse: LegList<'_, K>,
        dense: LegList<'_, K>,
    ) -> Result<Vec<FusedHit<K>>, FusionError>
    where
        K: Clone + Eq + Hash + Ord,
    {
        self.validate()?;
        match *self {
            Self::Rrf(settings) => reciprocal_rank_fusion(
                &[
                    RrfLeg {
                        leg: Leg::Sparse,
                        weight: settings.sparse_weight,
                        hits: sparse.hits,
                    },
                    RrfLeg {
                        leg: Leg::Dense,
                        weight: settings.dense_weight,
                        hits: dense.hits,
                    },
                ],
                settings.k,
            ),
            Self::Convex(settings) => convex_combination(&[
                ConvexLeg {
                    leg: Leg::Sparse,
                    weight: 1.0 - settings.alpha,
                    normalization: settings.sparse,
                    hits: sparse.hits,
                    absent: sparse.absent,
                },
                ConvexLeg {
                    leg: Leg::Dense,
                    weight: settings.alpha,
                    normalization: settings.dense,
                    hits: dense.hits,
                    absent: dense.absent,
                },
            ]),
        }
    }
}
