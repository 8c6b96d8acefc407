//! Legs, fused hits, and the two fusion functions.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;

use serde::{Deserialize, Serialize};

use crate::{FusionError, Normalization};

/// Which retriever produced a ranked list.
///
/// Non-exhaustive so that more retrievers (another dense model, a title field, ...) can be
/// added without breaking callers. Fusion does not treat the kinds differently: the kind is
/// a label for explain output and error messages, and [`crate::Fusion`] uses it to attach its
/// two sets of settings.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Leg {
    /// Lexical retrieval (BM25).
    Sparse,
    /// Vector retrieval (embeddings, approximate nearest neighbours).
    Dense,
}

impl Leg {
    /// The lowercase name: `"sparse"` or `"dense"` (also the serde spelling).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Sparse => "sparse",
            Self::Dense => "dense",
        }
    }
}

impl fmt::Display for Leg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One leg's input to [`reciprocal_rank_fusion`].
///
/// `hits` is the leg's ranked list, best first: the 1-based position in it is the rank.
/// Scores are not used by RRF but must be finite (they are carried into the explain output).
/// An id may appear at most once per list.
#[derive(Debug, Clone, Copy)]
pub struct RrfLeg<'a, K> {
    /// Which retriever produced the list.
    pub leg: Leg,
    /// The leg's weight `w_leg`: finite and `>= 0`.
    pub weight: f32,
    /// `(id, score)` pairs, best first.
    pub hits: &'a [(K, f32)],
}

/// One leg's input to [`convex_combination`].
///
/// `hits` is the leg's ranked list, best first (the 1-based position is reported as the rank
/// in the explain output; the fusion itself uses the scores, higher is better). Scores must be
/// finite; an id may appear at most once per list.
#[derive(Debug, Clone, Copy)]
pub struct ConvexLeg<'a, K> {
    /// Which retriever produced the list.
    pub leg: Leg,
    /// The leg's weight: finite, `>= 0`; the weights of all legs sum to 1 (within `1e-4`).
    pub weight: f32,
    /// How the leg's scores are normalised, and what a document it did not return gets.
    pub normalization: Normalization,
    /// `(id, score)` pairs, best first.
    pub hits: &'a [(K, f32)],
    /// The raw score of every document the leg did not return, when known (finite): a leg
    /// that returned everything it matches, such as a BM25 list shorter than the depth asked
    /// for, scored every other document 0. `None`: unknown, so a missing document is scored
    /// like the lowest returned one (see [`Normalization`]).
    pub absent: Option<f32>,
}

/// One leg's ranked list for [`crate::Fusion::fuse_lists`].
#[derive(Debug, Clone, Copy)]
pub struct LegList<'a, K> {
    /// `(id, score)` pairs, best first.
    pub hits: &'a [(K, f32)],
    /// The raw score of every document the list does not hold, when known
    /// ([`ConvexLeg::absent`]; ignored by reciprocal rank fusion).
    pub absent: Option<f32>,
}

impl<'a, K> LegList<'a, K> {
    /// A list whose missing documents' scores are unknown.
    pub fn new(hits: &'a [(K, f32)]) -> Self {
        Self { hits, absent: None }
    }
}

/// What one leg contributed to a fused hit, for explain output.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LegScore {
    /// Which leg.
    pub leg: Leg,
    /// Whether the leg returned the document (`rank` and `raw_score` are then `Some`).
    pub found: bool,
    /// The 1-based rank in the leg's list, if found: its position, except that consecutive
    /// entries with equal scores share the rank of the first of them.
    pub rank: Option<usize>,
    /// The leg's raw score, if found.
    pub raw_score: Option<f32>,
    /// The leg's score before weighting. RRF: `1 / (k + rank)`, or 0 when not found.
    /// Convex combination: the normalised score, or the leg's missing-leg score when not
    /// found (see [`Normalization`]).
    pub normalized: f64,
    /// `weight * normalized`: this leg's share of the fused score.
    pub contribution: f64,
}

