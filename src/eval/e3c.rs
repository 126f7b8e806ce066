//! E3C layer 1 reader: UIMA CAS XMI files of clinical cases with `CLINENTITY` spans linked to
//! UMLS CUIs (Italian, Spanish, English...).
//!
//! `e3c:DIR` reads every `*.xml` of one language's `layer1` directory. The text is the
//! `cas:Sofa` element's `sofaString`; each `custom:CLINENTITY` gives a mention of type
//! `CLINENTITY` with its `entityID` as a `UMLS:` id (none when the attribute is absent or
//! `CUI-less`). UIMA counts offsets in UTF-16 code units (Java strings); they are converted to
//! character offsets. Documents come in file-name order, mentions by start.
//!
//! The corpus's own train/test split (`documentation/train_test_split.txt`, found by walking
//! up from DIR) is available as the corpus option `part=train|test` (see
//! [`super::spec`]); documents not listed as training documents are test documents.

use std::path::{Path, PathBuf};

use quick_xml::events::Event;
use quick_xml::Reader;

use super::{Corpus, Document, GoldMention};
use crate::error::{Error, Result};
use crate::ontology::ids::normalize_id;

pub fn load_dir(dir: &Path) -> Result<Corpus> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x.eq_ignore_ascii_case("xml")))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(Error::InvalidInput(format!(
            "{}: no E3C XMI (*.xml) file in this directory",
            dir.display()
        )));
    }
    let mut corpus = Corpus::default();
    for file in files {
        let bytes = std::fs::read(&file).map_err(|e| Error::io(&file, e))?;
        let id = file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        corpus.documents.push(read_document(&id, &bytes, &file)?);
    }
    Ok(corpus)
}

fn bad(path: &Path, message: impl std::fmt::Display) -> Error {
    Error::InvalidInput(format!("{}: {message}", path.display()))
}

fn xml_error(path: &Path, e: impl std::fmt::Display) -> Error {
    bad(path, format!("not a UIMA XMI document: {e}"))
}

/// One XMI document.
pub fn read_document(id: &str, bytes: &[u8], path: &Path) -> Result<Document> {
    let mut reader = Reader::from_reader(bytes);
    let mut text: Option<String> = None;
    // (begin, end, CUI) in UTF-16 units.
    let mut spans: Vec<(usize, usize, Option<String>)> = Vec::new();
    let mut buf = Vec::new();
    loop {
        let event = reader
            .read_event_into(&mut buf)
            .map_err(|e| xml_error(path, e))?;
        match &event {
            Event::Eof => break,
            Event::Start(e) | Event::Empty(e) => {
                let name = e.name();
                let name = name.as_ref();
                if name == b"cas:Sofa" || name == b"custom:CLINENTITY" {
                    let mut begin = None;
                    let mut end = None;
                    let mut cui = None;
                    for attr in e.attributes() {
                        let attr = attr.map_err(|e| xml_error(path, e))?;
                        let value = attr
                            .unescape_value()
                            .map_err(|e| xml_error(path, e))?
                            .into_owned();
                        match attr.key.as_ref() {
                            b"sofaString" => text = Some(value),
                            b"begin" => begin = value.parse::<usize>().ok(),
                            b"end" => end = value.parse::<usize>().ok(),
                            b"entityID" => cui = Some(value),
                            _ => {}
                        }
                    }
                    if name == b"custom:CLINENTITY" {
                        match (begin, end) {
                            (Some(b), Some(e)) if b <= e => spans.push((b, e, cui)),
                            _ => return Err(bad(path, "a CLINENTITY lacks numeric begin/end")),
                        }
                    }
                }
            }
            _ => {}
        }
        buf.clear();
    }
    let text = text.ok_or_else(|| bad(path, "no cas:Sofa with a sofaString"))?;
    // UTF-16 unit -> character index (and the count at the end).
    let mut utf16_to_char = Vec::with_capacity(text.len() + 1);
    for (i, c) in text.chars().enumerate() {
        for _ in 0..c.len_utf16() {
            utf16_to_char.push(i);
        }
    }
    let chars: Vec<char> = text.chars().collect();
    utf16_to_char.push(chars.len());
    let mut mentions = Vec::with_capacity(spans.len());
    for (begin, end, cui) in spans {
        let (Some(&start), Some(&stop)) = (utf16_to_char.get(begin), utf16_to_char.get(end)) else {
            return Err(bad(
                path,
                format!("a CLINENTITY ends at {end}, past the text"),
            ));
        };
        let ids = cui
            .filter(|c| c.starts_with('C') && c[1..].chars().all(|d| d.is_ascii_digit()))
            .map(|c| vec![normalize_id(&format!("UMLS:{c}"))])
            .unwrap_or_default();
        mentions.push(GoldMention {
            start,
            end: stop,
            text: chars[start..stop].iter().collect(),
            entity_type: "CLINENTITY".into(),
            ids,
        });
    }
    mentions.sort_by_key(|m| (m.start, m.end));
    Ok(Document {
        id: id.to_string(),
        text,
        mentions,
    })
}

/// The training document ids of the corpus's official split, read from
/// `documentation/train_test_split.txt` in DIR or a directory above it.
pub fn official_training_ids(dir: &Path) -> Result<std::collections::HashSet<String>> {
    let file = dir
        .ancestors()
        .map(|a| a.join("documentation/train_test_split.txt"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Error::InvalidInput(format!(
                "{}: part=train|test needs documentation/train_test_split.txt in this directory or one above it",
                dir.display()
            ))
        })?;
    let text = std::fs::read_to_string(&file).map_err(|e| Error::io(&file, e))?;
    Ok(text
        .split(|c: char| c == '\'' || c == ',' || c.is_whitespace())
        .filter(|w| {
            w.len() > 2
                && w[..2].chars().all(|c| c.is_ascii_uppercase())
                && w[2..].chars().all(|c| c.is_ascii_digit())
        })
        .map(str::to_string)
        .collect())
}
