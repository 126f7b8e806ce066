//! ADE corpus v2 reader (`DRUG-AE.rel`): drug and adverse-effect spans of PubMed sentences.
//!
//! Each line is `PMID|sentence|effect|effect_start|effect_end|drug|drug_start|drug_end`, the
//! offsets counted in the whole abstract (which the corpus does not ship), not in the
//! sentence. The reader therefore places each span in its sentence: among the occurrences of
//! the effect and drug strings in the sentence, it takes the pair whose implied sentence start
//! (`abstract offset - sentence offset`) is the same for both; a row where no such pair exists
//! is reported in [`Corpus::span_mismatches`] and skipped.
//!
//! One document per PMID: its distinct sentences in file order, joined by a line break, so a
//! document split never puts two sentences of one abstract on both sides. Mentions have the
//! types `DRUG` and `EFFECT` and no concept ids; one span annotated by several relation rows
//! is one mention. Overlapping DRUG and EFFECT spans (a drug named inside its effect) are kept
//! both: the consumer states its own overlap policy.
//!
//! `ADE-NEG.txt` (sentences without an adverse effect) is not read: its drugs are not
//! annotated, so as NER data it would teach that drugs are not entities.

use std::collections::HashMap;
use std::path::Path;

use super::{Corpus, Document, GoldMention};
use crate::error::{Error, Result};
use crate::ontology::lines::{self, split_columns, Lines};

/// Reads `DRUG-AE.rel` from a directory, or the file itself.
pub fn load(path: &Path) -> Result<Corpus> {
    let file = if path.is_dir() {
        path.join("DRUG-AE.rel")
    } else {
        path.to_path_buf()
    };
    read(lines::open(&file)?, &file)
}

/// Character offsets of every occurrence of `needle` in `haystack`.
fn occurrences(haystack: &[char], needle: &[char]) -> Vec<usize> {
    if needle.is_empty() || needle.len() > haystack.len() {
        return Vec::new();
    }
    (0..=haystack.len() - needle.len())
        .filter(|&i| haystack[i..i + needle.len()] == *needle)
        .collect()
}

pub fn read(reader: impl std::io::BufRead, path: &Path) -> Result<Corpus> {
    let mut lines = Lines::new(reader, path);
    // PMID -> (sentences in order, their mentions as (sentence index, start, end, type)).
    let mut order: Vec<String> = Vec::new();
    type Spans = Vec<(usize, usize, usize, &'static str)>;
    let mut docs: HashMap<String, (Vec<String>, Spans)> = HashMap::new();
    let mut mismatches = Vec::new();
    while let Some((line_no, line)) = lines.next_line()? {
        if line.trim().is_empty() {
            continue;
        }
        let cols = split_columns(line, '|', 8..=8, path, line_no)?;
        let number = |i: usize, field: &str| -> Result<usize> {
            cols[i].trim().parse().map_err(|_| {
                Error::parse(
                    path,
                    line_no,
                    Some(field),
                    format!("`{}` is not an offset", cols[i]),
                )
            })
        };
        let (effect_start, drug_start) = (number(3, "effect_start")?, number(6, "drug_start")?);
        let (pmid, sentence) = (cols[0].trim().to_string(), cols[1].to_string());
        let chars: Vec<char> = sentence.chars().collect();
        let effect: Vec<char> = cols[2].chars().collect();
        let drug: Vec<char> = cols[5].chars().collect();
        let drug_at = occurrences(&chars, &drug);
        let placed = occurrences(&chars, &effect).into_iter().find_map(|e| {
            let base = effect_start.checked_sub(e)?;
            let d = drug_start.checked_sub(base)?;
            drug_at.contains(&d).then_some((e, d))
        });
        let Some((e, d)) = placed else {
            mismatches.push(format!(
                "{}:{line_no}: PMID {pmid}: the effect and drug offsets do not fit one place in the sentence",
                path.display()
            ));
            continue;
        };
        let (sentences, spans) = docs.entry(pmid.clone()).or_insert_with(|| {
            order.push(pmid.clone());
            (Vec::new(), Vec::new())
        });
        let s = match sentences.iter().position(|x| *x == sentence) {
            Some(s) => s,
            None => {
                sentences.push(sentence);
                sentences.len() - 1
            }
        };
        for span in [
            (s, e, e + effect.len(), "EFFECT"),
            (s, d, d + drug.len(), "DRUG"),
        ] {
            if !spans.contains(&span) {
                spans.push(span);
            }
        }
    }
    let mut corpus = Corpus {
        documents: Vec::with_capacity(order.len()),
        span_mismatches: mismatches,
    };
    for pmid in order {
        let (sentences, mut spans) = docs.remove(&pmid).unwrap_or_default();
        // Character offset of each sentence in the joined text.
        let mut starts = Vec::with_capacity(sentences.len());
        let mut at = 0;
        for s in &sentences {
            starts.push(at);
            at += s.chars().count() + 1;
        }
        let text = sentences.join("\n");
        let chars: Vec<char> = text.chars().collect();
        spans.sort_by_key(|&(s, start, end, t)| (starts[s] + start, end, t));
        let mentions = spans
            .into_iter()
            .map(|(s, start, end, entity_type)| {
                let (start, end) = (starts[s] + start, starts[s] + end);
                GoldMention {
                    start,
                    end,
                    text: chars[start..end].iter().collect(),
                    entity_type: entity_type.to_string(),
                    ids: Vec::new(),
                }
            })
            .collect();
        corpus.documents.push(Document {
            id: pmid,
            text,
            mentions,
        });
    }
    Ok(corpus)
}
