//! MedProcNER reader (BioASQ / CLEF 2023: Spanish clinical cases, procedures, SNOMED CT).
//!
//! The training release holds `txt/<filename>.txt` (750 clinical cases) and TSVs of
//! annotations whose columns are named in a header line:
//! - subtask 1 (NER), `filename ann_id label start_span end_span text`: 11,065 procedure
//!   mentions over 749 of the 750 texts (one case has none);
//! - subtask 2 (linking), `filename label start_span end_span text code sem_rel ...`: 4,857
//!   mentions over only **250** of the texts, each with a SNOMED CT `code` — `NO_CODE` when the
//!   annotators found none (51 rows), or a composite `123+456` (125 rows, six of which mix in
//!   `NO_CODE` parts).
//!
//! [`load`] reads the linking TSV: the "4,857 linked mentions, 1,630 codes" of the release are
//! its rows and the distinct strings of its `code` column (`NO_CODE` and each composite counted
//! once). Its corpus holds only the 250 documents the TSV annotates: the other 500 texts carry
//! procedures that were never linked, and listing them without mentions would turn every
//! correct detection in them into a false positive. [`load_ner`] reads subtask 1 over all 750
//! texts, with empty ids.
//!
//! Offsets are character offsets into the `.txt` files (checked against every span; the release
//! has no mismatch). A few `text` fields are CSV-quoted because they contain `"`
//! (`"extirpación del ""quiste folicular"""`); they are unquoted. Codes become `SNOMEDCT:<code>`
//! via [`normalize_id`]; a composite gives several ids; `NO_CODE`, alone or as a part, gives no
//! id. Documents come in file-name order, mentions in text order.
//!
//! Only a training split exists, so [`super::split::split`] (or the corpus spec option
//! `#split=train|dev`) makes a deterministic document-level train/dev split.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::brat::{list_files, missing, read_text, span_mismatch};
use super::{Corpus, Document, GoldMention};
use crate::error::{Error, Result};
use crate::ontology::ids::normalize_id;
use crate::ontology::lines::{self, Lines};

/// The linking TSV inside the release folder.
pub const LINKING_TSV: &str = "tsv/medprocner_tsv_train_subtask2.tsv";
/// The NER TSV inside the release folder.
pub const NER_TSV: &str = "tsv/medprocner_tsv_train_subtask1.tsv";

/// Which documents a corpus lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Documents {
    /// Only the documents the TSV annotates (a partially linked release).
    Annotated,
    /// Every text of the `txt` folder, annotated or not (a fully annotated release).
    All,
}

/// The linking corpus: `dir_or_tsv` is the release folder (reading [`LINKING_TSV`]) or a
/// linking TSV whose texts are in `../txt` or `txt` beside it.
pub fn load(dir_or_tsv: &Path) -> Result<Corpus> {
    let (tsv, txt_dir) = if dir_or_tsv.is_dir() {
        (dir_or_tsv.join(LINKING_TSV), dir_or_tsv.join("txt"))
    } else {
        (dir_or_tsv.to_path_buf(), txt_dir_beside(dir_or_tsv))
    };
    read(&tsv, &txt_dir, Documents::Annotated)
}

/// The NER corpus: subtask 1 mentions (no ids) over every text of the release folder `dir`.
pub fn load_ner(dir: &Path) -> Result<Corpus> {
    read(&dir.join(NER_TSV), &dir.join("txt"), Documents::All)
}

