//! Property tests of the fusion functions.

use std::collections::{BTreeSet, HashMap};

use hybrid_search_fusion::{
    ConvexSettings, FusedHit, Fusion, Leg, Normalization, RrfLeg, RrfSettings,
    reciprocal_rank_fusion,
};
use proptest::prelude::*;

type Hits = Vec<(u16, f32)>;

/// A ranked list: distinct ids (drawn from a small pool so that legs overlap), scores from
/// `score`, sorted best first (ties in id order).
fn leg(score: impl Strategy<Value = f32> + Clone) -> impl Strategy<Value = Hits> {
    prop::collection::btree_set(0u16..40, 0..16).prop_flat_map(move |ids| {
        let n = ids.len();
        (Just(ids), prop::collection::vec(score.clone(), n)).prop_map(|(ids, scores)| {
            let mut hits: Hits = ids.into_iter().zip(scores).collect();
            hits.sort_by(|a, b| b.1.total_cmp(&a.1));
            hits
        })
    })
}

/// Any finite float, including huge, tiny and subnormal ones.
fn any_score() -> impl Strategy<Value = f32> + Clone {
    use prop::num::f32;
    f32::POSITIVE | f32::NEGATIVE | f32::NORMAL | f32::SUBNORMAL | f32::ZERO
}

/// Multiples of 1/16 in [-64, 64): exact in `f64` arithmetic, with many ties.
fn grid_score() -> impl Strategy<Value = f32> + Clone {
    (-1024i32..1024).prop_map(|x| x as f32 / 16.0)
}

fn normalization() -> impl Strategy<Value = Normalization> {
    prop_oneof![
        Just(Normalization::MinMax),
        Just(Normalization::ZScore),
        Just(Normalization::Dbsf),
        Just(Normalization::cosine()),
        Just(Normalization::bm25()),
    ]
}

fn fusion() -> impl Strategy<Value = Fusion> {
    prop_oneof![
        (0.5f32..200.0, 0.0f32..3.0, 0.0f32..3.0).prop_map(|(k, sparse_weight, dense_weight)| {
            Fusion::Rrf(RrfSettings {
                k,
                sparse_weight,
                dense_weight,
            })
        }),
        (0.0f32..=1.0, normalization(), normalization()).prop_map(|(alpha, dense, sparse)| {
            Fusion::Convex(ConvexSettings {
                alpha,
                dense,
                sparse,
            })
        }),
    ]
}

fn convex(alpha: f32, norm: Normalization) -> Fusion {
    Fusion::Convex(ConvexSettings {
        alpha,
        dense: norm,
        sparse: norm,
    })
}

/// The 1-based rank of `hits[i]`: its position, or that of the first of the consecutive
/// entries with its score.
fn shared_rank(hits: &Hits, i: usize) -> usize {
    let mut r = i;
    while r > 0 && hits[r - 1].1 == hits[i].1 {
        r -= 1;
    }
    r + 1
}

/// The same list with strictly decreasing scores, so that ranks are positions.
fn by_position(hits: &Hits) -> Hits {
    hits.iter()
        .enumerate()
        .map(|(i, &(id, _))| (id, -(i as f32)))
        .collect()
}

fn position(fused: &[FusedHit<u16>], id: u16) -> usize {
    fused.iter().position(|hit| hit.id == id).unwrap()
}

/// The output is a permutation of the union of the input ids, in a total order, with
/// explain entries that match the inputs.
fn check_output(fused: &[FusedHit<u16>], sparse: &Hits, dense: &Hits) -> Result<(), TestCaseError> {
    let union: BTreeSet<u16> = sparse.iter().chain(dense).map(|&(id, _)| id).collect();
    let out: BTreeSet<u16> = fused.iter().map(|hit| hit.id).collect();
    prop_assert_eq!(out.len(), fused.len(), "duplicate ids");
    prop_assert_eq!(&out, &union);
    for pair in fused.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        prop_assert!(
            a.score > b.score || (a.score == b.score && a.id < b.id),
            "out of order: {:?} before {:?}",
            (a.id, a.score),
            (b.id, b.score)
        );
    }
    for hit in fused {
        prop_assert!(hit.score.is_finite());
        prop_assert_eq!(hit.legs.len(), 2);
        for (entry, (leg, hits)) in hit
            .legs
            .iter()
            .zip([(Leg::Sparse, sparse), (Leg::Dense, dense)])
        {
            prop_assert_eq!(entry.leg, leg);
            let at = hits.iter().position(|&(id, _)| id == hit.id);
            prop_assert_eq!(entry.found, at.is_some());
            // The rank is the position, shared by consecutive equal scores.
            let rank = at.map(|i| shared_rank(hits, i));
            prop_assert_eq!(entry.rank, rank);
            prop_assert_eq!(entry.raw_score, at.map(|i| hits[i].1));
            prop_assert!(entry.normalized.is_finite() && entry.contribution.is_finite());
        }
        let sum: f64 = hit.legs.iter().map(|entry| entry.contribution).sum();
        prop_assert!((sum - hit.score).abs() <= 1e-12 * (1.0 + sum.abs()));
    }
    Ok(())
}

