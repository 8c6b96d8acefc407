//! The vector indexes: exact search on hand-made vectors, several vectors per key, removal,
//! atomic save and load, broken files, and HNSW recall against brute force on clustered data.
//! No model is needed.

use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use hybrid_search_dense::{
    ExactIndex, HnswIndex, Metric, Scalar, SplitMix64, VectorIndex, VectorSettings, recall_at,
};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A vector of `dim` standard normal draws.
fn gaussian_vector(rng: &mut SplitMix64, dim: usize) -> Vec<f32> {
    (0..dim).map(|_| rng.normal() as f32).collect()
}

fn normalized(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    for x in &mut v {
        *x /= norm;
    }
    v
}

/// A point of a cluster: the centre plus noise of relative size `spread`, normalised. The spread
/// varies per point, as in real embeddings, where some texts sit close to their topic and
/// others far.
fn near(rng: &mut SplitMix64, centre: &[f32], spread: f32) -> Vec<f32> {
    let scale = spread / (centre.len() as f32).sqrt();
    normalized(
        centre
            .iter()
            .map(|c| c + scale * rng.normal() as f32)
            .collect(),
    )
}

fn settings(dim: usize) -> VectorSettings {
    VectorSettings::new(dim)
}

fn keys(results: &[(u64, f32)]) -> Vec<u64> {
    results.iter().map(|(key, _)| *key).collect()
}

fn assert_close(a: f32, b: f32) {
    assert!((a - b).abs() < 1e-5, "{a} != {b}");
}

fn assert_distinct_and_sorted(results: &[(u64, f32)]) {
    let mut seen = std::collections::HashSet::new();
    for (key, _) in results {
        assert!(seen.insert(*key), "key {key} returned twice in {results:?}");
    }
    for pair in results.windows(2) {
        assert!(
            pair[0].1 > pair[1].1 || (pair[0].1 == pair[1].1 && pair[0].0 < pair[1].0),
            "not sorted: {results:?}"
        );
    }
}

/// Runs `check` on both implementations.
fn both(dim: usize, check: impl Fn(&mut dyn VectorIndex, &str)) {
    let mut exact = ExactIndex::new(settings(dim)).unwrap();
    check(&mut exact, "exact");
    let mut hnsw = HnswIndex::new(settings(dim)).unwrap();
    check(&mut hnsw, "hnsw");
}

