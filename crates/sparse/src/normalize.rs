//! Unicode normalisation before analysis, with offsets that still point into the original text.
//!
//! Documents and queries reach the analyzers in whatever form their source wrote them: Hangul
//! typed as decomposed jamo (macOS file names, some PDF extractors), ligatures and full-width
//! letters from typeset or East Asian text, invisible format characters from web pages, and
//! `ㆍ` (U+318D, a Hangul letter) typed as a middle dot. [`normalize`] rewrites the text so that
//! the same words give the same terms:
//!
//! 1. **Invisible format characters are removed**: soft hyphen, zero-width space, non-joiner and
//!    joiner, word joiner and the invisible operators, left-to-right and right-to-left marks and
//!    embeddings, the byte-order mark, the Mongolian vowel separator, the combining grapheme
//!    joiner, the interlinear annotation characters, and the Hangul fillers (U+115F, U+1160,
//!    U+3164, U+FFA0), which render as nothing ([`is_invisible`]).
//! 2. **Separator-like letters become a middle dot** (U+00B7): `ㆍ` (U+318D, HANGUL LETTER
//!    ARAEA, which Korean text uses as an interpunct and which ko-dic and Unicode class as a
//!    letter) and a conjoining araea (U+119E) that follows no initial consonant. Modern Korean
//!    has no word with a standalone araea; `교량ㆍ터널` then analyses as `교량·터널` does.
//! 3. **Hangul is composed (NFC)**: decomposed jamo sequences become syllables. Hangul (and the
//!    enclosed CJK letters, `㈀`, `㉠`) is never folded by compatibility (NFKC would turn the
//!    compatibility jamo `ㅋㅋ` into conjoining jamo that no dictionary entry holds).
//! 4. **Everything else is folded by compatibility (NFKC)**: ligatures (`ﬁ` to `fi`), full-width
//!    letters and digits (`ＨｂＡ１ｃ` to `HbA1c`), superscripts, circled numbers, the micro sign.
//!
//! Normalisation works on *chunks*: a starter character with the combining characters (and
//! conjoining jamo) that follow it, which is where canonical composition happens. Each changed
//! chunk is recorded, so an offset in the normalised text maps back to the original
//! ([`Normalized::original_start`], [`Normalized::original_end`]); a token that starts or ends
//! inside a changed chunk covers the whole chunk in the original. Text with nothing to change
//! (almost all text) is borrowed as it is after one scan.
//!
//! Source: Unicode Standard Annex #15 (normalisation forms NFC and NFKC); the Unicode character
//! database's `Cf` (format) category for the invisible characters.

use std::borrow::Cow;

use unicode_normalization::char::canonical_combining_class;
use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfc_quick, is_nfkc_quick};

use crate::analysis::is_hangul;

/// Text after [`normalize`], with the map back to the original's byte offsets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalized<'a> {
    /// The normalised text (borrowed when nothing changed).
    pub text: Cow<'a, str>,
    /// The changed chunks in order: `(normalised start, normalised end, original start,
    /// original end)`, byte offsets; a removed character has an empty normalised range.
    edits: Vec<(usize, usize, usize, usize)>,
}

impl Normalized<'_> {
    /// The original byte offset of a token that starts at byte `at` of the normalised text: the
    /// start of the original chunk when `at` falls inside a changed chunk.
    pub fn original_start(&self, at: usize) -> usize {
        // The last edit that starts at or before `at` (a removed character at `at` sorts
        // before the chunk that follows it, which is the one the token starts in).
        let i = self.edits.partition_point(|e| e.0 <= at);
        match i.checked_sub(1).map(|i| self.edits[i]) {
            None => at,
            Some((_, ne, os, _)) if at < ne => os,
            Some((_, ne, _, oe)) => oe + (at - ne),
        }
    }

    /// The original byte offset of a token that ends (exclusively) at byte `at` of the
    /// normalised text: the end of the original chunk when `at` falls inside a changed chunk.
    pub fn original_end(&self, at: usize) -> usize {
        let i = self.edits.partition_point(|e| e.0 < at);
        match i.checked_sub(1).map(|i| self.edits[i]) {
            None => at,
            Some((_, ne, _, oe)) if at <= ne => oe,
            Some((_, ne, _, oe)) => oe + (at - ne),
        }
    }

    /// Whether normalisation changed anything.
    pub fn changed(&self) -> bool {
        !self.edits.is_empty()
    }
}

