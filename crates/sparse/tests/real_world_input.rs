//! Real-world input that broke analysis before (issue 13's table): decomposed Hangul, `ㆍ` as a
//! separator, ligatures and full-width letters, invisible characters, unknown words that the
//! part-of-speech filter cut short, and terms taken from ko-dic's decomposition field instead of
//! the text. Each test pins the right terms and that offsets still point into the text as given.
//!
//! The Korean analyzers need the ko-dic dictionary (`scripts/fetch-ko-dic.sh`).

use hybrid_search_sparse::{
    AnalyzedToken, Analyzer, AnalyzerConfig, AnalyzerKind, Bm25Index, SparseDoc, hangul_bigrams,
};
use unicode_normalization::UnicodeNormalization;

fn analyzer(kind: AnalyzerKind) -> Analyzer {
    Analyzer::new(&AnalyzerConfig::for_kind(kind))
        .expect("analyzer (Korean ones need scripts/fetch-ko-dic.sh)")
}

fn terms(analyzer: &Analyzer, text: &str) -> Vec<String> {
    let tokens = analyzer.analyze(text).unwrap();
    for t in &tokens {
        assert!(
            text.get(t.start..t.end).is_some(),
            "offsets of {t:?} in {text:?}"
        );
    }
    tokens.into_iter().map(|t| t.term).collect()
}

const ALL: [AnalyzerKind; 3] = [AnalyzerKind::Auto, AnalyzerKind::Ko, AnalyzerKind::En];

#[test]
fn decomposed_jamo_give_the_terms_of_the_composed_text() {
    let nfd = "\u{1112}\u{116C}\u{110B}\u{1174}\u{1105}\u{1169}\u{11A8}\u{110B}\u{1173}\u{11AF}";
    for kind in ALL {
        let a = analyzer(kind);
        assert_eq!(terms(&a, nfd), terms(&a, "회의록을"), "{kind:?}");
    }
    let a = analyzer(AnalyzerKind::Auto);
    assert_eq!(terms(&a, nfd), ["회의록"]);
    // The token covers the jamo of 회의록 in the text as typed: 7 jamo of 3 bytes.
    let t = &a.analyze(nfd).unwrap()[0];
    assert_eq!((t.start, t.end), (0, 21));
    // The bigram field composes too.
    let bigrams: Vec<String> = hangul_bigrams(nfd).into_iter().map(|t| t.term).collect();
    assert_eq!(bigrams, ["회의", "의록", "록을"]);
}

#[test]
fn araea_between_items_separates_them_like_a_middle_dot_or_a_comma() {
    for kind in ALL {
        let a = analyzer(kind);
        let araea = terms(&a, "교량ㆍ터널ㆍ도로포장ㆍ배수설비");
        assert_eq!(araea, terms(&a, "교량·터널·도로포장·배수설비"), "{kind:?}");
        assert_eq!(
            araea,
            terms(&a, "교량, 터널, 도로포장, 배수설비"),
            "{kind:?}"
        );
    }
    let a = analyzer(AnalyzerKind::Auto);
    assert_eq!(
        terms(&a, "교량ㆍ터널ㆍ도로포장ㆍ배수설비"),
        ["교량", "터널", "도로포장", "배수설비"]
    );
}

#[test]
fn ligatures_and_full_width_letters_fold_to_their_plain_forms() {
    for kind in ALL {
        let a = analyzer(kind);
        assert_eq!(
            terms(&a, "pulmonary ﬁbrosis"),
            terms(&a, "pulmonary fibrosis"),
            "{kind:?}"
        );
        assert_eq!(
            terms(&a, "ＨｂＡ１ｃ ＩＬ－６"),
            terms(&a, "HbA1c IL-6"),
            "{kind:?}"
        );
    }
    let a = analyzer(AnalyzerKind::En);
    assert_eq!(terms(&a, "pulmonary ﬁbrosis"), ["pulmonari", "fibrosi"]);
    // The token of the ligature word covers its original bytes (ﬁ is three bytes).
    let t = &a.analyze("pulmonary ﬁbrosis").unwrap()[1];
    assert_eq!((t.start, t.end), (10, 19));
}

#[test]
fn invisible_characters_do_not_split_or_join_words() {
    for kind in ALL {
        let a = analyzer(kind);
        assert_eq!(
            terms(&a, "\u{FEFF}pul\u{AD}monary fib\u{200B}rosis"),
            terms(&a, "pulmonary fibrosis"),
            "{kind:?}"
        );
        assert_eq!(
            terms(&a, "회의\u{200D}록을"),
            terms(&a, "회의록을"),
            "{kind:?}"
        );
    }
    let a = analyzer(AnalyzerKind::En);
    let tokens = a.analyze("\u{FEFF}pul\u{AD}monary").unwrap();
    assert_eq!((tokens[0].start, tokens[0].end), (3, 14));
}