fn no_tmp_files(dir: &Path) {
    let leftovers: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|name| name.to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

// ---------------------------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------------------------

#[test]
fn settings_defaults_and_serde() {
    let s = VectorSettings::new(384);
    assert_eq!(s.dim, 384);
    assert_eq!(s.metric, Metric::Cosine);
    assert_eq!(s.scalar, Scalar::F32);
    assert_eq!(
        (s.connectivity, s.expansion_add, s.expansion_search),
        (16, 128, 64)
    );

    let json = serde_json::to_string(&s).unwrap();
    assert!(json.contains("\"metric\":\"cosine\""), "{json}");
    assert!(json.contains("\"scalar\":\"f32\""), "{json}");
    let back: VectorSettings = serde_json::from_str(&json).unwrap();
    assert_eq!(back, s);

    assert_eq!(
        serde_json::to_string(&Metric::InnerProduct).unwrap(),
        "\"inner_product\""
    );
    assert_eq!(serde_json::to_string(&Scalar::BF16).unwrap(), "\"bf16\"");
    assert_eq!(serde_json::to_string(&Scalar::I8).unwrap(), "\"i8\"");

    assert!(ExactIndex::new(VectorSettings::new(0)).is_err());
    assert!(HnswIndex::new(VectorSettings::new(0)).is_err());
}

// ---------------------------------------------------------------------------------------------
// Search semantics
// ---------------------------------------------------------------------------------------------

#[test]
fn exact_cosine_on_hand_made_vectors() {
    let mut index = ExactIndex::new(settings(3)).unwrap();
    index.add(1, &[1.0, 0.0, 0.0]).unwrap();
    index.add(2, &[0.0, 2.0, 0.0]).unwrap(); // length does not matter for cosine
    index.add(3, &[1.0, 1.0, 0.0]).unwrap();
    index.add(4, &[-1.0, 0.0, 0.0]).unwrap();
    assert_eq!(index.len(), 4);

    let results = index.search(&[1.0, 0.0, 0.0], 10).unwrap();
    assert_eq!(keys(&results), vec![1, 3, 2, 4]);
    assert_close(results[0].1, 1.0);
    assert_close(results[1].1, std::f32::consts::FRAC_1_SQRT_2);
    assert_close(results[2].1, 0.0);
    assert_close(results[3].1, -1.0);

    // k limits the answer.
    assert_eq!(
        keys(&index.search(&[0.0, 1.0, 0.1], 2).unwrap()),
        vec![2, 3]
    );
    assert!(index.search(&[0.0, 1.0, 0.1], 0).unwrap().is_empty());
}

#[test]
fn exact_inner_product_uses_the_dot_product() {
    let mut s = settings(2);
    s.metric = Metric::InnerProduct;
    let mut index = ExactIndex::new(s).unwrap();
    index.add(1, &[1.0, 0.0]).unwrap();
    index.add(2, &[3.0, 0.0]).unwrap(); // longer: wins under the inner product
    index.add(3, &[0.0, 1.0]).unwrap();
    let results = index.search(&[2.0, 0.5], 3).unwrap();
    assert_eq!(keys(&results), vec![2, 1, 3]);
    assert_close(results[0].1, 6.0);
    assert_close(results[1].1, 2.0);
    assert_close(results[2].1, 0.5);
}

#[test]
fn hnsw_inner_product_matches_exact() {
    let mut s = settings(2);
    s.metric = Metric::InnerProduct;
    let mut exact = ExactIndex::new(s.clone()).unwrap();
    let mut hnsw = HnswIndex::new(s).unwrap();
    for index in [&mut exact as &mut dyn VectorIndex, &mut hnsw] {
        index.add(1, &[1.0, 0.0]).unwrap();
        index.add(2, &[3.0, 0.0]).unwrap();
        index.add(3, &[0.0, 1.0]).unwrap();
    }
    let a = exact.search(&[2.0, 0.5], 3).unwrap();
    let b = hnsw.search(&[2.0, 0.5], 3).unwrap();
    assert_eq!(keys(&a), keys(&b));
    for (x, y) in a.iter().zip(&b) {
        assert_close(x.1, y.1);
    }
}

#[test]
fn ties_are_ordered_by_key() {
    both(2, |index, name| {
        for key in [9, 4, 7] {
            index.add(key, &[1.0, 1.0]).unwrap();
        }
        index.add(1, &[0.0, 1.0]).unwrap();
        let results = index.search(&[1.0, 1.0], 4).unwrap();
        assert_eq!(keys(&results), vec![4, 7, 9, 1], "{name}");
        assert_distinct_and_sorted(&results);
    });
}

#[test]
fn best_window_wins_and_keys_are_distinct() {
    both(3, |index, name| {
        // Key 1 is a long document with three windows; key 2 and 3 have one each.
        index.add(1, &[1.0, 0.0, 0.0]).unwrap();
        index.add(1, &[0.0, 0.0, 1.0]).unwrap();
        index.add(1, &[0.0, 0.1, 1.0]).unwrap();
        index.add(2, &[0.0, 1.0, 0.0]).unwrap();
        index.add(3, &[0.0, 0.6, 0.8]).unwrap();
        assert_eq!(index.len(), 3, "{name}: distinct keys");

        let results = index.search(&[0.0, 0.0, 1.0], 10).unwrap();
        assert_eq!(keys(&results), vec![1, 3, 2], "{name}");
        assert_close(results[0].1, 1.0); // its best window, not an average
        assert_close(results[1].1, 0.8);
        assert_distinct_and_sorted(&results);

        // Asking for one key gives the key once, not its windows.
        assert_eq!(keys(&index.search(&[0.0, 0.0, 1.0], 1).unwrap()), vec![1]);
        // Its other window wins for another query.
        let results = index.search(&[1.0, 0.0, 0.0], 2).unwrap();
        assert_eq!(results[0].0, 1, "{name}");
        assert_close(results[0].1, 1.0);
    });
}

/// Many windows per key sitting together: a plain usearch search for k vectors would return a
/// few keys many times over; the index must keep asking until it has k distinct keys.
#[test]
fn hnsw_many_windows_per_key_still_gives_k_distinct_keys() {
    let dim = 32;
    let mut rng = SplitMix64::new(7);
    let mut exact = ExactIndex::new(settings(dim)).unwrap();
    let mut hnsw = HnswIndex::new(settings(dim)).unwrap();
    let mut centres = Vec::new();
    for key in 0..300u64 {
        let centre = normalized(gaussian_vector(&mut rng, dim));
        for _ in 0..8 {
            let window = near(&mut rng, &centre, 0.2);
            exact.add(key, &window).unwrap();
            hnsw.add(key, &window).unwrap();
        }
        centres.push(centre);
    }
    assert_eq!(exact.len(), 300);
    assert_eq!(hnsw.len(), 300);

    let mut total = 0.0;
    for centre in centres.iter().take(50) {
        let query = near(&mut rng, centre, 0.1);
        let a = exact.search(&query, 10).unwrap();
        let b = hnsw.search(&query, 10).unwrap();
        assert_eq!(a.len(), 10);
        assert_eq!(b.len(), 10, "{b:?}");
        assert_distinct_and_sorted(&a);
        assert_distinct_and_sorted(&b);
        assert_eq!(a[0].0, b[0].0);
        total += recall_at(&a, &b, 10);
    }
    let recall = total / 50.0;
    println!("recall@10 with 8 windows per key: {recall:.4}");
    assert!(recall >= 0.95, "recall@10 {recall}");

    // Asking for every key returns every key once.
    let all = hnsw.search(&centres[0], 1000).unwrap();
    assert_eq!(all.len(), 300);
    assert_distinct_and_sorted(&all);
}

/// Evidence for the design: usearch's own search on a `multi` index returns one entry per
/// vector, so a key with several close vectors comes back several times.
#[test]
fn usearch_multi_search_repeats_keys() {
    let options = usearch::IndexOptions {
        dimensions: 2,
        metric: usearch::MetricKind::Cos,
        quantization: usearch::ScalarKind::F32,
        connectivity: 16,
        expansion_add: 128,
        expansion_search: 64,
        multi: true,
    };
    let index = usearch::Index::new(&options).unwrap();
    index.reserve(16).unwrap();
    index.add(1, &[1.0f32, 0.0]).unwrap();
    index.add(1, &[1.0f32, 0.01]).unwrap();
    index.add(1, &[1.0f32, 0.02]).unwrap();
    index.add(2, &[0.0f32, 1.0]).unwrap();
    assert_eq!(index.size(), 4);
    assert_eq!(index.count(1), 3);
    let matches = index.search(&[1.0f32, 0.0], 3).unwrap();
    println!("usearch multi search for 3: {:?}", matches.keys);
    assert_eq!(matches.keys, vec![1, 1, 1]);

    // Our wrapper returns distinct keys.
    let mut ours = HnswIndex::new(settings(2)).unwrap();
    ours.add(1, &[1.0, 0.0]).unwrap();
    ours.add(1, &[1.0, 0.01]).unwrap();
    ours.add(1, &[1.0, 0.02]).unwrap();
    ours.add(2, &[0.0, 1.0]).unwrap();
    assert_eq!(keys(&ours.search(&[1.0, 0.0], 3).unwrap()), vec![1, 2]);
}

/// usearch widens the search to at least the number of results asked for, whatever
/// `expansion_search` says: with an expansion of 1 a search for 10 still returns 10 good ones.
#[test]
fn hnsw_expansion_is_at_least_k() {
    let dim = 16;
    let mut rng = SplitMix64::new(11);
    let mut s = settings(dim);
    s.expansion_search = 1;
    let mut hnsw = HnswIndex::new(s).unwrap();
    let mut exact = ExactIndex::new(settings(dim)).unwrap();
    for key in 0..2000 {
        let v = normalized(gaussian_vector(&mut rng, dim));
        hnsw.add(key, &v).unwrap();
        exact.add(key, &v).unwrap();
    }
    let mut total = 0.0;
    for _ in 0..50 {
        let q = normalized(gaussian_vector(&mut rng, dim));
        let b = hnsw.search(&q, 10).unwrap();
        assert_eq!(b.len(), 10);
        total += recall_at(&exact.search(&q, 10).unwrap(), &b, 10);
    }
    println!("recall@10 with expansion_search = 1: {:.3}", total / 50.0);
    assert!(total / 50.0 >= 0.8);
}

#[test]
fn remove_drops_every_window_of_a_key() {
    both(2, |index, name| {
        index.add(1, &[1.0, 0.0]).unwrap();
        index.add(1, &[0.9, 0.1]).unwrap();
        index.add(2, &[0.8, 0.2]).unwrap();
        index.add(3, &[0.0, 1.0]).unwrap();
        assert_eq!(index.remove(1).unwrap(), 2, "{name}");
        assert_eq!(index.remove(1).unwrap(), 0, "{name}: already gone");
        assert_eq!(index.remove(42).unwrap(), 0, "{name}: never there");
        assert!(!index.contains(1));
        assert!(index.contains(2));
        assert_eq!(index.len(), 2);
        assert_eq!(keys(&index.search(&[1.0, 0.0], 10).unwrap()), vec![2, 3]);

        // A removed key can come back (a re-indexed document).
        index.add(1, &[1.0, 0.0]).unwrap();
        assert_eq!(index.len(), 3);
        assert_eq!(keys(&index.search(&[1.0, 0.0], 10).unwrap()), vec![1, 2, 3]);

        for key in [1, 2, 3] {
            assert_eq!(index.remove(key).unwrap(), 1, "{name}");
        }
        assert!(index.is_empty());
        assert!(index.search(&[1.0, 0.0], 10).unwrap().is_empty());
    });
}

#[test]
fn wrong_dimension_is_an_error_naming_both_sizes() {
    both(4, |index, name| {
        let err = index.add(1, &[1.0; 5]).unwrap_err().to_string();
        assert!(err.contains('5') && err.contains('4'), "{name}: {err}");
        index.add(1, &[1.0; 4]).unwrap();
        let err = index.search(&[1.0; 3], 1).unwrap_err().to_string();
        assert!(err.contains('3') && err.contains('4'), "{name}: {err}");
    });
}

#[test]
fn reserved_key_and_non_finite_values_are_rejected() {
    both(2, |index, name| {
        assert!(index.add(u64::MAX, &[1.0, 0.0]).is_err(), "{name}");
        assert!(index.add(1, &[f32::NAN, 0.0]).is_err(), "{name}");
        assert!(index.add(1, &[f32::INFINITY, 0.0]).is_err(), "{name}");
        assert!(index.is_empty(), "{name}");
        index.add(1, &[1.0, 0.0]).unwrap();
        assert!(index.search(&[f32::NAN, 0.0], 1).is_err(), "{name}");
    });
}

#[test]
fn recall_at_counts_shared_keys() {
    let exact = [(1, 0.9), (2, 0.8), (3, 0.7)];
    assert_eq!(recall_at(&exact, &[(1, 0.9), (2, 0.8), (3, 0.7)], 3), 1.0);
    assert_eq!(
        recall_at(&exact, &[(3, 0.7), (9, 0.75), (1, 0.9)], 3),
        2.0 / 3.0
    );
    assert_eq!(recall_at(&exact, &[(1, 0.9)], 2), 0.5);
    assert_eq!(recall_at(&exact[..1], &[(1, 0.9)], 10), 1.0);
    assert_eq!(recall_at(&[], &[], 10), 1.0);
}

#[test]
fn hnsw_searches_from_many_threads_at_once() {
    let dim = 16;
    let mut rng = SplitMix64::new(5);
    let mut hnsw = HnswIndex::new(settings(dim)).unwrap();
    for key in 0..500 {
        hnsw.add(key, &normalized(gaussian_vector(&mut rng, dim)))
            .unwrap();
    }
    let queries: Vec<Vec<f32>> = (0..32).map(|_| gaussian_vector(&mut rng, dim)).collect();
    let index = &hnsw;
    // More threads than usearch reserved per-thread buffers for (one per CPU).
    std::thread::scope(|scope| {
        for chunk in queries.chunks(2) {
            scope.spawn(move || {
                for _ in 0..20 {
                    for q in chunk {
                        assert_eq!(index.search(q, 5).unwrap().len(), 5);
                    }
                }
            });
        }
    });
}

#[test]
fn hnsw_smaller_scalars_find_duplicates() {
    let dim = 64;
    for scalar in [Scalar::F16, Scalar::BF16, Scalar::I8] {
        let mut rng = SplitMix64::new(3);
        let mut s = settings(dim);
        s.scalar = scalar;
        let mut hnsw = HnswIndex::new(s).unwrap();
        let vectors: Vec<Vec<f32>> = (0..300)
            .map(|_| normalized(gaussian_vector(&mut rng, dim)))
            .collect();
        for (key, v) in vectors.iter().enumerate() {
            hnsw.add(key as u64, v).unwrap();
        }
        for (key, v) in vectors.iter().enumerate().step_by(10) {
            let top = hnsw.search(v, 1).unwrap();
            assert_eq!(top[0].0, key as u64, "{scalar:?}");
            assert!(top[0].1 > 0.95, "{scalar:?}: {}", top[0].1);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------------

fn fill(index: &mut dyn VectorIndex, rng: &mut SplitMix64, keys: u64) {
    let dim = index.settings().dim;
    for key in 0..keys {
        let centre = normalized(gaussian_vector(rng, dim));
        index.add(key, &centre).unwrap();
        if key % 3 == 0 {
            index.add(key, &near(rng, &centre, 0.5)).unwrap();
        }
    }
    index.remove(5).unwrap();
}

fn assert_same_answers(a: &dyn VectorIndex, b: &dyn VectorIndex, rng: &mut SplitMix64) {
    assert_eq!(a.len(), b.len());
    assert_eq!(a.settings(), b.settings());
    for key in 0..200 {
        assert_eq!(a.contains(key), b.contains(key), "key {key}");
    }
    let dim = a.settings().dim;
    for _ in 0..20 {
        let q = normalized(gaussian_vector(rng, dim));
        assert_eq!(a.search(&q, 10).unwrap(), b.search(&q, 10).unwrap());
    }
}

#[test]
fn exact_save_load_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vectors.exact");
    let mut rng = SplitMix64::new(1);
    let mut index = ExactIndex::new(settings(24)).unwrap();
    fill(&mut index, &mut rng, 150);
    index.save(&path).unwrap();
    no_tmp_files(dir.path());
    let loaded = ExactIndex::load(&path, settings(24)).unwrap();
    assert_same_answers(&index, &loaded, &mut rng);

    // Saving again replaces the file (and still leaves nothing behind).
    index
        .add(1000, &normalized(gaussian_vector(&mut rng, 24)))
        .unwrap();
    index.save(&path).unwrap();
    no_tmp_files(dir.path());
    let loaded = ExactIndex::load(&path, settings(24)).unwrap();
    assert!(loaded.contains(1000));
    assert_same_answers(&index, &loaded, &mut rng);

    // An empty index round-trips too.
    let empty = ExactIndex::new(settings(24)).unwrap();
    empty.save(&path).unwrap();
    assert!(ExactIndex::load(&path, settings(24)).unwrap().is_empty());
}

#[test]
fn hnsw_save_load_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vectors.hnsw");
    let mut rng = SplitMix64::new(2);
    let mut index = HnswIndex::new(settings(24)).unwrap();
    fill(&mut index, &mut rng, 150);
    index.save(&path).unwrap();
    no_tmp_files(dir.path());
    let mut loaded = HnswIndex::load(&path, settings(24)).unwrap();
    assert_same_answers(&index, &loaded, &mut rng);

    // The loaded index keeps working: adds beyond its loaded capacity, removes, saves.
    for key in 1000..1300 {
        loaded
            .add(key, &normalized(gaussian_vector(&mut rng, 24)))
            .unwrap();
    }
    assert_eq!(loaded.remove(0).unwrap(), 2);
    assert_eq!(loaded.len(), index.len() + 300 - 1);
    loaded.save(&path).unwrap();
    no_tmp_files(dir.path());
    let again = HnswIndex::load(&path, settings(24)).unwrap();
    assert_same_answers(&loaded, &again, &mut rng);

    // An empty index round-trips too.
    let empty = HnswIndex::new(settings(24)).unwrap();
    empty.save(&path).unwrap();
    let empty = HnswIndex::load(&path, settings(24)).unwrap();
    assert!(empty.is_empty());
    assert!(empty.search(&[0.5; 24], 3).unwrap().is_empty());
}

#[test]
fn missing_files_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nothing-here");
    let err = ExactIndex::load(&path, settings(4))
        .unwrap_err()
        .to_string();
    assert!(err.contains("nothing-here"), "{err}");
    let err = HnswIndex::load(&path, settings(4)).unwrap_err().to_string();
    assert!(err.contains("nothing-here"), "{err}");
}

/// Every prefix of a saved file must fail to load with a message naming the file, never load
/// silently or crash.
fn check_truncations(path: &Path, load: impl Fn(&Path) -> Result<(), String>) {
    let bytes = std::fs::read(path).unwrap();
    let cut_path = path.with_extension("cut");
    let len = bytes.len();
    let mut cuts = vec![
        0,
        1,
        3,
        10,
        23,
        24,
        25,
        len / 3,
        len / 2,
        len - 25,
        len - 24,
        len - 8,
        len - 1,
    ];
    cuts.retain(|&c| c < len);
    for cut in cuts {
        std::fs::write(&cut_path, &bytes[..cut]).unwrap();
        let err = load(&cut_path).expect_err(&format!("a {cut}-byte prefix of {len} loaded"));
        assert!(err.contains("vectors.cut"), "{err}");
        assert!(err.contains("hybrid-search index"), "{err}");
    }
}

#[test]
fn truncated_files_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = SplitMix64::new(4);

    let path = dir.path().join("vectors.exact");
    let mut exact = ExactIndex::new(settings(8)).unwrap();
    fill(&mut exact, &mut rng, 20);
    exact.save(&path).unwrap();
    check_truncations(&path, |p| {
        ExactIndex::load(p, settings(8))
            .map(drop)
            .map_err(|e| e.to_string())
    });

    let path = dir.path().join("vectors.hnsw");
    let mut hnsw = HnswIndex::new(settings(8)).unwrap();
    fill(&mut hnsw, &mut rng, 20);
    hnsw.save(&path).unwrap();
    check_truncations(&path, |p| {
        HnswIndex::load(p, settings(8))
            .map(drop)
            .map_err(|e| e.to_string())
    });
    let err = ExactIndex::load(&path, settings(8))
        .unwrap_err()
        .to_string();
    assert!(err.contains("magic"), "{err}");
}

