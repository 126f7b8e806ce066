//! The dictionary file: a versioned snapshot of sources and concepts.
//!
//! Layout of format 3 (little-endian): the 8-byte magic `MLDICT\0\0`, `u32` format version,
//! `u32` 0, `u64` concept count, `u64` length of the metadata, then the metadata (bincode 1.3
//! of `(Vec<SourceInfo>, Vec<String>)`: sources and warnings), zero padding to a multiple of 8,
//! the `count + 1` record offsets (`u64`, relative to the first record), and the records: each
//! concept as its own bincode 1.3 blob. The records are memory-mapped when the file is opened,
//! so a concept's full record is read only when asked for; derived lookups (ids, name table)
//! are rebuilt on load, so they never disagree with the concepts. Written atomically.
//!
//! Versions: 1, then 2 added the source format `corpus` (mention names from an annotated
//! corpus); both are one bincode blob of `(Vec<SourceInfo>, Vec<Concept>, Vec<String>)` after
//! the version, and are still read (into the heap). 3 split the concepts into records. A
//! medlink that predates a version refuses it with a clear message instead of a bincode error.

use std::io::{Read, Write};
use std::path::Path;

use super::concept::Concept;
use super::dictionary::{Dictionary, RecordBytes, Records, SourceInfo};
use crate::error::{Error, Result};
use crate::fsutil;

const MAGIC: &[u8; 8] = b"MLDICT\0\0";
/// Bump when [`Concept`] or [`SourceInfo`] change shape, or the layout does.
pub const DICTIONARY_FORMAT_VERSION: u32 = 3;
/// The oldest version this build still reads.
pub const OLDEST_READABLE_DICTIONARY_VERSION: u32 = 1;
/// Magic, version, padding, count, metadata length.
const V3_HEADER: usize = 32;

pub fn save(dict: &Dictionary, path: &Path) -> Result<()> {
    let (sources, warnings, records) = dict.parts();
    let (offsets, bytes) = records.raw();
    let meta = bincode::serialize(&(sources, warnings))
        .map_err(|e| Error::Internal(format!("encoding dictionary metadata: {e}")))?;
    fsutil::write_atomic(path, |w| {
        w.write_all(MAGIC)?;
        w.write_all(&DICTIONARY_FORMAT_VERSION.to_le_bytes())?;
        w.write_all(&0u32.to_le_bytes())?;
        w.write_all(&((offsets.len() - 1) as u64).to_le_bytes())?;
        w.write_all(&(meta.len() as u64).to_le_bytes())?;
        w.write_all(&meta)?;
        w.write_all(&[0u8; 8][..padding(V3_HEADER + meta.len())])?;
        for offset in offsets {
            w.write_all(&offset.to_le_bytes())?;
        }
        w.write_all(bytes)
    })
}

/// Zero bytes that bring `len` to a multiple of 8.
fn padding(len: usize) -> usize {
    (8 - len % 8) % 8
}

pub fn load(path: &Path) -> Result<Dictionary> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut reader = std::io::BufReader::new(file);
    let mut header = [0u8; 12];
    reader
        .read_exact(&mut header)
        .map_err(|_| Error::FileFormat {
            path: path.to_path_buf(),
            expected: "dictionary".into(),
            found: "a file shorter than the header".into(),
        })?;
    if &header[..8] != MAGIC {
        return Err(Error::FileFormat {
            path: path.to_path_buf(),
            expected: "dictionary".into(),
            found: "another file type (bad magic bytes)".into(),
        });
    }
    let version = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes"));
    if !(OLDEST_READABLE_DICTIONARY_VERSION..=DICTIONARY_FORMAT_VERSION).contains(&version) {
        return Err(Error::FileFormat {
            path: path.to_path_buf(),
            expected: format!(
                "dictionary format version {OLDEST_READABLE_DICTIONARY_VERSION} to {DICTIONARY_FORMAT_VERSION}"
            ),
            found: format!("version {version}"),
        });
    }
    if version >= 3 {
        return load_records(path, reader.into_inner());
    }
    let (sources, concepts, warnings): (Vec<SourceInfo>, Vec<Concept>, Vec<String>) =
        bincode::deserialize_from(reader).map_err(|e| corrupt(path, e.to_string()))?;
    Dictionary::from_parts(sources, concepts, warnings)
}

fn corrupt(path: &Path, comment: String) -> Error {
    Error::DataCorruption {
        path: path.to_path_buf(),
        comment,
    }
}

/// Format 3: the header and metadata are read, the records mapped.
fn load_records(path: &Path, file: std::fs::File) -> Result<Dictionary> {
    // SAFETY: dictionary files are never modified in place (writes go to a temporary file
    // renamed over the old one), so the mapping stays valid and unchanged while it lives.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
    let truncated = || corrupt(path, "the file is truncated".into());
    if map.len() < V3_HEADER {
        return Err(truncated());
    }
    let word = |at: usize| u64::from_le_bytes(map[at..at + 8].try_into().expect("8 bytes"));
    let count = usize::try_from(word(16)).map_err(|_| truncated())?;
    let meta_len = usize::try_from(word(24)).map_err(|_| truncated())?;
    let meta_end = V3_HEADER.checked_add(meta_len).ok_or_else(truncated)?;
    let offsets_start = meta_end + padding(meta_end);
    let offsets_end = count
        .checked_add(1)
        .and_then(|n| n.checked_mul(8))
        .and_then(|n| n.checked_add(offsets_start))
        .filter(|&end| end <= map.len())
        .ok_or_else(truncated)?;
    let (sources, warnings): (Vec<SourceInfo>, Vec<String>) =
        bincode::deserialize(&map[V3_HEADER..meta_end])
            .map_err(|e| corrupt(path, format!("metadata: {e}")))?;
    let offsets: Vec<u64> = map[offsets_start..offsets_end]
        .chunks_exact(8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
        .collect();
    let records_len = map.len() - offsets_end;
    if offsets[0] != 0
        || offsets.windows(2).any(|w| w[0] > w[1])
        || offsets[count] != records_len as u64
    {
        return Err(corrupt(
            path,
            format!("the record offsets do not cover the {records_len} record bytes"),
        ));
    }
    let records = Records::new(
        RecordBytes::Mapped {
            map,
            start: offsets_end,
            len: records_len,
        },
        offsets,
    );
    Dictionary::from_records(sources, warnings, records, path)
}
