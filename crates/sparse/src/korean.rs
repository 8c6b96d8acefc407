//! Korean analysis: lindera with ko-dic, part-of-speech filtering on the leftmost tag, inflected
//! forms split into morphemes, and compound nouns handled by a decompound mode.
//!
//! ko-dic gives each token 8 detail fields: `[POS, semantic class, final consonant, reading, type
//! (Inflect/Compound/Preanalysis/*), first POS, last POS, expression]`. The POS may be a compound
//! tag such as `VV+ETM`; like Lucene's nori, the stop-tag test uses the leftmost tag. Unlike
//! lindera's own `korean_stop_tags` filter, a token the dictionary does not know is never dropped
//! for that reason: unknown words are the domain terms a search engine exists for.

use std::cell::RefCell;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use lindera::dictionary::Dictionary;
use lindera::mode::Mode;
use lindera::segmenter::Segmenter;
use lindera_dictionary::viterbi::Lattice;

use crate::analysis::AnalyzedToken;
use crate::error::{Error, Result};

/// Lucene nori's default stop tags (`KoreanPartOfSpeechStopFilter.DEFAULT_STOP_TAGS`): endings,
/// particles, adverbs, determiners, interjections, symbols and affixes.
pub const NORI_STOP_TAGS: &[&str] = &[
    "EP", "EF", "EC", "ETN", "ETM", "IC", "JKS", "JKC", "JKG", "JKO", "JKB", "JKV", "JKQ", "JX",
    "JC", "MAG", "MAJ", "MM", "SP", "SSC", "SSO", "SC", "SE", "XPN", "XSA", "XSN", "XSV", "UNA",
    "NA", "VSV",
];

/// How compound nouns are indexed: dictionary compounds (type `Compound`, split by the expression
/// field) and runs of nouns written together (`코카` + `콜라` in `코카콜라`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DecompoundMode {
    /// Keep the compound whole, drop its parts (the default: best of the three on KorQuAD, where
    /// the Hangul bigram field already matches the parts; see `docs/benchmarks.md`).
    #[default]
    None,
    /// Keep the parts, drop the whole.
    Discard,
    /// Keep both the whole and its parts.
    Mixed,
}

/// The environment variable naming the data folder ([`data_home`]).
pub const HOME_VAR: &str = "HYBRID_SEARCH_HOME";

/// The data folder where an installed `hybrid-search` finds its dictionary
/// (`models/ko-dic/lindera`) and models (`models/<name>`): `$HYBRID_SEARCH_HOME`, else
/// `$XDG_DATA_HOME/hybrid-search`, else `~/.local/share/hybrid-search` (`None` without a home
/// folder). The repository's `scripts/fetch-*.sh` lay out `models/` in the checkout, so
/// `HYBRID_SEARCH_HOME=/path/to/checkout` serves an installed binary from it.
pub fn data_home() -> Option<PathBuf> {
    if let Some(home) = std::env::var_os(HOME_VAR) {
        return Some(PathBuf::from(home));
    }
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|x| !x.is_empty()) {
        return Some(PathBuf::from(xdg).join("hybrid-search"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share/hybrid-search"))
}

/// The folders that may hold `models/<rel>`, in the order they are tried: the data folder
/// ([`data_home`]), then `models/` in the current folder and its parents, then in the folders
/// above the running executable (so `target/release/hybrid-search` finds the repository's
/// copy).
pub fn model_roots() -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> = data_home().map(|h| h.join("models")).into_iter().collect();
    for start in [std::env::current_dir().ok(), std::env::current_exe().ok()]
        .into_iter()
        .flatten()
    {
        for dir in start.ancestors() {
            let root = dir.join("models");
            if !roots.contains(&root) {
                roots.push(root);
            }
        }
    }
    roots
}

/// Where the ko-dic dictionary is looked for when no path is given: `$HYBRID_SEARCH_KO_DIC`,
/// then `ko-dic/lindera` under each of [`model_roots`] (the data folder first).
///
/// # Errors
///
/// [`Error::Dictionary`] naming every folder looked in, when none holds a built dictionary.
pub fn locate_ko_dic() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("HYBRID_SEARCH_KO_DIC") {
        return Ok(PathBuf::from(path));
    }
    let rel = Path::new("ko-dic").join("lindera");
    let roots = model_roots();
    for root in &roots {
        let candidate = root.join(&rel);
        if candidate.join("metadata.json").is_file() {
            return Ok(candidate);
        }
    }
    let looked: Vec<String> = roots
        .iter()
        .take(4)
        .map(|r| r.join(&rel).display().to_string())
        .collect();
    Err(Error::Dictionary(format!(
        "ko-dic not found (looked in {}{}): run `scripts/fetch-ko-dic.sh` in the repository \
         and set {HOME_VAR} to the checkout (or copy its models/ko-dic into {}), or set \
         HYBRID_SEARCH_KO_DIC to a built lindera ko-dic folder",
        looked.join(", "),
        if roots.len() > 4 {
            " and their parents"
        } else {
            ""
        },
        data_home().map_or("the data folder".into(), |h| h
            .join("models")
            .display()
            .to_string())
    )))
}