/// A usearch part cut short behind a footer that agrees with it: usearch itself must report the
/// damage as an error.
#[test]
fn hnsw_truncated_usearch_part_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vectors.hnsw");
    let mut rng = SplitMix64::new(6);
    let mut hnsw = HnswIndex::new(settings(8)).unwrap();
    fill(&mut hnsw, &mut rng, 50);
    hnsw.save(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let (body, footer) = bytes.split_at(bytes.len() - 24);
    for keep in [8, body.len() / 2, body.len() - 1] {
        let mut damaged = body[..keep].to_vec();
        damaged.extend_from_slice(&footer[..16]);
        damaged.extend_from_slice(&(keep as u64).to_le_bytes());
        std::fs::write(&path, &damaged).unwrap();
        let err = HnswIndex::load(&path, settings(8)).unwrap_err().to_string();
        assert!(err.contains("vectors.hnsw"), "{err}");
        println!("{keep} of {} usearch bytes: {err}", body.len());
    }
}

#[test]
fn loading_with_other_settings_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = SplitMix64::new(8);

    let path = dir.path().join("vectors.exact");
    let mut exact = ExactIndex::new(settings(8)).unwrap();
    fill(&mut exact, &mut rng, 10);
    exact.save(&path).unwrap();
    let err = ExactIndex::load(&path, settings(16))
        .unwrap_err()
        .to_string();
    assert!(err.contains("8-dimensional") && err.contains("16"), "{err}");

    let path = dir.path().join("vectors.hnsw");
    let mut hnsw = HnswIndex::new(settings(8)).unwrap();
    fill(&mut hnsw, &mut rng, 10);
    hnsw.save(&path).unwrap();
    let err = HnswIndex::load(&path, settings(16))
        .unwrap_err()
        .to_string();
    assert!(err.contains("8-dimensional") && err.contains("16"), "{err}");
    let mut other = settings(8);
    other.metric = Metric::InnerProduct;
    let err = HnswIndex::load(&path, other).unwrap_err().to_string();
    assert!(err.contains("metric"), "{err}");
    let mut other = settings(8);
    other.scalar = Scalar::F16;
    assert!(HnswIndex::load(&path, other).is_err());
    // Not an HNSW file.
    let err = HnswIndex::load(&dir.path().join("vectors.exact"), settings(8))
        .unwrap_err()
        .to_string();
    assert!(err.contains("footer"), "{err}");
}