/// Whether `c` is an invisible format character that [`normalize`] removes.
pub fn is_invisible(c: char) -> bool {
    matches!(
        c as u32,
        0x00AD // soft hyphen
            | 0x034F // combining grapheme joiner
            | 0x061C // Arabic letter mark
            | 0x115F | 0x1160 | 0x3164 | 0xFFA0 // Hangul fillers
            | 0x180E // Mongolian vowel separator
            | 0x200B..=0x200F // zero-width space, non-joiner, joiner; LRM, RLM
            | 0x202A..=0x202E // bidirectional embeddings and overrides
            | 0x2060..=0x2064 // word joiner, invisible operators
            | 0x2066..=0x206F // bidirectional isolates, deprecated format characters
            | 0xFEFF // byte-order mark, zero-width no-break space
            | 0xFFF9..=0xFFFB // interlinear annotation
    )
}

/// Whether `c` is composed but never folded by compatibility: Hangul, and the enclosed CJK
/// letters (`㈀`, `㉠`), whose compatibility forms are conjoining jamo no dictionary holds.
fn composes_only(c: char) -> bool {
    is_hangul(c) || matches!(c as u32, 0x3200..=0x32FF)
}

/// Whether `c` is a conjoining initial consonant (choseong), which a vowel may follow.
fn is_choseong(c: char) -> bool {
    matches!(c as u32, 0x1100..=0x115E | 0xA960..=0xA97C)
}

/// Whether `c` never starts a chunk: a combining character, or a conjoining vowel or final
/// consonant, which compose with what comes before them; or an invisible character, which is
/// removed, so what follows it composes with what came before it (`의` U+200D `ᆨ` is `읙`, as
/// the text without the U+200D is).
fn continues_chunk(c: char) -> bool {
    canonical_combining_class(c) != 0
        || matches!(c as u32, 0x1161..=0x11FF | 0xD7B0..=0xD7FF)
        || is_invisible(c)
}

/// Whether `c` may need work; a text without any such character is already normalised.
fn needs_work(c: char) -> bool {
    if c.is_ascii() || matches!(c as u32, 0xAC00..=0xD7A3) {
        return false;
    }
    if is_invisible(c) || c == '\u{318D}' || continues_chunk(c) {
        return true;
    }
    let quick = if composes_only(c) {
        is_nfc_quick(std::iter::once(c))
    } else {
        is_nfkc_quick(std::iter::once(c))
    };
    quick != IsNormalized::Yes
}

/// Normalises one chunk (a starter and what continues it).
fn normalize_chunk(chunk: &str, out: &mut String) {
    let mut chars = chunk.chars().filter(|&c| !is_invisible(c)).peekable();
    let mut previous: Option<char> = None;
    match chars.peek() {
        None => return,
        Some('\u{318D}' | '\u{119E}') => {
            // A separator (an araea after an initial consonant is in the same chunk as the
            // consonant, so it never starts one).
            chars.next();
            out.push('\u{B7}');
            previous = Some('\u{B7}');
        }
        _ => {}
    }
    let rest: String = chars.collect();
    // Hangul (and what continues it) is composed only; anything else folded by compatibility
    // too. The chunk's starter decides: conjoining jamo after another starter compose with
    // nothing, and deciding by them would leave the starter unfolded (U+2000 then U+119E).
    let composed: String = if rest.chars().next().is_some_and(composes_only) {
        rest.nfc().collect()
    } else {
        rest.nfkc().collect()
    };
    // An araea that follows no initial consonant once composed (after a whole syllable, as in
    // decomposed `ᄋ ᅴ ᆞ`) is a separator too: normalising the output again changes nothing.
    for c in composed.chars() {
        if c == '\u{119E}' && previous.is_some_and(|p| !is_choseong(p)) {
            out.push('\u{B7}');
        } else {
            out.push(c);
        }
        previous = Some(c);
    }
}

