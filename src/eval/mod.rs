//! Evaluation: corpus readers with gold mentions, corpus specs (`FORMAT:PATH#options`),
//! linking and NER metrics, the `eval link` runner with its two protocols, and corpus mentions
//! as extra dictionary names.

pub mod abbrev;
pub mod ade;
pub mod biosyn;
pub mod brat;
pub mod conll;
pub mod e2e;
pub mod e3c;
pub mod hpo_corpora;
pub mod link;
pub mod medprocner;
pub mod mentions;
pub mod metrics;
pub mod pubtator;
pub mod spec;
pub mod split;
pub mod tune;

pub use spec::CorpusSpec;

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