#[test]
fn garbage_files_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("garbage");
    let mut rng = SplitMix64::new(9);
    let bytes: Vec<u8> = (0..10_000).map(|_| rng.next_u64() as u8).collect();
    std::fs::write(&path, &bytes).unwrap();
    assert!(ExactIndex::load(&path, settings(8)).is_err());
    assert!(HnswIndex::load(&path, settings(8)).is_err());
}

// ---------------------------------------------------------------------------------------------
// Recall on clustered data
// ---------------------------------------------------------------------------------------------

const DIM: usize = 384;
const VECTORS: usize = 20_000;
const CLUSTERS: usize = 200;
const QUERIES: usize = 200;

struct Fixture {
    vectors: Vec<Vec<f32>>,
    queries: Vec<Vec<f32>>,
    exact: ExactIndex,
    hnsw: HnswIndex,
    hnsw_build: Duration,
}

/// 20,000 normalised 384-d vectors in 200 clusters, with a spread per point between 0.4 and
/// 1.4 (cosine to the centre from about 0.93 down to 0.58), and 200 queries drawn the same way.
/// Built once and shared by the tests that need it.
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let mut rng = SplitMix64::new(2024);
        let centres: Vec<Vec<f32>> = (0..CLUSTERS)
            .map(|_| normalized(gaussian_vector(&mut rng, DIM)))
            .collect();
        let draw = |rng: &mut SplitMix64| {
            let centre = &centres[(rng.next_u64() % CLUSTERS as u64) as usize];
            let spread = 0.4 + rng.uniform() as f32;
            near(rng, centre, spread)
        };
        let vectors: Vec<Vec<f32>> = (0..VECTORS).map(|_| draw(&mut rng)).collect();
        let queries: Vec<Vec<f32>> = (0..QUERIES).map(|_| draw(&mut rng)).collect();

        let mut exact = ExactIndex::new(settings(DIM)).unwrap();
        let mut hnsw = HnswIndex::new(settings(DIM)).unwrap();
        let start = Instant::now();
        for (key, v) in vectors.iter().enumerate() {
            hnsw.add(key as u64, v).unwrap();
        }
        let hnsw_build = start.elapsed();
        for (key, v) in vectors.iter().enumerate() {
            exact.add(key as u64, v).unwrap();
        }
        Fixture {
            vectors,
            queries,
            exact,
            hnsw,
            hnsw_build,
        }
    })
}

