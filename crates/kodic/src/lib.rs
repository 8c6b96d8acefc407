//! Build lindera's ko-dic dictionary from the MeCab-compiled mecab-ko-dic.
//!
//! lindera's own `embed-ko-dic` build downloads the dictionary source from a web site that is not
//! reachable on every machine. PyPI's `python-mecab-ko-dic==2.1.1.post2` ships the same release
//! (mecab-ko-dic 2.1.1-20180720) compiled by MeCab: `sys.dic`, `unk.dic`, `matrix.bin` and
//! `char.bin`. This module reads those files back into MeCab's source form (`lex.csv`,
//! `matrix.def`, `char.def`, `unk.def`) and hands them to lindera's `DictionaryBuilder`, so
//! `scripts/fetch-ko-dic.sh` can produce the dictionary with no network beyond PyPI.
//!
//! MeCab's compiled format (little-endian) is described in `docs/korean-analysis.md`.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::Path;

use lindera_dictionary::builder::DictionaryBuilder;
use lindera_dictionary::dictionary::metadata::Metadata;

use hybrid_search_sparse::{Error, Result};

/// The 8 ko-dic detail fields after surface, context ids and cost.
const KO_DIC_METADATA: &str = r#"{
  "name": "ko-dic",
  "encoding": "UTF-8",
  "default_word_cost": -10000,
  "default_left_context_id": 0,
  "default_right_context_id": 0,
  "default_field_value": "*",
  "flexible_csv": false,
  "skip_invalid_cost_or_id": false,
  "normalize_details": false,
  "dictionary_schema": { "fields": [
    "surface", "left_context_id", "right_context_id", "cost", "part_of_speech_tag", "meaning",
    "presence_absence", "reading", "type", "first_part_of_speech", "last_part_of_speech",
    "expression" ] },
  "user_dictionary_schema": { "fields": ["surface", "part_of_speech_tag", "reading"] },
  "space_penalty": { "rules": [
    { "pos": ["EC", "EF", "EP", "ETM", "ETN", "VCP", "XSA", "XSN", "XSV"], "cost": 3000 },
    { "pos": ["JC", "JKB", "JKC", "JKG", "JKO", "JKQ", "JKS", "JKV", "JX"], "cost": 6000 } ] }
}"#;

/// Number of entries written by [`convert_mecab_sources`], for reporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvertStats {
    /// Lexicon entries written to `lex.csv`.
    pub lexicon_entries: usize,
    /// Unknown-word entries written to `unk.def`.
    pub unknown_entries: usize,
    /// Character categories written to `char.def`.
    pub categories: usize,
}

/// Builds a lindera ko-dic dictionary in `out_dir` from a MeCab-compiled mecab-ko-dic in
/// `mecab_dir` (the folder holding `sys.dic`, `unk.dic`, `matrix.bin`, `char.bin`).
///
/// The MeCab source files are written to `out_dir/source` first; the lindera dictionary itself
/// is written to a temporary folder and renamed to `out_dir/lindera` when complete, so an
/// interrupted build never leaves a half-written dictionary behind.
///
/// # Errors
///
/// [`Error::Io`] when a file cannot be read or written; [`Error::Dictionary`] when a MeCab file
/// is damaged (the file and offset are named) or lindera cannot build the dictionary. The
/// previous dictionary at `out_dir`, if any, is replaced only when the new one is complete.
pub fn build_ko_dic(mecab_dir: &Path, out_dir: &Path) -> Result<ConvertStats> {
    let source = out_dir.join("source");
    fs::create_dir_all(&source).map_err(|e| Error::io(&source, e))?;
    let stats = convert_mecab_sources(mecab_dir, &source)?;

    let metadata: Metadata = serde_json::from_str(KO_DIC_METADATA)
        .map_err(|e| Error::Dictionary(format!("built-in ko-dic metadata: {e}")))?;
    let tmp = out_dir.join("lindera.tmp");
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    }
    DictionaryBuilder::new(metadata)
        .build_dictionary(&source, &tmp)
        .map_err(|e| Error::Dictionary(format!("building from {}: {e}", source.display())))?;
    // The fingerprint a collection records is computed (and cached in the folder) once here.
    hybrid_search_sparse::ko_dic_fingerprint(&tmp)?;
    let dest = out_dir.join("lindera");
    if dest.exists() {
        fs::remove_dir_all(&dest).map_err(|e| Error::io(&dest, e))?;
    }
    fs::rename(&tmp, &dest).map_err(|e| Error::io(&dest, e))?;
    Ok(stats)
}