/// Normalises `text` for analysis (see the [module documentation](self) for what changes).
pub fn normalize(text: &str) -> Normalized<'_> {
    let Some(first) = text.char_indices().find(|&(_, c)| needs_work(c)) else {
        return Normalized {
            text: Cow::Borrowed(text),
            edits: Vec::new(),
        };
    };
    // Start at the chunk holding the first character that needs work.
    let mut start = text[..first.0]
        .char_indices()
        .rev()
        .find(|&(_, c)| !continues_chunk(c))
        .map_or(0, |(i, _)| i);
    let mut out = String::with_capacity(text.len());
    out.push_str(&text[..start]);
    let mut edits = Vec::new();
    let mut buf = String::new();
    let mut flush = |s: usize, e: usize, out: &mut String| {
        let chunk = &text[s..e];
        if !chunk.chars().any(needs_work) {
            out.push_str(chunk);
            return;
        }
        buf.clear();
        normalize_chunk(chunk, &mut buf);
        if buf != chunk {
            edits.push((out.len(), out.len() + buf.len(), s, e));
        }
        out.push_str(&buf);
    };
    let mut prev: Option<char> = None;
    let from = start;
    for (i, c) in text[from..].char_indices().map(|(i, c)| (i + from, c)) {
        // A conjoining araea joins its chunk only after a consonant or vowel of a syllable.
        let araea_alone =
            c == '\u{119E}' && !prev.is_some_and(|p| is_choseong(p) || continues_chunk(p));
        let joins = continues_chunk(c) && !araea_alone;
        if i > start && !joins {
            flush(start, i, &mut out);
            start = i;
        }
        prev = Some(c);
    }
    flush(start, text.len(), &mut out);
    Normalized {
        text: Cow::Owned(out),
        edits,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decomposed_hangul_composes_and_offsets_cover_the_jamo() {
        let nfd =
            "\u{1112}\u{116C}\u{110B}\u{1174}\u{1105}\u{1169}\u{11A8}\u{110B}\u{1173}\u{11AF}";
        let n = normalize(nfd);
        assert_eq!(n.text, "회의록을");
        // `회의록` is bytes 0..9 of the composed text and the first seven jamo of the original.
        assert_eq!((n.original_start(0), n.original_end(9)), (0, 21));
        assert_eq!(n.original_end(12), nfd.len());
    }

    #[test]
    fn compatibility_folding_leaves_hangul_jamo_alone() {
        assert_eq!(normalize("pulmonary ﬁbrosis").text, "pulmonary fibrosis");
        assert_eq!(normalize("ＨｂＡ１ｃ").text, "HbA1c");
        assert_eq!(normalize("ㅋㅋ 웃겼다").text, "ㅋㅋ 웃겼다");
        assert_eq!(normalize("㉠ 항목").text, "㉠ 항목");
        assert!(!normalize("당뇨병 환자의 HbA1c").changed());
    }

    #[test]
    fn invisible_characters_go_and_offsets_skip_them() {
        let text = "pul\u{AD}monary \u{FEFF}fi\u{200B}brosis";
        let n = normalize(text);
        assert_eq!(n.text, "pulmonary fibrosis");
        // `pulmonary` (0..9) is the original 0..11 (a two-byte soft hyphen inside).
        assert_eq!((n.original_start(0), n.original_end(9)), (0, 11));
        // `fibrosis` starts after the BOM and ends at the end.
        assert_eq!(n.original_start(10), 15);
        assert_eq!(n.original_end(18), text.len());
    }

    #[test]
    fn araea_between_words_is_a_middle_dot() {
        assert_eq!(normalize("교량ㆍ터널").text, "교량·터널");
        assert_eq!(normalize("교량\u{119E}터널").text, "교량·터널");
        // After an initial consonant it is a (Middle Korean) vowel and stays.
        assert_eq!(normalize("\u{1100}\u{119E}").text, "\u{1100}\u{119E}");
    }
}