#[test]
fn hnsw_recall_at_10_on_clustered_vectors() {
    let start = Instant::now();
    let f = fixture();
    let setup = start.elapsed();

    let (mut exact_time, mut hnsw_time) = (Duration::ZERO, Duration::ZERO);
    let mut recalls = Vec::with_capacity(QUERIES);
    for q in &f.queries {
        let t = Instant::now();
        let truth = f.exact.search(q, 10).unwrap();
        exact_time += t.elapsed();
        let t = Instant::now();
        let approx = f.hnsw.search(q, 10).unwrap();
        hnsw_time += t.elapsed();
        assert_eq!(approx.len(), 10);
        assert_distinct_and_sorted(&approx);
        recalls.push(recall_at(&truth, &approx, 10));
    }
    let mean = recalls.iter().sum::<f64>() / recalls.len() as f64;
    let worst = recalls.iter().cloned().fold(1.0, f64::min);
    let perfect = recalls.iter().filter(|&&r| r == 1.0).count();
    println!(
        "HNSW recall@10 over {QUERIES} queries on {VECTORS} clustered {DIM}-d vectors: \
         mean {mean:.4}, worst {worst:.2}, {perfect} perfect; \
         fixture {setup:.2?} (HNSW build {:.2?}), search: exact {:.2?}/query, hnsw {:.2?}/query",
        f.hnsw_build,
        exact_time / QUERIES as u32,
        hnsw_time / QUERIES as u32,
    );
    assert!(mean >= 0.95, "mean recall@10 {mean:.4} < 0.95");
}

