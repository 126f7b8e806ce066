//! PubTator reader (NCBI-disease, BC5CDR).
//!
//! A document is a `PMID|t|title` line, a `PMID|a|abstract` line, then tab-separated
//! annotations `PMID start end mention type ids [individual mentions]`, then a blank line.
//! Offsets are character offsets over `title + " " + abstract`. Ids may be composite
//! (`D1|D2`, `D1+D2`), bare MeSH, `OMIM:` prefixed, or `-1` for none; they are normalised with
//! [`normalize_id`]. Relation lines (`PMID CID chem disease`) are skipped. Every span is checked
//! against the text; disagreements are listed in [`Corpus::span_mismatches`].

use std::io::BufRead;
use std::path::Path;

use super::{Corpus, Document, GoldMention};
use crate::error::{Error, Result};
use crate::ontology::ids::normalize_id;
use crate::ontology::lines::{self, Lines};

pub fn load(path: &Path) -> Result<Corpus> {
    read(lines::open(path)?, path)
}

pub fn read(reader: impl BufRead, path: &Path) -> Result<Corpus> {
    let mut lines = Lines::new(reader, path);
    let mut corpus = Corpus::default();
    let mut current: Option<(Document, Vec<char>)> = None;
    while let Some((line_no, line)) = lines.next_line()? {
        if line.trim().is_empty() {
            if let Some((doc, _)) = current.take() {
                corpus.documents.push(doc);
            }
            continue;
        }
        if let Some((pmid, rest)) = line.split_once('|') {
            if let Some((kind, body)) = rest.split_once('|') {
                if !pmid.contains('\t') && (kind == "t" || kind == "a") {
                    match (kind, &mut current) {
                        ("t", _) => {
                            if let Some((doc, _)) = current.take() {
                                corpus.documents.push(doc);
                            }
                            let doc = Document {
                                id: pmid.to_string(),
                                text: body.to_string(),
                                mentions: Vec::new(),
                            };
                            let chars = doc.text.chars().collect();
                            current = Some((doc, chars));
                        }
                        ("a", Some((doc, chars))) if doc.id == pmid => {
                            doc.text.push(' ');
                            doc.text.push_str(body);
                            *chars = doc.text.chars().collect();
                        }
                        _ => {
                            return Err(Error::parse(
                                path,
                                line_no,
                                None,
                                format!("abstract line for {pmid} without its title line"),
                            ))
                        }
                    }
                    continue;
                }
            }
        }
        let cols: Vec<&str> = line.split('\t').collect();
        let Some((doc, chars)) = current.as_mut() else {
            return Err(Error::parse(
                path,
                line_no,
                None,
                "annotation outside a document",
            ));
        };
        if cols.first() != Some(&doc.id.as_str()) {
            return Err(Error::parse(
                path,
                line_no,
                Some("PMID"),
                format!("annotation for {} inside document {}", cols[0], doc.id),
            ));
        }
        if cols.len() == 4 {
            continue; // relation line: PMID, relation type, two ids
        }
        if !(6..=7).contains(&cols.len()) {
            return Err(Error::parse(
                path,
                line_no,
                None,
                format!(
                    "expected 6 or 7 tab-separated columns, found {}",
                    cols.len()
                ),
            ));
        }
        let offset = |i: usize, field: &str| -> Result<usize> {
            cols[i].parse().map_err(|_| {
                Error::parse(
                    path,
                    line_no,
                    Some(field),
                    format!("not an offset: {:?}", cols[i]),
                )
            })
        };
        let (start, end) = (offset(1, "start")?, offset(2, "end")?);
        let text = cols[3].to_string();
        if start > end || end > chars.len() {
            corpus.span_mismatches.push(format!(
                "{}:{line_no}: span {start}..{end} outside the document ({} characters)",
                path.display(),
                chars.len()
            ));
        } else {
            let found: String = chars[start..end].iter().collect();
            if found != text {
                corpus.span_mismatches.push(format!(
                    "{}:{line_no}: span {start}..{end} is {found:?} in the text, {text:?} in the annotation",
                    path.display()
                ));
            }
        }
        let ids = cols[5]
            .split(['|', '+'])
            .map(str::trim)
            .filter(|id| !id.is_empty() && *id != "-1")
            .map(normalize_id)
            .collect();
        doc.mentions.push(GoldMention {
            start,
            end,
            text,
            entity_type: cols[4].to_string(),
            ids,
        });
    }
    if let Some((doc, _)) = current.take() {
        corpus.documents.push(doc);
    }
    Ok(corpus)
}
