//! The concept model every loader produces and every later stage reads.
//!
//! Serialized with bincode inside the dictionary file (see [`super::store`]): changing a field
//! here changes the on-disk format and needs a bump of `DICTIONARY_FORMAT_VERSION`.

use serde::{Deserialize, Serialize};

/// How a synonym relates to its concept, where the source says.
///
/// Serialized (dictionary file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SynonymKind {
    Exact,
    Related,
    Broad,
    Narrow,
    Abbreviation,
    /// SNOMED CT fully specified name, e.g. "Myocardial infarction (disorder)".
    FullySpecifiedName,
    /// The source lists the name without saying how it relates.
    Unspecified,
}

impl SynonymKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SynonymKind::Exact => "exact",
            SynonymKind::Related => "related",
            SynonymKind::Broad => "broad",
            SynonymKind::Narrow => "narrow",
            SynonymKind::Abbreviation => "abbreviation",
            SynonymKind::FullySpecifiedName => "fully_specified_name",
            SynonymKind::Unspecified => "unspecified",
        }
    }
}

/// One alternative name of a concept. Serialized (dictionary file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Synonym {
    pub text: String,
    pub kind: SynonymKind,
}

impl Synonym {
    pub fn new(text: impl Into<String>, kind: SynonymKind) -> Self {
        Synonym {
            text: text.into(),
            kind,
        }
    }
}

/// A concept of a terminology. Serialized (dictionary file).
///
/// `id` is always prefixed (`HP:0001250`, `MESH:D003920`, `OMIM:601462`, `SNOMEDCT:22298006`,
/// `UMLS:C0027051`, `ICD10CM:E11.9`, `DOID:9352`); see [`super::ids`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Concept {
    pub id: String,
    pub name: String,
    pub synonyms: Vec<Synonym>,
    /// Semantic types or categories (UMLS TUI names, SNOMED semantic tags, MeSH tree branches...).
    pub types: Vec<String>,
    /// Index into the dictionary's source table; set by the dictionary when the concept is added.
    pub source: u16,
    /// Direct is-a parents, as prefixed ids.
    pub parents: Vec<String>,
    /// Cross-references to other terminologies, as prefixed ids.
    pub xrefs: Vec<String>,
    /// Secondary ids that also resolve to this concept (OBO `alt_id`, MEDIC secondary ids).
    pub alt_ids: Vec<String>,
    pub obsolete: bool,
    pub replaced_by: Vec<String>,
    pub definition: Option<String>,
}

impl Concept {
    pub fn new(id: impl Into<String>, name: impl Into<String>) -> Self {
        Concept {
            id: id.into(),
            name: name.into(),
            ..Default::default()
        }
    }

    /// The preferred name followed by every synonym text.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.name.as_str()).chain(self.synonyms.iter().map(|s| s.text.as_str()))
    }

    /// Adds a synonym unless the same text is already the name or a synonym.
    pub fn push_synonym(&mut self, text: impl Into<String>, kind: SynonymKind) {
        let text = text.into();
        if text.is_empty() || text == self.name || self.synonyms.iter().any(|s| s.text == text) {
            return;
        }
        self.synonyms.push(Synonym { text, kind });
    }

    /// Merges another record of the same concept (same id): union of names, parents, xrefs, types.
    pub fn merge(&mut self, other: Concept) {
        if self.name.is_empty() {
            self.name = other.name;
        } else if other.name != self.name {
            self.push_synonym(other.name, SynonymKind::Unspecified);
        }
        for s in other.synonyms {
            self.push_synonym(s.text, s.kind);
        }
        for (mine, theirs) in [
            (&mut self.types, other.types),
            (&mut self.parents, other.parents),
            (&mut self.xrefs, other.xrefs),
            (&mut self.alt_ids, other.alt_ids),
            (&mut self.replaced_by, other.replaced_by),
        ] {
            for v in theirs {
                if !mine.contains(&v) {
                    mine.push(v);
                }
            }
        }
        if self.definition.is_none() {
            self.definition = other.definition;
        }
        self.obsolete &= other.obsolete;
    }
}
