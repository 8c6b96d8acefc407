//! English analysis that keeps domain terms whole.
//!
//! A word is a run of letters and digits, optionally joined by `-` or `.` between two alphanumeric
//! characters, so `IL-6`, `COVID-19`, `TNF-α`, `5-HT2A` and `3.5` stay one token. A joined word
//! that looks like a code (a digit or a one-letter part) is emitted whole and, after it, each of
//! its alphanumeric parts (`il-6`, `il`), so both an exact query and a query that writes the parts
//! apart match; words of plain letters joined (`two-dimensional`) are just their words. Tokens are
//! lowercased, English stop words are dropped (never a whole joined term), a lone digit is
//! dropped (`6` of `IL-6`, `2` of `Mach 2`; the numbers and terms it belongs to stay whole), a
//! possessive `'s` is not a token, and purely alphabetic tokens are optionally stemmed with the
//! Snowball English stemmer. A query ([`Side::Query`]) keeps only the parts of a joined word
//! that hold a letter. These choices were measured on SciFact and Cranfield
//! (`docs/benchmarks.md`, "English BM25 against bm25s").

use std::collections::HashSet;
use std::sync::LazyLock;

use crate::analysis::AnalyzedToken;

/// The English stop-word list: function words that carry no topical meaning (articles,
/// pronouns, auxiliaries, conjunctions, prepositions). Measured against Lucene's 33-word list in
/// `docs/benchmarks.md`.
pub const ENGLISH_STOP_WORDS: &[&str] = &[
    "a",
    "about",
    "above",
    "after",
    "again",
    "against",
    "all",
    "am",
    "an",
    "and",
    "any",
    "are",
    "as",
    "at",
    "be",
    "because",
    "been",
    "before",
    "being",
    "below",
    "between",
    "both",
    "but",
    "by",
    "can",
    "could",
    "did",
    "do",
    "does",
    "doing",
    "down",
    "during",
    "each",
    "few",
    "for",
    "from",
    "further",
    "had",
    "has",
    "have",
    "having",
    "he",
    "her",
    "here",
    "hers",
    "herself",
    "him",
    "himself",
    "his",
    "how",
    "i",
    "if",
    "in",
    "into",
    "is",
    "it",
    "its",
    "itself",
    "just",
    "me",
    "more",
    "most",
    "my",
    "myself",
    "no",
    "nor",
    "not",
    "now",
    "of",
    "off",
    "on",
    "once",
    "only",
    "or",
    "other",
    "our",
    "ours",
    "ourselves",
    "out",
    "over",
    "own",
    "same",
    "she",
    "should",
    "so",
    "some",
    "such",
    "than",
    "that",
    "the",
    "their",
    "theirs",
    "them",
    "themselves",
    "then",
    "there",
    "these",
    "they",
    "this",
    "those",
    "through",
    "to",
    "too",
    "under",
    "until",
    "up",
    "very",
    "was",
    "we",
    "were",
    "what",
    "when",
    "where",
    "which",
    "while",
    "who",
    "whom",
    "why",
    "will",
    "with",
    "would",
    "you",
    "your",
    "yours",
    "yourself",
    "yourselves",
];

/// Lucene's classic English stop set (`EnglishAnalyzer.ENGLISH_STOP_WORDS_SET`), 33 words.
pub const LUCENE_STOP_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it",
    "no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there", "these",
    "they", "this", "to", "was", "will", "with",
];

/// Which stop-word list the English path uses.
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum StopWords {
    /// No stop words.
    None,
    /// Lucene's 33 words.
    Lucene,
    /// The longer list in [`ENGLISH_STOP_WORDS`] (the default).
    #[default]
    #[cfg_attr(
        feature = "clap",
        value(help = "The longer built-in list (the default)")
    )]
    Extended,
}

/// FNV-1a (Fowler, Noll, Vo): a fast hash for the short words analysis looks up on every
/// token (stop words, the stem cache), where SipHash's resistance to chosen keys buys nothing.
#[derive(Default, Clone, Copy)]
pub(crate) struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.0 = h;
    }
}

type FnvBuild = std::hash::BuildHasherDefault<Fnv>;

static EXTENDED: LazyLock<HashSet<&'static str, FnvBuild>> =
    LazyLock::new(|| ENGLISH_STOP_WORDS.iter().copied().collect());
