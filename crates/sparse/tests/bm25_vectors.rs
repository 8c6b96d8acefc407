//! BM25 as sparse vectors: the dot product of a query's and a document's vectors equals
//! tantivy's BM25 score, across segments, deletions, Korean bigrams and repeated terms.

use std::collections::HashMap;

use hybrid_search_sparse::{
    AnalyzerConfig, AnalyzerKind, Bm25Index, SparseDoc, SparseVector, term_id,
};

fn doc(id: &str, key: u64, title: &str, text: &str) -> SparseDoc {
    SparseDoc {
        id: id.into(),
        key,
        title: title.into(),
        text: text.into(),
        fields: Default::default(),
    }
}

/// Every document's vector, by external id.
fn vectors(index: &Bm25Index) -> HashMap<String, SparseVector> {
    let mut out = HashMap::new();
    index
        .for_each_document_vector::<hybrid_search_sparse::Error>(3, &mut |batch| {
            for d in batch {
                assert_eq!(d.merged_terms, 0, "{}", d.id);
                out.insert(d.id.to_string(), d.vector);
            }
            Ok(())
        })
        .unwrap();
    out
}

fn check(index: &Bm25Index, queries: &[&str]) -> usize {
    let docs = vectors(index);
    let mut compared = 0;
    for q in queries {
        let qv = index.query_vector(q).unwrap();
        let hits = index.search(q, 100).unwrap();
        for h in &hits {
            let dot = qv.dot(&docs[h.id.as_ref()]);
            assert!(
                (dot - h.score).abs() <= 1e-5 * h.score.max(1.0),
                "{q:?} {}: dot {dot} vs BM25 {}",
                h.id,
                h.score
            );
            compared += 1;
        }
        // Documents BM25 does not match score 0.
        for (id, v) in &docs {
            if !hits.iter().any(|h| h.id.as_ref() == id) {
                assert_eq!(qv.dot(v), 0.0, "{q:?} {id}");
            }
        }
    }
    compared
}

#[test]
fn dot_products_equal_bm25_scores() {
    let dir = tempfile::tempdir().unwrap();
    let config = AnalyzerConfig::for_kind(AnalyzerKind::Auto);
    let index = Bm25Index::create(dir.path(), &config).unwrap();
    let mut w = index.writer(15_000_000).unwrap();
    let first = [
        doc(
            "a",
            1,
            "IL-6 in sepsis",
            "Serum IL-6 rises within hours of sepsis onset.",
        ),
        doc(
            "b",
            2,
            "",
            "HbA1c reflects glucose over three months; HbA1c HbA1c.",
        ),
        doc(
            "c",
            3,
            "당뇨병",
            "당뇨병 환자의 혈당 조절은 당화혈색소로 평가한다.",
        ),
        doc(
            "d",
            4,
            "Sepsis",
            "Sepsis sepsis sepsis and more sepsis in the ICU.",
        ),
    ];
    for d in &first {
        w.insert(d, None).unwrap();
    }
    w.commit("{}").unwrap();
    // A second segment, a replaced document and a deleted one.
    w.upsert(
        &doc(
            "b",
            5,
            "HbA1c",
            "Glycated haemoglobin (HbA1c) and diabetes.",
        ),
        None,
    )
    .unwrap();
    w.insert(
        &doc(
            "e",
            6,
            "고혈압",
            "고혈압과 당뇨병은 심혈관 질환의 위험 인자이다.",
        ),
        None,
    )
    .unwrap();
    w.delete("d");
    w.commit("{}").unwrap();
    index.reload().unwrap();
    let queries = [
        "IL-6 sepsis",
        "HbA1c diabetes glucose",
        "당뇨병 혈당",
        "당뇨병 환자의 혈당 조절",
        "sepsis sepsis ICU",
        "고혈압 당뇨병 위험",
        "nothing matches zzz",
    ];
    let compared = check(&index, &queries);
    assert!(compared >= 8, "{compared}");
    let stats = index.bm25_stats().unwrap();
    // tantivy counts deleted documents in N: 4 + 2 added, "b" replaced and "d" deleted.
    assert_eq!((stats.docs, stats.live_docs), (6, 4));
    assert!(vectors(&index).len() == 4 && !vectors(&index).contains_key("d"));
    let report = index.term_id_collisions().unwrap();
    assert_eq!(report.terms, report.ids + report.colliding_terms);
    assert!(report.terms > 30);
}

#[test]
fn term_ids_are_murmur3_of_the_tagged_term() {
    // MurmurHash3_x86_32 with seed 0 of "hello" is 0x248bfa47 (613153351), as Python's
    // `mmh3.hash(b"hello", signed=False)` gives.
    assert_eq!(term_id(b'h', b"ello"), 0x248b_fa47);
    // mmh3.hash(b"bsepsis", signed=False): the body field's term "sepsis".
    assert_eq!(term_id(b'b', b"sepsis"), 0x706b_ebfe);
    assert_ne!(term_id(b'b', b"sepsis"), term_id(b'n', b"sepsis"));
}

#[test]
fn repeated_ids_add_up() {
    let (v, merged) = SparseVector::from_pairs(vec![(7, 1.0), (3, 0.5), (7, 2.0)]);
    assert_eq!(v.indices, [3, 7]);
    assert_eq!(v.values, [0.5, 3.0]);
    assert_eq!(merged, 1);
}
