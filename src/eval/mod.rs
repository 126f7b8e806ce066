//! Evaluation: corpus readers with gold mentions, and (later) linking and NER metrics.

pub mod abbrev;
pub mod brat;
pub mod hpo_corpora;
pub mod link;
pub mod medprocner;
pub mod metrics;
pub mod pubtator;

use serde::Serialize;

/// A gold mention of an annotated corpus, with character offsets into its document's text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GoldMention {
    /// Character (not byte) offsets, end exclusive.
    pub start: usize,
    pub end: usize,
    pub text: String,
    pub entity_type: String,
    /// Normalised concept ids (see [`crate::ontology::ids::normalize_id`]); several ids make a
    /// composite mention ("breast and ovarian cancer"). Empty when the corpus gives none (`-1`).
    pub ids: Vec<String>,
}

/// One annotated document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Document {
    pub id: String,
    pub text: String,
    pub mentions: Vec<GoldMention>,
}

/// A corpus as read, with every span whose text disagrees with the document reported rather
/// than hidden.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Corpus {
    pub documents: Vec<Document>,
    pub span_mismatches: Vec<String>,
}

impl Corpus {
    /// Every mention as a span for NER scoring (`eval ner`).
    pub fn spans(&self) -> Vec<metrics::Span> {
        self.mentions()
            .map(|(d, m)| metrics::Span {
                doc: d.id.clone(),
                start: m.start,
                end: m.end,
                entity_type: m.entity_type.clone(),
            })
            .collect()
    }

    pub fn mentions(&self) -> impl Iterator<Item = (&Document, &GoldMention)> {
        self.documents
            .iter()
            .flat_map(|d| d.mentions.iter().map(move |m| (d, m)))
    }
}

/// A corpus on the command line: `FORMAT:PATH`.
///
/// | format        | path                                                        |
/// |---------------|-------------------------------------------------------------|
/// | `pubtator`    | a PubTator file (NCBI-disease, BC5CDR)                      |
/// | `phenobert`   | a directory with `corpus/` and `ann/` (PhenoBERT layout)    |
/// | `phenotagger` | `GOLD.tsv,INPUT.PubTator` (GSC+ in the PhenoTagger layout)  |
/// | `medprocner`  | the MedProcNER directory or its TSV                         |
/// | `brat`        | a directory of `.txt` + `.ann` pairs                        |
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorpusSpec {
    pub format: String,
    pub path: String,
}

const CORPUS_FORMATS: &str = "pubtator, phenobert, phenotagger, medprocner, brat";

impl std::str::FromStr for CorpusSpec {
    type Err = crate::Error;
    fn from_str(s: &str) -> crate::Result<Self> {
        let (format, path) = s.split_once(':').ok_or_else(|| {
            crate::Error::InvalidInput(format!(
                "corpus `{s}` must be FORMAT:PATH, FORMAT one of {CORPUS_FORMATS}"
            ))
        })?;
        if !CORPUS_FORMATS.split(", ").any(|f| f == format) {
            return Err(crate::Error::UnknownFormat {
                found: format.to_string(),
                expected: CORPUS_FORMATS.to_string(),
            });
        }
        Ok(CorpusSpec {
            format: format.to_string(),
            path: path.to_string(),
        })
    }
}

impl CorpusSpec {
    pub fn load(&self) -> crate::Result<Corpus> {
        use std::path::Path;
        let path = Path::new(&self.path);
        match self.format.as_str() {
            "pubtator" => pubtator::load(path),
            "phenobert" => hpo_corpora::load_phenobert_dir(path),
            "phenotagger" => {
                let (gold, input) = self.path.split_once(',').ok_or_else(|| {
                    crate::Error::InvalidInput(
                        "phenotagger corpus must be phenotagger:GOLD.tsv,INPUT.PubTator".into(),
                    )
                })?;
                hpo_corpora::load_phenotagger_gold(Path::new(gold), Path::new(input))
            }
            "medprocner" => medprocner::load(path),
            "brat" => brat::load_dir(path),
            other => Err(crate::Error::UnknownFormat {
                found: other.to_string(),
                expected: CORPUS_FORMATS.to_string(),
            }),
        }
    }
}
