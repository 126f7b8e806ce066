//! Streaming line reader for the text loaders: 1-based line numbers, UTF-8 checked per line,
//! gzip decoded transparently (by the `.gz` extension), and every error naming the file.
//!
//! Loaders never read a whole file into memory: UMLS MRCONSO has over 15 million lines.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use crate::error::{Error, Result};

/// Opens `path` for buffered reading, decompressing `*.gz` files.
pub fn open(path: &Path) -> Result<Box<dyn BufRead>> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let is_gz = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gz"));
    Ok(if is_gz {
        Box::new(BufReader::with_capacity(
            1 << 16,
            MultiGzDecoder::new(BufReader::new(file)),
        ))
    } else {
        Box::new(BufReader::with_capacity(1 << 16, file))
    })
}

/// Reads lines one at a time into a reused buffer.
pub struct Lines<R> {
    reader: R,
    path: PathBuf,
    buf: Vec<u8>,
    line_no: usize,
}

impl<R: BufRead> Lines<R> {
    pub fn new(reader: R, path: &Path) -> Self {
        Lines {
            reader,
            path: path.to_path_buf(),
            buf: Vec::with_capacity(256),
            line_no: 0,
        }
    }

    /// The next line without its `\n` / `\r\n`, with its 1-based number; `None` at end of file.
    pub fn next_line(&mut self) -> Result<Option<(usize, &str)>> {
        self.buf.clear();
        let n = self.reader.read_until(b'\n', &mut self.buf).map_err(|e| {
            Error::io(
                &self.path,
                std::io::Error::new(e.kind(), format!("line {}: {e}", self.line_no + 1)),
            )
        })?;
        if n == 0 {
            return Ok(None);
        }
        self.line_no += 1;
        if self.buf.last() == Some(&b'\n') {
            self.buf.pop();
            if self.buf.last() == Some(&b'\r') {
                self.buf.pop();
            }
        }
        // A UTF-8 byte-order mark on the first line is not part of the data.
        let start = if self.line_no == 1 && self.buf.starts_with(b"\xEF\xBB\xBF") {
            3
        } else {
            0
        };
        match std::str::from_utf8(&self.buf[start..]) {
            Ok(s) => Ok(Some((self.line_no, s))),
            Err(e) => Err(Error::parse(
                &self.path,
                self.line_no,
                None,
                format!("invalid UTF-8 at byte {}", e.valid_up_to() + start),
            )),
        }
    }

    /// The next line as raw bytes, line end included (for readers that must keep the input
    /// byte for byte); `None` at end of file.
    pub fn next_raw_line(&mut self) -> Result<Option<(usize, &[u8])>> {
        self.buf.clear();
        let n = self
            .reader
            .read_until(b'\n', &mut self.buf)
            .map_err(|e| Error::io(&self.path, e))?;
        if n == 0 {
            return Ok(None);
        }
        self.line_no += 1;
        Ok(Some((self.line_no, &self.buf)))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn line_no(&self) -> usize {
        self.line_no
    }
}

/// Reads a whole small input (used by the XML loader, which needs the bytes, and by tests).
pub fn read_all(mut reader: impl Read, path: &Path) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    reader
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    Ok(bytes)
}

/// Splits a delimited line and checks its column count, naming file and line on mismatch.
pub fn split_columns<'a>(
    line: &'a str,
    sep: char,
    expected: std::ops::RangeInclusive<usize>,
    path: &Path,
    line_no: usize,
) -> Result<Vec<&'a str>> {
    let cols: Vec<&str> = line.split(sep).collect();
    if !expected.contains(&cols.len()) {
        let want = if expected.start() == expected.end() {
            expected.start().to_string()
        } else {
            format!("{} to {}", expected.start(), expected.end())
        };
        return Err(Error::parse(
            path,
            line_no,
            None,
            format!(
                "expected {want} columns separated by {sep:?}, found {}",
                cols.len()
            ),
        ));
    }
    Ok(cols)
}
