//! No text crashes analysis, a snippet or a search (issue 34): property tests over arbitrary
//! Unicode. The text is built from pieces that broke byte arithmetic before or are likely to:
//! every `White_Space` code point (U+00A0 and U+3000 made `back_to_boundary` slice inside a
//! character), combining marks, ZWJ emoji sequences, invisible format characters, full-width
//! letters and ligatures (normalised, so offsets are mapped back), decomposed Hangul jamo,
//! random Hangul syllables, domain terms and arbitrary scalar values (`char` is surrogate-free
//! by construction).
//!
//! What is checked: `analyze` returns offsets on character boundaries inside the text; a
//! snippet never panics, whatever its width, and every `**mark**` it makes wraps the text of a
//! token whose term the query has; a collection holding such documents answers every query
//! with snippets. The Korean analyzers need ko-dic (`scripts/fetch-ko-dic.sh`).

use std::collections::HashSet;
use std::sync::OnceLock;

use hybrid_search::sparse::Analyzer;
use hybrid_search::{AnalyzerConfig, AnalyzerKind, Collection, Document, snippet};
use proptest::prelude::*;

/// Every code point with the Unicode `White_Space` property (PropList.txt, Unicode 15).
const WHITE_SPACE: [char; 25] = [
    '\u{9}', '\u{A}', '\u{B}', '\u{C}', '\u{D}', '\u{20}', '\u{85}', '\u{A0}', '\u{1680}',
    '\u{2000}', '\u{2001}', '\u{2002}', '\u{2003}', '\u{2004}', '\u{2005}', '\u{2006}', '\u{2007}',
    '\u{2008}', '\u{2009}', '\u{200A}', '\u{2028}', '\u{2029}', '\u{202F}', '\u{205F}', '\u{3000}',
];

const WORDS: &[&str] = &[
    "sepsis",
    "IL-6",
    "HbA1c",
    "TNF-α",
    "patients",
    "the",
    "investigator's",
    "e.g.",
    "2020",
    "패혈증",
    "환자의",
    "치료",
    "회의록을",
    "코카콜라와",
    "탄산음료입니다",
    "교량ㆍ터널",
    "ＨｂＡ１ｃ",
    "ﬁbrosis",
    "µg",
    "①",
    "naïve",
    "café",
];

const ODD: &[&str] = &[
    "e\u{301}",
    "\u{301}",
    "a\u{308}\u{323}",
    "\u{1112}\u{116C}\u{110B}\u{1174}",
    "\u{1100}",
    "\u{11A8}",
    "👨\u{200D}👩\u{200D}👧",
    "🏳\u{FE0F}\u{200D}🌈",
    "\u{200D}",
    "\u{AD}",
    "\u{200B}",
    "\u{FEFF}",
    "\u{3164}",
    "\u{115F}\u{1160}",
    "\u{318D}",
    "\u{119E}",
    "…",
    "-",
    "'s",
    ".",
];

fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(WORDS).prop_map(str::to_string),
        3 => proptest::sample::select(&WHITE_SPACE[..]).prop_map(String::from),
        2 => proptest::sample::select(ODD).prop_map(str::to_string),
        1 => (0xAC00u32..=0xD7A3).prop_map(|c| char::from_u32(c).unwrap().to_string()),
        // `*` is left out so that the marks of a snippet can be told from the text.
        2 => any::<char>().prop_filter("no *", |&c| c != '*').prop_map(String::from),
    ]
}

fn text() -> impl Strategy<Value = String> {
    proptest::collection::vec(piece(), 0..120).prop_map(|p| p.concat())
}

fn query() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            3 => proptest::sample::select(WORDS).prop_map(str::to_string),
            1 => piece(),
        ],
        1..5,
    )
    .prop_map(|p| p.join(" "))
}

/// The three analyzers, built once (the Korean ones load ko-dic).
fn analyzers() -> &'static [(AnalyzerKind, Analyzer)] {
    static ANALYZERS: OnceLock<Vec<(AnalyzerKind, Analyzer)>> = OnceLock::new();
    ANALYZERS.get_or_init(|| {
        [AnalyzerKind::En, AnalyzerKind::Ko, AnalyzerKind::Auto]
            .into_iter()
            .map(|kind| {
                let analyzer = Analyzer::new(&AnalyzerConfig::for_kind(kind))
                    .expect("analyzer (the Korean ones need scripts/fetch-ko-dic.sh)");
                (kind, analyzer)
            })
            .collect()
    })
}

fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The marked fragments of a snippet (`**x**`), in order, as the text they show: the snippet
/// is Markdown, a `*` or `\` of the text escaped with `\`.
fn marks(snippet: &str) -> Vec<String> {
    let (mut out, mut text, mut marked) = (Vec::new(), String::new(), false);
    let mut chars = snippet.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => text.extend(chars.next()),
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                if marked {
                    out.push(std::mem::take(&mut text));
                }
                text.clear();
                marked = !marked;
            }
            c => text.push(c),
        }
    }
    assert!(!marked, "a mark left open in {snippet:?}");
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// Normalising twice changes nothing more: the analysis of a query and of the text it
    /// matches agree whichever was normalised already.
    #[test]
    fn normalisation_is_idempotent(text in text()) {
        let once = hybrid_search::sparse::normalize::normalize(&text).text.into_owned();
        let twice = hybrid_search::sparse::normalize::normalize(&once).text.into_owned();
        prop_assert_eq!(&once, &twice, "{:?}", text);
    }

    #[test]
    fn analysis_offsets_are_char_boundaries(text in text()) {
        for (kind, analyzer) in analyzers() {
            for tokens in [analyzer.analyze(&text), analyzer.analyze_query(&text)] {
                for t in tokens.unwrap() {
                    prop_assert!(
                        t.start <= t.end && text.get(t.start..t.end).is_some(),
                        "{kind:?}: token {t:?} of {text:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn snippets_never_panic_and_mark_only_query_terms(
        text in text(),
        query in query(),
        width in 1usize..400,
    ) {
        for (kind, analyzer) in analyzers() {
            let s = snippet(analyzer, &query, &text, width);
            let wanted: HashSet<String> = analyzer
                .analyze(&query)
                .unwrap()
                .into_iter()
                .map(|t| t.term)
                .collect();
            let matched: HashSet<String> = analyzer
                .analyze(&text)
                .unwrap()
                .into_iter()
                .filter(|t| wanted.contains(&t.term))
                .map(|t| collapse(&text[t.start..t.end]))
                .collect();
            for mark in marks(&s) {
                prop_assert!(
                    matched.contains(collapse(&mark).as_str()),
                    "{kind:?}: mark {mark:?} in {s:?} is no query term's text \
                     (query {query:?}, text {text:?}, matches {matched:?})"
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// A collection of such documents answers every query in each analyzer, and each hit's
    /// snippet marks only query terms of that document.
    #[test]
    fn searches_never_panic(
        texts in proptest::collection::vec(text(), 1..12),
        queries in proptest::collection::vec(query(), 1..6),
    ) {
        let tmp = tempfile::tempdir().unwrap();
        for (kind, analyzer) in analyzers() {
            let kind = *kind;
            let dir = tmp.path().join(format!("{kind:?}"));
            let mut c = Collection::create(&dir, AnalyzerConfig::for_kind(kind)).unwrap();
            let docs: Vec<Document> = texts
                .iter()
                .enumerate()
                .map(|(i, t)| Document {
                    id: format!("d{i}"),
                    title: String::new(),
                    text: t.clone(),
                    vector: None,
        fields: Default::default(),
                })
                .collect();
            c.add(&docs, None).unwrap();
            for q in &queries {
                // A query of nothing but white space or invisible characters is refused, not
                // searched (and never a panic).
                let blank = hybrid_search::sparse::normalize::normalize(q)
                    .text
                    .chars()
                    .all(char::is_whitespace);
                let results = match c.search(q, 10) {
                    Err(hybrid_search::Error::InvalidRequest {
                        setting: hybrid_search::Setting::Query,
                        ..
                    }) if blank => continue,
                    other => other.unwrap(),
                };
                let wanted: HashSet<String> =
                    analyzer.analyze(q).unwrap().into_iter().map(|t| t.term).collect();
                for hit in &results.hits {
                    let doc = docs.iter().find(|d| d.id == hit.id).unwrap();
                    // (A hit may have matched by Hangul bigrams alone, with no term marked.)
                    let marked = marks(&hit.snippet);
                    let matched: HashSet<String> = analyzer
                        .analyze(&doc.text)
                        .unwrap()
                        .into_iter()
                        .filter(|t| wanted.contains(&t.term))
                        .map(|t| collapse(&doc.text[t.start..t.end]))
                        .collect();
                    for mark in marked {
                        prop_assert!(
                            matched.contains(collapse(&mark).as_str()),
                            "{kind:?}: mark {mark:?} of {hit:?} is no query term's text"
                        );
                    }
                }
            }
        }
    }
}
