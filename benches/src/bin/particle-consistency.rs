//! Counts Korean words whose terms change when a particle follows them.
//!
//! A search for `회의록` should match `회의록을`, `회의록의` and `회의록에서`: the analyzer must
//! give a word the same terms whether or not a particle follows it. This tool takes every
//! distinct nominal term (a noun, pronoun, numeral or unknown word: the words particles attach
//! to) of pure Hangul that the analyzer finds in a corpus, keeps those whose last term, when the
//! analyzer sees the word on its own, is a nominal reaching the word's end, appends each common particle in the form its final consonant
//! calls for (`이/가`, `을/를`, `은/는`, `과/와`, `으로/로`, and `의`, `에`, `에서`, `도`, `만`),
//! and counts the words where the analyzer's terms for `word + particle` differ from those for
//! `word`, with examples: once with the word at the end of the text (as a query ends), once
//! with another word after it (as in running text: `word 문제` against `word+particle 문제`).
//!
//! ```text
//! cargo run --release -p hybrid-search-benches --bin particle-consistency [-- DATASET [N]]
//! ```
//!
//! `DATASET` defaults to KorQuAD 1.0 dev in `shared/data`; `N` limits the number of distinct
//! words (all of them by default).

use std::collections::BTreeSet;

use hybrid_search::sparse::Analyzer;
use hybrid_search::{AnalyzerConfig, AnalyzerKind};
use hybrid_search_benches::{document_text, korquad_path, load_or_skip};

/// The word that follows in the running-text check: a noun, which any particle may precede.
const FOLLOWER: &str = "문제";

fn has_final_consonant(word: &str) -> bool {
    word.chars().last().is_some_and(|c| {
        matches!(c as u32, 0xAC00..=0xD7A3) && !(c as u32 - 0xAC00).is_multiple_of(28)
    })
}

fn particles(word: &str) -> [&'static str; 10] {
    if has_final_consonant(word) {
        [
            "이", "을", "은", "과", "으로", "의", "에", "에서", "도", "만",
        ]
    } else {
        ["가", "를", "는", "와", "로", "의", "에", "에서", "도", "만"]
    }
}

fn is_nominal(tag: Option<&str>) -> bool {
    let tag = tag.unwrap_or("");
    let leftmost = tag.split('+').next().unwrap_or("");
    matches!(
        leftmost,
        "NNG" | "NNP" | "NNB" | "NP" | "NR" | "UNKNOWN" | "SN"
    )
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = args
        .first()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(korquad_path);
    let limit: usize = args
        .get(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(usize::MAX);
    let Some(dataset) = load_or_skip("particle-consistency", &path, "dev") else {
        std::process::exit(2);
    };
    let analyzer = match Analyzer::new(&AnalyzerConfig::for_kind(AnalyzerKind::Auto)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("cannot build the Korean analyzer: {e}");
            std::process::exit(2);
        }
    };
    // The words: the nominal terms the analyzer finds in the corpus, in running text.
    let mut words = BTreeSet::new();
    for doc in &dataset.corpus {
        for t in analyzer.analyze(&document_text(doc)).unwrap_or_default() {
            if is_nominal(t.tag.as_deref())
                && t.term.chars().all(|c| matches!(c as u32, 0xAC00..=0xD7A3))
            {
                words.insert(t.term);
            }
        }
    }
    let terms = |text: &str| -> Vec<String> {
        analyzer
            .analyze(text)
            .unwrap_or_default()
            .into_iter()
            .map(|t| t.term)
            .collect()
    };
    let (mut checked, mut differ, mut differ_in_text) = (0usize, 0usize, 0usize);
    let mut examples = Vec::new();
    let mut examples_in_text = Vec::new();
    let mut by_particle: std::collections::BTreeMap<&str, usize> = Default::default();
    for word in words.iter().take(limit) {
        let alone = analyzer.analyze(word).unwrap_or_default();
        // Only words that end in their nominal term (no particle or ending of their own).
        if !alone
            .last()
            .is_some_and(|t| is_nominal(t.tag.as_deref()) && t.end == word.len())
        {
            continue;
        }
        checked += 1;
        let alone: Vec<String> = alone.into_iter().map(|t| t.term).collect();
        let mut bad = None;
        for p in particles(word) {
            let with = terms(&format!("{word}{p}"));
            if with != alone {
                *by_particle.entry(p).or_default() += 1;
                bad.get_or_insert_with(|| format!("{word} {alone:?} / {word}{p} {with:?}"));
            }
        }
        // The same before another word, as in running text.
        let next = terms(&format!("{word} {FOLLOWER}"));
        let in_text = particles(word).into_iter().find_map(|p| {
            let with = terms(&format!("{word}{p} {FOLLOWER}"));
            (with != next)
                .then(|| format!("{word} {FOLLOWER} {next:?} / {word}{p} {FOLLOWER} {with:?}"))
        });
        if let Some(example) = in_text {
            differ_in_text += 1;
            if examples_in_text.len() < 20 || std::env::var_os("PC_ALL").is_some() {
                examples_in_text.push(example);
            }
        }
        if let Some(example) = bad {
            differ += 1;
            if examples.len() < 40 {
                examples.push(example);
            }
        }
    }
    println!(
        "{} distinct nominal terms; {checked} end in a nominal term; at the end of the text \
         {differ} ({:.2}%) change terms when a particle follows",
        words.len(),
        100.0 * differ as f64 / checked.max(1) as f64
    );
    println!(
        "before another word (`{FOLLOWER}`): {differ_in_text} ({:.2}%) change terms",
        100.0 * differ_in_text as f64 / checked.max(1) as f64
    );
    let by: Vec<String> = by_particle
        .iter()
        .map(|(p, n)| format!("{p} {n}"))
        .collect();
    println!("words changed by each particle: {}", by.join(", "));
    for e in examples.iter().chain(&examples_in_text) {
        println!("  {e}");
    }
}
