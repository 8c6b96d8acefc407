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
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
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

/// The file in a built ko-dic folder that caches its [fingerprint](ko_dic_fingerprint): the
/// fingerprint, then one `name size` line per file it covers.
pub const FINGERPRINT_FILE: &str = "fingerprint";

/// A built dictionary: the folder it was loaded from and its identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DictionaryInfo {
    /// The folder.
    pub path: PathBuf,
    /// [`ko_dic_fingerprint`] of the folder.
    pub fingerprint: String,
}

/// The identity of a built dictionary folder: `sha256:` and the SHA-256 (FIPS 180-4) of every
/// file in it (names in byte order, each as its name, a NUL, its length as 8 little-endian
/// bytes and its contents; hidden files and the cache file left out). Two folders with the same
/// fingerprint segment text identically.
///
/// Hashing the 82 MB of ko-dic takes a fraction of a second, so the result is cached in the
/// folder ([`FINGERPRINT_FILE`], with every file's size, written when the folder is writable)
/// and reused while the sizes still match.
///
/// # Errors
///
/// [`Error::Dictionary`] when the folder or one of its files cannot be read.
pub fn ko_dic_fingerprint(path: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    let read_err = |e: std::io::Error| {
        Error::Dictionary(format!(
            "cannot read the dictionary in {}: {e}",
            path.display()
        ))
    };
    let mut files: Vec<(String, u64)> = Vec::new();
    for entry in std::fs::read_dir(path).map_err(read_err)? {
        let entry = entry.map_err(read_err)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let meta = entry.metadata().map_err(read_err)?;
        if meta.is_file() && !name.starts_with('.') && name != FINGERPRINT_FILE {
            files.push((name, meta.len()));
        }
    }
    files.sort();
    let listing: String = files.iter().map(|(n, l)| format!("{n} {l}\n")).collect();
    let cache = path.join(FINGERPRINT_FILE);
    if let Ok(cached) = std::fs::read_to_string(&cache)
        && let Some((fingerprint, rest)) = cached.split_once('\n')
        && rest == listing
        && fingerprint.starts_with("sha256:")
    {
        return Ok(fingerprint.to_string());
    }
    let mut hasher = Sha256::new();
    for (name, len) in &files {
        hasher.update(name.as_bytes());
        hasher.update([0]);
        hasher.update(len.to_le_bytes());
        let mut file = std::fs::File::open(path.join(name)).map_err(read_err)?;
        std::io::copy(&mut file, &mut hasher).map_err(read_err)?;
    }
    let digest = hasher.finalize();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    let fingerprint = format!("sha256:{hex}");
    // Best effort (a read-only folder is hashed again next time), written whole and renamed so
    // that a process reading it meanwhile never sees half of it.
    let tmp = path.join(format!(".{FINGERPRINT_FILE}.{}", std::process::id()));
    if std::fs::write(&tmp, format!("{fingerprint}\n{listing}")).is_ok()
        && std::fs::rename(&tmp, &cache).is_err()
    {
        let _ = std::fs::remove_file(&tmp);
    }
    Ok(fingerprint)
}

/// Loads a built ko-dic folder once per process (memory-mapped) and shares it, with its
/// identity ([`ko_dic_fingerprint`], also computed once per process).
///
/// # Errors
///
/// [`Error::Dictionary`] when the folder is not a built ko-dic (what is missing is named) or
/// cannot be read for its fingerprint; [`Error::Lindera`] when lindera cannot load it.
pub fn load_ko_dic(path: &Path) -> Result<(Arc<Dictionary>, DictionaryInfo)> {
    type Loaded = Vec<(Arc<Dictionary>, DictionaryInfo)>;
    static CACHE: OnceLock<Mutex<Loaded>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(Vec::new()));
    let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(loaded) = cache.iter().find(|(_, info)| info.path == path) {
        return Ok(loaded.clone());
    }
    if !path.join("metadata.json").is_file() {
        return Err(Error::Dictionary(format!(
            "{} is not a built lindera dictionary (no metadata.json): run scripts/fetch-ko-dic.sh",
            path.display()
        )));
    }
    let dict = lindera::dictionary::load_fs_dictionary_with_options(path, true)
        .map_err(|e| Error::Lindera(format!("loading {}: {e}", path.display())))?;
    let info = DictionaryInfo {
        path: path.to_path_buf(),
        fingerprint: ko_dic_fingerprint(path)?,
    };
    let loaded = (Arc::new(dict), info);
    cache.push(loaded.clone());
    Ok(loaded)
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

