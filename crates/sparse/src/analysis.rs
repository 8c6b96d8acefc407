//! Analyzers: `ko`, `en` and `auto` (Hangul runs to `ko`, the rest to `en`), plus the Hangul
//! character-bigram analyzer of the n-gram field, all registered as tantivy tokenizers.
//!
//! The Korean and English paths decide what to drop from information that tantivy's `Token` does
//! not carry (the part-of-speech tag, whether a term is a joined domain term), so each analyzer is
//! one tantivy `Tokenizer` over an [`Analyzer`] that produces [`AnalyzedToken`]s; the same
//! tokens, with their tags, are what `hybrid-search analyze` prints.

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tantivy::tokenizer::{Token, TokenStream, Tokenizer};

use crate::english::{English, Side, StopWords};
use crate::error::{Error, Result};
use crate::korean::{
    DecompoundMode, DictionaryInfo, Korean, NORI_STOP_TAGS, load_ko_dic, locate_ko_dic,
};
use crate::normalize::{Normalized, normalize};

/// One indexed term with its byte offsets in the analysed text and, for Korean, its ko-dic tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnalyzedToken {
    /// The term as indexed (lowercased, stemmed where the settings say so).
    pub term: String,
    /// Byte offset of the first byte of the token's source text.
    pub start: usize,
    /// Byte offset one past the token's source text.
    pub end: usize,
    /// The part-of-speech tag (ko-dic) where there is one.
    pub tag: Option<String>,
}

impl AnalyzedToken {
    /// Creates a token.
    pub fn new(term: String, start: usize, end: usize, tag: Option<String>) -> Self {
        Self {
            term,
            start,
            end,
            tag,
        }
    }
}

/// The version of the analysis rules this code applies, recorded by the engine with every
/// collection: 2 added Unicode normalisation, Korean terms built from the input text, unknown
/// words kept whole, particles re-read, and the English rules for hyphenated words, lone digits,
/// possessives and query parts. Collections that record no version were analysed by version 1;
/// their documents keep the terms of that version until they are indexed again.
pub const ANALYSIS_VERSION: u32 = 2;

/// Which analyzer a field uses.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AnalyzerKind {
    /// Hangul runs through `ko`, everything else through `en` (the default).
    #[default]
    Auto,
    /// Everything through lindera ko-dic.
    Ko,
    /// Everything through the English path.
    En,
}

impl std::str::FromStr for AnalyzerKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(AnalyzerKind::Auto),
            "ko" => Ok(AnalyzerKind::Ko),
            "en" => Ok(AnalyzerKind::En),
            other => Err(Error::Config(format!(
                "unknown analyzer {other:?}: use auto, ko or en"
            ))),
        }
    }
}

/// Analyzer settings; stored in a collection's manifest so that queries are analysed as the
/// documents were.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AnalyzerConfig {
    /// Which analyzer.
    pub kind: AnalyzerKind,
    /// Korean part-of-speech tags to drop (leftmost tag of a compound tag).
    pub stop_tags: Vec<String>,
    /// How compound nouns are indexed.
    pub decompound: DecompoundMode,
    /// English stop-word list.
    pub stop_words: StopWords,
    /// Snowball stemming of alphabetic English tokens.
    pub stem: bool,
    /// Weight of the Hangul character-bigram field in the query (0 turns the field off).
    pub ngram_weight: f32,
}

impl Default for AnalyzerConfig {
    fn default() -> Self {
        Self {
            kind: AnalyzerKind::Auto,
            stop_tags: NORI_STOP_TAGS.iter().map(|s| s.to_string()).collect(),
            decompound: DecompoundMode::None,
            stop_words: StopWords::Extended,
            stem: true,
            ngram_weight: 0.5,
        }
    }
}

impl AnalyzerConfig {
    /// The default settings for an analyzer kind.
    pub fn for_kind(kind: AnalyzerKind) -> Self {
        Self {
            kind,
            ..Self::default()
        }
    }
}

/// A text analyzer built from [`AnalyzerConfig`].
pub struct Analyzer {
    route: Route,
    english: English,
    dictionary: Option<DictionaryInfo>,
}

/// Which path text takes; the Korean ones own the lindera segmenter.
enum Route {
    En,
    Ko(Korean),
    /// Hangul through lindera, the rest through the English path. Without ko-dic installed
    /// (`Err`: why it was not found), text with no Hangul is analysed exactly as it would be
    /// with it, and text with Hangul is refused with that message: an English corpus needs no
    /// Korean dictionary.
    Auto(std::result::Result<Korean, String>),
}

