//! The in-memory concept dictionary: several ontologies at once, compact internal indices.
//!
//! External ids (`HP:0000256`) are strings users see; inside, concepts and names are addressed
//! by dense `u32` indices ([`ConceptIdx`], [`NameIdx`]) so that vectors, graph nodes and lexical
//! documents can refer to them cheaply. The name table lists, for every active concept, its
//! preferred name and synonyms deduplicated by normal form ([`crate::text::normalize`]): one row
//! per distinct name, which is what the dense and lexical indexes embed and search.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::concept::{Concept, SynonymKind};
use super::ids;
use super::Format;
use crate::error::{Error, Result};
use crate::text::normalize;

pub type ConceptIdx = u32;
pub type NameIdx = u32;

/// Where a group of concepts came from. Serialized (dictionary file, index manifest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceInfo {
    /// Short name used in filters and reports: `HPO`, `MEDIC`, `CTD`, `UMLS`, ...
    pub name: String,
    pub format: Format,
    pub path: String,
    pub version: Option<String>,
    /// SHA-256 of the source file(s), hex.
    pub sha256: String,
    pub concepts: usize,
}

/// One row of the name table.
#[derive(Debug, Clone, PartialEq)]
pub struct NameEntry {
    pub concept: ConceptIdx,
    pub text: String,
    pub normalized: String,
    /// `None` for the preferred name.
    pub kind: Option<SynonymKind>,
}

/// Concepts of one or more ontologies with lookup by id and by normalised name.
#[derive(Debug, Clone, Default)]
pub struct Dictionary {
    sources: Vec<SourceInfo>,
    concepts: Vec<Concept>,
    warnings: Vec<String>,
    by_id: HashMap<String, ConceptIdx>,
    names: Vec<NameEntry>,
    /// Every name index, sorted by normal form (then index): the names sharing a normal form
    /// are one run of it. 4 bytes per name, where a map from each normal form cost ~100.
    by_normalized: Vec<NameIdx>,
}

impl Dictionary {
    /// Builds a dictionary from concepts already assigned to `sources` (their `source` field).
    ///
    /// Concepts that share an id are merged (union of names, parents, xrefs); the merge is
    /// reported as a warning because it usually means two sources overlap.
    pub fn from_parts(
        sources: Vec<SourceInfo>,
        concepts: Vec<Concept>,
        mut warnings: Vec<String>,
    ) -> Result<Self> {
        let mut merged: Vec<Concept> = Vec::with_capacity(concepts.len());
        let mut by_id: HashMap<String, ConceptIdx> = HashMap::with_capacity(concepts.len());
        let mut merges = 0usize;
        for concept in concepts {
            if usize::from(concept.source) >= sources.len() && !sources.is_empty() {
                return Err(Error::Internal(format!(
                    "concept {} refers to source {} of {}",
                    concept.id,
                    concept.source,
                    sources.len()
                )));
            }
            match by_id.get(&concept.id) {
                Some(&idx) => {
                    merges += 1;
                    merged[idx as usize].merge(concept);
                }
                None => {
                    let idx = u32::try_from(merged.len())
                        .map_err(|_| Error::InvalidInput("more than 2^32 concepts".into()))?;
                    by_id.insert(concept.id.clone(), idx);
                    merged.push(concept);
                }
            }
        }
        if merges > 0 {
            warnings.push(format!(
                "{merges} concept records shared an id with an earlier record and were merged"
            ));
        }
        // Secondary ids resolve to their concept unless they are some concept's primary id.
        for (idx, concept) in merged.iter().enumerate() {
            for alt in &concept.alt_ids {
                by_id.entry(alt.clone()).or_insert(idx as ConceptIdx);
            }
        }
        let mut dict = Dictionary {
            sources,
            concepts: merged,
            warnings,
            by_id,
            names: Vec::new(),
            by_normalized: Vec::new(),
        };
        dict.build_name_table();
        Ok(dict)
    }

    fn build_name_table(&mut self) {
        let mut names = Vec::new();
        for (cidx, concept) in self.concepts.iter().enumerate() {
            if concept.obsolete {
                continue;
            }
            let first = names.len();
            let kinds = std::iter::once(None).chain(concept.synonyms.iter().map(|s| Some(s.kind)));
            for (text, kind) in concept.names().zip(kinds) {
                let normalized = normalize(text);
                if normalized.is_empty()
                    || names[first..]
                        .iter()
                        .any(|n: &NameEntry| n.normalized == normalized)
                {
                    continue;
                }
                names.push(NameEntry {
                    concept: cidx as ConceptIdx,
                    text: text.to_string(),
                    normalized,
                    kind,
                });
            }
        }
        let mut by_normalized: Vec<NameIdx> = (0..names.len() as NameIdx).collect();
        by_normalized.sort_unstable_by(|&a, &b| {
            names[a as usize]
                .normalized
                .cmp(&names[b as usize].normalized)
                .then(a.cmp(&b))
        });
        self.names = names;
        self.by_normalized = by_normalized;
    }