/// A morpheme before filtering. Its text is always a slice of the input: where ko-dic's
/// expression field differs from the text (`정진7` for `정진`, `하` + `았` for `했`), the text wins.
#[derive(Clone, Default)]
struct Morph {
    surface: String,
    /// Byte offsets in the text given to [`Korean::analyze`] (without its `base`).
    start: usize,
    end: usize,
    tag: String,
    unknown: bool,
    /// The lindera token it came from: the morphemes of one inflected token share it.
    token: usize,
    /// The parts of a compound (ko-dic type `Compound`), emitted by the decompound mode.
    parts: Option<Vec<Morph>>,
}

impl Morph {
    /// Whether it holds a letter or a digit (punctuation and symbols do not); Hangul syllables
    /// are checked first, without the Unicode table lookup.
    fn has_text(&self) -> bool {
        self.surface
            .chars()
            .any(|c| syllable_jamo(c).is_some() || c.is_alphanumeric())
    }

    fn leftmost_tag(&self) -> &str {
        self.tag.split('+').next().unwrap_or("")
    }

    /// A particle (`J*`), which a word may end with.
    fn is_particle(&self) -> bool {
        self.leftmost_tag().starts_with('J')
    }

    /// A particle or an ending.
    fn is_grammatical(&self) -> bool {
        self.leftmost_tag().starts_with(['J', 'E'])
    }

    /// A nominal: what a particle follows.
    fn is_nominal(&self) -> bool {
        self.unknown
            || matches!(
                self.leftmost_tag(),
                "NNG" | "NNP" | "NNB" | "NP" | "NR" | "SN" | "SL" | "SH" | "UNKNOWN" | "XSN"
            )
    }

