//! Evaluation: corpus readers with gold mentions, and (later) linking and NER metrics.

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
    pub fn mentions(&self) -> impl Iterator<Item = (&Document, &GoldMention)> {
        self.documents
            .iter()
            .flat_map(|d| d.mentions.iter().map(move |m| (d, m)))
    }
}