static LUCENE: LazyLock<HashSet<&'static str, FnvBuild>> =
    LazyLock::new(|| LUCENE_STOP_WORDS.iter().copied().collect());

impl StopWords {
    fn contains(self, word: &str) -> bool {
        match self {
            StopWords::None => false,
            StopWords::Lucene => LUCENE.contains(word),
            StopWords::Extended => EXTENDED.contains(word),
        }
    }
}

/// Which side of the index text is analysed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// A document being indexed.
    Document,
    /// A query: a joined word keeps only its parts that hold a letter, so `IL-6` searches
    /// `il-6` and `il` but not a bare `6`, which `C57BL/6` and every `6.5` also hold.
    Query,
}

/// The English path's settings and its stemmer.
pub struct English {
    stop_words: StopWords,
    stemmer: Option<frostem::Stemmer>,
}

fn is_joiner(c: char) -> bool {
    matches!(c, '-' | '.' | '\u{2010}' | '\u{2011}')
}

impl English {
    /// Creates the English path with a stop-word list and optional Snowball stemming.
    pub fn new(stop_words: StopWords, stem: bool) -> Self {
        let stemmer = stem.then(|| frostem::Stemmer::new(frostem::Algorithm::English));
        Self {
            stop_words,
            stemmer,
        }
    }

    /// Analyses `text` (which starts at byte `base` of the original text) into `out`.
    #[cfg(test)]
    pub fn analyze(&self, text: &str, base: usize, out: &mut Vec<AnalyzedToken>) {
        self.analyze_side(text, base, Side::Document, true, out);
    }

    /// [`English::analyze`] for one side (a query keeps fewer parts of joined words), with lone
    /// digits dropped (English text) or kept (`drop_lone_digits` false: Korean text, where
    /// `6·25` and `제1차` carry their digits).
    pub fn analyze_side(
        &self,
        text: &str,
        base: usize,
        side: Side,
        drop_lone_digits: bool,
        out: &mut Vec<AnalyzedToken>,
    ) {
        let chars: Vec<(usize, char)> = text.char_indices().collect();
        let mut i = 0;
        while i < chars.len() {
            if !chars[i].1.is_alphanumeric() {
                i += 1;
                continue;
            }
            // Extend over alphanumerics and joiners that sit between two alphanumerics.
            let start = i;
            let mut end = i + 1;
            let mut joined = false;
            while end < chars.len() {
                let c = chars[end].1;
                if c.is_alphanumeric() {
                    end += 1;
                } else if is_joiner(c)
                    && end + 1 < chars.len()
                    && chars[end + 1].1.is_alphanumeric()
                {
                    joined = true;
                    end += 2;
                } else {
                    break;
                }
            }
            let byte_start = chars[start].0;
            let byte_end = chars.get(end).map_or(text.len(), |&(b, _)| b);
            let mut word = &text[byte_start..byte_end];
            // Possessive `'s` is dropped by the run ending at the apostrophe; nothing to do.
            if !joined {
                word = word.trim_end_matches('.');
                let end = base + byte_start + word.len();
                self.push(word, base + byte_start, end, drop_lone_digits, out);
            } else {
                // Words of plain letters joined (`two-dimensional`, `boundary-layer`) are their
                // words; a code-like term (a digit or a one-letter part) is also kept whole.
                let plain = word
                    .split(|c: char| !c.is_alphanumeric())
                    .all(|p| p.chars().count() >= 2 && p.chars().all(char::is_alphabetic));
                if !plain {
                    out.push(AnalyzedToken::new(
                        word.to_lowercase(),
                        base + byte_start,
                        base + byte_end,
                        None,
                    ));
                }
                // A query keeps the parts that hold a letter: `IL-6` searches `il-6` and `il`,
                // not a bare `6`.
                let keep_part =
                    |part: &str| side == Side::Document || part.chars().any(char::is_alphabetic);
                let mut part_start = None;
                for (offset, c) in word
                    .char_indices()
                    .chain(std::iter::once((word.len(), ' ')))
                {
                    match (c.is_alphanumeric(), part_start) {
                        (true, None) => part_start = Some(offset),
                        (false, Some(s)) => {
                            let abs = base + byte_start;
                            let part = &word[s..offset];
                            if keep_part(part) {
                                self.push(part, abs + s, abs + offset, drop_lone_digits, out);
                            }
                            part_start = None;
                        }
                        _ => {}
                    }
                }
            }
            i = end;
            // A possessive `'s` (`investigator's`) is not a word of its own.
            let possessive = matches!(chars.get(end), Some((_, '\'' | '\u{2019}')))
                && matches!(chars.get(end + 1), Some((_, 's' | 'S')))
                && chars
                    .get(end + 2)
                    .is_none_or(|&(_, c)| !c.is_alphanumeric());
            if possessive {
                i = end + 2;
            }
        }
    }

