//! Loaders for simple tabular vocabularies: the MeSH descriptor labels CSV, and medlink's own
//! custom TSV and JSONL formats for in-house terminologies.
//!
//! All three stream their input line by line ([`Lines`]), merge repeated ids with
//! [`Concept::merge`] (reported once as a warning), and fail with an [`Error::Parse`] naming
//! file, line and field — never a panic, whatever the bytes.
//!
//! - **MeSH CSV** (`id,scheme,subject`, RFC 4180 quoting): the header is required and columns
//!   are found by name; `id` is a MeSH URI (`https://id.nlm.nih.gov/mesh/D000001`) or a bare or
//!   prefixed descriptor id, stored as `MESH:D000001`; `subject` is the preferred name. The
//!   version is the `YYYY-MM-DD` date in the file name, when there is one.
//! - **TSV**: `id<TAB>name[<TAB>synonyms|...[<TAB>types|...]]`; an optional first line starting
//!   with `id<TAB>` is a header; `#` comments and blank lines are skipped.
//! - **JSONL**: one object per line, `{"id", "name", "synonyms"?, "types"?, "parents"?,
//!   "xrefs"?, "definition"?}`; unknown fields are ignored (so files can carry extra data),
//!   `null` counts as absent, and a field of the wrong type is an error naming it.
//!
//! Ids, parents and cross-references of the custom formats go through [`normalize_id`], so a
//! custom file may write `MSH:D003920` or a bare `D003920` and still meet other sources.

use std::collections::HashMap;
use std::io::BufRead;
use std::path::Path;

use serde_json::{Map, Value};

use super::concept::{Concept, SynonymKind};
use super::ids::normalize_id;
use super::lines::{split_columns, Lines};
use super::Loaded;
use crate::error::{Error, Result};

/// Collects concepts in first-seen order and merges records that repeat an id.
#[derive(Default)]
struct Collector {
    loaded: Loaded,
    by_id: HashMap<String, usize>,
    merged: usize,
}

impl Collector {
    fn push(&mut self, concept: Concept) {
        match self.by_id.get(&concept.id) {
            Some(&idx) => {
                self.merged += 1;
                self.loaded.concepts[idx].merge(concept);
            }
            None => {
                self.by_id
                    .insert(concept.id.clone(), self.loaded.concepts.len());
                self.loaded.concepts.push(concept);
            }
        }
    }

    fn finish(mut self) -> Loaded {
        if self.merged > 0 {
            self.loaded.warnings.push(format!(
                "{} records repeated an earlier id and were merged into it",
                self.merged
            ));
        }
        self.loaded
    }
}

// ---------------------------------------------------------------------------------------------
// MeSH descriptor labels CSV

/// Reads the MeSH descriptor labels CSV (`id,scheme,subject`).
pub fn read_mesh_csv(reader: impl BufRead, path: &Path) -> Result<Loaded> {
    let mut records = CsvRecords::new(Lines::new(reader, path));
    let Some((header_line, header)) = records.next_record()? else {
        return Err(Error::parse(
            path,
            1,
            None,
            "empty file: expected the header `id,scheme,subject`",
        ));
    };
    let column = |name: &str| {
        header
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                Error::parse(
                    path,
                    header_line,
                    Some(name),
                    format!(
                        "the header must name the columns `id` and `subject` (found `{}`)",
                        header.join(",")
                    ),
                )
            })
    };
    let (id_col, subject_col) = (column("id")?, column("subject")?);
    let mut out = Collector::default();
    while let Some((line_no, fields)) = records.next_record()? {
        if fields.len() == 1 && fields[0].trim().is_empty() {
            continue; // a blank line
        }
        if fields.len() != header.len() {
            return Err(Error::parse(
                path,
                line_no,
                None,
                format!(
                    "expected {} comma-separated columns like the header, found {}",
                    header.len(),
                    fields.len()
                ),
            ));
        }
        let raw_id = fields[id_col].trim();
        // The URI's last path segment is the descriptor id.
        let local = raw_id.rsplit('/').next().unwrap_or(raw_id);
        let id = normalize_id(local);
        if !is_mesh_id(&id) {
            return Err(Error::parse(
                path,
                line_no,
                Some("id"),
                format!("`{raw_id}` is not a MeSH descriptor id or URI"),
            ));
        }
        let name = fields[subject_col].trim();
        if name.is_empty() {
            return Err(Error::parse(path, line_no, Some("subject"), "empty label"));
        }
        out.push(Concept::new(id, name));
    }
    let mut loaded = out.finish();
    loaded.version = iso_date_in_name(path);
    Ok(loaded)
}

/// `MESH:` followed by a letter and digits (`MESH:D000001`, `MESH:C000657245`).
fn is_mesh_id(id: &str) -> bool {
    id.strip_prefix("MESH:").is_some_and(|local| {
        let mut bytes = local.bytes();
        bytes.next().is_some_and(|b| b.is_ascii_uppercase())
            && local.len() > 1
            && bytes.all(|b| b.is_ascii_digit())
    })
}