/// Reads any MedProcNER annotation TSV (columns found by header name: `filename`,
/// `start_span`, `end_span`, `text` required; `label`, `code` optional) with texts in
/// `txt_dir/<filename>.txt`.
pub fn read(tsv: &Path, txt_dir: &Path, documents: Documents) -> Result<Corpus> {
    let mut lines = Lines::new(lines::open(tsv)?, tsv);
    let Some((_, header)) = lines.next_line()? else {
        return Err(Error::parse(tsv, 1, None, "empty file, expected a header"));
    };
    let header: Vec<String> = header.split('\t').map(|c| c.trim().to_string()).collect();
    let column = |name: &str| header.iter().position(|h| h == name);
    let required = |name: &str| {
        column(name).ok_or_else(|| {
            Error::parse(
                tsv,
                1,
                Some(name),
                format!("header lacks column `{name}`: {header:?}"),
            )
        })
    };
    let (c_file, c_start, c_end, c_text) = (
        required("filename")?,
        required("start_span")?,
        required("end_span")?,
        required("text")?,
    );
    let (c_label, c_code) = (column("label"), column("code"));

    // Document id -> (mention, line) in file order; a BTreeMap gives file-name order.
    let mut by_doc: BTreeMap<String, Vec<(GoldMention, usize)>> = BTreeMap::new();
    while let Some((line_no, line)) = lines.next_line()? {
        if line.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        if cols.len() != header.len() {
            return Err(Error::parse(
                tsv,
                line_no,
                None,
                format!(
                    "expected {} tab-separated columns as in the header, found {}",
                    header.len(),
                    cols.len()
                ),
            ));
        }
        let offset = |i: usize, field: &str| -> Result<usize> {
            cols[i].trim().parse().map_err(|_| {
                Error::parse(
                    tsv,
                    line_no,
                    Some(field),
                    format!("not an offset: {:?}", cols[i]),
                )
            })
        };
        let filename = cols[c_file].trim();
        if filename.is_empty() || filename.contains(['/', '\\']) || filename.starts_with('.') {
            return Err(Error::parse(
                tsv,
                line_no,
                Some("filename"),
                format!("not a document name: {filename:?}"),
            ));
        }
        let ids = match c_code {
            Some(c) => {
                snomed_ids(cols[c]).map_err(|msg| Error::parse(tsv, line_no, Some("code"), msg))?
            }
            None => Vec::new(),
        };
        let mention = GoldMention {
            start: offset(c_start, "start_span")?,
            end: offset(c_end, "end_span")?,
            text: csv_unquote(cols[c_text]),
            entity_type: c_label.map_or("PROCEDIMIENTO", |c| cols[c]).to_string(),
            ids,
        };
        by_doc
            .entry(filename.to_string())
            .or_default()
            .push((mention, line_no));
    }

    if documents == Documents::All {
        for path in list_files(txt_dir, Some("txt"))? {
            if let Some(stem) = path.file_stem() {
                by_doc
                    .entry(stem.to_string_lossy().into_owned())
                    .or_default();
            }
        }
    }

    let mut corpus = Corpus::default();
    for (id, mut mentions) in by_doc {
        let text_path = txt_dir.join(format!("{id}.txt"));
        if !text_path.is_file() {
            return Err(missing(&text_path));
        }
        let text = read_text(&text_path)?;
        let chars: Vec<char> = text.chars().collect();
        for (m, line_no) in &mentions {
            if let Some(problem) = span_mismatch(&chars, m.start, m.end, &m.text) {
                corpus.span_mismatches.push(format!(
                    "{}:{line_no}: document `{id}`: {problem}",
                    tsv.display()
                ));
            }
        }
        // Text order (stable, so nested spans keep their file order).
        mentions.sort_by_key(|(m, _)| (m.start, m.end));
        corpus.documents.push(Document {
            id,
            text,
            mentions: mentions.into_iter().map(|(m, _)| m).collect(),
        });
    }
    Ok(corpus)
}

/// A code column: `NO_CODE`, a SNOMED CT id, or `+`-joined ids (parts may be `NO_CODE`).
fn snomed_ids(code: &str) -> std::result::Result<Vec<String>, String> {
    let mut ids = Vec::new();
    for part in code.trim().split('+').map(str::trim) {
        if part == "NO_CODE" {
            continue;
        }
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("not a SNOMED CT code: {part:?} in {code:?}"));
        }
        let id = normalize_id(&format!("SNOMEDCT:{part}"));
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

/// Undoes CSV quoting (`"a ""b"""` -> `a "b"`) when the field is a well-formed quoted field;
/// any other field is returned as is, so a text that merely starts with a quote survives.
fn csv_unquote(field: &str) -> String {
    let Some(inner) = field.strip_prefix('"').and_then(|f| f.strip_suffix('"')) else {
        return field.to_string();
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '"' && chars.next() != Some('"') {
            return field.to_string(); // a lone quote inside: not CSV quoting
        }
        out.push(c);
    }
    out
}

/// The `txt` folder of a TSV inside the release layout (`tsv/x.tsv` beside `txt/`), else a
/// `txt` folder next to the TSV.
fn txt_dir_beside(tsv: &Path) -> PathBuf {
    let parent = tsv.parent().unwrap_or(Path::new(""));
    match parent.parent().map(|p| p.join("txt")) {
        Some(up) if up.is_dir() => up,
        _ => parent.join("txt"),
    }
}
