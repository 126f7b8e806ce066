//! CoNLL-style IOB reader: one token per line, its label in the last column (space- or
//! tab-separated), a blank line between sentences, `-DOCSTART-` lines between documents.
//!
//! The text of a sentence is its tokens joined by one space; a document's sentences are joined
//! by a line break. Without `-DOCSTART-` lines every sentence is a document. Labels may be
//! IOB2 (`B-X` opens an entity), IOB1 (`I-X` after `O` or after another type opens one too) or
//! BIOES (`S-X` single, `E-X` end): all three decode to the same spans. A label that is none
//! of these is an [`Error::Parse`] naming file, line and label. Mentions have no concept ids.

use std::path::Path;

use super::{Corpus, Document, GoldMention};
use crate::error::{Error, Result};
use crate::ontology::lines::{self, Lines};

pub fn load(path: &Path) -> Result<Corpus> {
    read(lines::open(path)?, path)
}

/// One token with its label, as read.
struct Token {
    text: String,
    /// `(prefix, type)`: prefix one of `B I E S`, or `None` for `O`.
    label: Option<(char, String)>,
}

#[derive(Default)]
struct Builder {
    documents: Vec<Document>,
    text: String,
    chars: usize,
    mentions: Vec<GoldMention>,
    /// The entity being read: (start char, type).
    open: Option<(usize, String)>,
    prev_end: usize,
    sentence_started: bool,
    doc_count: usize,
}

impl Builder {
    fn close(&mut self) {
        if let Some((start, entity_type)) = self.open.take() {
            let text: String = self
                .text
                .chars()
                .skip(start)
                .take(self.prev_end - start)
                .collect();
            self.mentions.push(GoldMention {
                start,
                end: self.prev_end,
                text,
                entity_type,
                ids: Vec::new(),
            });
        }
    }

    fn token(&mut self, token: Token) {
        if self.sentence_started {
            self.text.push(' ');
            self.chars += 1;
        } else if !self.text.is_empty() {
            self.text.push('\n');
            self.chars += 1;
        }
        self.sentence_started = true;
        let start = self.chars;
        self.text.push_str(&token.text);
        self.chars += token.text.chars().count();
        match token.label {
            None => self.close(),
            Some((prefix, entity_type)) => {
                let continues = matches!(prefix, 'I' | 'E')
                    && self.open.as_ref().is_some_and(|(_, t)| *t == entity_type);
                if !continues {
                    self.close();
                    self.open = Some((start, entity_type));
                }
                self.prev_end = self.chars;
                if matches!(prefix, 'E' | 'S') {
                    self.close();
                }
            }
        }
        self.prev_end = self.chars;
    }

    fn end_sentence(&mut self) {
        self.close();
        self.sentence_started = false;
    }

    fn end_document(&mut self) {
        self.end_sentence();
        if self.text.is_empty() && self.mentions.is_empty() {
            return;
        }
        self.doc_count += 1;
        self.documents.push(Document {
            id: self.doc_count.to_string(),
            text: std::mem::take(&mut self.text),
            mentions: std::mem::take(&mut self.mentions),
        });
        self.chars = 0;
    }
}

pub fn read(reader: impl std::io::BufRead, path: &Path) -> Result<Corpus> {
    let mut lines = Lines::new(reader, path);
    let mut b = Builder::default();
    let mut has_docstart = false;
    let mut sentences: Vec<(usize, Vec<Token>)> = Vec::new();
    let mut current: Vec<Token> = Vec::new();
    // First pass over lines into sentences; documents are cut where `-DOCSTART-` stands.
    let mut doc_breaks = Vec::new();
    while let Some((line_no, line)) = lines.next_line()? {
        let line = line.trim_end();
        if line.is_empty() {
            if !current.is_empty() {
                sentences.push((line_no, std::mem::take(&mut current)));
            }
            continue;
        }
        if line.starts_with("-DOCSTART-") {
            has_docstart = true;
            if !current.is_empty() {
                sentences.push((line_no, std::mem::take(&mut current)));
            }
            doc_breaks.push(sentences.len());
            continue;
        }
        let (text, label) = match line.rsplit_once([' ', '\t']) {
            Some((rest, label)) => (
                rest.split([' ', '\t']).next().unwrap_or(rest).to_string(),
                label,
            ),
            None => {
                return Err(Error::parse(
                    path,
                    line_no,
                    None,
                    "expected a token and its label separated by a space or tab",
                ))
            }
        };
        let label = if label == "O" {
            None
        } else {
            let mut chars = label.chars();
            match (chars.next(), chars.next(), chars.as_str()) {
                (Some(p @ ('B' | 'I' | 'E' | 'S')), Some('-'), t) if !t.is_empty() => {
                    Some((p, t.to_string()))
                }
                _ => {
                    return Err(Error::parse(
                        path,
                        line_no,
                        Some("label"),
                        format!("`{label}` is not O or B-/I-/E-/S-TYPE"),
                    ))
                }
            }
        };
        current.push(Token { text, label });
    }
    if !current.is_empty() {
        sentences.push((0, current));
    }
    for (i, (_, tokens)) in sentences.into_iter().enumerate() {
        if !has_docstart || doc_breaks.contains(&i) {
            b.end_document();
        }
        for token in tokens {
            b.token(token);
        }
        b.end_sentence();
    }
    b.end_document();
    Ok(Corpus {
        documents: b.documents,
        span_mismatches: Vec::new(),
    })
}
