//! The dictionary file: a versioned bincode snapshot of sources and concepts.
//!
//! Layout: the 8-byte magic `MLDICT\0\0`, a little-endian `u32` format version, then bincode 1.3
//! of `(Vec<SourceInfo>, Vec<Concept>, Vec<String>)`. Derived lookups (ids, name table) are
//! rebuilt on load, so they never disagree with the concepts. Written atomically.
//!
//! Versions: 1, then 2 added the source format `corpus` (mention names from an annotated
//! corpus). Version 1 files are a subset of version 2 and are still read; a medlink that
//! predates a version refuses it with a clear message instead of a bincode error.

use std::io::{Read, Write};
use std::path::Path;

use super::concept::Concept;
use super::dictionary::{Dictionary, SourceInfo};
use crate::error::{Error, Result};
use crate::fsutil;

const MAGIC: &[u8; 8] = b"MLDICT\0\0";
/// Bump when [`Concept`] or [`SourceInfo`] change shape.
pub const DICTIONARY_FORMAT_VERSION: u32 = 2;
/// The oldest version this build still reads (every version since decodes the same way).
pub const OLDEST_READABLE_DICTIONARY_VERSION: u32 = 1;

pub fn save(dict: &Dictionary, path: &Path) -> Result<()> {
    let (sources, concepts, warnings) = dict.parts();
    fsutil::write_atomic(path, |w| {
        w.write_all(MAGIC)?;
        w.write_all(&DICTIONARY_FORMAT_VERSION.to_le_bytes())?;
        bincode::serialize_into(w, &(sources, concepts, warnings))
            .map_err(|e| std::io::Error::other(e.to_string()))
    })
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
    let (sources, concepts, warnings): (Vec<SourceInfo>, Vec<Concept>, Vec<String>) =
        bincode::deserialize_from(reader).map_err(|e| Error::DataCorruption {
            path: path.to_path_buf(),
            comment: e.to_string(),
        })?;
    Dictionary::from_parts(sources, concepts, warnings)
}