    /// A predicate stem or a suffix that makes one, which cannot end a word without an ending.
    /// The copula is left out (ko-dic reads many a noun + particle as one), and so is a stem
    /// whose last syllable ends in ㅏ, ㅐ, ㅓ, ㅔ or ㅕ with no final consonant: there the ending
    /// `아`/`어` is elided (`떠나` is `떠나` + `아`), while after other vowels it contracts
    /// visibly (`시키` + `어` is `시켜`).
    fn needs_ending(&self) -> bool {
        // Vowel indices: ㅏ 0, ㅐ 1, ㅓ 4, ㅔ 5, ㅕ 6 (see `syllable_jamo`).
        let elided = self
            .surface
            .chars()
            .last()
            .and_then(syllable_jamo)
            .is_some_and(|(_, vowel, coda)| coda == 0 && matches!(vowel, 0 | 1 | 4 | 5 | 6));
        !elided && matches!(self.leftmost_tag(), "VV" | "VA" | "VX" | "XSV" | "XSA")
    }
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
        if !m.has_text() {
            return false; // punctuation and symbols, as nori's discardPunctuation
        }
        if m.unknown {
            return true;
        }
        let leftmost = m.tag.split('+').next().unwrap_or("");
        !self.stop_tags.contains(leftmost)
    }

    /// Segments `text` (which starts at byte `base` of the original) and appends the kept terms.
    ///
    /// Beyond lindera's segmentation, each word (a run of morphemes between spaces and
    /// punctuation) is checked twice, so that a word gives the same terms with or without a
    /// particle after it and no syllable of an unknown word is lost:
    ///
    /// 1. A word that ends in a particle's text (`의`, `가`, `에서`, ...) which lindera did not
    ///    split off as a particle token of its own (`가구의` as `가구` + `의`/NNG, `모모시키가`
    ///    with `가` inside the inflected token `키가`) is segmented again without it; when that
    ///    ends in a nominal, its morphemes and the particle replace the first reading.
    /// 2. A word whose last morpheme before its particles is a predicate stem or a verb-making
    ///    suffix with no ending (`모모시키` as `모모` + `시키`/XSV: no Korean predicate ends
    ///    without an ending) is not a predicate: it is kept whole as an unknown word.
    ///
    /// # Errors
    ///
    /// [`Error::Lindera`] when segmentation fails.
    pub fn analyze(&self, text: &str, base: usize, out: &mut Vec<AnalyzedToken>) -> Result<()> {
        let mut morphs = self.morphs(text, 0)?;
        let mut fixed = Vec::with_capacity(morphs.len());
        let mut i = 0;
        while i < morphs.len() {
            let j = word_end(&morphs, i);
            self.fix_word(text, &mut morphs[i..j], &mut fixed)?;
            i = j;
        }
        self.emit_all(text, base, &fixed, out);
        Ok(())
    }

    /// lindera's tokens of `text` as morphemes, with offsets shifted by `offset`: inflected and
    /// pre-analysed forms split by their expression field, particles split off unknown words.
    fn morphs(&self, text: &str, offset: usize) -> Result<Vec<Morph>> {
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
        let mut morphs: Vec<Morph> = Vec::with_capacity(tokens.len());
        for (index, mut token) in tokens.into_iter().enumerate() {
            let unknown = token.word_id.is_unknown();
            let (start, end) = (offset + token.byte_start, offset + token.byte_end);
            let surface = token.surface.to_string();
            let details = token.details();
            let tag = details.first().copied().unwrap_or("UNK").to_string();
            let kind = details.get(4).copied().unwrap_or("*");
            let expression = details.get(7).copied().unwrap_or("*");
            let parts = (expression != "*" && !unknown)
                .then(|| split_expression(expression, &surface, start, index))
                .flatten();
            if unknown && let Some((stem, particle)) = split_particle(&surface, start, index) {
                morphs.push(stem);
                morphs.push(particle);
                continue;
            }
            let whole = Morph {
                surface,
                start,
                end,
                tag,
                unknown,
                token: index,
                parts: None,
            };
            match (kind, parts) {
                ("Compound", Some(parts)) if parts.len() > 1 => morphs.push(Morph {
                    parts: Some(parts),
                    ..whole
                }),
                (_, Some(parts)) if !parts.is_empty() => morphs.extend(parts),
                _ => morphs.push(whole),
            }
        }
        Ok(morphs)
    }

    /// Checks one word (see [`Korean::analyze`]) and appends its morphemes to `out`.
    /// The morphemes are moved out of `word`.
    fn fix_word(&self, text: &str, word: &mut [Morph], out: &mut Vec<Morph>) -> Result<()> {
        let (start, end) = (word[0].start, word.iter().map(|m| m.end).max().unwrap_or(0));
        // Most words end in no particle's last syllable: one comparison instead of 23.
        let last = text[..end].chars().next_back();
        let may_end_in_particle = last.is_some_and(|c| PARTICLE_ENDS.contains(&c));
        if let Some(&(particle, tag)) = TRAILING_PARTICLES
            .iter()
            .filter(|_| may_end_in_particle)
            .find(|(p, _)| text[start..end].ends_with(p) && text[start..end].len() > p.len())
        {
            let cut = end - particle.len();
            // Clean: the particle's text is lindera's own token (or tokens), tagged as a
            // particle or an ending (`는` of `가꾸는` is one).
            let tail = || word.iter().filter(|m| m.end > cut);
            let clean = tail().all(|m| m.start >= cut && m.is_grammatical())
                && word.iter().all(|m| m.end <= cut || m.start >= cut)
                && tail()
                    .next()
                    .is_some_and(|t| word.iter().all(|m| m.start >= cut || m.token != t.token));
            if !clean && word.iter().any(|m| m.start == cut) {
                let mut stem = Vec::new();
                let mut again = self.morphs(&text[start..cut], start)?;
                keep_unknown_whole(text, &mut again, &mut stem);
                if stem.last().is_some_and(|m| m.is_nominal() && m.end == cut) {
                    out.extend(stem);
                    out.push(Morph {
                        surface: particle.to_string(),
                        start: cut,
                        end,
                        tag: tag.to_string(),
                        unknown: false,
                        token: usize::MAX,
                        parts: None,
                    });
                    return Ok(());
                }
            }
        }
        keep_unknown_whole(text, word, out);
        Ok(())
    }

    /// Emits the kept terms of `morphs`, joining runs of nouns written together into compounds.
    fn emit_all(&self, text: &str, base: usize, morphs: &[Morph], out: &mut Vec<AnalyzedToken>) {
        let mut i = 0;
        while i < morphs.len() {
            let mut j = i + 1;
            if is_noun(&morphs[i].tag) && morphs[i].parts.is_none() {
                while j < morphs.len()
                    && morphs[j].parts.is_none()
                    && is_noun(&morphs[j].tag)
                    && morphs[j].start == morphs[j - 1].end
                {
                    j += 1;
                }
            }
            if j - i > 1 {
                let (start, end) = (morphs[i].start, morphs[j - 1].end);
                let whole = Morph {
                    surface: text[start..end].to_string(),
                    start,
                    end,
                    tag: "NNG".into(),
                    unknown: false,
                    token: morphs[i].token,
                    parts: None,
                };
                self.emit_compound(&whole, &morphs[i..j], base, out);
            } else {
                let m = &morphs[i];
                match &m.parts {
                    Some(parts) => self.emit_compound(m, parts, base, out),
                    None => self.emit(m, base, out),
                }
            }
            i = j;
        }
    }

    fn emit(&self, m: &Morph, base: usize, out: &mut Vec<AnalyzedToken>) {
        if self.keep(m) {
            out.push(AnalyzedToken::new(
                m.surface.to_lowercase(),
                base + m.start,
                base + m.end,
                Some(m.tag.clone()),
            ));
        }
    }

    fn emit_compound(
        &self,
        whole: &Morph,
        parts: &[Morph],
        base: usize,
        out: &mut Vec<AnalyzedToken>,
    ) {
        if self.decompound != DecompoundMode::Discard {
            self.emit(whole, base, out);
        }
        if self.decompound != DecompoundMode::None {
            for part in parts {
                self.emit(part, base, out);
            }
        }
    }
}

