//! brat standoff reader: a folder of `<doc>.txt` + `<doc>.ann` pairs.
//!
//! Read from an `.ann` file:
//! - `T` lines, `T1<TAB>Type start end[;start end...]<TAB>text`: one [`GoldMention`] each, with
//!   the type as entity type. Offsets are character offsets into the `.txt` file read verbatim
//!   (brat counts Python code points, and a `\r` counts like any other character).
//! - `N` lines, `N1<TAB>Reference T1 DB:ID[<TAB>name]`: the id, normalised with
//!   [`normalize_id`], is added to the ids of mention `T1` (several `N` lines give several ids).
//!   When `ID` already carries its own prefix (`HPO:HP:0001250`, `UMLS:UMLS:C0027051`) the
//!   inner id is normalised alone, so the database name is not doubled.
//! - `#` notes, `A`/`M` attributes, `R` relations, `E` events and `*` equivalences are skipped;
//!   a normalisation of an event is skipped with its event.
//!
//! Discontinuous spans (`0 5;10 15`) become one mention from the smallest start to the largest
//! end, keeping the annotation's own text. brat writes that text as the fragments joined by a
//! single space, so the span counts as matching when the fragments of the document joined by
//! a space equal it; `text` of such a mention is therefore *not* `text[start..end]`. This keeps
//! one contiguous extent for span-level scoring while still checking every fragment.
//!
//! Promises: every span is checked against its document and every disagreement (text or an
//! offset beyond the document) is listed in [`Corpus::span_mismatches`]; a malformed line is
//! an [`Error::Parse`] naming file, line and field; a missing partner file is an [`Error::Io`]
//! naming it; documents come in file-name order, mentions in file order.

use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use super::{Corpus, Document, GoldMention};
use crate::error::{Error, Result};
use crate::ontology::ids::normalize_id;
use crate::ontology::lines::{self, Lines};

/// Reads every `<doc>.txt` / `<doc>.ann` pair of `dir` (not recursive). Other files, such as
/// brat's `annotation.conf`, are ignored.
pub fn load_dir(dir: &Path) -> Result<Corpus> {
    let txts = list_files(dir, Some("txt"))?;
    let anns = list_files(dir, Some("ann"))?;
    // An `.ann` without its text would silently drop a document's gold: refuse it.
    if let Some(orphan) = anns
        .iter()
        .find(|ann| !txts.iter().any(|txt| txt.file_stem() == ann.file_stem()))
    {
        return Err(missing(&orphan.with_extension("txt")));
    }
    let mut corpus = Corpus::default();
    for txt in &txts {
        let ann = txt.with_extension("ann");
        if !ann.is_file() {
            return Err(missing(&ann));
        }
        let id = txt
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let text = read_text(txt)?;
        read_document(&id, text, lines::open(&ann)?, &ann, &mut corpus)?;
    }
    Ok(corpus)
}