/// Whether `c` is Hangul (syllables, jamo, compatibility jamo).
pub fn is_hangul(c: char) -> bool {
    matches!(c as u32, 0xAC00..=0xD7A3 | 0x1100..=0x11FF | 0x3130..=0x318F | 0xA960..=0xA97F | 0xD7B0..=0xD7FF)
}

impl Analyzer {
    /// Builds the analyzer; the Korean ones load ko-dic from [`locate_ko_dic`]. `auto` without
    /// ko-dic installed still analyses text that holds no Hangul (the same terms as with it)
    /// and refuses text that does ([`Analyzer::check`]).
    ///
    /// # Errors
    ///
    /// [`Error::Dictionary`] when the `ko` analyzer cannot find ko-dic, or either Korean
    /// analyzer cannot load the one found; [`Error::Config`] for invalid settings.
    pub fn new(config: &AnalyzerConfig) -> Result<Self> {
        Self::with_dictionary(config, locate_ko_dic)
    }

    /// [`Analyzer::new`] with ko-dic looked for by `locate`.
    fn with_dictionary(
        config: &AnalyzerConfig,
        locate: impl Fn() -> Result<std::path::PathBuf>,
    ) -> Result<Self> {
        let mut dictionary = None;
        let mut korean = |path: &Path| -> Result<Korean> {
            let (dict, info) = load_ko_dic(path)?;
            dictionary = Some(info);
            Ok(Korean::new(&dict, &config.stop_tags, config.decompound))
        };
        let route = match config.kind {
            AnalyzerKind::En => Route::En,
            AnalyzerKind::Ko => Route::Ko(korean(&locate()?)?),
            AnalyzerKind::Auto => Route::Auto(match locate() {
                Ok(path) => Ok(korean(&path)?),
                Err(Error::Dictionary(why)) => Err(why),
                Err(e) => return Err(e),
            }),
        };
        Ok(Self {
            route,
            english: English::new(config.stop_words, config.stem),
            dictionary,
        })
    }

    /// The dictionary the Korean path loaded (`None` for the `en` analyzer, and for `auto`
    /// without ko-dic installed): record its fingerprint with an index, and compare it when the
    /// index is opened again.
    pub fn dictionary(&self) -> Option<&DictionaryInfo> {
        self.dictionary.as_ref()
    }

    /// Why ko-dic is not loaded, for `auto` without it installed (`None` otherwise).
    pub fn missing_dictionary(&self) -> Option<&str> {
        match &self.route {
            Route::Auto(Err(why)) => Some(why),
            _ => None,
        }
    }

    /// Whether `text` can be analysed: always, except Korean text for `auto` without ko-dic.
    ///
    /// # Errors
    ///
    /// [`Error::Dictionary`] saying the text holds Korean, where ko-dic was looked for and how
    /// to install it.
    pub fn check(&self, text: &str) -> Result<()> {
        match &self.route {
            // After normalisation, as `analyze` sees it (half-width Hangul becomes Hangul,
            // Hangul fillers are removed).
            Route::Auto(Err(why)) if normalize(text).text.chars().any(is_hangul) => {
                Err(korean_without(why))
            }
            _ => Ok(()),
        }
    }

    /// Analyses `text` into indexed terms, after [normalising](crate::normalize) it; offsets
    /// point into `text` as given.
    ///
    /// # Errors
    ///
    /// [`Error::Lindera`] when Korean segmentation fails.
    pub fn analyze(&self, text: &str) -> Result<Vec<AnalyzedToken>> {
        self.analyze_side(text, Side::Document)
    }

    /// Analyses a query: as [`Analyzer::analyze`], except that a joined English word keeps
    /// only its parts that hold a letter (`IL-6` gives `il-6` and `il`, not a bare `6`).
    ///
    /// # Errors
    ///
    /// [`Error::Lindera`] when Korean segmentation fails.
    pub fn analyze_query(&self, text: &str) -> Result<Vec<AnalyzedToken>> {
        self.analyze_side(text, Side::Query)
    }

    fn analyze_side(&self, text: &str, side: Side) -> Result<Vec<AnalyzedToken>> {
        let normalized = normalize(text);
        let mut out = self.analyze_normalized(&normalized.text, side)?;
        map_offsets(&normalized, &mut out);
        Ok(out)
    }