/// Loads a built ko-dic folder once per process (memory-mapped) and shares it.
///
/// # Errors
///
/// [`Error::Dictionary`] when the folder is not a built ko-dic (what is missing is named).
pub fn load_ko_dic(path: &Path) -> Result<Arc<Dictionary>> {
    type Loaded = Vec<(PathBuf, Arc<Dictionary>)>;
    static CACHE: OnceLock<Mutex<Loaded>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(Vec::new()));
    let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, dict)) = cache.iter().find(|(p, _)| p == path) {
        return Ok(dict.clone());
    }
    if !path.join("metadata.json").is_file() {
        return Err(Error::Dictionary(format!(
            "{} is not a built lindera dictionary (no metadata.json): run scripts/fetch-ko-dic.sh",
            path.display()
        )));
    }
    let dict = lindera::dictionary::load_fs_dictionary_with_options(path, true)
        .map_err(|e| Error::Lindera(format!("loading {}: {e}", path.display())))?;
    let dict = Arc::new(dict);
    cache.push((path.to_path_buf(), dict.clone()));
    Ok(dict)
}

/// The Korean path: a lindera segmenter and the filtering rules.
pub struct Korean {
    segmenter: Segmenter,
    stop_tags: HashSet<String>,
    decompound: DecompoundMode,
}

fn is_noun(tag: &str) -> bool {
    matches!(tag, "NNG" | "NNP")
}

/// A morpheme before filtering.
struct Morph {
    surface: String,
    start: usize,
    end: usize,
    tag: String,
    unknown: bool,
}

impl Korean {
    /// Creates the Korean path over a loaded dictionary.
    pub fn new(dictionary: &Dictionary, stop_tags: &[String], decompound: DecompoundMode) -> Self {
        let segmenter = Segmenter::new(Mode::Normal, dictionary.clone(), None);
        Self {
            segmenter,
            stop_tags: stop_tags.iter().cloned().collect(),
            decompound,
        }
    }

    fn keep(&self, m: &Morph) -> bool {
        if !m.surface.chars().any(char::is_alphanumeric) {
            return false; // punctuation and symbols, as nori's discardPunctuation
        }
        if m.unknown {
            return true;
        }
        let leftmost = m.tag.split('+').next().unwrap_or("");
        !self.stop_tags.contains(leftmost)
    }

    /// Segments `text` (which starts at byte `base` of the original) and appends the kept terms.
    pub fn analyze(&self, text: &str, base: usize, out: &mut Vec<AnalyzedToken>) -> Result<()> {
        // `Segmenter::segment` allocates a fresh Viterbi lattice per call; one lattice per thread
        // is reused instead (the benchmark median did not move measurably either way).
        thread_local! {
            static LATTICE: RefCell<Lattice> = RefCell::new(Lattice::default());
        }
        let tokens = LATTICE
            .with_borrow_mut(|lattice| {
                self.segmenter
                    .segment_with_lattice(std::borrow::Cow::Borrowed(text), lattice)
            })
            .map_err(|e| Error::Lindera(e.to_string()))?;
        // 1. Morphemes: inflected and pre-analysed forms are split by their expression field.
        let mut morphs: Vec<(Morph, Option<Vec<Morph>>)> = Vec::with_capacity(tokens.len());
        for mut token in tokens {
            let unknown = token.word_id.is_unknown();
            let (start, end) = (base + token.byte_start, base + token.byte_end);
            let surface = token.surface.to_string();
            let details = token.details();
            let tag = details.first().copied().unwrap_or("UNK").to_string();
            let kind = details.get(4).copied().unwrap_or("*");
            let expression = details.get(7).copied().unwrap_or("*");
            let parts = (expression != "*" && !unknown)
                .then(|| split_expression(expression, &surface, start, end))
                .flatten();
            if unknown && let Some((stem, particle)) = split_particle(&surface, start) {
                morphs.push((stem, None));
                morphs.push((particle, None));
                continue;
            }
            let whole = Morph {
                surface,
                start,
                end,
                tag,
                unknown,
            };
            match (kind, parts) {
                ("Compound", Some(parts)) => morphs.push((whole, Some(parts))),
                (_, Some(parts)) => morphs.extend(parts.into_iter().map(|p| (p, None))),
                _ => morphs.push((whole, None)),
            }
        }
        // 2. Runs of nouns written together become compounds of their own.
        let mut i = 0;
        while i < morphs.len() {
            let mut j = i + 1;
            if is_noun(&morphs[i].0.tag) && morphs[i].1.is_none() {
                while j < morphs.len()
                    && morphs[j].1.is_none()
                    && is_noun(&morphs[j].0.tag)
                    && morphs[j].0.start == morphs[j - 1].0.end
                {
                    j += 1;
                }
            }
            if j - i > 1 {
                let (start, end) = (morphs[i].0.start, morphs[j - 1].0.end);
                let whole = Morph {
                    surface: text[start - base..end - base].to_string(),
                    start,
                    end,
                    tag: "NNG".into(),
                    unknown: false,
                };
                self.emit_compound(&whole, morphs[i..j].iter().map(|(m, _)| m), out);
            } else {
                let (m, parts) = &morphs[i];
                match parts {
                    Some(parts) => self.emit_compound(m, parts.iter(), out),
                    None => self.emit(m, out),
                }
            }
            i = j;
        }
        Ok(())
    }