#[test]
fn an_unknown_word_keeps_every_syllable_with_or_without_a_particle() {
    let a = analyzer(AnalyzerKind::Auto);
    assert_eq!(terms(&a, "모모시키"), ["모모시키"]);
    assert_eq!(terms(&a, "모모시키가"), ["모모시키"]);
    assert_eq!(terms(&a, "모모시키를 만났다"), ["모모시키", "만나"]);
    // A particle ko-dic reads as a noun at the end of a word (`의`/NNG) goes like a particle.
    assert_eq!(terms(&a, "가구의"), terms(&a, "가구"));
    // Predicates with endings are untouched: `가꾸는` is 가꾸 + 는/ETM, `떠나` elides its 아.
    assert_eq!(terms(&a, "가꾸는"), ["가꾸"]);
    assert_eq!(terms(&a, "떠나 자랐다"), ["떠나", "자라"]);
}

#[test]
fn a_search_for_an_unknown_word_ranks_it_above_its_first_half() {
    let dir = tempfile::tempdir().unwrap();
    let config = AnalyzerConfig::for_kind(AnalyzerKind::Auto);
    let index = Bm25Index::create(dir.path(), &config).unwrap();
    let mut w = index.writer(15_000_000).unwrap();
    let docs = [
        ("half", "모모 이야기를 들었다"),
        ("whole", "모모시키 이야기를 들었다"),
        ("other", "전혀 다른 이야기를 들었다"),
    ];
    for (key, (id, text)) in docs.into_iter().enumerate() {
        w.insert(
            &SparseDoc {
                id: id.into(),
                key: key as u64,
                title: String::new(),
                text: text.into(),
                fields: Default::default(),
            },
            None,
        )
        .unwrap();
    }
    w.commit("{}").unwrap();
    index.reload().unwrap();
    let hits = index.search("모모시키", 10).unwrap();
    assert_eq!(&*hits[0].id, "whole", "{hits:?}");
    let half = hits.iter().find(|h| &*h.id == "half");
    assert!(half.is_none_or(|h| h.score < hits[0].score), "{hits:?}");
}

/// Whether the letters (jamo, after NFD) of `term` appear in order among those of `source`.
fn letters_in_order(term: &str, source: &str) -> bool {
    let mut source = source.nfd().flat_map(char::to_lowercase);
    term.nfd().all(|c| source.any(|s| s == c))
}

/// Whether the initial consonants of `term`'s syllables appear in order among the letters of
/// `source`: what a predicate stem keeps when the documented contraction rules merge its last
/// vowel with an ending's (`하` in `했`, `이루` in `이뤄`, `오르` in `올랐`).
fn initials_in_order(term: &str, source: &str) -> bool {
    let mut source = source.nfd();
    term.chars().all(|c| {
        let initial = c.nfd().next().unwrap();
        let is_syllable = matches!(c as u32, 0xAC00..=0xD7A3);
        is_syllable && source.any(|s| s == initial)
    })
}

fn assert_terms_from_input(a: &Analyzer, text: &str) -> Vec<AnalyzedToken> {
    let tokens = a.analyze(text).unwrap();
    for t in &tokens {
        let source = &text[t.start..t.end];
        let predicate = t
            .tag
            .as_deref()
            .is_some_and(|tag| tag.starts_with(['V', 'X']));
        assert!(
            letters_in_order(&t.term, source) || (predicate && initials_in_order(&t.term, source)),
            "{t:?} holds letters that {source:?} does not"
        );
    }
    tokens
}

#[test]
fn terms_are_built_from_the_input_never_from_the_dictionary_field() {
    let a = analyzer(AnalyzerKind::Auto);
    let tokens = assert_terms_from_input(&a, "꾸준히 정진해온 선수들의 기록");
    let terms: Vec<&str> = tokens.iter().map(|t| t.term.as_str()).collect();
    assert!(terms.contains(&"정진"), "{terms:?}");
    assert!(!terms.iter().any(|t| t.contains('7')), "{terms:?}");
    // Contracted predicates: 만났 holds 만나 letter for letter; 했 is 하 + 였 and 이뤄 is 이루 +
    // 어 by the orthography's contraction rules.
    let terms = |text: &str| -> Vec<String> {
        a.analyze(text)
            .unwrap()
            .into_iter()
            .map(|t| t.term)
            .collect()
    };
    assert_eq!(terms("만났다"), ["만나"]);
    assert_eq!(terms("이뤄졌다"), terms("이루어졌다"));
    assert_eq!(terms("올랐다"), ["오르"]);
    for text in [
        "코카콜라와 펩시는 탄산음료입니다.",
        "그는 어제 친구를 만났다가 학교에 갔다.",
        "결과가 이뤄졌고 회의를 거쳐야 했다.",
        "당뇨병 환자의 HbA1c 수치가 6.5% 이상이면 당뇨병으로 진단한다.",
        "mRNA 백신은 SARS-CoV-2 스파이크 단백질에 대한 면역 반응을 유도했다.",
    ] {
        assert_terms_from_input(&a, text);
    }
}
