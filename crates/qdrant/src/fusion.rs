//! The fusions Qdrant runs itself over the two legs, and how the engine explains their hits:
//! Qdrant returns one fused list with scores, not each leg's share, so each hit's legs are
//! computed here from the two leg lists with the same formula (RRF), or with Qdrant's own
//! DBSF rule.

use std::collections::HashMap;
use std::sync::Arc;

use hybrid_search::fusion::{
    ConvexSettings, FusedHit, Fusion, Leg, LegList, LegScore, Normalization, RrfSettings,
};
use hybrid_search::{BackendFusion, HybridOptions, IdList, sparse_list};

/// A fusion Qdrant runs itself over its two legs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerFusion {
    /// Reciprocal rank fusion with the engine's `k` (60, ranks from 1; Qdrant is given
    /// [`crate::QDRANT_RRF_K`]) and equal weights.
    Rrf,
    /// Distribution-based score fusion: each leg's scores normalised by mean ± 3 standard
    /// deviations over its list, then added (Qdrant's DBSF).
    Dbsf,
}

impl ServerFusion {
    /// The engine's fusion nearest to this one, reported as the search's fusion: RRF with `k`
    /// = 60 and equal weights (the same formula, ties aside); for DBSF a convex combination
    /// with `alpha` = 0.5 of DBSF-normalised scores, which differs from Qdrant's in clipping
    /// and in a missing document's score (the hits are explained by [`qdrant_dbsf`]).
    pub fn equivalent(self) -> Fusion {
        match self {
            ServerFusion::Rrf => Fusion::Rrf(RrfSettings::default()),
            ServerFusion::Dbsf => Fusion::Convex(ConvexSettings {
                alpha: 0.5,
                dense: Normalization::Dbsf,
                sparse: Normalization::Dbsf,
            }),
        }
    }
}

/// Qdrant's distribution-based score fusion, as Qdrant 1.19 computes it
/// (`lib/segment/src/common/score_fusion.rs`): each list's scores become
/// `(s - (mean - 3 std)) / (6 std)` with the sample standard deviation, not clipped (a list of
/// one score, or of equal scores, gives 0.5), and a document's fused score is the sum over the
/// lists that returned it (a missing document adds 0). Ties by id. Source: M. Mazzeschi,
/// "Distribution-based Score Fusion (DBSF)", 2023.
pub fn qdrant_dbsf(
    sparse: &[(Arc<str>, f32)],
    dense: &[(Arc<str>, f32)],
) -> Vec<FusedHit<Arc<str>>> {
    let normalise = |list: &[(Arc<str>, f32)]| -> Vec<f64> {
        let n = list.len() as f64;
        let mean = list.iter().map(|(_, s)| f64::from(*s)).sum::<f64>() / n;
        let var = list
            .iter()
            .map(|(_, s)| (f64::from(*s) - mean).powi(2))
            .sum::<f64>()
            / (n - 1.0);
        let (lo, width) = (mean - 3.0 * var.sqrt(), 6.0 * var.sqrt());
        list.iter()
            .map(|(_, s)| {
                if list.len() < 2 || width == 0.0 {
                    0.5
                } else {
                    (f64::from(*s) - lo) / width
                }
            })
            .collect()
    };
    let mut by_id: HashMap<Arc<str>, FusedHit<Arc<str>>> = HashMap::new();
    for (leg, list) in [(Leg::Sparse, sparse), (Leg::Dense, dense)] {
        for (rank, ((id, raw), norm)) in list.iter().zip(normalise(list)).enumerate() {
            let hit = by_id.entry(id.clone()).or_insert_with(|| FusedHit {
                id: id.clone(),
                score: 0.0,
                legs: Vec::new(),
            });
            hit.score += norm;
            hit.legs.push(LegScore {
                leg,
                found: true,
                rank: Some(rank + 1),
                raw_score: Some(*raw),
                normalized: norm,
                contribution: norm,
            });
        }
    }
    let mut hits: Vec<_> = by_id.into_values().collect();
    hits.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.id.cmp(&b.id)));
    hits
}

/// The hits of a fusion `fusion` ran over `sparse` and `dense` (each `depth` deep), each with
/// its legs explained: in `server`'s order and with its scores when the server's fused list
/// is given, else in the order the explanation gives (what the engine ranks when it fuses as
/// Qdrant does).
///
/// # Errors
///
/// [`hybrid_search::Error::Fusion`] when the lists cannot be fused (not expected for the
/// fixed settings used here).
pub fn explain(
    fusion: ServerFusion,
    sparse: &IdList,
    dense: &IdList,
    server: Option<IdList>,
    depth: usize,
) -> hybrid_search::Result<BackendFusion> {
    let equivalent = fusion.equivalent();
    let explained = match fusion {
        ServerFusion::Dbsf => qdrant_dbsf(sparse, dense),
        ServerFusion::Rrf => {
            equivalent.fuse_lists(sparse_list(sparse, depth), LegList::new(dense))?
        }
    };
    let hits = match server {
        Some(server) => {
            let mut legs: HashMap<Arc<str>, Vec<LegScore>> =
                explained.into_iter().map(|h| (h.id, h.legs)).collect();
            server
                .into_iter()
                .map(|(id, score)| FusedHit {
                    legs: legs.remove(&id).unwrap_or_default(),
                    id,
                    score: f64::from(score),
                })
                .collect()
        }
        None => explained,
    };
    Ok(BackendFusion {
        hits,
        fusion: HybridOptions {
            fusion: equivalent,
            depth,
        },
    })
}