    fn emit(&self, m: &Morph, out: &mut Vec<AnalyzedToken>) {
        if self.keep(m) {
            out.push(AnalyzedToken::new(
                m.surface.to_lowercase(),
                m.start,
                m.end,
                Some(m.tag.clone()),
            ));
        }
    }

    fn emit_compound<'m>(
        &self,
        whole: &Morph,
        parts: impl Iterator<Item = &'m Morph>,
        out: &mut Vec<AnalyzedToken>,
    ) {
        if self.decompound != DecompoundMode::Discard {
            self.emit(whole, out);
        }
        if self.decompound != DecompoundMode::None {
            for part in parts {
                self.emit(part, out);
            }
        }
    }
}

/// Particles that MeCab's unknown-word grouping glues to an unknown Hangul word
/// (`펨브롤리주맙과` comes out as one unknown token), longest first, with their tags.
const TRAILING_PARTICLES: &[(&str, &str)] = &[
    ("에서는", "JKB"),
    ("으로는", "JKB"),
    ("에게서", "JKB"),
    ("에서", "JKB"),
    ("에게", "JKB"),
    ("으로", "JKB"),
    ("까지", "JX"),
    ("부터", "JX"),
    ("처럼", "JKB"),
    ("보다", "JKB"),
    ("과", "JC"),
    ("와", "JC"),
    ("은", "JX"),
    ("는", "JX"),
    ("이", "JKS"),
    ("가", "JKS"),
    ("을", "JKO"),
    ("를", "JKO"),
    ("의", "JKG"),
    ("에", "JKB"),
    ("로", "JKB"),
    ("도", "JX"),
    ("만", "JX"),
];

/// Splits a particle off an unknown Hangul word, keeping a stem of at least two syllables.
fn split_particle(surface: &str, start: usize) -> Option<(Morph, Morph)> {
    let (particle, tag) = TRAILING_PARTICLES
        .iter()
        .find(|(p, _)| surface.ends_with(p))?;
    let stem = &surface[..surface.len() - particle.len()];
    if stem.chars().count() < 2 || !stem.chars().all(crate::analysis::is_hangul) {
        return None;
    }
    let cut = start + stem.len();
    Some((
        Morph {
            surface: stem.to_string(),
            start,
            end: cut,
            tag: "UNKNOWN".into(),
            unknown: true,
        },
        Morph {
            surface: particle.to_string(),
            start: cut,
            end: cut + particle.len(),
            tag: tag.to_string(),
            unknown: false,
        },
    ))
}

/// Splits a ko-dic expression (`탄산/NNG/*+음료/NNG/*`) into morphemes. A part whose surface is
/// found in order inside the token gets its own offsets; others (contracted endings such as
/// `ㅂ니다`) get the whole token's.
fn split_expression(
    expression: &str,
    surface: &str,
    start: usize,
    end: usize,
) -> Option<Vec<Morph>> {
    let mut parts = Vec::new();
    let mut cursor = 0;
    for piece in expression.split('+') {
        let mut fields = piece.split('/');
        let (Some(text), Some(tag)) = (fields.next(), fields.next()) else {
            return None;
        };
        if text.is_empty() {
            return None;
        }
        let (s, e) = match surface[cursor..].find(text) {
            Some(at) => {
                let s = cursor + at;
                cursor = s + text.len();
                (start + s, start + s + text.len())
            }
            None => (start, end),
        };
        parts.push(Morph {
            surface: text.to_string(),
            start: s,
            end: e,
            tag: tag.to_string(),
            unknown: false,
        });
    }
    (parts.len() > 1).then_some(parts)
}