/// The end (exclusive index) of the word that starts at `morphs[i]`: the morphemes that follow
/// each other without a gap. Punctuation and symbols are words of their own.
fn word_end(morphs: &[Morph], i: usize) -> usize {
    if !morphs[i].has_text() {
        return i + 1;
    }
    let mut j = i + 1;
    while j < morphs.len() && morphs[j].start <= morphs[j - 1].end && morphs[j].has_text() {
        j += 1;
    }
    j
}

/// Appends the morphemes of one word, joined into one unknown word when the last one before
/// its particles needs an ending it does not have (see [`Korean::analyze`]).
/// The morphemes are moved out of `word`.
fn keep_unknown_whole(text: &str, word: &mut [Morph], out: &mut Vec<Morph>) {
    let last = word.iter().rposition(|m| !m.is_particle());
    match last {
        Some(k) if word[k].needs_ending() => {
            let (start, end) = (word[0].start, word[k].end);
            out.push(Morph {
                surface: text[start..end].to_string(),
                start,
                end,
                tag: "UNKNOWN".into(),
                unknown: true,
                token: word[0].token,
                parts: None,
            });
            out.extend(word[k + 1..].iter_mut().map(std::mem::take));
        }
        _ => out.extend(word.iter_mut().map(std::mem::take)),
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

/// The last syllables of [`TRAILING_PARTICLES`].
const PARTICLE_ENDS: &[char] = &[
    '는', '서', '게', '로', '지', '터', '럼', '다', '과', '와', '은', '이', '가', '을', '를', '의',
    '에', '도', '만',
];

/// Splits a particle off an unknown Hangul word, keeping a stem of at least two syllables.
fn split_particle(surface: &str, start: usize, token: usize) -> Option<(Morph, Morph)> {
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
            token,
            parts: None,
        },
        Morph {
            surface: particle.to_string(),
            start: cut,
            end: cut + particle.len(),
            tag: tag.to_string(),
            unknown: false,
            token,
            parts: None,
        },
    ))
}