/// Parses one `.ann` stream for the document `id` with `text`, appending the document to
/// `corpus` and its span disagreements to `corpus.span_mismatches`. `ann_path` names the
/// stream in errors and mismatch reports.
pub fn read_document(
    id: &str,
    text: String,
    ann: impl BufRead,
    ann_path: &Path,
    corpus: &mut Corpus,
) -> Result<()> {
    let chars: Vec<char> = text.chars().collect();
    let mut lines = Lines::new(ann, ann_path);
    let mut mentions: Vec<GoldMention> = Vec::new();
    let mut by_id: HashMap<String, usize> = HashMap::new();
    // Normalisations may precede their target in the file: resolve them at the end.
    let mut norms: Vec<(usize, String, String)> = Vec::new();
    while let Some((line_no, line)) = lines.next_line()? {
        if line.trim().is_empty() {
            continue;
        }
        let parse = |field: &str, msg: String| Error::parse(ann_path, line_no, Some(field), msg);
        match line.as_bytes()[0] {
            b'T' => {
                let mut cols = line.splitn(3, '\t');
                let ann_id = cols.next().unwrap_or_default();
                let type_offsets = cols
                    .next()
                    .ok_or_else(|| parse("type", "missing `Type start end` column".into()))?;
                let ann_text = cols
                    .next()
                    .ok_or_else(|| parse("text", "missing text column".into()))?;
                let (entity_type, offsets) = type_offsets
                    .split_once(' ')
                    .ok_or_else(|| parse("offsets", format!("no offsets in {type_offsets:?}")))?;
                let fragments = parse_fragments(offsets)
                    .ok_or_else(|| parse("offsets", format!("malformed offsets {offsets:?}")))?;
                let start = fragments.iter().map(|f| f.0).min().unwrap_or(0);
                let end = fragments.iter().map(|f| f.1).max().unwrap_or(0);
                if let Some(problem) = fragments_mismatch(&chars, &fragments, ann_text) {
                    corpus.span_mismatches.push(format!(
                        "{}:{line_no}: document `{id}`: {ann_id} {problem}",
                        ann_path.display()
                    ));
                }
                if by_id.insert(ann_id.to_string(), mentions.len()).is_some() {
                    return Err(parse("id", format!("duplicate annotation id {ann_id}")));
                }
                mentions.push(GoldMention {
                    start,
                    end,
                    text: ann_text.to_string(),
                    entity_type: entity_type.to_string(),
                    ids: Vec::new(),
                });
            }
            b'N' => {
                let mut cols = line.splitn(3, '\t');
                let _ = cols.next();
                let body = cols
                    .next()
                    .ok_or_else(|| parse("reference", "missing `Reference T1 DB:ID`".into()))?;
                let parts: Vec<&str> = body.split_whitespace().collect();
                let [_, target, db_id] = parts[..] else {
                    return Err(parse(
                        "reference",
                        format!("expected `Reference T1 DB:ID`, found {body:?}"),
                    ));
                };
                let Some((_, local)) = db_id.split_once(':') else {
                    return Err(parse("id", format!("{db_id:?} is not DB:ID")));
                };
                let id = if local.contains(':') {
                    normalize_id(local)
                } else {
                    normalize_id(db_id)
                };
                norms.push((line_no, target.to_string(), id));
            }
            b'#' | b'A' | b'M' | b'R' | b'E' | b'*' => {}
            _ => {
                let first = line.split('\t').next().unwrap_or_default();
                return Err(parse("id", format!("unknown annotation kind {first:?}")));
            }
        }
    }
    for (line_no, target, id) in norms {
        if let Some(&i) = by_id.get(&target) {
            if !mentions[i].ids.contains(&id) {
                mentions[i].ids.push(id);
            }
        } else if target.starts_with('T') {
            return Err(Error::parse(
                ann_path,
                line_no,
                Some("target"),
                format!("normalisation of {target}, which is not in the file"),
            ));
        }
        // Anything else normalises an event or relation, which this reader skips.
    }
    corpus.documents.push(Document {
        id: id.to_string(),
        text,
        mentions,
    });
    Ok(())
}

/// `start end[;start end...]`, each fragment with `start <= end`.
fn parse_fragments(offsets: &str) -> Option<Vec<(usize, usize)>> {
    offsets
        .split(';')
        .map(|fragment| {
            let mut nums = fragment.split_whitespace().map(str::parse::<usize>);
            match (nums.next(), nums.next(), nums.next()) {
                (Some(Ok(s)), Some(Ok(e)), None) if s <= e => Some((s, e)),
                _ => None,
            }
        })
        .collect()
}

/// Why the fragments of `chars` do not spell `expected` (joined by single spaces), if they do not.
fn fragments_mismatch(
    chars: &[char],
    fragments: &[(usize, usize)],
    expected: &str,
) -> Option<String> {
    let mut found = String::new();
    for (i, &(s, e)) in fragments.iter().enumerate() {
        if e > chars.len() {
            return Some(format!(
                "span {s}..{e} is outside the document ({} characters)",
                chars.len()
            ));
        }
        if i > 0 {
            found.push(' ');
        }
        found.extend(&chars[s..e]);
    }
    (found != expected).then(|| {
        let spans: Vec<String> = fragments.iter().map(|(s, e)| format!("{s}..{e}")).collect();
        format!(
            "span {} is {found:?} in the text, {expected:?} in the annotation",
            spans.join(";")
        )
    })
}

/// Checks one contiguous character span against the annotated text; the reason on mismatch.
/// Shared by the corpus readers of this folder.
pub(crate) fn span_mismatch(
    chars: &[char],
    start: usize,
    end: usize,
    expected: &str,
) -> Option<String> {
    if start > end {
        return Some(format!("span {start}..{end} ends before it starts"));
    }
    fragments_mismatch(chars, &[(start, end)], expected)
}

/// A whole (small) text file as UTF-8, verbatim; errors name the file (and the line of an
/// invalid byte).
pub(crate) fn read_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let line = 1 + e.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count();
        Error::parse(path, line, None, format!("invalid UTF-8 at byte {at}"))
    })
}

/// The regular files of `dir` (those ending in `.{ext}` when given), sorted by name. Hidden
/// files (`.DS_Store`, editor swap files) are not documents.
pub(crate) fn list_files(dir: &Path, ext: Option<&str>) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        let hidden = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        let wanted = ext.is_none_or(|ext| path.extension().is_some_and(|e| e == ext));
        if !hidden && wanted && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// The error for a file that should exist beside another.
pub(crate) fn missing(path: &Path) -> Error {
    Error::io(
        path,
        std::io::Error::new(std::io::ErrorKind::NotFound, "file not found"),
    )
}