/// Converts MeCab's compiled dictionary files back into their source form in `source_dir`.
///
/// # Errors
///
/// [`Error::Io`] when a file cannot be read or written; [`Error::Dictionary`] when a MeCab file
/// is damaged (the file and offset are named).
pub fn convert_mecab_sources(mecab_dir: &Path, source_dir: &Path) -> Result<ConvertStats> {
    let (sys_path, unk_path) = (mecab_dir.join("sys.dic"), mecab_dir.join("unk.dic"));
    let sys = CompiledDic::read(&sys_path)?;
    let lexicon_entries = sys.write_csv(&source_dir.join("lex.csv"))?;
    let unk = CompiledDic::read(&unk_path)?;
    let unknown_entries = unk.write_csv(&source_dir.join("unk.def"))?;
    write_matrix(
        &mecab_dir.join("matrix.bin"),
        &source_dir.join("matrix.def"),
    )?;
    let categories = write_char_def(&mecab_dir.join("char.bin"), &source_dir.join("char.def"))?;
    Ok(ConvertStats {
        lexicon_entries,
        unknown_entries,
        categories,
    })
}

fn read_file(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|e| Error::io(path, e))
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(bytes[at..at + 2].try_into().expect("2 bytes"))
}

fn corrupt(path: &Path, what: &str) -> Error {
    Error::Dictionary(format!(
        "{}: {what}; expected a MeCab-compiled mecab-ko-dic file (run scripts/fetch-ko-dic.sh again)",
        path.display()
    ))
}

/// A MeCab `sys.dic` or `unk.dic`: a Darts double-array trie over surface forms, a token table and
/// the feature strings.
struct CompiledDic<'p> {
    path: &'p Path,
    bytes: Vec<u8>,
    lexsize: usize,
    trie: (usize, usize),
    tokens: (usize, usize),
    features: (usize, usize),
}

const HEADER: usize = 40 + 32;

impl<'p> CompiledDic<'p> {
    fn read(path: &'p Path) -> Result<Self> {
        let bytes = read_file(path)?;
        if bytes.len() < HEADER {
            return Err(corrupt(path, "shorter than the MeCab header"));
        }
        let field = |i: usize| u32_at(&bytes, i * 4) as usize;
        let (lexsize, dsize, tsize, fsize) = (field(3), field(6), field(7), field(8));
        let charset = String::from_utf8_lossy(&bytes[40..72]);
        if !charset.trim_end_matches('\0').eq_ignore_ascii_case("utf-8")
            && !charset.trim_end_matches('\0').eq_ignore_ascii_case("utf8")
        {
            return Err(corrupt(path, &format!("charset {charset:?} is not UTF-8")));
        }
        if HEADER + dsize + tsize + fsize > bytes.len() || dsize % 8 != 0 || tsize % 16 != 0 {
            return Err(corrupt(path, "section sizes do not match the file length"));
        }
        let trie = (HEADER, HEADER + dsize);
        let tokens = (trie.1, trie.1 + tsize);
        let features = (tokens.1, tokens.1 + fsize);
        Ok(Self {
            path,
            bytes,
            lexsize,
            trie,
            tokens,
            features,
        })
    }

    fn units(&self) -> usize {
        (self.trie.1 - self.trie.0) / 8
    }

    fn base(&self, slot: usize) -> i32 {
        u32_at(&self.bytes, self.trie.0 + slot * 8) as i32
    }

    fn check(&self, slot: usize) -> u32 {
        u32_at(&self.bytes, self.trie.0 + slot * 8 + 4)
    }

    /// Walks every key of the double-array trie: `(surface, first token, token count)`.
    fn keys(&self) -> Result<Vec<(Vec<u8>, usize, usize)>> {
        let units = self.units();
        let mut out = Vec::with_capacity(self.lexsize);
        let root = self.base(0);
        let mut stack: Vec<(i64, Vec<u8>)> = vec![(i64::from(root), Vec::new())];
        while let Some((base, key)) = stack.pop() {
            if base < 0 || base as usize >= units {
                continue;
            }
            let b = base as usize;
            if self.check(b) as usize == b && self.base(b) < 0 {
                let value = (-(self.base(b) as i64) - 1) as usize;
                out.push((key.clone(), value >> 8, value & 0xff));
            }
            for c in 1..=255usize {
                let p = b + c + 1;
                if p >= units {
                    break;
                }
                if self.check(p) as usize == b {
                    let mut child = key.clone();
                    child.push(c as u8);
                    stack.push((i64::from(self.base(p)), child));
                }
            }
        }
        Ok(out)
    }

    fn feature(&self, offset: usize) -> Result<&str> {
        let start = self.features.0 + offset;
        let end = self.bytes[start..self.features.1]
            .iter()
            .position(|&b| b == 0)
            .map(|n| start + n)
            .ok_or_else(|| corrupt(self.path, "unterminated feature string"))?;
        std::str::from_utf8(&self.bytes[start..end])
            .map_err(|_| corrupt(self.path, "feature string is not UTF-8"))
    }