/// A stored vector used as the query must come back first. Exact search always does; HNSW
/// with usearch's default `expansion_search` (64) misses a few here: in these flat clusters of
/// about 100 nearly equidistant points a beam of 64 candidates cannot cover the cluster. A beam
/// of 128 (a search-time setting, so the saved index is just reloaded with it) finds them all.
#[test]
fn hnsw_and_exact_agree_on_exact_duplicate_queries() {
    let f = fixture();
    let sample: Vec<usize> = (0..VECTORS).step_by(VECTORS / 200).collect();
    let misses = |hnsw: &HnswIndex| -> Vec<usize> {
        let mut missed = Vec::new();
        for &key in &sample {
            let query = &f.vectors[key];
            let exact = f.exact.search(query, 1).unwrap();
            assert_eq!(exact[0].0, key as u64);
            assert_close(exact[0].1, 1.0);
            let hnsw = hnsw.search(query, 1).unwrap();
            if hnsw[0].0 == key as u64 {
                assert!((hnsw[0].1 - 1.0).abs() < 1e-4, "{hnsw:?}");
            } else {
                assert!(
                    hnsw[0].1 < 1.0 - 1e-4,
                    "a different key at similarity 1: {hnsw:?}"
                );
                missed.push(key);
            }
        }
        missed
    };

    let default_misses = misses(&f.hnsw);
    println!(
        "exact-duplicate queries: HNSW top-1 differs from exact for {} of {} with expansion_search 64: {default_misses:?}",
        default_misses.len(),
        sample.len()
    );
    assert!(
        default_misses.len() * 20 <= sample.len(),
        "more than 5% missed: {default_misses:?}"
    );

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vectors.hnsw");
    f.hnsw.save(&path).unwrap();
    let mut wider = settings(DIM);
    wider.expansion_search = 128;
    let wider = HnswIndex::load(&path, wider).unwrap();
    assert_eq!(wider.len(), VECTORS);
    let wider_misses = misses(&wider);
    println!(
        "exact-duplicate queries: {} of {} differ with expansion_search 128",
        wider_misses.len(),
        sample.len()
    );
    assert!(wider_misses.is_empty(), "{wider_misses:?}");
}