/// One document of a fused list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FusedHit<K> {
    /// The document id.
    pub id: K,
    /// The fused score: the sum of the legs' contributions. Always finite; never `-0.0`.
    pub score: f64,
    /// One entry per input leg, in the order the legs were given.
    pub legs: Vec<LegScore>,
}

impl<K> FusedHit<K> {
    /// The explain entry of the first input leg of kind `leg`, if any.
    pub fn leg(&self, leg: Leg) -> Option<&LegScore> {
        self.legs.iter().find(|entry| entry.leg == leg)
    }
}

/// Weighted reciprocal rank fusion.
///
/// ```text
/// score(d) = sum over legs of  w_leg / (k + rank_leg(d))
/// ```
///
/// with `rank_leg(d)` the 1-based rank of `d` in the leg's list. A leg that did not return
/// `d` contributes exactly 0 to `score(d)` (its explain entry has `found: false` and
/// `normalized = contribution = 0`).
///
/// **Ties.** Documents with equal scores in a leg share that leg's rank: consecutive entries
/// with the same score all get the rank of the first of them (standard competition ranking,
/// "1224"), so two identical documents fuse to the same score instead of being split by an
/// arbitrary order. Apart from that, only the order of the list matters. Cormack et al. use `k = 60` and equal weights;
/// weights other than 1 are the usual weighted extension.
///
/// Source: G. V. Cormack, C. L. A. Clarke, S. Büttcher, "Reciprocal Rank Fusion outperforms
/// Condorcet and individual Rank Learning Methods", SIGIR 2009.
///
/// # Output
///
/// Every id of every leg appears exactly once, sorted by fused score descending, ties broken
/// by id ascending (a total, deterministic order). Nothing is truncated: take a prefix for a
/// top-k. No legs, or only empty legs, give an empty list.
///
/// # Errors
///
/// [`FusionError::InvalidRrfK`] unless `k` is finite and `> 0`;
/// [`FusionError::InvalidWeight`] for a negative or non-finite weight;
/// [`FusionError::NonFiniteScore`] for a NaN or infinite score (rank 0: the `absent` score);
/// [`FusionError::DuplicateId`] when a list holds an id twice.
///
/// # Example
///
/// ```
/// use hybrid_search_fusion::{Leg, RrfLeg, reciprocal_rank_fusion};
///
/// let sparse = [("a", 12.0), ("b", 7.5)];
/// let dense = [("b", 0.91), ("c", 0.88), ("a", 0.80)];
/// let fused = reciprocal_rank_fusion(
///     &[
///         RrfLeg { leg: Leg::Sparse, weight: 1.0, hits: &sparse },
///         RrfLeg { leg: Leg::Dense, weight: 1.0, hits: &dense },
///     ],
///     60.0,
/// )
/// .unwrap();
/// // b: 1/62 + 1/61 = 0.032522; a: 1/61 + 1/63 = 0.032266; c: 0 + 1/62 = 0.016129.
/// let ids: Vec<_> = fused.iter().map(|hit| hit.id).collect();
/// assert_eq!(ids, ["b", "a", "c"]);
/// assert!((fused[0].score - (1.0 / 62.0 + 1.0 / 61.0)).abs() < 1e-12);
/// ```
pub fn reciprocal_rank_fusion<K>(
    legs: &[RrfLeg<'_, K>],
    k: f32,
) -> Result<Vec<FusedHit<K>>, FusionError>
where
    K: Clone + Eq + Hash + Ord,
{
    if !(k.is_finite() && k > 0.0) {
        return Err(FusionError::InvalidRrfK(k));
    }
    for leg in legs {
        check_weight(leg.leg, leg.weight)?;
    }
    let union = Union::of(legs.iter().map(|leg| (leg.leg, leg.hits)))?;
    let k = f64::from(k);
    Ok(union.finish(|leg_index, found| {
        let leg = &legs[leg_index];
        let normalized = found.map_or(0.0, |f| 1.0 / (k + f.rank as f64));
        (leg.leg, f64::from(leg.weight), normalized)
    }))
}

/// Convex combination of normalised scores.
///
/// ```text
/// score(d) = sum over legs of  w_leg * norm_leg(s_leg(d)),   with sum of w_leg = 1
/// ```
///
/// For the two legs of hybrid search this is
/// `alpha * norm(dense(d)) + (1 - alpha) * norm(sparse(d))` (see [`crate::ConvexSettings`]).
/// Each leg's scores are normalised over the list it returned, with its own
/// [`Normalization`]. A document a leg did not return is not dropped: it gets that leg's
/// *missing-leg score*, the normalised value of the leg's lowest returned score (0 for
/// min-max; see [`Normalization`] for each method and for degenerate lists). An empty leg
/// gives every document 0.
///
/// Source: S. Bruch, S. Gai, A. Ingber, "An Analysis of Fusion Functions for Hybrid
/// Retrieval", ACM TOIS 42(1), 2023 (convex combination, min-max, z-score and theoretical
/// min-max normalisation).
///
/// # Output
///
/// As for [`reciprocal_rank_fusion`]: every id once, fused score descending, then id
/// ascending; no truncation. No legs give an empty list.
///
/// # Errors
///
/// [`FusionError::InvalidWeight`] for a negative or non-finite weight;
/// [`FusionError::WeightsNotConvex`] when the weights do not sum to 1 within `1e-4`;
/// [`FusionError::InvalidBounds`] for invalid theoretical bounds;
/// [`FusionError::NonFiniteScore`] for a NaN or infinite score (rank 0: the `absent` score);
/// [`FusionError::DuplicateId`] when a list holds an id twice.
///
/// # Example
///
/// ```
/// use hybrid_search_fusion::{ConvexLeg, Leg, Normalization, convex_combination};
///
/// let sparse = [("a", 12.0), ("b", 4.0)];
/// let dense = [("b", 0.9), ("c", 0.5)];
/// let leg = |leg, hits| ConvexLeg {
///     leg,
///     weight: 0.5,
///     normalization: Normalization::MinMax,
///     hits,
///     absent: None,
/// };
/// let fused = convex_combination(&[leg(Leg::Sparse, &sparse[..]), leg(Leg::Dense, &dense[..])])
///     .unwrap();
/// // a: 0.5 * 1 + 0.5 * 0 (missing: dense's lowest, c, normalises to 0) = 0.5
/// // b: 0.5 * 0 + 0.5 * 1 = 0.5;  c: 0.5 * 0 (missing) + 0.5 * 0 = 0
/// let ids: Vec<_> = fused.iter().map(|hit| hit.id).collect();
/// assert_eq!(ids, ["a", "b", "c"]); // a and b tie at 0.5: id ascending
/// ```
pub fn convex_combination<K>(legs: &[ConvexLeg<'_, K>]) -> Result<Vec<FusedHit<K>>, FusionError>
where
    K: Clone + Eq + Hash + Ord,
{
    if legs.is_empty() {
        return Ok(Vec::new());
    }
    let mut sum = 0.0f64;
    for leg in legs {
        check_weight(leg.leg, leg.weight)?;
        leg.normalization.validate()?;
        if let Some(score) = leg.absent.filter(|a| !a.is_finite()) {
            return Err(FusionError::NonFiniteScore {
                leg: leg.leg,
                rank: 0,
                score,
            });
        }
        sum += f64::from(leg.weight);
    }
    if (sum - 1.0).abs() > 1e-4 {
        return Err(FusionError::WeightsNotConvex(sum as f32));
    }
    let union = Union::of(legs.iter().map(|leg| (leg.leg, leg.hits)))?;
    let normalized: Vec<(Vec<f64>, f64)> = legs
        .iter()
        .map(|leg| {
            let scores: Vec<f32> = leg.hits.iter().map(|&(_, score)| score).collect();
            leg.normalization.apply_absent(&scores, leg.absent)
        })
        .collect();
    Ok(union.finish(|leg_index, found| {
        let leg = &legs[leg_index];
        let (scores, missing) = &normalized[leg_index];
        let value = found.map_or(*missing, |f| scores[f.position - 1]);
        (leg.leg, f64::from(leg.weight), value)
    }))
}

fn check_weight(leg: Leg, weight: f32) -> Result<(), FusionError> {
    if weight.is_finite() && weight >= 0.0 {
        Ok(())
    } else {
        Err(FusionError::InvalidWeight { leg, weight })
    }
}

/// Where a leg returned a document.
#[derive(Debug, Clone, Copy)]
struct Found {
    /// The 1-based position in the list.
    position: usize,
    /// The rank: the position of the first of the consecutive entries with this score.
    rank: usize,
    /// The raw score.
    score: f32,
}

/// The union of the legs' ids, with where each leg returned each id.
struct Union<K> {
    ids: Vec<K>,
    legs: Vec<Leg>,
    /// `found[doc * legs.len() + leg]`: the 1-based position, the rank (shared by equal
    /// scores, see [`reciprocal_rank_fusion`]) and the raw score, if the leg returned the
    /// document.
    found: Vec<Option<Found>>,
}

impl<K: Clone + Eq + Hash + Ord> Union<K> {
    /// Collects the ids; checks that scores are finite and ids unique within each list.
    fn of<'a>(
        legs: impl ExactSizeIterator<Item = (Leg, &'a [(K, f32)])>,
    ) -> Result<Self, FusionError>
    where
        K: 'a,
    {
        let n_legs = legs.len();
        let mut index: HashMap<K, usize> = HashMap::new();
        let mut union = Self {
            ids: Vec::new(),
            legs: Vec::with_capacity(n_legs),
            found: Vec::new(),
        };
        for (leg_index, (leg, hits)) in legs.enumerate() {
            union.legs.push(leg);
            let mut previous: Option<(f32, usize)> = None;
            for (position, (id, score)) in hits.iter().enumerate() {
                let position = position + 1;
                let rank = match previous {
                    Some((s, rank)) if s == *score => rank,
                    _ => position,
                };
                previous = Some((*score, rank));
                if !score.is_finite() {
                    return Err(FusionError::NonFiniteScore {
                        leg,
                        rank: position,
                        score: *score,
                    });
                }
                let doc = *index.entry(id.clone()).or_insert_with(|| {
                    union.ids.push(id.clone());
                    union.found.extend(std::iter::repeat_n(None, n_legs));
                    union.ids.len() - 1
                });
                let slot = &mut union.found[doc * n_legs + leg_index];
                if slot.is_some() {
                    return Err(FusionError::DuplicateId {
                        leg,
                        rank: position,
                    });
                }
                *slot = Some(Found {
                    position,
                    rank,
                    score: *score,
                });
            }
        }
        Ok(union)
    }

    /// Builds the fused hits, sorted. `value(leg_index, found)` gives the leg, its weight and
    /// its score before weighting for a document found (or not) in the leg.
    fn finish(self, value: impl Fn(usize, Option<Found>) -> (Leg, f64, f64)) -> Vec<FusedHit<K>> {
        let n_legs = self.legs.len();
        let mut hits: Vec<FusedHit<K>> = self
            .ids
            .into_iter()
            .enumerate()
            .map(|(doc, id)| {
                let legs: Vec<LegScore> = (0..n_legs)
                    .map(|leg_index| {
                        let found = self.found[doc * n_legs + leg_index];
                        let (leg, weight, normalized) = value(leg_index, found);
                        LegScore {
                            leg,
                            found: found.is_some(),
                            rank: found.map(|f| f.rank),
                            raw_score: found.map(|f| f.score),
                            // `+ 0.0` turns a -0.0 into 0.0.
                            normalized: normalized + 0.0,
                            contribution: weight * normalized + 0.0,
                        }
                    })
                    .collect();
                let score = legs.iter().fold(0.0, |sum, leg| sum + leg.contribution) + 0.0;
                FusedHit { id, score, legs }
            })
            .collect();
        // Scores are finite and never -0.0, so total_cmp is the numeric order; ids are unique,
        // so the order is total.
        hits.sort_unstable_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.id.cmp(&b.id)));
        hits
    }
}