/// The length in bytes of the syllables at the start of `surface` whose jamo begin with exactly
/// the jamo of `part` (`만나` in `만났다` gives the bytes of `만났`), when they do, and whether
/// the last of those syllables has letters after the part's (`ㅆ` of `만났`).
fn jamo_prefix(surface: &str, part: &str) -> Option<(usize, bool)> {
    use unicode_normalization::UnicodeNormalization;
    let mut want = part.nfd().peekable();
    let mut len = 0;
    let mut left_over = false;
    for c in surface.chars() {
        if want.peek().is_none() {
            break;
        }
        len += c.len_utf8();
        for j in std::iter::once(c).nfd() {
            match want.peek() {
                Some(&w) if w == j => {
                    want.next();
                }
                None => left_over = true,
                Some(_) => return None,
            }
        }
    }
    want.peek().is_none().then_some((len, left_over))
}

/// The syllable's initial consonant, vowel and final consonant indices (Unicode's Hangul
/// syllable composition), for a precomposed syllable.
fn syllable_jamo(c: char) -> Option<(u32, u32, u32)> {
    let code = (c as u32).checked_sub(0xAC00).filter(|&c| c < 11_172)?;
    Some((code / 588, code / 28 % 21, code % 28))
}

/// The length in bytes of the syllables at the start of `surface` that spell the predicate
/// stem `stem` contracted with the ending that starts with `ending`, by the contraction rules
/// of the Korean orthography (Hangul Matchumbeop). Either the stem's last syllable (without a
/// final consonant) and the ending's `아`/`어`/`여` merge into one syllable with the same
/// initial consonant and the merged vowel (articles 34 to 36: `하`+`였` is `했`, `지`+`어` is
/// `져`, `이루`+`어` is `이뤄`, `되`+`어` is `돼`, `쓰`+`어` is `써`); or a final `ㄹ` drops
/// (article 18: `만들`+`ㄴ` is `만든`); or `르` doubles its `ㄹ` ([`reu_irregular`]). The
/// syllables before it must be the stem's own.
fn contracted_stem(surface: &str, stem: &str, ending: &str) -> Option<usize> {
    // Vowel indices: ㅏ 0, ㅐ 1, ㅓ 4, ㅕ 6, ㅗ 8, ㅘ 9, ㅙ 10, ㅚ 11, ㅜ 13, ㅝ 14, ㅡ 18, ㅣ 20.
    const MERGED: &[(u32, u32, u32)] = &[
        (0, 0, 1),   // 하 + 았 -> 했 (ko-dic writes 하/XSV + 았/EP)
        (0, 6, 1),   // 하 + 였 -> 했
        (8, 0, 9),   // 보 + 아 -> 봐
        (13, 4, 14), // 주 + 어 -> 줘
        (20, 4, 6),  // 지 + 어 -> 져
        (11, 4, 10), // 되 + 어 -> 돼
        (18, 4, 4),  // 쓰 + 어 -> 써
        (18, 0, 0),  // 아프 + 아 -> 아파
    ];
    // The ending may start with a bare consonant (`ᆫ/ETM`), which has no vowel.
    let ending_vowel = syllable_jamo(ending.chars().next()?).map(|(_, v, _)| v);
    let stem: Vec<char> = stem.chars().collect();
    let (last, before) = stem.split_last()?;
    if *last == '르' && !before.is_empty() {
        return reu_irregular(surface, before);
    }
    let mut chars = surface.char_indices();
    for &c in before {
        if chars.next()?.1 != c {
            return None;
        }
    }
    let (at, merged) = chars.next()?;
    let (initial, vowel, coda) = syllable_jamo(*last)?;
    let (m_initial, m_vowel, m_coda) = syllable_jamo(merged)?;
    // The final ㄹ of a stem drops before ㄴ, ㅂ, ㅅ and the ending `ㄴ`/`ㄹ` (article 18:
    // `만들` + `ㄴ` is `만든`): same initial and vowel, another final consonant.
    const RIEUL: u32 = 8;
    let rieul_drop = coda == RIEUL && m_initial == initial && m_vowel == vowel && m_coda != RIEUL;
    let merged_vowels = ending_vowel.is_some_and(|ending_vowel| {
        coda == 0 && m_initial == initial && MERGED.contains(&(vowel, ending_vowel, m_vowel))
    });
    (rieul_drop || merged_vowels).then_some(at + merged.len_utf8())
}