/// `search_among` (a filtered search that compares the query with every listed key's vectors)
/// gives the exact top k of those keys in both indexes: the keys, and their cosines to 1e-5,
/// with keys it does not hold skipped and a key's best window counted.
#[test]
fn search_among_is_exact_over_the_listed_keys() {
    let mut rng = SplitMix64::new(7);
    let dim = 16;
    let vectors: Vec<Vec<f32>> = (0..300).map(|_| gaussian_vector(&mut rng, dim)).collect();
    let query = gaussian_vector(&mut rng, dim);
    // Every third key, and keys no index holds.
    let listed: Vec<u64> = (0..320u64).filter(|k| k % 3 == 0).collect();
    let mut expected: Vec<(u64, f32)> = listed
        .iter()
        .filter(|&&k| (k as usize) < vectors.len())
        .map(|&k| {
            let v = &vectors[k as usize];
            let dot: f32 = query.iter().zip(v).map(|(a, b)| a * b).sum();
            let norm = |x: &[f32]| x.iter().map(|a| a * a).sum::<f32>().sqrt();
            (k, dot / (norm(&query) * norm(v)))
        })
        .collect();
    expected.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    expected.truncate(10);
    both(dim, |index, name| {
        for (key, v) in vectors.iter().enumerate() {
            index.add(key as u64, v).unwrap();
        }
        let found = index.search_among(&query, 10, &listed).unwrap();
        assert_eq!(keys(&found), keys(&expected), "{name}");
        for (f, e) in found.iter().zip(&expected) {
            assert!((f.1 - e.1).abs() < 1e-5, "{name}: {f:?} {e:?}");
        }
    });
}