/// A `YYYY-MM-DD` date inside a file name, as in `mesh_descriptors_2026-01-27_labels.csv`.
fn iso_date_in_name(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let bytes = name.as_bytes();
    (0..bytes.len().saturating_sub(9)).find_map(|i| {
        let w = &bytes[i..i + 10];
        let shape = w.iter().enumerate().all(|(j, b)| match j {
            4 | 7 => *b == b'-',
            _ => b.is_ascii_digit(),
        });
        let bounded = (i == 0 || !bytes[i - 1].is_ascii_digit())
            && bytes.get(i + 10).is_none_or(|b| !b.is_ascii_digit());
        (shape && bounded).then(|| name[i..i + 10].to_string())
    })
}

/// RFC 4180 records over [`Lines`]: a quoted field may hold commas, doubled quotes (`""`) and
/// line breaks, so one record can span several lines; its line number is the first one.
struct CsvRecords<R> {
    lines: Lines<R>,
}

impl<R: BufRead> CsvRecords<R> {
    fn new(lines: Lines<R>) -> Self {
        CsvRecords { lines }
    }

    fn next_record(&mut self) -> Result<Option<(usize, Vec<String>)>> {
        let Some((first_line, line)) = self.lines.next_line()? else {
            return Ok(None);
        };
        let mut record = line.to_string();
        loop {
            match split_csv_record(&record) {
                Ok(fields) => return Ok(Some((first_line, fields))),
                Err(CsvError::Unterminated) => match self.lines.next_line()? {
                    Some((_, more)) => {
                        record.push('\n');
                        record.push_str(more);
                    }
                    None => {
                        return Err(Error::parse(
                            self.lines.path(),
                            first_line,
                            None,
                            "quoted field opened here is never closed",
                        ))
                    }
                },
                Err(CsvError::AfterQuote(column)) => {
                    return Err(Error::parse(
                        self.lines.path(),
                        self.lines.line_no(),
                        None,
                        format!(
                            "column {column}: text after the closing quote (a quote inside a \
                             quoted field is written `\"\"`)"
                        ),
                    ))
                }
            }
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum CsvError {
    /// The record ends inside a quoted field: it continues on the next line.
    Unterminated,
    /// Something other than a comma follows a closing quote, in this 1-based column.
    AfterQuote(usize),
}

/// Splits one CSV record into fields. A quote only opens a quoted field at the start of a
/// field; elsewhere it is an ordinary character, as most CSV writers and readers treat it.
fn split_csv_record(record: &str) -> std::result::Result<Vec<String>, CsvError> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = record.chars().peekable();
    loop {
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err(CsvError::Unterminated),
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                }
            }
            match chars.next() {
                None => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some(',') => fields.push(std::mem::take(&mut field)),
                Some(_) => return Err(CsvError::AfterQuote(fields.len() + 1)),
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        fields.push(field);
                        return Ok(fields);
                    }
                    Some(',') => {
                        fields.push(std::mem::take(&mut field));
                        break;
                    }
                    Some(c) => field.push(c),
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Custom TSV

/// Reads a custom vocabulary TSV: `id<TAB>name[<TAB>synonyms|...[<TAB>types|...]]`.
pub fn read_tsv(reader: impl BufRead, path: &Path) -> Result<Loaded> {
    let mut lines = Lines::new(reader, path);
    let mut out = Collector::default();
    let mut first_record = true;
    while let Some((line_no, line)) = lines.next_line()? {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let is_header = first_record && line.starts_with("id\t");
        first_record = false;
        if is_header {
            continue;
        }
        let cols = split_columns(line, '\t', 2..=4, path, line_no)?;
        let id = cols[0].trim();
        if id.is_empty() {
            return Err(Error::parse(path, line_no, Some("id"), "empty concept id"));
        }
        let name = cols[1].trim();
        if name.is_empty() {
            return Err(Error::parse(
                path,
                line_no,
                Some("name"),
                "empty preferred name",
            ));
        }
        let mut concept = Concept::new(normalize_id(id), name);
        for synonym in pipe_list(cols.get(2).copied()) {
            concept.push_synonym(synonym, SynonymKind::Unspecified);
        }
        for t in pipe_list(cols.get(3).copied()) {
            if !concept.types.iter().any(|have| have == t) {
                concept.types.push(t.to_string());
            }
        }
        out.push(concept);
    }
    Ok(out.finish())
}

/// The non-empty, trimmed items of an optional `a|b|c` column.
fn pipe_list(column: Option<&str>) -> impl Iterator<Item = &str> {
    column
        .into_iter()
        .flat_map(|c| c.split('|'))
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

// ---------------------------------------------------------------------------------------------
// Custom JSONL

/// Reads a custom vocabulary as JSON Lines, one concept object per line.
pub fn read_jsonl(reader: impl BufRead, path: &Path) -> Result<Loaded> {
    let mut lines = Lines::new(reader, path);
    let mut out = Collector::default();
    while let Some((line_no, line)) = lines.next_line()? {
        if line.trim().is_empty() {
            continue;
        }
        let err =
            |field: Option<&str>, message: String| Error::parse(path, line_no, field, message);
        let object: Map<String, Value> = match serde_json::from_str(line) {
            Ok(Value::Object(object)) => object,
            Ok(other) => {
                return Err(err(
                    None,
                    format!("expected a JSON object, found {}", json_type(&other)),
                ))
            }
            Err(e) => return Err(err(None, format!("invalid JSON: {e}"))),
        };
        let id = required_string(&object, "id").map_err(|m| err(Some("id"), m))?;
        let name = required_string(&object, "name").map_err(|m| err(Some("name"), m))?;
        let mut concept = Concept::new(normalize_id(id), name);
        for synonym in
            string_list(&object, "synonyms").map_err(|(f, m)| err(Some(f.as_str()), m))?
        {
            concept.push_synonym(synonym, SynonymKind::Unspecified);
        }
        for (field, target, normalize) in [
            ("types", &mut concept.types, false),
            ("parents", &mut concept.parents, true),
            ("xrefs", &mut concept.xrefs, true),
        ] {
            for item in string_list(&object, field).map_err(|(f, m)| err(Some(f.as_str()), m))? {
                let item = if normalize {
                    normalize_id(item)
                } else {
                    item.to_string()
                };
                if !target.contains(&item) {
                    target.push(item);
                }
            }
        }
        concept.definition = match object.get("definition") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.trim().is_empty() => None,
            Some(Value::String(s)) => Some(s.trim().to_string()),
            Some(other) => {
                return Err(err(
                    Some("definition"),
                    format!("expected a string, found {}", json_type(other)),
                ))
            }
        };
        out.push(concept);
    }
    Ok(out.finish())
}

/// A string field that must be present and not blank; the error is the message only.
fn required_string<'a>(
    object: &'a Map<String, Value>,
    field: &str,
) -> std::result::Result<&'a str, String> {
    match object.get(field) {
        None | Some(Value::Null) => Err("missing".to_string()),
        Some(Value::String(s)) if s.trim().is_empty() => Err("empty".to_string()),
        Some(Value::String(s)) => Ok(s.trim()),
        Some(other) => Err(format!("expected a string, found {}", json_type(other))),
    }
}

