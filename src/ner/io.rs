//! Documents in and annotations out for `medlink annotate`: streaming readers for plain text,
//! JSON lines (`{"id", "text"}`) and PubTator, and the JSONL and PubTator writers.
//!
//! Readers never stop at a bad document: a JSON line that is not an object with a string
//! `text`, or a line that is not UTF-8, becomes a [`InputDocument::Refused`] entry in its place
//! (messages name the input and line, never quote the text), so the output keeps one entry per
//! input document and a partly bad file loses nothing else. Errors reading the input itself
//! (I/O) stop the run.

use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};

use super::annotate::LinkedMention;
use crate::error::{Error, Result};
use crate::ontology::lines::Lines;

/// Input formats of `medlink annotate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputFormat {
    /// The whole input is one document.
    Text,
    /// One JSON object per line: `{"id": ..., "text": "..."}` (`id` optional).
    Jsonl,
    /// PubTator blocks (`ID|t|title`, `ID|a|abstract`, annotation lines ignored): the text is
    /// title + " " + abstract, as PubTator counts offsets.
    Pubtator,
}

impl std::str::FromStr for InputFormat {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "text" => Ok(InputFormat::Text),
            "jsonl" => Ok(InputFormat::Jsonl),
            "pubtator" => Ok(InputFormat::Pubtator),
            _ => Err(Error::InvalidInput(format!(
                "unknown input format `{s}` (expected text, jsonl or pubtator)"
            ))),
        }
    }
}

/// One input document, or why it could not be read.
#[derive(Debug, Clone, PartialEq)]
pub enum InputDocument {
    Document {
        id: serde_json::Value,
        text: String,
        /// Characters of the title (PubTator input), so PubTator output can split it again.
        title_chars: Option<usize>,
    },
    Refused {
        id: serde_json::Value,
        /// `INPUT:LINE: ...`, never quoting the text.
        error: String,
    },
}

/// Streams documents out of an input.
pub struct DocumentReader<R> {
    format: InputFormat,
    lines: Lines<R>,
    name: PathBuf,
    /// For `Text`: the one document was read.
    done: bool,
    /// Documents handed out so far (1-based numbering of the next is `count + 1`).
    count: usize,
}

/// `{"id": ..., "text": ...}` of a JSONL input line.
#[derive(serde::Deserialize)]
struct JsonDocument {
    #[serde(default)]
    id: Option<serde_json::Value>,
    text: String,
}

impl<R: BufRead> DocumentReader<R> {
    pub fn new(reader: R, name: &Path, format: InputFormat) -> Self {
        DocumentReader {
            format,
            lines: Lines::new(reader, name),
            name: name.to_path_buf(),
            done: false,
            count: 0,
        }
    }

    fn name(&self) -> PathBuf {
        self.name.clone()
    }

    /// Documents handed out so far.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The next document, `None` at the end of the input.
    pub fn next_document(&mut self) -> Result<Option<InputDocument>> {
        let doc = match self.format {
            InputFormat::Text => self.next_text()?,
            InputFormat::Jsonl => self.next_jsonl()?,
            InputFormat::Pubtator => self.next_pubtator()?,
        };
        if doc.is_some() {
            self.count += 1;
        }
        Ok(doc)
    }

    /// The whole input, byte for byte (line ends kept), so offsets are into the text as given.
    fn next_text(&mut self) -> Result<Option<InputDocument>> {
        if self.done {
            return Ok(None);
        }
        self.done = true;
        let name = self.name();
        let mut bytes = Vec::new();
        while let Some((_, line)) = self.lines.next_raw_line()? {
            bytes.extend_from_slice(line);
        }
        let text = String::from_utf8(bytes).map_err(|e| {
            Error::InvalidInput(format!(
                "{}: the input is not UTF-8 (invalid byte at offset {})",
                name.display(),
                e.utf8_error().valid_up_to()
            ))
        })?;
        if text.trim().is_empty() {
            return Err(Error::InvalidInput(format!(
                "{}: the input text is empty",
                name.display()
            )));
        }
        Ok(Some(InputDocument::Document {
            id: serde_json::json!(1),
            text,
            title_chars: None,
        }))
    }

    fn next_jsonl(&mut self) -> Result<Option<InputDocument>> {
        loop {
            let (line_no, line) = match self.lines.next_line() {
                Ok(Some((n, line))) => (n, line),
                Ok(None) => return Ok(None),
                Err(e @ Error::Parse { .. }) => {
                    return Ok(Some(InputDocument::Refused {
                        id: serde_json::Value::Null,
                        error: e.to_string(),
                    }))
                }
                Err(e) => return Err(e),
            };
            if line.trim().is_empty() {
                continue;
            }
            return Ok(Some(match serde_json::from_str::<JsonDocument>(line) {
                Ok(doc) => InputDocument::Document {
                    id: doc.id.unwrap_or_else(|| serde_json::json!(self.count + 1)),
                    text: doc.text,
                    title_chars: None,
                },
                Err(e) => {
                    let id = serde_json::from_str::<serde_json::Value>(line)
                        .ok()
                        .and_then(|v| v.get("id").cloned())
                        .unwrap_or(serde_json::Value::Null);
                    InputDocument::Refused {
                        id,
                        error: Error::parse(
                            self.name(),
                            line_no,
                            None,
                            format!(
                                "expected a JSON object with a string field `text` ({:?} error at column {})",
                                e.classify(),
                                e.column()
                            ),
                        )
                        .to_string(),
                    }
                }
            }));
        }
    }

