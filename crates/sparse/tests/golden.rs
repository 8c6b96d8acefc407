//! Golden tests of analyzer output: one token per line (term, start byte, end byte, tag) for fixed
//! Korean, English and mixed sentences, compared with `fixtures/golden/<analyzer>.txt`.
//! Run with `UPDATE_GOLDEN=1` to rewrite the files after an intended change, then review the diff.
//!
//! The Korean analyzers need the ko-dic dictionary (`scripts/fetch-ko-dic.sh`).

use std::fmt::Write;
use std::path::PathBuf;

use hybrid_search_sparse::{Analyzer, AnalyzerConfig, AnalyzerKind};

const SENTENCES: &[&str] = &[
    "코카콜라와 펩시는 탄산음료입니다.",
    "당뇨병 환자의 HbA1c 수치가 6.5% 이상이면 당뇨병으로 진단한다.",
    "패혈증 초기에는 혈중 IL-6 농도가 빠르게 상승하며 사망률을 예측하는 지표로 쓰인다.",
    "흡입용 스테로이드는 기도의 염증을 줄여 천식 발작을 예방한다.",
    "Tocilizumab blocks the IL-6 receptor in severe COVID-19 pneumonia.",
    "Anti-TNF-α antibodies induce remission; p53 and 5-HT2A were not affected.",
    "The patients' HbA1c levels were measured at 3.5 months.",
    "mRNA 백신은 SARS-CoV-2 스파이크 단백질에 대한 면역 반응을 유도했다.",
];

fn render(kind: AnalyzerKind) -> String {
    let analyzer = Analyzer::new(&AnalyzerConfig::for_kind(kind))
        .expect("analyzer (Korean ones need scripts/fetch-ko-dic.sh)");
    let mut out = String::new();
    for sentence in SENTENCES {
        writeln!(out, "# {sentence}").unwrap();
        for t in analyzer.analyze(sentence).unwrap() {
            // The token's source text must be where the offsets say.
            assert!(
                sentence.get(t.start..t.end).is_some(),
                "offsets {t:?} in {sentence}"
            );
            writeln!(
                out,
                "{}\t{}\t{}\t{}",
                t.term,
                t.start,
                t.end,
                t.tag.as_deref().unwrap_or("-")
            )
            .unwrap();
        }
    }
    out
}

fn check(name: &str, kind: AnalyzerKind) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/golden")
        .join(name);
    let actual = render(kind);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with UPDATE_GOLDEN=1 to create it",
            path.display()
        )
    });
    assert_eq!(
        actual,
        expected,
        "{} differs; rerun with UPDATE_GOLDEN=1 if intended",
        path.display()
    );
}

#[test]
fn golden_auto() {
    check("auto.txt", AnalyzerKind::Auto);
}

#[test]
fn golden_ko() {
    check("ko.txt", AnalyzerKind::Ko);
}

#[test]
fn golden_en() {
    check("en.txt", AnalyzerKind::En);
}

fn terms(kind: AnalyzerKind, text: &str) -> Vec<String> {
    let analyzer = Analyzer::new(&AnalyzerConfig::for_kind(kind)).unwrap();
    analyzer
        .analyze(text)
        .unwrap()
        .into_iter()
        .map(|t| t.term)
        .collect()
}

#[test]
fn korean_particles_and_endings_are_dropped_nouns_kept() {
    let terms = terms(AnalyzerKind::Ko, "코카콜라와 펩시는 탄산음료입니다.");
    for kept in ["코카콜라", "펩시", "탄산음료"] {
        assert!(
            terms.iter().any(|t| t == kept),
            "{kept} missing from {terms:?}"
        );
    }
    for dropped in ["와", "는", "ㅂ니다", "입니다", "."] {
        assert!(
            !terms.iter().any(|t| t == dropped),
            "{dropped} kept in {terms:?}"
        );
    }
}

#[test]
fn particles_attached_to_nouns_do_not_change_the_term() {
    let a = terms(AnalyzerKind::Ko, "코카콜라와");
    let b = terms(AnalyzerKind::Ko, "코카콜라는");
    assert_eq!(a, b);
    assert_eq!(a, ["코카콜라"]);
}

#[test]
fn unknown_words_are_kept_without_their_particles() {
    // Drug names that ko-dic does not know come out as unknown words: they must survive the
    // part-of-speech filter, and the particle MeCab glues to them must not.
    let terms = terms(AnalyzerKind::Ko, "펨브롤리주맙과 렘데시비르를 투여했다");
    assert!(terms.iter().any(|t| t == "펨브롤리주맙"), "{terms:?}");
    assert!(terms.iter().any(|t| t == "렘데시비르"), "{terms:?}");
    assert!(!terms.iter().any(|t| t == "과" || t == "를"), "{terms:?}");
}

#[test]
fn mixed_text_routes_latin_terms_to_english() {
    let terms = terms(AnalyzerKind::Auto, "당뇨병 환자의 HbA1c 수치");
    assert_eq!(terms, ["당뇨병", "환자", "hba1c", "수치"]);
}