    /// Writes one CSV line per token: `surface,left,right,cost,features`; returns the count.
    fn write_csv(&self, out: &Path) -> Result<usize> {
        let mut keys = self.keys()?;
        keys.sort();
        let mut w = BufWriter::new(File::create(out).map_err(|e| Error::io(out, e))?);
        let mut written = 0;
        for (key, first, count) in keys {
            let surface = std::str::from_utf8(&key)
                .map_err(|_| corrupt(self.path, "surface is not UTF-8"))?;
            for t in first..first + count {
                let at = self.tokens.0 + t * 16;
                if at + 16 > self.tokens.1 {
                    return Err(corrupt(self.path, "token index out of range"));
                }
                let left = u16_at(&self.bytes, at);
                let right = u16_at(&self.bytes, at + 2);
                let cost = u16_at(&self.bytes, at + 6) as i16;
                let feature = self.feature(u32_at(&self.bytes, at + 8) as usize)?;
                writeln!(w, "{},{left},{right},{cost},{feature}", csv_field(surface))
                    .map_err(|e| Error::io(out, e))?;
                written += 1;
            }
        }
        w.flush().map_err(|e| Error::io(out, e))?;
        if written != self.lexsize {
            return Err(corrupt(
                self.path,
                &format!("found {written} entries, the header says {}", self.lexsize),
            ));
        }
        Ok(written)
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn write_matrix(bin: &Path, out: &Path) -> Result<()> {
    let bytes = read_file(bin)?;
    if bytes.len() < 4 {
        return Err(corrupt(bin, "too short"));
    }
    let (lsize, rsize) = (u16_at(&bytes, 0) as usize, u16_at(&bytes, 2) as usize);
    if bytes.len() != 4 + 2 * lsize * rsize {
        return Err(corrupt(bin, "size does not match its dimensions"));
    }
    let mut w =
        BufWriter::with_capacity(1 << 20, File::create(out).map_err(|e| Error::io(out, e))?);
    let io = |e| Error::io(out, e);
    writeln!(w, "{lsize} {rsize}").map_err(io)?;
    for l in 0..lsize {
        for r in 0..rsize {
            let cost = u16_at(&bytes, 4 + 2 * (l + lsize * r)) as i16;
            writeln!(w, "{l} {r} {cost}").map_err(io)?;
        }
    }
    w.flush().map_err(io)
}

/// Reconstructs `char.def` from `char.bin`; returns the number of categories.
fn write_char_def(bin: &Path, out: &Path) -> Result<usize> {
    let bytes = read_file(bin)?;
    let count = u32_at(&bytes, 0) as usize;
    let names_end = 4 + 32 * count;
    // MeCab writes one u32 per code point below 0xFFFF.
    if bytes.len() < names_end || !(bytes.len() - names_end).is_multiple_of(4) {
        return Err(corrupt(bin, "size does not match its category count"));
    }
    let code_points = (bytes.len() - names_end) / 4;
    let names: Vec<String> = (0..count)
        .map(|i| {
            let raw = &bytes[4 + 32 * i..4 + 32 * (i + 1)];
            String::from_utf8_lossy(raw)
                .trim_end_matches('\0')
                .to_string()
        })
        .collect();
    let info = |cp: usize| u32_at(&bytes, names_end + 4 * cp);
    // (invoke, group, length) of each category, read off a code point whose default it is.
    let mut settings: BTreeMap<usize, (u32, u32, u32)> = BTreeMap::new();
    for cp in 0..code_points {
        let v = info(cp);
        let default = ((v >> 18) & 0xff) as usize;
        settings
            .entry(default)
            .or_insert(((v >> 31) & 1, (v >> 30) & 1, (v >> 26) & 0xf));
    }
    let mut w = BufWriter::new(File::create(out).map_err(|e| Error::io(out, e))?);
    let io = |e| Error::io(out, e);
    for (i, name) in names.iter().enumerate() {
        let (invoke, group, length) = settings.get(&i).copied().unwrap_or((0, 1, 0));
        writeln!(w, "{name} {invoke} {group} {length}").map_err(io)?;
    }
    let categories_of = |v: u32| {
        let default = ((v >> 18) & 0xff) as usize;
        let mut cats = vec![default];
        cats.extend((0..count).filter(|&c| c != default && v & (1 << c) != 0));
        cats
    };
    let mut start = 0usize;
    while start < code_points {
        let v = info(start);
        let mut end = start;
        while end + 1 < code_points
            && info(end + 1) & 0x3ffff == v & 0x3ffff
            && (info(end + 1) >> 18) & 0xff == (v >> 18) & 0xff
        {
            end += 1;
        }
        let cats = categories_of(v);
        if !(cats.len() == 1 && names[cats[0]] == "DEFAULT") {
            let listed: Vec<&str> = cats.iter().map(|&c| names[c].as_str()).collect();
            if start == end {
                writeln!(w, "0x{start:04X} {}", listed.join(" ")).map_err(io)?;
            } else {
                writeln!(w, "0x{start:04X}..0x{end:04X} {}", listed.join(" ")).map_err(io)?;
            }
        }
        start = end + 1;
    }
    w.flush().map_err(io)?;
    Ok(count)
}