    fn next_pubtator(&mut self) -> Result<Option<InputDocument>> {
        let (mut id, mut title, mut abstract_) = (None::<String>, None::<String>, None::<String>);
        let mut refused: Option<String> = None;
        loop {
            let line = match self.lines.next_line() {
                Ok(Some((_, line))) => Some(line.to_string()),
                Ok(None) => None,
                Err(e @ Error::Parse { .. }) => {
                    refused.get_or_insert(e.to_string());
                    continue;
                }
                Err(e) => return Err(e),
            };
            let Some(line) = line else {
                break;
            };
            if line.trim().is_empty() {
                if id.is_some() || refused.is_some() {
                    break;
                }
                continue;
            }
            let mut parts = line.splitn(3, '|');
            match (parts.next(), parts.next(), parts.next()) {
                (Some(pmid), Some("t"), Some(text)) => {
                    id = Some(pmid.to_string());
                    title = Some(text.to_string());
                }
                (Some(pmid), Some("a"), Some(text)) => {
                    id.get_or_insert_with(|| pmid.to_string());
                    abstract_ = Some(text.to_string());
                }
                // Annotation and relation lines of an annotated input are not needed.
                _ if id.is_some() && line.contains('\t') => {}
                _ => {
                    refused.get_or_insert_with(|| {
                        Error::parse(
                            self.name(),
                            self.lines.line_no(),
                            None,
                            "expected `ID|t|title`, `ID|a|abstract` or a tab-separated annotation line",
                        )
                        .to_string()
                    });
                }
            }
        }
        if id.is_none() && refused.is_none() {
            return Ok(None);
        }
        let json_id = id.map_or(serde_json::Value::Null, serde_json::Value::String);
        if let Some(error) = refused {
            return Ok(Some(InputDocument::Refused { id: json_id, error }));
        }
        let title = title.unwrap_or_default();
        let title_chars = title.chars().count();
        let text = match abstract_ {
            Some(a) => format!("{title} {a}"),
            None => title,
        };
        Ok(Some(InputDocument::Document {
            id: json_id,
            text,
            title_chars: Some(title_chars),
        }))
    }
}

/// Reads a whole input into documents (tests and small inputs).
pub fn read_documents(
    reader: impl Read,
    name: &Path,
    format: InputFormat,
) -> Result<Vec<InputDocument>> {
    let mut reader = DocumentReader::new(std::io::BufReader::new(reader), name, format);
    let mut docs = Vec::new();
    while let Some(doc) = reader.next_document()? {
        docs.push(doc);
    }
    Ok(docs)
}

/// Output formats of `medlink annotate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// One JSON object per input document: `{"id", "mentions": [...]}` or `{"id", "error"}`.
    Jsonl,
    /// PubTator blocks: title and abstract lines, then one
    /// `ID<TAB>start<TAB>end<TAB>mention<TAB>type<TAB>concept` line per mention (`-1` when
    /// nothing was linked).
    Pubtator,
}

impl std::str::FromStr for OutputFormat {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "jsonl" => Ok(OutputFormat::Jsonl),
            "pubtator" => Ok(OutputFormat::Pubtator),
            _ => Err(Error::InvalidInput(format!(
                "unknown output format `{s}` (expected jsonl or pubtator)"
            ))),
        }
    }
}

/// Writes one document's annotations. A refused document is a JSON error object in JSONL and
/// nothing in PubTator (which has no place for it; the caller reports it on stderr).
pub fn write_document(
    out: &mut impl Write,
    format: OutputFormat,
    doc: &InputDocument,
    mentions: &[LinkedMention],
) -> std::io::Result<()> {
    match (format, doc) {
        (OutputFormat::Jsonl, InputDocument::Document { id, .. }) => {
            serde_json::to_writer(
                &mut *out,
                &serde_json::json!({ "id": id, "mentions": mentions }),
            )?;
            out.write_all(b"\n")
        }
        (OutputFormat::Jsonl, InputDocument::Refused { id, error }) => {
            serde_json::to_writer(&mut *out, &serde_json::json!({ "id": id, "error": error }))?;
            out.write_all(b"\n")
        }
        (
            OutputFormat::Pubtator,
            InputDocument::Document {
                id,
                text,
                title_chars,
            },
        ) => {
            let id = match id {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            // PubTator is line-based: line breaks inside the text become spaces (one
            // character for one, so offsets stay valid).
            let flat: String = text
                .chars()
                .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
                .collect();
            match title_chars {
                Some(n) if *n < flat.chars().count() => {
                    let title = super::char_slice(&flat, 0, *n);
                    let abstract_ = &flat[title.len() + 1..];
                    writeln!(out, "{id}|t|{title}\n{id}|a|{abstract_}")?;
                }
                _ => writeln!(out, "{id}|t|{flat}\n{id}|a|")?,
            }
            for m in mentions {
                let concept = m.candidates.first().map_or("-1", |c| c.id.as_str());
                let text: String = m
                    .text
                    .chars()
                    .map(|c| if c == '\t' || c == '\n' { ' ' } else { c })
                    .collect();
                writeln!(
                    out,
                    "{id}\t{}\t{}\t{text}\t{}\t{concept}",
                    m.start, m.end, m.entity_type
                )?;
            }
            writeln!(out)
        }
        (OutputFormat::Pubtator, InputDocument::Refused { .. }) => Ok(()),
    }
}