    /// [`Analyzer::analyze`] of text that is already normalised (offsets into `text`).
    fn analyze_normalized(&self, text: &str, side: Side) -> Result<Vec<AnalyzedToken>> {
        let mut out = Vec::new();
        match &self.route {
            Route::En => self.english.analyze_side(text, 0, side, true, &mut out),
            Route::Ko(ko) => ko.analyze(text, 0, &mut out)?,
            Route::Auto(ko) => {
                let runs = script_runs(text);
                if runs.iter().any(|r| r.2) {
                    let ko = ko.as_ref().map_err(|why| korean_without(why))?;
                    // lindera sees the whole text, so a particle before a Latin word keeps its
                    // context (`환자의 HbA1c`: 의 is JKG); only its Hangul tokens are kept.
                    ko.analyze(text, 0, &mut out)?;
                    out.retain(|t| text[t.start..].chars().next().is_some_and(is_hangul));
                }
                // Korean text keeps its lone digits (`6·25`, `제1차`); English text drops them.
                let korean = runs.iter().any(|r| r.2);
                for &(start, end, hangul) in &runs {
                    if !hangul {
                        self.english.analyze_side(
                            &text[start..end],
                            start,
                            side,
                            !korean,
                            &mut out,
                        );
                    }
                }
                out.sort_by_key(|t| t.start);
            }
        }
        Ok(out)
    }
}

/// The error for Korean text met by `auto` without ko-dic.
fn korean_without(why: &str) -> Error {
    Error::Dictionary(format!(
        "the text holds Korean, which the `auto` analyzer segments with ko-dic: {why}"
    ))
}

/// Splits text into runs of Hangul (with the spaces between Hangul words) and of everything else.
fn script_runs(text: &str) -> Vec<(usize, usize, bool)> {
    let mut runs: Vec<(usize, usize, bool)> = Vec::new();
    // (start, is_hangul, end of its last non-space character)
    let mut cur: Option<(usize, bool, usize)> = None;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() {
            continue;
        }
        let hangul = is_hangul(c);
        let end = i + c.len_utf8();
        cur = match cur {
            Some((s, h, last)) if h != hangul => {
                runs.push((s, last, h));
                Some((i, hangul, end))
            }
            Some((s, h, _)) => Some((s, h, end)),
            None => Some((i, hangul, end)),
        };
    }
    if let Some((s, h, last)) = cur {
        runs.push((s, last, h));
    }
    runs
}

/// Hangul character bigrams within each run of Hangul syllables (a one-syllable run gives its
/// unigram): the n-gram field that catches what morphological analysis splits differently.
/// The text is [normalised](crate::normalize) first; offsets point into `text` as given.
pub fn hangul_bigrams(text: &str) -> Vec<AnalyzedToken> {
    let normalized = normalize(text);
    let mut out = bigrams_of_normalized(&normalized.text);
    map_offsets(&normalized, &mut out);
    out
}

/// Moves token offsets from the normalised text back into the original.
fn map_offsets(normalized: &Normalized<'_>, tokens: &mut [AnalyzedToken]) {
    if normalized.changed() {
        for t in tokens {
            t.start = normalized.original_start(t.start);
            t.end = normalized.original_end(t.end);
        }
    }
}

/// [`hangul_bigrams`] of normalised text.
fn bigrams_of_normalized(text: &str) -> Vec<AnalyzedToken> {
    let mut out = Vec::new();
    // Hangul syllables (U+AC00-U+D7A3) start with a byte 0xEA-0xED in UTF-8: text without one
    // (most English text) has no bigrams, found by a byte scan instead of a char walk.
    if !text.bytes().any(|b| (0xEA..=0xED).contains(&b)) {
        return out;
    }
    let mut run: Vec<(usize, char)> = Vec::new();
    let flush = |run: &mut Vec<(usize, char)>, out: &mut Vec<AnalyzedToken>| {
        if run.len() == 1 {
            let (s, c) = run[0];
            out.push(AnalyzedToken::new(c.to_string(), s, s + c.len_utf8(), None));
        }
        for w in run.windows(2) {
            let (s, a) = w[0];
            let (e, b) = w[1];
            out.push(AnalyzedToken::new(
                format!("{a}{b}"),
                s,
                e + b.len_utf8(),
                None,
            ));
        }
        run.clear();
    };
    for (i, c) in text.char_indices() {
        if matches!(c as u32, 0xAC00..=0xD7A3) {
            run.push((i, c));
        } else {
            flush(&mut run, &mut out);
        }
    }
    flush(&mut run, &mut out);
    out
}

