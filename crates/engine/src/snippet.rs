//! Snippets: the stretch of a document's text with the most query terms.

use std::collections::HashSet;

use hybrid_search_sparse::{Analyzer, is_hangul};

/// The window of about `width` bytes of `text` holding the most distinct query terms, with the
/// matched words wrapped in `**`. Falls back to the start of the text when nothing matches.
///
/// The snippet is Markdown: a `*` or `\` of the text itself is escaped with `\` (`\*`, `\\`),
/// so a mark is never confused with the text, and a Markdown renderer shows the text as it
/// is. The window is cut at grapheme-cluster boundaries (Unicode UAX #29, by
/// `unicode-segmentation`), so a character built of several code points (an emoji family
/// joined by U+200D, a letter with combining marks) is never cut apart; `…` marks a cut.
pub fn snippet(analyzer: &Analyzer, query: &str, text: &str, width: usize) -> String {
    let terms: Vec<String> = analyzer
        .analyze_query(query)
        .map(|tokens| tokens.into_iter().map(|t| t.term).collect())
        .unwrap_or_default();
    snippet_for_terms(analyzer, &marked_terms(&terms), text, width)
}

/// The query terms worth marking: those BM25 searched for (the query side of the analysis),
/// less one-syllable Korean terms (the copula 이, bound nouns), which match everywhere.
pub(crate) fn marked_terms(terms: &[String]) -> HashSet<String> {
    terms
        .iter()
        .filter(|t| !(t.chars().count() == 1 && t.chars().all(is_hangul)))
        .cloned()
        .collect()
}

/// [`snippet`] for query terms already chosen by [`marked_terms`].
pub(crate) fn snippet_for_terms(
    analyzer: &Analyzer,
    wanted: &HashSet<String>,
    text: &str,
    width: usize,
) -> String {
    let mut matches: Vec<(usize, usize, String)> = match analyzer.analyze(text) {
        Ok(tokens) => tokens
            .into_iter()
            .filter(|t| wanted.contains(&t.term))
            .map(|t| (t.start, t.end, t.term))
            .collect(),
        Err(_) => Vec::new(),
    };
    matches.sort_by_key(|m| (m.0, std::cmp::Reverse(m.1)));
    // Drop matches nested in an earlier one (a part inside its whole term).
    let mut spans: Vec<(usize, usize, String)> = Vec::new();
    for m in matches {
        if spans.last().is_none_or(|last| m.0 >= last.1) {
            spans.push(m);
        }
    }
    // The window start (at a match) that covers the most distinct terms.
    let mut best = (0usize, 0usize); // (distinct terms, index of first span)
    for i in 0..spans.len() {
        let mut seen = HashSet::new();
        for s in spans[i..].iter().take_while(|s| s.1 <= spans[i].0 + width) {
            seen.insert(&s.2);
        }
        if seen.len() > best.0 {
            best = (seen.len(), i);
        }
    }
    let start = if best.0 == 0 {
        0
    } else {
        back_to_boundary(text, spans[best.1].0, width / 4)
    };
    let end = floor_grapheme(text, (start + width).min(text.len()));
    let mut out = String::new();
    if start > 0 {
        out.push('…');
    }
    let mut cursor = start;
    for s in spans.iter().filter(|s| s.0 >= start && s.1 <= end) {
        push_escaped(&mut out, &text[cursor..s.0]);
        out.push_str("**");
        push_escaped(&mut out, &text[s.0..s.1]);
        out.push_str("**");
        cursor = s.1;
    }
    push_escaped(&mut out, &text[cursor..end]);
    if end < text.len() {
        out.push('…');
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `text` with `\` and `*` escaped by a `\` (Markdown's escapes), added to `out`.
fn push_escaped(out: &mut String, text: &str) {
    for c in text.chars() {
        if matches!(c, '\\' | '*') {
            out.push('\\');
        }
        out.push(c);
    }
}

fn floor_char(text: &str, mut at: usize) -> usize {
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// The last grapheme-cluster boundary of `text` at or before byte `at`.
fn floor_grapheme(text: &str, at: usize) -> usize {
    use unicode_segmentation::GraphemeCursor;
    let at = floor_char(text, at);
    let mut cursor = GraphemeCursor::new(at, text.len(), true);
    match cursor.is_boundary(text, 0) {
        Ok(true) => at,
        // The whole text is the one chunk: the cursor needs no more context.
        _ => cursor.prev_boundary(text, 0).ok().flatten().unwrap_or(0),
    }
}

/// Moves back from `at` by up to `max` bytes to the start of a word: just past the last
/// whitespace character before `at`, whatever its width in UTF-8 (U+00A0 takes two bytes,
/// U+3000 three), or `max` bytes back (on a grapheme-cluster boundary) when there is none.
/// `at` must be a character boundary; so is the answer.
fn back_to_boundary(text: &str, at: usize, max: usize) -> usize {
    let lower = floor_grapheme(text, at.saturating_sub(max));
    text[lower..at]
        .char_indices()
        .rev()
        .find(|&(_, c)| c.is_whitespace())
        .map_or(lower, |(i, c)| lower + i + c.len_utf8())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hybrid_search_sparse::{AnalyzerConfig, AnalyzerKind};

    #[test]
    fn highlights_the_densest_window() {
        let analyzer = Analyzer::new(&AnalyzerConfig::for_kind(AnalyzerKind::En)).unwrap();
        let text = format!(
            "{} IL-6 and TNF-α rise in sepsis. {}",
            "filler ".repeat(40),
            "tail ".repeat(40)
        );
        let s = snippet(&analyzer, "IL-6 TNF-α sepsis", &text, 80);
        assert!(
            s.contains("**IL-6**") && s.contains("**TNF-α**") && s.contains("**sepsis**"),
            "{s}"
        );
        assert!(s.starts_with('…') && s.ends_with('…'), "{s}");
    }

    #[test]
    fn cuts_between_grapheme_clusters_and_escapes_the_texts_own_marks() {
        let analyzer = Analyzer::new(&AnalyzerConfig::for_kind(AnalyzerKind::En)).unwrap();
        let family = "\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}";
        for pad in 0..family.len() {
            let text = format!(
                "{}{}{}",
                "a".repeat(pad),
                family.repeat(4),
                " tail".repeat(20)
            );
            for width in 1..40 {
                let s = snippet(&analyzer, "nothing", &text, width);
                let body = s.trim_end_matches('…');
                // Every family in the snippet is whole.
                assert_eq!(
                    body.matches('\u{1F468}').count(),
                    body.matches('\u{1F467}').count(),
                    "pad {pad}, width {width}: {s:?}"
                );
            }
        }
        let s = snippet(&analyzer, "bold", "**bold** for a 2*3 grid, C:\\dir", 80);
        assert_eq!(s, "\\*\\***bold**\\*\\* for a 2\\*3 grid, C:\\\\dir");
    }
}