/// [`contracted_stem`] for a stem ending in `르` (article 18, 르 irregular: `오르` + `아` is
/// `올라`): the syllable before `르` takes a final ㄹ and `르` + `아`/`어` becomes `라`/`러`.
fn reu_irregular(surface: &str, before: &[char]) -> Option<usize> {
    const RIEUL_INITIAL: u32 = 5;
    const RIEUL_FINAL: u32 = 8;
    let (head, prev) = before.split_at(before.len() - 1);
    let mut chars = surface.char_indices();
    for &c in head {
        if chars.next()?.1 != c {
            return None;
        }
    }
    let (_, with_rieul) = chars.next()?;
    let (i, v, coda) = syllable_jamo(prev[0])?;
    let (wi, wv, wcoda) = syllable_jamo(with_rieul)?;
    let (at, ra) = chars.next()?;
    let (ri, rv, _) = syllable_jamo(ra)?;
    let fits = coda == 0
        && (wi, wv, wcoda) == (i, v, RIEUL_FINAL)
        && ri == RIEUL_INITIAL
        && matches!(rv, 0 | 4);
    fits.then_some(at + ra.len_utf8())
}

/// Splits a ko-dic expression (`탄산/NNG/*+음료/NNG/*`) into morphemes whose text comes from the
/// token's `surface` (which starts at byte `start`):
///
/// - a part found, in order, in the surface is that text;
/// - a part whose beginning the surface continues with, and whose rest holds no Hangul, is that
///   beginning (ko-dic writes `정진7/NNG` for the `정진` of `정진해`);
/// - a part whose letters (jamo) begin the surface's letters is read from the syllables that
///   hold them: the stem `만나` of `만났` (`ㅁㅏㄴ ㄴㅏㅆ`), `가` of `갔`; the term is built from
///   the input's own letters, only the final consonant of the ending left out;
/// - other parts (contractions that change a vowel: `해` is `하/XSV` + `아/EC`) share the text
///   between the found parts around them, and a part with no text left (`시키` is `시키/XSV` +
///   `아/EC`) is dropped.
///
/// `None` when the field is not an expression of at least two parts.
fn split_expression(
    expression: &str,
    surface: &str,
    start: usize,
    token: usize,
) -> Option<Vec<Morph>> {
    // On the stack: ko-dic's expressions have at most a handful of parts (more: not split).
    const MAX_PARTS: usize = 8;
    let mut pieces = [("", ""); MAX_PARTS];
    let mut n = 0;
    for piece in expression.split('+') {
        let mut fields = piece.split('/');
        let (Some(text), Some(tag)) = (fields.next(), fields.next()) else {
            return None;
        };
        if text.is_empty() || n == MAX_PARTS {
            return None;
        }
        pieces[n] = (text, tag);
        n += 1;
    }
    if n < 2 {
        return None;
    }
    let pieces = &pieces[..n];
    // Each part's span in the surface and, for a stem read from a contracted syllable, its text.
    // The fourth field is where the text left for the parts after it begins.
    type Found<'a> = Option<(usize, usize, Option<&'a str>, usize)>;
    let mut found: [Found<'_>; MAX_PARTS] = [None; MAX_PARTS];
    let mut cursor = 0;
    for (k, (text, _)) in pieces.iter().enumerate() {
        let rest = &surface[cursor..];
        let span = match rest.find(text) {
            Some(at) => Some((
                cursor + at,
                cursor + at + text.len(),
                None,
                cursor + at + text.len(),
            )),
            None => {
                let common: usize = rest
                    .chars()
                    .zip(text.chars())
                    .take_while(|(a, b)| a == b)
                    .map(|(a, _)| a.len_utf8())
                    .sum();
                let junk_only = !text[common..].chars().any(crate::analysis::is_hangul);
                if common > 0 && junk_only {
                    Some((cursor, cursor + common, None, cursor + common))
                } else {
                    let next = pieces.get(k + 1).map(|p| p.0);
                    jamo_prefix(rest, text)
                        .map(|(len, rest_of_syllable)| {
                            // The ending's letters left in the syllable make it the ending's too.
                            let shared = if rest_of_syllable {
                                cursor
                            } else {
                                cursor + len
                            };
                            (cursor, cursor + len, Some(*text), shared)
                        })
                        .or_else(|| {
                            let len = contracted_stem(rest, text, next?)?;
                            Some((cursor, cursor + len, Some(*text), cursor))
                        })
                }
            }
        };
        if let Some((_, e, _, _)) = span {
            cursor = e;
        }
        found[k] = span;
    }
    let mut parts = Vec::with_capacity(pieces.len());
    for (k, &(_, tag)) in pieces.iter().enumerate() {
        let (s, e, term, _) = found[k].unwrap_or_else(|| {
            let s = found[..k].iter().rev().find_map(|f| f.map(|x| x.3));
            let e = found[k + 1..n].iter().find_map(|f| f.map(|x| x.0));
            (s.unwrap_or(0), e.unwrap_or(surface.len()), None, 0)
        });
        if s >= e {
            continue;
        }
        parts.push(Morph {
            surface: term.unwrap_or(&surface[s..e]).to_string(),
            start: start + s,
            end: start + e,
            tag: tag.to_string(),
            unknown: false,
            token,
            parts: None,
        });
    }
    Some(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn particle_ends_are_the_last_syllables_of_the_particles() {
        let mut ends: Vec<char> = TRAILING_PARTICLES
            .iter()
            .filter_map(|(p, _)| p.chars().last())
            .collect();
        ends.sort_unstable();
        ends.dedup();
        let mut listed = PARTICLE_ENDS.to_vec();
        listed.sort_unstable();
        assert_eq!(ends, listed);
    }

    #[test]
    fn contractions_follow_the_orthography() {
        assert_eq!(contracted_stem("했다", "하", "았"), Some(3));
        assert_eq!(contracted_stem("이뤄", "이루", "어"), Some(6));
        assert_eq!(contracted_stem("돼서", "되", "어"), Some(3));
        assert_eq!(contracted_stem("만든", "만들", "ᆫ"), Some(6));
        assert_eq!(contracted_stem("올랐다", "오르", "았"), Some(6));
        // Another vowel, or another consonant, is not a contraction of the stem.
        assert_eq!(contracted_stem("혔다", "하", "았"), None);
        assert_eq!(contracted_stem("겼다", "하", "았"), None);
    }
}