/// A function from text to its indexed terms.
type TokenFn = dyn Fn(&str) -> Vec<AnalyzedToken> + Send + Sync;

/// A tantivy tokenizer over a token-producing function.
#[derive(Clone)]
pub struct HsTokenizer {
    produce: Arc<TokenFn>,
}

impl HsTokenizer {
    /// The tokenizer of the main text field.
    pub fn main(analyzer: Arc<Analyzer>) -> Self {
        // A segmentation failure has nowhere to go inside tantivy; lindera only fails on an
        // inconsistent dictionary, which `Analyzer::new` has already loaded and checked.
        Self {
            produce: Arc::new(move |text| analyzer.analyze(text).unwrap_or_default()),
        }
    }

    /// The tokenizer of the Hangul bigram field.
    pub fn bigrams() -> Self {
        Self {
            produce: Arc::new(hangul_bigrams),
        }
    }
}

/// The token stream of [`HsTokenizer`].
pub struct HsTokenStream {
    tokens: std::vec::IntoIter<AnalyzedToken>,
    token: Token,
}

impl Tokenizer for HsTokenizer {
    type TokenStream<'a> = HsTokenStream;
    fn token_stream<'a>(&'a mut self, text: &'a str) -> HsTokenStream {
        HsTokenStream {
            tokens: (self.produce)(text).into_iter(),
            token: Token {
                position: usize::MAX,
                ..Token::default()
            },
        }
    }
}

impl TokenStream for HsTokenStream {
    fn advance(&mut self) -> bool {
        match self.tokens.next() {
            Some(t) => {
                self.token.text = t.term;
                self.token.offset_from = t.start;
                self.token.offset_to = t.end;
                self.token.position = self.token.position.wrapping_add(1);
                self.token.position_length = 1;
                true
            }
            None => false,
        }
    }
    fn token(&self) -> &Token {
        &self.token
    }
    fn token_mut(&mut self) -> &mut Token {
        &mut self.token
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_without_ko_dic_analyses_english_and_refuses_korean() {
        let missing = || Err(Error::Dictionary("ko-dic not found (looked in x)".into()));
        let config = AnalyzerConfig::for_kind(AnalyzerKind::Auto);
        let without = Analyzer::with_dictionary(&config, missing).unwrap();
        assert!(without.dictionary().is_none());
        assert!(
            without
                .missing_dictionary()
                .unwrap()
                .contains("looked in x")
        );
        let text = "IL-6 and HbA1c levels in COVID-19 patients";
        assert!(without.check(text).is_ok());
        let english = Analyzer::new(&AnalyzerConfig::for_kind(AnalyzerKind::En)).unwrap();
        assert_eq!(
            without.analyze(text).unwrap(),
            english.analyze(text).unwrap(),
            "the same terms as the English path"
        );
        for korean in ["당뇨병 환자의 HbA1c", "ㄱ"] {
            let err = without.check(korean).unwrap_err().to_string();
            assert!(
                err.contains("holds Korean") && err.contains("looked in x"),
                "{err}"
            );
            assert!(without.analyze(korean).is_err());
        }
        // The `ko` analyzer needs its dictionary.
        let ko = Analyzer::with_dictionary(&AnalyzerConfig::for_kind(AnalyzerKind::Ko), missing);
        assert!(ko.is_err());
    }

    #[test]
    fn runs_split_by_script_and_keep_korean_phrases_together() {
        let text = "당뇨병 환자의 HbA1c 수치";
        let runs: Vec<(&str, bool)> = script_runs(text)
            .into_iter()
            .map(|(s, e, h)| (&text[s..e], h))
            .collect();
        assert_eq!(
            runs,
            [("당뇨병 환자의", true), ("HbA1c", false), ("수치", true)]
        );
        let runs: Vec<(&str, bool)> = script_runs("HbA1c를 재다")
            .into_iter()
            .map(|(s, e, h)| (&"HbA1c를 재다"[s..e], h))
            .collect();
        assert_eq!(runs, [("HbA1c", false), ("를 재다", true)]);
    }

    #[test]
    fn bigrams_stay_inside_hangul_runs() {
        let terms: Vec<String> = hangul_bigrams("탄산음료 a 콜라")
            .into_iter()
            .map(|t| t.term)
            .collect();
        assert_eq!(terms, ["탄산", "산음", "음료", "콜라"]);
        let terms: Vec<String> = hangul_bigrams("물 IL-6")
            .into_iter()
            .map(|t| t.term)
            .collect();
        assert_eq!(terms, ["물"]);
    }
}
