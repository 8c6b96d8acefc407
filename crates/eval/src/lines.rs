//! Line-by-line reading that reports invalid UTF-8 with its file and line, and opens gzip
//! files as the text they hold.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use crate::error::{Error, Result};

/// Calls `f(line_number, line)` for every line of `path`, with 1-based line numbers.
///
/// The file is opened by [`open_text`] (gzip read as it is). Lines are read as bytes and
/// decoded with [`std::str::from_utf8`], so invalid UTF-8 is reported with the file and line. The line ending (`\n` or `\r\n`) and a UTF-8 byte order
/// mark at the start of the file are removed.
pub(crate) fn for_each_line(
    path: &Path,
    mut f: impl FnMut(usize, &str) -> Result<()>,
) -> Result<()> {
    let mut lines = Lines::open(path)?;
    while let Some((line_no, line)) = lines.next_line()? {
        f(line_no, line)?;
    }
    Ok(())
}

/// Opens `path` for reading its text: a gzip file (found by its first bytes, whatever its
/// name) is decompressed as it is read (every member, as `zcat` does); a file compressed
/// otherwise (zstd, bzip2, xz, zip) is refused with [`Error::Compressed`].
pub(crate) fn open_text(path: &Path) -> Result<Box<dyn BufRead + Send>> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut reader = BufReader::new(file);
    let head = reader.fill_buf().map_err(|e| Error::io(path, e))?;
    let format = match head {
        [0x1f, 0x8b, ..] => {
            return Ok(Box::new(BufReader::new(
                flate2::bufread::MultiGzDecoder::new(reader),
            )));
        }
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Some("zstd"),
        [b'B', b'Z', b'h', ..] => Some("bzip2"),
        [0xfd, b'7', b'z', b'X', b'Z', 0, ..] => Some("xz"),
        [b'P', b'K', 3, 4, ..] => Some("zip"),
        _ => None,
    };
    match format {
        Some(format) => Err(Error::Compressed {
            path: path.to_path_buf(),
            format,
        }),
        None => Ok(Box::new(reader)),
    }
}

/// The whole text of `path` as bytes, opened as [`open_text`] opens it.
pub(crate) fn read_text(path: &Path) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    open_text(path)?
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    Ok(bytes)
}

/// The lines of a file, one at a time, decoded as [`for_each_line`] decodes them.
pub(crate) struct Lines {
    path: std::path::PathBuf,
    reader: Box<dyn BufRead + Send>,
    buf: Vec<u8>,
    line_no: usize,
}

impl Lines {
    pub(crate) fn open(path: &Path) -> Result<Self> {
        Ok(Self {
            path: path.to_path_buf(),
            reader: open_text(path)?,
            buf: Vec::new(),
            line_no: 0,
        })
    }

    /// The next line and its 1-based number, or `None` at the end of the file.
    pub(crate) fn next_line(&mut self) -> Result<Option<(usize, &str)>> {
        let path = self.path.as_path();
        self.buf.clear();
        let n = self
            .reader
            .read_until(b'\n', &mut self.buf)
            .map_err(|e| Error::io(path, e))?;
        if n == 0 {
            return Ok(None);
        }
        self.line_no += 1;
        let line_no = self.line_no;
        let mut bytes = self.buf.as_slice();
        if let Some(rest) = bytes.strip_suffix(b"\n") {
            bytes = rest;
        }
        if let Some(rest) = bytes.strip_suffix(b"\r") {
            bytes = rest;
        }
        if line_no == 1
            && let Some(rest) = bytes.strip_prefix(b"\xEF\xBB\xBF")
        {
            bytes = rest;
        }
        let line = std::str::from_utf8(bytes).map_err(|source| Error::Utf8 {
            path: path.to_path_buf(),
            line: line_no,
            source,
        })?;
        Ok(Some((line_no, line)))
    }
}

/// The 1-based line on which byte `offset` of `bytes` lies.
pub(crate) fn line_of_offset(bytes: &[u8], offset: usize) -> usize {
    bytes[..offset.min(bytes.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}
