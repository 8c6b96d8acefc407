//! Fusion results computed by hand on small lists.

use hybrid_search_fusion::{
    ConvexLeg, ConvexSettings, FusedHit, Fusion, FusionError, Leg, LegScore, Normalization, RrfLeg,
    RrfSettings, convex_combination, reciprocal_rank_fusion,
};

const EPS: f64 = 1e-6;

fn ids<K: Clone>(fused: &[FusedHit<K>]) -> Vec<K> {
    fused.iter().map(|hit| hit.id.clone()).collect()
}

/// Checks ids and fused scores, in order.
fn expect(fused: &[FusedHit<&str>], expected: &[(&str, f64)]) {
    assert_eq!(
        ids(fused),
        expected.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        "{fused:#?}"
    );
    for (hit, (id, score)) in fused.iter().zip(expected) {
        assert!(
            (hit.score - score).abs() < EPS,
            "{id}: fused {} expected {score}",
            hit.score
        );
    }
}

fn rrf(
    sparse: &[(&'static str, f32)],
    dense: &[(&'static str, f32)],
) -> Vec<FusedHit<&'static str>> {
    Fusion::default().fuse(sparse, dense).unwrap()
}

fn convex(
    alpha: f32,
    normalization: Normalization,
    sparse: &[(&'static str, f32)],
    dense: &[(&'static str, f32)],
) -> Vec<FusedHit<&'static str>> {
    Fusion::Convex(ConvexSettings {
        alpha,
        dense: normalization,
        sparse: normalization,
    })
    .fuse(sparse, dense)
    .unwrap()
}

// ---------------------------------------------------------------- reciprocal rank fusion

#[test]
fn rrf_k60_by_hand() {
    let sparse = [("a", 9.0), ("b", 8.0), ("c", 7.0)];
    let dense = [("d", 0.9), ("e", 0.8), ("a", 0.7)];
    // a: sparse rank 1, dense rank 3: 1/61 + 1/63 = 0.016393443 + 0.015873016 = 0.032266459
    // d: dense rank 1 only:           0 + 1/61   = 0.016393443
    // b: sparse rank 2 only:          1/62       = 0.016129032
    // e: dense rank 2 only:           1/62       = 0.016129032 (ties with b: id b < e)
    // c: sparse rank 3 only:          1/63       = 0.015873016
    let fused = rrf(&sparse, &dense);
    expect(
        &fused,
        &[
            ("a", 0.032_266_459),
            ("d", 0.016_393_443),
            ("b", 0.016_129_032),
            ("e", 0.016_129_032),
            ("c", 0.015_873_016),
        ],
    );
    assert_eq!(fused[2].score, fused[3].score); // an exact tie, broken by id
}

#[test]
fn rrf_explain_entries() {
    let sparse = [("a", 9.0), ("b", 8.0)];
    let dense = [("c", 0.9), ("a", 0.7)];
    let fused = rrf(&sparse, &dense);
    // a: 1/61 + 1/62; c: 1/61; b: 1/62.
    assert_eq!(ids(&fused), ["a", "c", "b"]);
    assert_eq!(
        fused[0].legs,
        [
            LegScore {
                leg: Leg::Sparse,
                found: true,
                rank: Some(1),
                raw_score: Some(9.0),
                normalized: 1.0 / 61.0,
                contribution: 1.0 / 61.0,
            },
            LegScore {
                leg: Leg::Dense,
                found: true,
                rank: Some(2),
                raw_score: Some(0.7),
                normalized: 1.0 / 62.0,
                contribution: 1.0 / 62.0,
            },
        ]
    );
    // c was not returned by the sparse leg: it contributes exactly 0.
    assert_eq!(
        fused[1].leg(Leg::Sparse),
        Some(&LegScore {
            leg: Leg::Sparse,
            found: false,
            rank: None,
            raw_score: None,
            normalized: 0.0,
            contribution: 0.0,
        })
    );
    assert_eq!(fused[1].score, 1.0 / 61.0);
}

#[test]
fn rrf_weights_and_small_k() {
    // k = 1, sparse [y, x], dense [x, y].
    // Equal weights: x = 1/(1+2) + 1/(1+1) = 0.8333 = y: a tie, broken by id: x, y.
    let sparse = [("y", 5.0), ("x", 4.0)];
    let dense = [("x", 0.5), ("y", 0.4)];
    let settings = |sparse_weight| {
        Fusion::Rrf(RrfSettings {
            k: 1.0,
            sparse_weight,
            dense_weight: 1.0,
        })
    };
    let fused = settings(1.0).fuse(&sparse, &dense).unwrap();
    expect(&fused, &[("x", 5.0 / 6.0), ("y", 5.0 / 6.0)]);
    // Sparse weight 2: y = 2/2 + 1/3 = 1.3333, x = 2/3 + 1/2 = 1.1667.
    let fused = settings(2.0).fuse(&sparse, &dense).unwrap();
    expect(&fused, &[("y", 4.0 / 3.0), ("x", 7.0 / 6.0)]);
    assert_eq!(fused[0].legs[0].normalized, 0.5); // 1 / (k + 1), before weighting
    assert_eq!(fused[0].legs[0].contribution, 1.0); // 2 * 0.5
    // Sparse weight 0: the sparse leg's ids stay, only the dense ranks count.
    let fused = settings(0.0).fuse(&sparse, &[("x", 0.5)]).unwrap();
    expect(&fused, &[("x", 0.5), ("y", 0.0)]);
}

#[test]
fn rrf_ignores_scores_apart_from_ties() {
    let a = rrf(&[("a", 3.0), ("b", 2.0)], &[("b", 0.9), ("c", 0.1)]);
    let b = rrf(&[("a", -100.0), ("b", 1e9)], &[("b", 0.5), ("c", 0.0)]);
    assert_eq!(ids(&a), ids(&b));
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.score, y.score);
    }
}

#[test]
fn rrf_empty_legs() {
    assert!(rrf(&[], &[]).is_empty());
    assert!(
        reciprocal_rank_fusion::<&str>(&[], 60.0)
            .unwrap()
            .is_empty()
    );
    // Only the dense leg: its order, scores 1/61, 1/62.
    let fused = rrf(&[], &[("q", 0.2), ("p", 0.1)]);
    expect(&fused, &[("q", 1.0 / 61.0), ("p", 1.0 / 62.0)]);
    assert!(!fused[0].legs[0].found);
}

#[test]
fn rrf_more_than_two_legs() {
    // Three legs (two dense models), weights 1, 1, 0.5, k = 60.
    // a: 1/61 + 0 + 0.5/61 = 0.024590164; b: 0 + 1/61 + 0.5/62 = 0.024457065.
    let first = [("a", 1.0)];
    let second = [("b", 1.0)];
    let third = [("a", 1.0), ("b", 0.5)];
    let fused = reciprocal_rank_fusion(
        &[
            RrfLeg {
                leg: Leg::Sparse,
                weight: 1.0,
                hits: &first,
            },
            RrfLeg {
                leg: Leg::Dense,
                weight: 1.0,
                hits: &second,
            },
            RrfLeg {
                leg: Leg::Dense,
                weight: 0.5,
                hits: &third,
            },
        ],
        60.0,
    )
    .unwrap();
    expect(&fused, &[("a", 0.024_590_164), ("b", 0.024_457_065)]);
    assert_eq!(fused[0].legs.len(), 3);
    // `leg()` finds the first entry of that kind.
    assert!(!fused[0].leg(Leg::Dense).unwrap().found);
}

#[test]
fn rrf_rejects_bad_input() {
    let hits = [("a", 1.0)];
    let leg = |weight, hits| RrfLeg {
        leg: Leg::Dense,
        weight,
        hits,
    };
    for k in [0.0, -1.0, f32::NAN, f32::INFINITY] {
        assert!(matches!(
            reciprocal_rank_fusion(&[leg(1.0, &hits[..])], k),
            Err(FusionError::InvalidRrfK(_))
        ));
    }
    for weight in [-0.5, f32::NAN, f32::INFINITY] {
        assert!(matches!(
            reciprocal_rank_fusion(&[leg(weight, &hits[..])], 60.0),
            Err(FusionError::InvalidWeight {
                leg: Leg::Dense,
                ..
            })
        ));
    }
    let nan = [("a", 1.0), ("b", f32::NAN)];
    assert!(matches!(
        reciprocal_rank_fusion(&[leg(1.0, &nan[..])], 60.0),
        Err(FusionError::NonFiniteScore {
            leg: Leg::Dense,
            rank: 2,
            ..
        })
    ));
    let dup = [("a", 1.0), ("b", 0.5), ("a", 0.2)];
    assert_eq!(
        reciprocal_rank_fusion(&[leg(1.0, &dup[..])], 60.0),
        Err(FusionError::DuplicateId {
            leg: Leg::Dense,
            rank: 3
        })
    );
    let err = Fusion::default()
        .fuse(&[("a", f32::NEG_INFINITY)], &[])
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the sparse leg has a non-finite score (-inf) at rank 1"
    );
}

// ---------------------------------------------------------------- convex combination

#[test]
fn convex_min_max_by_hand() {
    // Sparse min-max: min 2, max 10: a 10 -> 1, b 6 -> 0.5, c 2 -> 0; missing -> 0.
    // Dense min-max: min 0.5, max 0.9: b 0.9 -> 1, d 0.7 -> 0.5, a 0.5 -> 0; missing -> 0.
    // alpha = 0.6 (dense), sparse weight 0.4:
    // b: 0.4 * 0.5 + 0.6 * 1             = 0.8
    // a: 0.4 * 1   + 0.6 * 0             = 0.4
    // d: 0.4 * 0 (missing) + 0.6 * 0.5   = 0.3
    // c: 0.4 * 0   + 0.6 * 0 (missing)   = 0
    let sparse = [("a", 10.0), ("b", 6.0), ("c", 2.0)];
    let dense = [("b", 0.9), ("d", 0.7), ("a", 0.5)];
    let fused = convex(0.6, Normalization::MinMax, &sparse, &dense);
    expect(&fused, &[("b", 0.8), ("a", 0.4), ("d", 0.3), ("c", 0.0)]);
    // d's sparse entry: not found, the missing-leg score 0.
    let d = fused[2].leg(Leg::Sparse).unwrap();
    assert_eq!((d.found, d.rank, d.raw_score), (false, None, None));
    assert_eq!((d.normalized, d.contribution), (0.0, 0.0));
    let b = fused[0].leg(Leg::Sparse).unwrap();
    assert_eq!((b.found, b.rank, b.raw_score), (true, Some(2), Some(6.0)));
    assert!((b.normalized - 0.5).abs() < EPS && (b.contribution - 0.2).abs() < EPS);
}

#[test]
fn convex_z_score_by_hand() {
    // Sparse [a 4, b 2, c 0]: mean 2, population std sqrt(8/3) = 1.632993;
    //   z = 1.224745, 0, -1.224745; missing = lowest z = -1.224745.
    // Dense [c 3, d 1]: mean 2, std 1: z = 1, -1; missing = -1.
    // alpha 0.5:
    // a: 0.5 * 1.224745 + 0.5 * -1 (missing)        =  0.112372
    // c: 0.5 * -1.224745 + 0.5 * 1                  = -0.112372
    // b: 0.5 * 0 + 0.5 * -1 (missing)               = -0.5
    // d: 0.5 * -1.224745 (missing) + 0.5 * -1       = -1.112372
    let z = 1.5f64.sqrt() / 2.0; // 0.5 * 1.224745
    let fused = convex(
        0.5,
        Normalization::ZScore,
        &[("a", 4.0), ("b", 2.0), ("c", 0.0)],
        &[("c", 3.0), ("d", 1.0)],
    );
    expect(
        &fused,
        &[("a", z - 0.5), ("c", 0.5 - z), ("b", -0.5), ("d", -z - 0.5)],
    );
}

#[test]
fn convex_dbsf_by_hand() {
    // Sparse [a 4, b 2, c 0]: mean 2, sample std 2, bounds [-4, 8]:
    //   a 8/12 = 0.666667, b 0.5, c 4/12 = 0.333333; missing = norm(0) = 0.333333.
    // Dense [d 5]: a single hit: d -> 0.5, missing -> 0.
    // alpha 0.5:
    // d: 0.5 * 0.333333 (missing) + 0.5 * 0.5 = 0.416667
    // a: 0.5 * 0.666667 + 0                   = 0.333333
    // b: 0.5 * 0.5                             = 0.25
    // c: 0.5 * 0.333333                        = 0.166667
    let fused = convex(
        0.5,
        Normalization::Dbsf,
        &[("a", 4.0), ("b", 2.0), ("c", 0.0)],
        &[("d", 5.0)],
    );
    expect(
        &fused,
        &[
            ("d", 5.0 / 12.0),
            ("a", 1.0 / 3.0),
            ("b", 0.25),
            ("c", 1.0 / 6.0),
        ],
    );
}

#[test]
fn convex_theoretical_by_hand() {
    // Sparse BM25 s / max, max 12: a 1, b 0.25; missing = 3/12 = 0.25.
    // Dense cosine (s + 1) / 2: b 0.9, c 0.4; missing = norm(-0.2) = 0.4.
    // alpha 0.5:
    // a: 0.5 * 1 + 0.5 * 0.4 (missing)    = 0.7
    // b: 0.5 * 0.25 + 0.5 * 0.9           = 0.575
    // c: 0.5 * 0.25 (missing) + 0.5 * 0.4 = 0.325
    let fused = Fusion::Convex(ConvexSettings {
        alpha: 0.5,
        dense: Normalization::cosine(),
        sparse: Normalization::bm25(),
    })
    .fuse(&[("a", 12.0), ("b", 3.0)], &[("b", 0.8), ("c", -0.2)])
    .unwrap();
    expect(&fused, &[("a", 0.7), ("b", 0.575), ("c", 0.325)]);
}

#[test]
fn convex_constant_list() {
    // Sparse constant [a 5, b 5]: both 1; missing 0.
    // Dense [c 0.3, a 0.1]: c 1, a 0; missing 0.
    // alpha 0.4:
    // a: 0.6 * 1 + 0.4 * 0           = 0.6
    // b: 0.6 * 1 + 0.4 * 0 (missing) = 0.6 (ties with a: id a < b)
    // c: 0.6 * 0 (missing) + 0.4 * 1 = 0.4
    let fused = convex(
        0.4,
        Normalization::MinMax,
        &[("a", 5.0), ("b", 5.0)],
        &[("c", 0.3), ("a", 0.1)],
    );
    expect(&fused, &[("a", 0.6), ("b", 0.6), ("c", 0.4)]);
}

#[test]
fn convex_single_hits_tie_broken_by_id() {
    // Each leg returned one document (a degenerate list: found 1, missing 0).
    // z: 0.5 * 1 + 0.5 * 0 = 0.5; y: 0.5 * 0 + 0.5 * 1 = 0.5: tie, id ascending.
    let fused = convex(0.5, Normalization::MinMax, &[("z", 7.0)], &[("y", 0.2)]);
    expect(&fused, &[("y", 0.5), ("z", 0.5)]);
}

#[test]
fn convex_empty_legs() {
    assert!(convex(0.5, Normalization::MinMax, &[], &[]).is_empty());
    assert!(convex_combination::<&str>(&[]).unwrap().is_empty());
    // An empty sparse leg gives everyone 0: a: 0 + 0.5 * 1 = 0.5, b: 0.
    let fused = convex(0.5, Normalization::ZScore, &[], &[("a", 2.0), ("b", 1.0)]);
    // z-score of [2, 1]: mean 1.5, std 0.5: a 1, b -1 -> 0.5, -0.5.
    expect(&fused, &[("a", 0.5), ("b", -0.5)]);
    let entry = fused[0].leg(Leg::Sparse).unwrap();
    assert_eq!((entry.found, entry.normalized), (false, 0.0));
}

#[test]
fn convex_alpha_extremes() {
    let sparse = [("a", 10.0), ("b", 5.0)];
    let dense = [("b", 0.9), ("c", 0.8), ("a", 0.1)];
    // alpha = 1: the dense order (b 1, c 0.875, a 0); the sparse leg has weight 0.
    let fused = convex(1.0, Normalization::MinMax, &sparse, &dense);
    assert_eq!(ids(&fused), ["b", "c", "a"]);
    assert_eq!(fused[2].leg(Leg::Sparse).unwrap().contribution, 0.0);
    // alpha = 0: the sparse order, then c (sparse missing score 0) ties with b (sparse 0):
    // id order b, c.
    let fused = convex(0.0, Normalization::MinMax, &sparse, &dense);
    expect(&fused, &[("a", 1.0), ("b", 0.0), ("c", 0.0)]);
}

#[test]
fn convex_generic_weights() {
    // Three legs, weights 0.5, 0.25, 0.25, min-max each.
    // Leg 1 [a 2, b 1]: a 1, b 0. Leg 2 [b 3, c 1]: b 1, c 0. Leg 3 [c 4]: c 1, missing 0.
    // a: 0.5 + 0 + 0 = 0.5; b: 0 + 0.25 + 0 = 0.25; c: 0 (missing) + 0 + 0.25 = 0.25.
    let l1 = [("a", 2.0), ("b", 1.0)];
    let l2 = [("b", 3.0), ("c", 1.0)];
    let l3 = [("c", 4.0)];
    let leg = |leg, weight, hits| ConvexLeg {
        leg,
        weight,
        normalization: Normalization::MinMax,
        hits,
        absent: None,
    };
    let fused = convex_combination(&[
        leg(Leg::Sparse, 0.5, &l1[..]),
        leg(Leg::Dense, 0.25, &l2[..]),
        leg(Leg::Dense, 0.25, &l3[..]),
    ])
    .unwrap();
    expect(&fused, &[("a", 0.5), ("b", 0.25), ("c", 0.25)]);
    // Weights must sum to 1.
    assert_eq!(
        convex_combination(&[
            leg(Leg::Sparse, 0.5, &l1[..]),
            leg(Leg::Dense, 0.6, &l2[..])
        ]),
        Err(FusionError::WeightsNotConvex(1.1))
    );
    assert!(matches!(
        convex_combination(&[
            leg(Leg::Sparse, -0.5, &l1[..]),
            leg(Leg::Dense, 1.5, &l2[..])
        ]),
        Err(FusionError::InvalidWeight {
            leg: Leg::Sparse,
            ..
        })
    ));
}

#[test]
fn convex_rejects_bad_settings_and_scores() {
    for alpha in [-0.1, 1.5, f32::NAN] {
        let fusion = Fusion::Convex(ConvexSettings {
            alpha,
            ..ConvexSettings::default()
        });
        assert!(matches!(
            fusion.fuse(&[("a", 1.0)], &[]),
            Err(FusionError::InvalidAlpha(_))
        ));
    }
    let fusion = Fusion::Convex(ConvexSettings {
        dense: Normalization::Theoretical {
            lower: 1.0,
            upper: Some(-1.0),
        },
        ..ConvexSettings::default()
    });
    assert!(matches!(
        fusion.validate(),
        Err(FusionError::InvalidBounds { .. })
    ));
    let fusion = Fusion::Convex(ConvexSettings::default());
    let err = fusion
        .fuse(&[("a", 1.0)], &[("b", 0.5), ("c", f32::NAN)])
        .unwrap_err();
    assert!(
        matches!(
            err,
            FusionError::NonFiniteScore { leg: Leg::Dense, rank: 2, score } if score.is_nan()
        ),
        "{err:?}"
    );
}

// ---------------------------------------------------------------- monotonicity

/// Z-score is not monotone: raising b's dense score from 8 to 10 lets c, which the dense leg
/// did not return, overtake it.
#[test]
fn z_score_is_not_monotone() {
    // Sparse [c 8, d 7, e 5]: mean 6.6667, std 1.247219: c 1.069045, d 0.267261,
    //   e -1.336306 (the missing-leg score).
    // Dense [b 8, e 5, a 3]: mean 5.3333, std 2.054805: b 1.297771, e -0.162221,
    //   a -1.135550 (the missing-leg score).
    //   b: 0.5 * -1.336306 + 0.5 * 1.297771 = -0.019268
    //   c: 0.5 * 1.069045 + 0.5 * -1.135550 = -0.033253   -> b first.
    // Dense [b 10, e 5, a 3]: mean 6, std 2.943920: b 1.358732, e -0.339683,
    //   a -1.019049 (the missing-leg score).
    //   b: 0.5 * -1.336306 + 0.5 * 1.358732 = 0.011213
    //   c: 0.5 * 1.069045 + 0.5 * -1.019049 = 0.024998    -> c first.
    let sparse = [("c", 8.0), ("d", 7.0), ("e", 5.0)];
    let before = convex(
        0.5,
        Normalization::ZScore,
        &sparse,
        &[("b", 8.0), ("e", 5.0), ("a", 3.0)],
    );
    let after = convex(
        0.5,
        Normalization::ZScore,
        &sparse,
        &[("b", 10.0), ("e", 5.0), ("a", 3.0)],
    );
    assert_eq!(&ids(&before)[..2], ["b", "c"]);
    assert!((before[0].score + 0.019_268).abs() < EPS);
    assert_eq!(&ids(&after)[..2], ["c", "b"]);
    assert!((after[0].score - 0.024_998).abs() < EPS);
}

/// DBSF is not monotone either: raising g's dense score from 9 to 11 lets f overtake it.
#[test]
fn dbsf_is_not_monotone() {
    // Sparse [f 5, d 3, b 2]: mean 3.3333, sample std 1.527525, bounds [-1.249242, 7.915909]:
    //   f 0.681848; b (the missing-leg score) 0.354521.
    // Dense [g 9, a 8, e 7]: mean 8, std 1, bounds [5, 11]: g 0.666667, e (missing) 0.333333.
    //   g: 0.5 * 0.354521 + 0.5 * 0.666667 = 0.510594
    //   f: 0.5 * 0.681848 + 0.5 * 0.333333 = 0.507591   -> g first.
    // Dense [g 11, a 8, e 7]: mean 8.6667, std 2.081666, bounds [2.421669, 14.911665]:
    //   g 0.686816, e (missing) 0.366560.
    //   g: 0.5 * 0.354521 + 0.5 * 0.686816 = 0.520669
    //   f: 0.5 * 0.681848 + 0.5 * 0.366560 = 0.524204   -> f first.
    let sparse = [("f", 5.0), ("d", 3.0), ("b", 2.0)];
    let before = convex(
        0.5,
        Normalization::Dbsf,
        &sparse,
        &[("g", 9.0), ("a", 8.0), ("e", 7.0)],
    );
    let after = convex(
        0.5,
        Normalization::Dbsf,
        &sparse,
        &[("g", 11.0), ("a", 8.0), ("e", 7.0)],
    );
    expect(&before[..2], &[("g", 0.510_594), ("f", 0.507_591)]);
    expect(&after[..2], &[("f", 0.524_204), ("g", 0.520_669)]);
}

// ---------------------------------------------------------------- settings

#[test]
fn settings_defaults_and_serde() {
    assert_eq!(
        Fusion::default(),
        Fusion::Rrf(RrfSettings {
            k: 60.0,
            sparse_weight: 1.0,
            dense_weight: 1.0
        })
    );
    assert_eq!(
        ConvexSettings::default(),
        ConvexSettings {
            alpha: 0.5,
            dense: Normalization::MinMax,
            sparse: Normalization::MinMax
        }
    );
    assert_eq!(
        serde_json::to_string(&Fusion::default()).unwrap(),
        r#"{"method":"rrf","k":60.0,"sparse_weight":1.0,"dense_weight":1.0}"#
    );
    let convex = Fusion::Convex(ConvexSettings {
        alpha: 0.25,
        dense: Normalization::cosine(),
        sparse: Normalization::bm25(),
    });
    let json = serde_json::to_string(&convex).unwrap();
    assert_eq!(
        json,
        r#"{"method":"convex","alpha":0.25,"dense":{"kind":"theoretical","lower":-1.0,"upper":1.0},"sparse":{"kind":"theoretical","lower":0.0,"upper":null}}"#
    );
    assert_eq!(serde_json::from_str::<Fusion>(&json).unwrap(), convex);
    for norm in [
        Normalization::MinMax,
        Normalization::ZScore,
        Normalization::Dbsf,
    ] {
        let json = serde_json::to_string(&norm).unwrap();
        assert_eq!(serde_json::from_str::<Normalization>(&json).unwrap(), norm);
    }
    assert_eq!(
        serde_json::to_string(&Normalization::ZScore).unwrap(),
        r#"{"kind":"z_score"}"#
    );
    // Missing fields take their defaults.
    let partial: Fusion = serde_json::from_str(r#"{"method":"convex","alpha":0.8}"#).unwrap();
    assert_eq!(
        partial,
        Fusion::Convex(ConvexSettings {
            alpha: 0.8,
            ..ConvexSettings::default()
        })
    );
    let partial: Fusion = serde_json::from_str(r#"{"method":"rrf","k":10}"#).unwrap();
    assert_eq!(
        partial,
        Fusion::Rrf(RrfSettings {
            k: 10.0,
            ..RrfSettings::default()
        })
    );
    assert!(serde_json::from_str::<Fusion>(r#"{"method":"borda"}"#).is_err());
    // Leg and the explain output serialize too.
    assert_eq!(serde_json::to_string(&Leg::Dense).unwrap(), r#""dense""#);
    let fused = rrf(&[("a", 2.0)], &[]);
    let json = serde_json::to_value(&fused[0]).unwrap();
    assert_eq!(json["legs"][1]["found"], false);
    assert_eq!(json["legs"][0]["rank"], 1);
}

#[test]
fn settings_validate() {
    assert!(Fusion::default().validate().is_ok());
    assert!(Fusion::Convex(ConvexSettings::default()).validate().is_ok());
    let rrf = |k, dense_weight| {
        Fusion::Rrf(RrfSettings {
            k,
            sparse_weight: 1.0,
            dense_weight,
        })
    };
    assert_eq!(rrf(0.0, 1.0).validate(), Err(FusionError::InvalidRrfK(0.0)));
    assert_eq!(
        rrf(60.0, -1.0).validate(),
        Err(FusionError::InvalidWeight {
            leg: Leg::Dense,
            weight: -1.0
        })
    );
    assert_eq!(
        rrf(0.0, 1.0).fuse::<&str>(&[], &[]),
        Err(FusionError::InvalidRrfK(0.0))
    );
}

#[test]
fn a_known_absent_score_separates_the_documents_a_leg_did_not_match() {
    use hybrid_search_fusion::{ConvexSettings, Fusion, LegList};
    // BM25 matched one document; the dense leg ranks "b" above "a".
    let sparse = [("a", 7.5)];
    let dense = [("b", 0.6), ("a", 0.5), ("c", 0.1)];
    let fusion = Fusion::Convex(ConvexSettings {
        alpha: 0.5,
        dense: Normalization::cosine(),
        sparse: Normalization::bm25(),
    });
    // Unknown: a single hit is a degenerate list, so the missing documents get the theoretical
    // minimum's 0 and the one BM25 match is lifted: a = 0.5 * 1 + 0.5 * 0.75 = 0.875 against
    // b = 0.5 * 0 + 0.5 * 0.8 = 0.4.
    let fused = fusion.fuse(&sparse[..], &dense[..]).unwrap();
    assert_eq!(fused[0].id, "a");
    assert!((fused[0].score - 0.875).abs() < 1e-9);
    // Known: every other document scored 0 (7.5 hits out of a depth of 100 asked for).
    let fused = fusion
        .fuse_lists(
            LegList {
                hits: &sparse[..],
                absent: Some(0.0),
            },
            LegList::new(&dense[..]),
        )
        .unwrap();
    let ids: Vec<&str> = fused.iter().map(|h| h.id).collect();
    assert_eq!(ids, ["a", "b", "c"]);
    // a: 0.5 * 1 + 0.5 * 0.75 = 0.875; b: 0.5 * 0 + 0.5 * 0.8 = 0.4.
    assert!((fused[0].score - 0.875).abs() < 1e-9);
    assert!((fused[1].score - 0.4).abs() < 1e-6);
    assert_eq!(fused[1].leg(Leg::Sparse).unwrap().normalized, 0.0);
    // Min-max already gives missing documents 0; z-score puts them below the lowest hit.
    let z = convex_combination(&[
        ConvexLeg {
            leg: Leg::Sparse,
            weight: 1.0,
            normalization: Normalization::ZScore,
            hits: &[("a", 4.0), ("b", 2.0), ("c", 0.0)][..],
            absent: Some(0.0),
        },
        ConvexLeg {
            leg: Leg::Dense,
            weight: 0.0,
            normalization: Normalization::ZScore,
            hits: &[("d", 1.0)][..],
            absent: None,
        },
    ])
    .unwrap();
    let d = z.iter().find(|h| h.id == "d").unwrap();
    let c = z.iter().find(|h| h.id == "c").unwrap();
    assert_eq!(
        d.score, c.score,
        "absent 0 = the lowest hit's 0: same z-score"
    );
    let bad = convex_combination(&[ConvexLeg {
        leg: Leg::Sparse,
        weight: 1.0,
        normalization: Normalization::MinMax,
        hits: &[("a", 1.0)][..],
        absent: Some(f32::NAN),
    }]);
    assert!(matches!(
        bad,
        Err(FusionError::NonFiniteScore { rank: 0, .. })
    ));
}

#[test]
fn a_single_bm25_match_is_lifted_by_every_normalisation() {
    use hybrid_search_fusion::{ConvexSettings, Fusion};
    // The query matches one document in BM25; the dense leg prefers two others.
    let sparse = [("exact", 9.0)];
    let dense = [("b", 0.62), ("c", 0.61), ("exact", 0.60)];
    for norm in [
        Normalization::MinMax,
        Normalization::ZScore,
        Normalization::Dbsf,
        Normalization::bm25(),
        Normalization::cosine(),
    ] {
        let fusion = Fusion::Convex(ConvexSettings {
            alpha: 0.5,
            dense: Normalization::MinMax,
            sparse: norm,
        });
        let fused = fusion.fuse(&sparse[..], &dense[..]).unwrap();
        let exact = fused.iter().find(|h| h.id == "exact").unwrap();
        let b = fused.iter().find(|h| h.id == "b").unwrap();
        let (found, missing) = (
            exact.leg(Leg::Sparse).unwrap().normalized,
            b.leg(Leg::Sparse).unwrap().normalized,
        );
        assert!(found > missing, "{norm:?}: {found} vs {missing}");
        assert!(fused.iter().all(|h| h.score.is_finite()), "{norm:?}");
    }
    // z-score pinned: the hit is at the mean (0), the others one unit below.
    let fusion = Fusion::Convex(ConvexSettings {
        alpha: 0.5,
        dense: Normalization::MinMax,
        sparse: Normalization::ZScore,
    });
    let fused = fusion.fuse(&sparse[..], &dense[..]).unwrap();
    let exact = fused.iter().find(|h| h.id == "exact").unwrap();
    assert_eq!(exact.leg(Leg::Sparse).unwrap().normalized, 0.0);
    let b = fused.iter().find(|h| h.id == "b").unwrap();
    assert_eq!(b.leg(Leg::Sparse).unwrap().normalized, -1.0);
    // exact: 0.5 * 0 + 0.5 * 0 = 0; b: 0.5 * -1 + 0.5 * 1 = 0; c: 0.5 * -1 + 0.5 * 0.5 = -0.25.
    assert_eq!(fused[0].id, "b"); // tie at 0, id order
    assert_eq!(fused[1].id, "exact");
    assert!((fused[1].score - 0.0).abs() < 1e-12 && fused[2].score < 0.0);
}

#[test]
fn identical_documents_share_their_rrf_ranks() {
    // Two copies of one text: equal BM25 scores and equal cosines.
    let sparse = [("copy-1", 7.0), ("copy-2", 7.0), ("other", 3.0)];
    let dense = [("other", 0.9), ("copy-1", 0.8), ("copy-2", 0.8)];
    let fused = rrf(&sparse, &dense);
    let score = |id: &str| fused.iter().find(|h| h.id == id).unwrap().score;
    assert_eq!(score("copy-1"), score("copy-2"));
    // Ranks 1 and 1 in the sparse leg (competition ranking), 2 and 2 in the dense one.
    assert!((score("copy-1") - (1.0 / 61.0 + 1.0 / 62.0)).abs() < 1e-12);
    let copy2 = fused.iter().find(|h| h.id == "copy-2").unwrap();
    assert_eq!(copy2.leg(Leg::Sparse).unwrap().rank, Some(1));
    assert_eq!(copy2.leg(Leg::Dense).unwrap().rank, Some(2));
    // The next distinct score keeps its position: "other" is third in BM25.
    let other = fused.iter().find(|h| h.id == "other").unwrap();
    assert_eq!(other.leg(Leg::Sparse).unwrap().rank, Some(3));
}