    pub fn sources(&self) -> &[SourceInfo] {
        &self.sources
    }

    pub fn concepts(&self) -> &[Concept] {
        &self.concepts
    }

    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    pub fn concept(&self, idx: ConceptIdx) -> &Concept {
        &self.concepts[idx as usize]
    }

    pub fn source_of(&self, concept: &Concept) -> Option<&SourceInfo> {
        self.sources.get(usize::from(concept.source))
    }

    /// Index of the concept with this id or secondary id; the id is normalised first, so
    /// `D003920`, `MESH:D003920` and `MSH:D003920` all resolve.
    pub fn lookup_id(&self, id: &str) -> Option<ConceptIdx> {
        self.by_id
            .get(id)
            .or_else(|| self.by_id.get(&ids::normalize_id(id)))
            .copied()
    }

    pub fn get(&self, id: &str) -> Option<&Concept> {
        self.lookup_id(id).map(|i| self.concept(i))
    }

    /// The name table: one row per distinct normalised name of each active concept.
    pub fn names(&self) -> &[NameEntry] {
        &self.names
    }

    pub fn name(&self, idx: NameIdx) -> &NameEntry {
        &self.names[idx as usize]
    }

    /// Names whose normal form equals `normalized` (already passed through `text::normalize`).
    pub fn lookup_normalized(&self, normalized: &str) -> &[NameIdx] {
        let key = |&i: &NameIdx| self.names[i as usize].normalized.as_str();
        let start = self.by_normalized.partition_point(|i| key(i) < normalized);
        let end = start + self.by_normalized[start..].partition_point(|i| key(i) == normalized);
        &self.by_normalized[start..end]
    }

    /// Concepts having a name that normalises like `text`.
    pub fn lookup_name(&self, text: &str) -> Vec<ConceptIdx> {
        let mut out: Vec<ConceptIdx> = self
            .lookup_normalized(&normalize(text))
            .iter()
            .map(|&n| self.names[n as usize].concept)
            .collect();
        out.dedup();
        out
    }

    /// Summary statistics, the body of `medlink ontology inspect`.
    pub fn stats(&self) -> DictionaryStats {
        let mut types: BTreeMap<String, usize> = BTreeMap::new();
        let mut xref_prefixes: BTreeMap<String, usize> = BTreeMap::new();
        let mut synonyms = 0usize;
        let mut active = 0usize;
        for c in &self.concepts {
            synonyms += c.synonyms.len();
            active += usize::from(!c.obsolete);
            for t in &c.types {
                *types.entry(t.clone()).or_default() += 1;
            }
            for x in &c.xrefs {
                *xref_prefixes.entry(ids::prefix(x).to_string()).or_default() += 1;
            }
        }
        DictionaryStats {
            sources: self.sources.clone(),
            concepts: self.concepts.len(),
            active_concepts: active,
            names: self.concepts.len() + synonyms,
            indexed_names: self.names.len(),
            synonyms_per_concept: if self.concepts.is_empty() {
                0.0
            } else {
                synonyms as f64 / self.concepts.len() as f64
            },
            types,
            xref_prefixes,
            warnings: self.warnings.clone(),
        }
    }

    pub(crate) fn parts(&self) -> (&[SourceInfo], &[Concept], &[String]) {
        (&self.sources, &self.concepts, &self.warnings)
    }

    /// Sources, concepts and warnings, to rebuild an extended dictionary with
    /// [`Dictionary::from_parts`].
    pub fn into_parts(self) -> (Vec<SourceInfo>, Vec<Concept>, Vec<String>) {
        (self.sources, self.concepts, self.warnings)
    }
}

/// What `medlink ontology inspect` prints.
#[derive(Debug, Clone, Serialize)]
pub struct DictionaryStats {
    pub sources: Vec<SourceInfo>,
    pub concepts: usize,
    pub active_concepts: usize,
    /// Preferred names plus synonyms, as loaded.
    pub names: usize,
    /// Distinct normalised names of active concepts: the rows the indexes embed.
    pub indexed_names: usize,
    pub synonyms_per_concept: f64,
    pub types: BTreeMap<String, usize>,
    pub xref_prefixes: BTreeMap<String, usize>,
    pub warnings: Vec<String>,
}