/// An optional array of strings; blank items are dropped. Errors name the item (`synonyms[2]`).
fn string_list<'a>(
    object: &'a Map<String, Value>,
    field: &str,
) -> std::result::Result<Vec<&'a str>, (String, String)> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| match item {
                Value::String(s) if s.trim().is_empty() => None,
                Value::String(s) => Some(Ok(s.trim())),
                other => Some(Err((
                    format!("{field}[{i}]"),
                    format!("expected a string, found {}", json_type(other)),
                ))),
            })
            .collect(),
        Some(other) => Err((
            field.to_string(),
            format!("expected an array of strings, found {}", json_type(other)),
        )),
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_records() {
        let ok = |r: &str| split_csv_record(r).unwrap();
        assert_eq!(ok("a,b,c"), ["a", "b", "c"]);
        assert_eq!(ok(""), [""]);
        assert_eq!(ok("a,,"), ["a", "", ""]);
        assert_eq!(
            ok(r#"x,MeSH,"Abdomen, Acute""#),
            ["x", "MeSH", "Abdomen, Acute"]
        );
        assert_eq!(ok(r#""say ""hi""",b"#), [r#"say "hi""#, "b"]);
        assert_eq!(ok(r#""""#), [""]);
        assert_eq!(ok(r#"a"b,c"#), [r#"a"b"#, "c"]);
        assert_eq!(ok("\"two\nlines\",z"), ["two\nlines", "z"]);
        assert_eq!(split_csv_record(r#"a,"open"#), Err(CsvError::Unterminated));
        assert_eq!(split_csv_record(r#"a,"b"c"#), Err(CsvError::AfterQuote(2)));
    }

    #[test]
    fn mesh_ids() {
        assert!(is_mesh_id("MESH:D000001"));
        assert!(is_mesh_id("MESH:C000657245"));
        assert!(!is_mesh_id("MESH:"));
        assert!(!is_mesh_id("MESH:D12x"));
        assert!(!is_mesh_id("OMIM:601462"));
    }

    #[test]
    fn dates_in_file_names() {
        let date = |p: &str| iso_date_in_name(Path::new(p));
        assert_eq!(
            date("mesh_descriptors_2026-01-27_labels.csv").as_deref(),
            Some("2026-01-27")
        );
        assert_eq!(date("2024-12-31.csv").as_deref(), Some("2024-12-31"));
        assert_eq!(date("labels.csv"), None);
        assert_eq!(date("x12026-01-27.csv"), None);
    }
}