proptest! {
    #[test]
    fn output_is_a_sorted_permutation_of_the_union(
        fusion in fusion(),
        sparse in leg(any_score()),
        dense in leg(any_score()),
    ) {
        let fused = fusion.fuse(&sparse, &dense).unwrap();
        check_output(&fused, &sparse, &dense)?;
    }

    /// Scores that are not finite (NaN, infinities) are refused with an error naming the leg
    /// and rank; whatever comes back is never a NaN.
    #[test]
    fn no_nan_comes_out_of_any_scores(
        fusion in fusion(),
        sparse in leg(prop::num::f32::ANY),
        dense in leg(prop::num::f32::ANY),
    ) {
        let finite = sparse.iter().chain(&dense).all(|(_, s)| s.is_finite());
        match fusion.fuse(&sparse, &dense) {
            Ok(fused) => {
                prop_assert!(finite, "non-finite scores were accepted");
                check_output(&fused, &sparse, &dense)?;
            }
            Err(e) => {
                prop_assert!(!finite, "finite scores were refused: {e}");
                prop_assert!(e.to_string().contains("non-finite"), "{e}");
            }
        }
    }

    #[test]
    fn output_is_a_sorted_permutation_of_the_union_with_ties(
        fusion in fusion(),
        sparse in leg(grid_score()),
        dense in leg(grid_score()),
    ) {
        let fused = fusion.fuse(&sparse, &dense).unwrap();
        check_output(&fused, &sparse, &dense)?;
    }

    /// RRF reads ranks only: rescoring the lists with other scores that keep the same ties
    /// (here: none, strictly decreasing) gives the same result as the original when it had no
    /// ties; and the score is the formula with competition ranks (equal scores share the rank
    /// of the first of them).
    #[test]
    fn rrf_is_the_formula_with_shared_ranks(
        fusion in fusion(),
        sparse in leg(any_score()),
        dense in leg(any_score()),
    ) {
        let Fusion::Rrf(settings) = fusion else { return Ok(()) };
        let fused = fusion.fuse(&sparse, &dense).unwrap();
        let ties = |hits: &Hits| hits.windows(2).any(|w| w[0].1 == w[1].1);
        if !ties(&sparse) && !ties(&dense) {
            let again = fusion
                .fuse(&by_position(&sparse), &by_position(&dense))
                .unwrap();
            prop_assert_eq!(fused.len(), again.len());
            for (a, b) in fused.iter().zip(&again) {
                prop_assert_eq!(a.id, b.id);
                prop_assert_eq!(a.score, b.score);
            }
        }
        for hit in &fused {
            let term = |hits: &Hits, weight: f32| {
                hits.iter().position(|&(id, _)| id == hit.id).map_or(0.0, |i| {
                    f64::from(weight) / (f64::from(settings.k) + shared_rank(hits, i) as f64)
                })
            };
            let expected =
                term(&sparse, settings.sparse_weight) + term(&dense, settings.dense_weight);
            prop_assert!((hit.score - expected).abs() <= 1e-12);
        }
    }

    /// Documents that every leg scores equally (both absent, or both returned with the same
    /// score) fuse to the same score, with every fusion.
    #[test]
    fn equal_documents_fuse_equally(
        fusion in fusion(),
        sparse in leg(grid_score()),
        dense in leg(grid_score()),
    ) {
        let fused = fusion.fuse(&sparse, &dense).unwrap();
        let score_in = |hits: &Hits, id: u16| hits.iter().find(|h| h.0 == id).map(|h| h.1);
        for a in &fused {
            for b in &fused {
                if score_in(&sparse, a.id) == score_in(&sparse, b.id)
                    && score_in(&dense, a.id) == score_in(&dense, b.id)
                {
                    prop_assert_eq!(a.score, b.score, "{} and {}", a.id, b.id);
                }
            }
        }
    }

    /// A document a leg returned never gets less from that leg than one it did not return,
    /// with every normalisation; and when the leg's scores are all equal (one hit, say), it
    /// gets strictly more, unless it sits at a theoretical minimum. Never NaN.
    #[test]
    fn returned_documents_never_score_below_absent_ones(
        alpha in 0.0f32..=1.0,
        dense_norm in normalization(),
        sparse_norm in normalization(),
        sparse in leg(grid_score()),
        dense in leg(grid_score()),
        equal in any::<bool>(),
    ) {
        let sparse: Hits = if equal {
            sparse.iter().map(|&(id, _)| (id, 2.5)).collect()
        } else {
            sparse
        };
        let fusion = Fusion::Convex(ConvexSettings { alpha, dense: dense_norm, sparse: sparse_norm });
        let fused = fusion.fuse(&sparse, &dense).unwrap();
        for leg in [Leg::Sparse, Leg::Dense] {
            let entries: Vec<_> = fused.iter().filter_map(|h| h.leg(leg)).collect();
            for e in &entries {
                prop_assert!(e.normalized.is_finite() && e.contribution.is_finite());
            }
            let lowest_found = entries
                .iter()
                .filter(|e| e.found)
                .map(|e| e.normalized)
                .fold(f64::INFINITY, f64::min);
            for missing in entries.iter().filter(|e| !e.found) {
                prop_assert!(missing.normalized <= lowest_found, "{leg}: {missing:?} above {lowest_found}");
                if leg == Leg::Sparse && equal && lowest_found > 0.0 {
                    prop_assert!(missing.normalized < lowest_found, "no lift: {missing:?}");
                }
            }
        }
    }

    /// Bounded normalisations stay in [0, 1], and everywhere the missing-leg score is at most
    /// the leg's lowest found score.
    #[test]
    fn normalised_scores_in_range(
        norm in normalization(),
        alpha in 0.0f32..=1.0,
        sparse in leg(any_score()),
        dense in leg(any_score()),
    ) {
        let fused = convex(alpha, norm).fuse(&sparse, &dense).unwrap();
        for leg_index in 0..2 {
            let entries = fused.iter().map(|hit| &hit.legs[leg_index]);
            if norm != Normalization::ZScore {
                for entry in entries.clone() {
                    prop_assert!((0.0..=1.0).contains(&entry.normalized), "{:?}", entry);
                }
            }
            let lowest_found = entries
                .clone()
                .filter(|entry| entry.found)
                .map(|entry| entry.normalized)
                .fold(f64::INFINITY, f64::min);
            for entry in entries.filter(|entry| !entry.found) {
                prop_assert!(entry.normalized <= lowest_found, "{:?} vs {}", entry, lowest_found);
            }
        }
    }

    /// alpha = 1 ranks the documents the dense leg returned exactly by its scores (ties by
    /// id), alpha = 0 likewise for the sparse leg — for the normalisations that are strictly
    /// increasing. DBSF clips, so for it higher raw scores never rank below lower ones.
    #[test]
    fn alpha_extremes_follow_one_leg(
        norm in normalization(),
        dense_side in any::<bool>(),
        sparse in leg(grid_score()),
        dense in leg(grid_score()),
    ) {
        // Keep the scores inside the theoretical bounds, where those are strictly increasing.
        let fit = |hits: Hits| -> Hits {
            match norm {
                Normalization::Theoretical { upper: Some(_), .. } => {
                    hits.into_iter().map(|(id, s)| (id, s / 64.0)).collect()
                }
                Normalization::Theoretical { upper: None, .. } => {
                    hits.into_iter().map(|(id, s)| (id, s + 64.0)).collect()
                }
                _ => hits,
            }
        };
        let (sparse, dense) = (fit(sparse), fit(dense));
        let (alpha, side) = if dense_side { (1.0, &dense) } else { (0.0, &sparse) };
        let fused = convex(alpha, norm).fuse(&sparse, &dense).unwrap();
        let score: HashMap<u16, f32> = side.iter().copied().collect();
        let got: Vec<u16> =
            fused.iter().map(|hit| hit.id).filter(|id| score.contains_key(id)).collect();
        if norm == Normalization::Dbsf {
            let fused_score: HashMap<u16, f64> =
                fused.iter().map(|hit| (hit.id, hit.score)).collect();
            for a in &got {
                for b in &got {
                    if score[a] > score[b] {
                        prop_assert!(fused_score[a] >= fused_score[b]);
                    }
                }
            }
        } else {
            let mut expected: Vec<(u16, f32)> = side.clone();
            expected.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            let expected: Vec<u16> = expected.into_iter().map(|(id, _)| id).collect();
            prop_assert_eq!(got, expected);
        }
        // Documents that leg did not return come after, or tie with, all it did return.
        let returned = |hit: &&FusedHit<u16>| score.contains_key(&hit.id);
        if let Some(lowest) = fused.iter().filter(returned).map(|hit| hit.score).reduce(f64::min) {
            for hit in fused.iter().filter(|hit| !returned(hit)) {
                prop_assert!(hit.score <= lowest);
            }
        }
    }

    /// RRF: moving a document up in one leg's list never lowers its fused rank.
    #[test]
    fn rrf_is_monotone(
        fusion in fusion(),
        sparse in leg(grid_score()),
        dense in leg(grid_score()),
        pick in any::<prop::sample::Index>(),
        to in any::<prop::sample::Index>(),
        dense_side in any::<bool>(),
    ) {
        let Fusion::Rrf(settings) = fusion else { return Ok(()) };
        let (mut raised_sparse, mut raised_dense) = (sparse.clone(), dense.clone());
        let side = if dense_side { &mut raised_dense } else { &mut raised_sparse };
        if side.is_empty() {
            return Ok(());
        }
        let from = pick.index(side.len());
        let to = to.index(from + 1);
        let hit = side.remove(from);
        side.insert(to, hit);
        let id = hit.0;
        let run = |sparse: &Hits, dense: &Hits| {
            reciprocal_rank_fusion(
                &[
                    RrfLeg { leg: Leg::Sparse, weight: settings.sparse_weight, hits: sparse },
                    RrfLeg { leg: Leg::Dense, weight: settings.dense_weight, hits: dense },
                ],
                settings.k,
            )
            .unwrap()
        };
        // Ranks are list positions here: the scores are made strictly decreasing.
        let before = run(&by_position(&sparse), &by_position(&dense));
        let after = run(&by_position(&raised_sparse), &by_position(&raised_dense));
        prop_assert!(position(&after, id) <= position(&before, id));
    }

    /// The monotone methods (min-max and theoretical normalisation, and RRF over lists sorted
    /// by score): raising one document's score in one leg never lowers its fused score nor
    /// its fused rank.
    #[test]
    fn monotone_methods_never_lower_a_raised_document(
        alpha in 0.0f32..=1.0,
        method in prop_oneof![
            Just(Normalization::MinMax),
            Just(Normalization::cosine()),
            Just(Normalization::bm25()),
        ].prop_map(Some).boxed().prop_union(Just(None).boxed()),
        sparse in leg(grid_score()),
        dense in leg(grid_score()),
        pick in any::<prop::sample::Index>(),
        raise in 1i32..512,
        dense_side in any::<bool>(),
    ) {
        let (mut raised_sparse, mut raised_dense) = (sparse.clone(), dense.clone());
        let side = if dense_side { &mut raised_dense } else { &mut raised_sparse };
        if side.is_empty() {
            return Ok(());
        }
        let i = pick.index(side.len());
        side[i].1 += raise as f32 / 16.0;
        let id = side[i].0;
        side.sort_by(|a, b| b.1.total_cmp(&a.1));
        let fusion = match method {
            Some(norm) => convex(alpha, norm),
            None => Fusion::Rrf(RrfSettings { k: 60.0, sparse_weight: 1.0, dense_weight: alpha }),
        };
        let before = fusion.fuse(&sparse, &dense).unwrap();
        let after = fusion.fuse(&raised_sparse, &raised_dense).unwrap();
        let score = |fused: &[FusedHit<u16>]| fused[position(fused, id)].score;
        prop_assert!(score(&after) >= score(&before) - 1e-12, "{} fell", id);
        prop_assert!(
            position(&after, id) <= position(&before, id),
            "{} fell from {} to {}",
            id,
            position(&before, id),
            position(&after, id)
        );
    }
}