    fn push(
        &self,
        word: &str,
        start: usize,
        end: usize,
        drop_lone_digits: bool,
        out: &mut Vec<AnalyzedToken>,
    ) {
        // ASCII words (most of them) lowercase byte by byte; the result is the same.
        let lower = if word.is_ascii() {
            word.to_ascii_lowercase()
        } else {
            word.to_lowercase()
        };
        if self.stop_words.contains(&lower) {
            return;
        }
        // A lone digit (`6` of `IL-6`, `3` of `3.5`, `2` of `Mach 2`) matches almost anything;
        // the numbers it belongs to are kept whole.
        if drop_lone_digits && lower.len() == 1 && lower.as_bytes()[0].is_ascii_digit() {
            return;
        }
        let term = match &self.stemmer {
            Some(stemmer) if lower.chars().all(|c| c.is_ascii_alphabetic()) => {
                cached_stem(stemmer, lower)
            }
            _ => lower,
        };
        out.push(AnalyzedToken::new(term, start, end, None));
    }
}

/// Words whose stems a thread remembers before it starts over.
const STEM_CACHE: usize = 100_000;

thread_local! {
    /// Stems of the words this thread saw recently: text repeats its words (Zipf's law), and
    /// the Snowball stemmer is a large share of English analysis (about 12% of sparse indexing
    /// in a profile of `benches/scale.sh`). One English stemmer exists, so the cache is shared
    /// by every analyzer on the thread.
    static STEMS: std::cell::RefCell<std::collections::HashMap<String, String, FnvBuild>> =
        std::cell::RefCell::new(std::collections::HashMap::default());
}

/// `stemmer`'s stem of the lowercase, purely alphabetic `lower`, through the thread's cache.
fn cached_stem(stemmer: &frostem::Stemmer, lower: String) -> String {
    STEMS.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some(stem) = cache.get(&lower) {
            return stem.clone();
        }
        let stem = stemmer.stem(&lower).into_owned();
        if cache.len() >= STEM_CACHE {
            cache.clear();
        }
        cache.insert(lower, stem.clone());
        stem
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(text: &str, stem: bool) -> Vec<String> {
        let mut out = Vec::new();
        English::new(StopWords::Extended, stem).analyze(text, 0, &mut out);
        out.into_iter().map(|t| t.term).collect()
    }

    #[test]
    fn domain_terms_stay_whole_with_their_parts() {
        // The lone digit `6` is dropped; the whole term keeps it.
        assert_eq!(terms("IL-6", false), ["il-6", "il"]);
        assert_eq!(
            terms("COVID-19 and TNF-α.", false),
            ["covid-19", "covid", "19", "tnf-α", "tnf", "α"]
        );
        assert_eq!(
            terms("p53 HbA1c 5-HT2A", false),
            ["p53", "hba1c", "5-ht2a", "ht2a"]
        );
        // Plain words joined by a hyphen are their words.
        assert_eq!(
            terms("two-dimensional flow", false),
            ["two", "dimensional", "flow"]
        );
    }

    #[test]
    fn stop_words_and_stemming() {
        assert_eq!(
            terms("The patients were treated with statins", true),
            ["patient", "treat", "statin"]
        );
        // Numbers and mixed tokens are never stemmed; lone digits are dropped.
        assert_eq!(
            terms("cells 3.5 mg in 2 doses", true),
            ["cell", "3.5", "mg", "dose"]
        );
        // A possessive `'s` is not a token.
        assert_eq!(
            terms("the investigator's and patients’ data", true),
            ["investig", "patient", "data"]
        );
    }

    #[test]
    fn offsets_point_into_the_text() {
        let mut out = Vec::new();
        English::new(StopWords::Extended, false).analyze("x IL-6.", 10, &mut out);
        assert_eq!((out[1].start, out[1].end), (12, 16));
        assert_eq!((out[2].start, out[2].end), (12, 14));
    }
}
