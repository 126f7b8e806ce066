//! The in-memory concept dictionary: several ontologies at once, compact internal indices.
//!
//! External ids (`HP:0000256`) are strings users see; inside, concepts and names are addressed
//! by dense `u32` indices ([`ConceptIdx`], [`NameIdx`]) so that vectors, graph nodes and lexical
//! documents can refer to them cheaply. The name table lists, for every active concept, its
//! preferred name and synonyms deduplicated by normal form ([`crate::text::normalize`]): one row
//! per distinct name, which is what the dense and lexical indexes embed and search.
//!
//! Memory is what limits how large a terminology one machine serves (UMLS: ~10 million names),
//! so nothing here is a `String` per name or a `Concept` struct per concept:
//! - each full concept record is a bincode blob in one byte buffer ([`Records`]) — memory-mapped
//!   from a dictionary file of format 3, so records are paged in only when a caller asks for
//!   one ([`Dictionary::concept`] decodes it);
//! - what searching touches on every query — ids, preferred names, sources, types, the name
//!   table and its normal forms — is packed into string arenas and `u32` arrays, and the id and
//!   name lookups are sorted index arrays searched by bisection.
//!
//! At 3 million names an opened index holds ~265 bytes per name in the heap, tantivy's readers
//! included, where a `Vec<Concept>` with owned name rows and hash maps cost ~700 (BENCHMARKS.md,
//! "Scale").

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

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

/// Strings packed end to end in one allocation; string `i` is `text[ends[i-1]..ends[i]]`.
#[derive(Debug, Clone, Default)]
struct StrArena {
    text: String,
    ends: Vec<u32>,
}

impl StrArena {
    fn push(&mut self, s: &str) -> Result<()> {
        self.text.push_str(s);
        let end = u32::try_from(self.text.len()).map_err(|_| {
            Error::InvalidInput(
                "the dictionary's names or ids exceed 4 GiB of text: split the vocabulary".into(),
            )
        })?;
        self.ends.push(end);
        Ok(())
    }

    fn get(&self, i: usize) -> &str {
        &self.text[span(&self.ends, i)]
    }

    fn len(&self) -> usize {
        self.ends.len()
    }

    fn shrink_to_fit(&mut self) {
        self.text.shrink_to_fit();
        self.ends.shrink_to_fit();
    }
}

/// Item `i` of a packed table whose items end at `ends`: `ends[i-1]..ends[i]`.
fn span(ends: &[u32], i: usize) -> std::ops::Range<usize> {
    let start = if i == 0 { 0 } else { ends[i - 1] as usize };
    start..ends[i] as usize
}

/// The bytes holding every concept record: built in the heap, or mapped from a dictionary file.
pub(crate) enum RecordBytes {
    Heap(Vec<u8>),
    Mapped {
        map: memmap2::Mmap,
        start: usize,
        len: usize,
    },
}

impl RecordBytes {
    fn bytes(&self) -> &[u8] {
        match self {
            RecordBytes::Heap(bytes) => bytes,
            RecordBytes::Mapped { map, start, len } => &map[*start..*start + *len],
        }
    }
}

impl std::fmt::Debug for RecordBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecordBytes::Heap(bytes) => write!(f, "Heap({} bytes)", bytes.len()),
            RecordBytes::Mapped { len, .. } => write!(f, "Mapped({len} bytes)"),
        }
    }
}

/// Every concept as a bincode record: record `i` is `bytes[offsets[i]..offsets[i + 1]]`.
#[derive(Debug, Clone)]
pub(crate) struct Records {
    bytes: Arc<RecordBytes>,
    offsets: Vec<u64>,
}

impl Default for Records {
    fn default() -> Self {
        Records {
            bytes: Arc::new(RecordBytes::Heap(Vec::new())),
            offsets: vec![0],
        }
    }
}

impl Records {
    /// `offsets` start at 0, never decrease and end at the length of `bytes` (built so, or
    /// checked when read from a file).
    pub(crate) fn new(bytes: RecordBytes, offsets: Vec<u64>) -> Self {
        Records {
            bytes: Arc::new(bytes),
            offsets,
        }
    }

    fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    fn record(&self, i: usize) -> &[u8] {
        &self.bytes.bytes()[self.offsets[i] as usize..self.offsets[i + 1] as usize]
    }

    fn decode(&self, i: usize) -> std::result::Result<Concept, bincode::Error> {
        bincode::deserialize(self.record(i))
    }

    /// The offsets and the record bytes, as the dictionary file stores them.
    pub(crate) fn raw(&self) -> (&[u64], &[u8]) {
        (&self.offsets, self.bytes.bytes())
    }

    /// Tells the kernel the mapped records are not needed now (after a scan over all of them):
    /// their pages leave this process's resident set, the page cache keeps them.
    fn release_pages(&self) {
        if let RecordBytes::Mapped { map, .. } = &*self.bytes {
            // SAFETY: a read-only shared mapping of a file that is never modified in place
            // (dictionary files are replaced by rename): dropped pages are read back from the
            // file on the next access, and no borrow of the mapping outlives this call here.
            // Failure only means the pages stay resident.
            let _ = unsafe { map.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) };
        }
    }
}

/// One row of the name table, borrowed from the dictionary: the text is the concept's own
/// name or synonym (not a copy), the normal form lives in the table's shared arena.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NameEntry<'a> {
    pub concept: ConceptIdx,
    pub text: &'a str,
    pub normalized: &'a str,
    /// `None` for the preferred name.
    pub kind: Option<SynonymKind>,
}

/// A name table row: its concept and how the name relates to it (`None`: preferred name).
#[derive(Debug, Clone, Copy, PartialEq)]
struct NameRow {
    concept: ConceptIdx,
    kind: Option<SynonymKind>,
}

/// Concepts of one or more ontologies with lookup by id and by normalised name.
#[derive(Debug, Clone, Default)]
pub struct Dictionary {
    sources: Vec<SourceInfo>,
    warnings: Vec<String>,
    records: Records,
    /// Per concept: id, preferred name, source index.
    ids: StrArena,
    preferred: StrArena,
    concept_sources: Vec<u16>,
    /// Per concept, its types as indices into `type_names`: `type_ids[type_ends[i-1]..type_ends[i]]`.
    type_names: Vec<String>,
    type_ends: Vec<u32>,
    type_ids: Vec<u32>,
    /// Every concept index, sorted by id.
    by_id: Vec<ConceptIdx>,
    /// Secondary ids, their concepts, and their indices sorted by (id, concept).
    alt_ids: StrArena,
    alt_owners: Vec<ConceptIdx>,
    by_alt_id: Vec<u32>,
    names: Vec<NameRow>,
    name_texts: StrArena,
    normalized: StrArena,
    /// Every name index, sorted by normal form (then index): the names sharing a normal form
    /// are one run of it.
    by_normalized: Vec<NameIdx>,
}

/// The dictionary's name table, a borrowed view: `len`, `get` and `iter`.
#[derive(Debug, Clone, Copy)]
pub struct Names<'a> {
    dict: &'a Dictionary,
}

impl<'a> Names<'a> {
    pub fn len(&self) -> usize {
        self.dict.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.dict.names.is_empty()
    }

    /// Row `idx`; panics past the end, like slice indexing.
    pub fn get(&self, idx: usize) -> NameEntry<'a> {
        self.dict.name(idx as NameIdx)
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = NameEntry<'a>> + 'a {
        let dict = self.dict;
        (0..dict.names.len()).map(move |i| dict.name(i as NameIdx))
    }
}

/// Two tables are equal when their rows are: same concepts, texts, normal forms and kinds.
impl PartialEq for Names<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl<'a> IntoIterator for Names<'a> {
    type Item = NameEntry<'a>;
    type IntoIter = Box<dyn ExactSizeIterator<Item = NameEntry<'a>> + 'a>;

    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

/// Fills a dictionary's lookups from its concepts, one at a time, in index order.
#[derive(Default)]
struct LookupBuilder {
    dict: Dictionary,
    type_index: HashMap<String, u32>,
    forms: Vec<String>,
}

impl LookupBuilder {
    fn add(&mut self, concept: &Concept) -> Result<()> {
        let d = &mut self.dict;
        let idx = ConceptIdx::try_from(d.ids.len())
            .map_err(|_| Error::InvalidInput("more than 2^32 concepts".into()))?;
        d.ids.push(&concept.id)?;
        d.preferred.push(&concept.name)?;
        d.concept_sources.push(concept.source);
        for t in &concept.types {
            let next = self.type_index.len() as u32;
            let id = *self.type_index.entry(t.clone()).or_insert_with(|| {
                d.type_names.push(t.clone());
                next
            });
            d.type_ids.push(id);
        }
        d.type_ends.push(d.type_ids.len() as u32);
        for alt in &concept.alt_ids {
            d.alt_ids.push(alt)?;
            d.alt_owners.push(idx);
        }
        if concept.obsolete {
            return Ok(());
        }
        self.forms.clear();
        let kinds = std::iter::once(None).chain(concept.synonyms.iter().map(|s| Some(s.kind)));
        for (text, kind) in concept.names().zip(kinds) {
            let form = normalize(text);
            if form.is_empty() || self.forms.contains(&form) {
                continue;
            }
            d.name_texts.push(text)?;
            d.normalized.push(&form)?;
            d.names.push(NameRow { concept: idx, kind });
            self.forms.push(form);
        }
        u32::try_from(d.names.len())
            .map_err(|_| Error::InvalidInput("more than 2^32 names".into()))?;
        Ok(())
    }

    /// Sorts the lookups; `records` must hold the added concepts, in order.
    fn finish(
        self,
        sources: Vec<SourceInfo>,
        warnings: Vec<String>,
        records: Records,
    ) -> Dictionary {
        let mut d = self.dict;
        debug_assert_eq!(records.len(), d.ids.len());
        d.sources = sources;
        d.warnings = warnings;
        d.records = records;
        for arena in [
            &mut d.ids,
            &mut d.preferred,
            &mut d.alt_ids,
            &mut d.name_texts,
            &mut d.normalized,
        ] {
            arena.shrink_to_fit();
        }
        d.concept_sources.shrink_to_fit();
        d.type_ends.shrink_to_fit();
        d.type_ids.shrink_to_fit();
        d.alt_owners.shrink_to_fit();
        d.names.shrink_to_fit();
        let mut by_id: Vec<ConceptIdx> = (0..d.ids.len() as ConceptIdx).collect();
        by_id.sort_unstable_by(|&a, &b| d.ids.get(a as usize).cmp(d.ids.get(b as usize)));
        let mut by_alt_id: Vec<u32> = (0..d.alt_ids.len() as u32).collect();
        by_alt_id.sort_by(|&a, &b| d.alt_ids.get(a as usize).cmp(d.alt_ids.get(b as usize)));
        let mut by_normalized: Vec<NameIdx> = (0..d.names.len() as NameIdx).collect();
        by_normalized.sort_unstable_by(|&a, &b| {
            d.normalized
                .get(a as usize)
                .cmp(d.normalized.get(b as usize))
                .then(a.cmp(&b))
        });
        d.by_id = by_id;
        d.by_alt_id = by_alt_id;
        d.by_normalized = by_normalized;
        d
    }
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
            if let Some(problem) = unknown_source(&concept, &sources) {
                return Err(Error::Internal(problem));
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
        drop(by_id);
        if merges > 0 {
            warnings.push(format!(
                "{merges} concept records shared an id with an earlier record and were merged"
            ));
        }
        let mut builder = LookupBuilder::default();
        let mut bytes = Vec::new();
        let mut offsets = Vec::with_capacity(merged.len() + 1);
        offsets.push(0u64);
        for concept in merged {
            builder.add(&concept)?;
            bincode::serialize_into(&mut bytes, &concept)
                .map_err(|e| Error::Internal(format!("encoding concept {}: {e}", concept.id)))?;
            offsets.push(bytes.len() as u64);
        }
        bytes.shrink_to_fit();
        let records = Records::new(RecordBytes::Heap(bytes), offsets);
        Ok(builder.finish(sources, warnings, records))
    }

    /// A dictionary over records read from a file (format 3): every record is decoded once to
    /// build the lookups, then the mapped records' pages are released.
    pub(crate) fn from_records(
        sources: Vec<SourceInfo>,
        warnings: Vec<String>,
        records: Records,
        path: &std::path::Path,
    ) -> Result<Self> {
        let mut builder = LookupBuilder::default();
        for i in 0..records.len() {
            let concept = records.decode(i).map_err(|e| Error::DataCorruption {
                path: path.to_path_buf(),
                comment: format!("concept record {i}: {e}"),
            })?;
            if let Some(comment) = unknown_source(&concept, &sources) {
                return Err(Error::DataCorruption {
                    path: path.to_path_buf(),
                    comment,
                });
            }
            builder.add(&concept)?;
        }
        records.release_pages();
        Ok(builder.finish(sources, warnings, records))
    }

    pub fn sources(&self) -> &[SourceInfo] {
        &self.sources
    }

    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    pub fn concept_count(&self) -> usize {
        self.ids.len()
    }

    /// The full record of a concept, decoded from its bytes (names, parents, xrefs,
    /// definition...). Hot paths read [`Dictionary::concept_id`] and its siblings instead.
    pub fn concept(&self, idx: ConceptIdx) -> Concept {
        // Every record was decoded once when the dictionary was built or opened, and its
        // bytes are immutable since (a heap buffer, or a file replaced only by rename).
        self.records
            .decode(idx as usize)
            .expect("a concept record that decoded at load decodes again")
    }

    /// Every concept's full record, in index order (decoded one by one). A walk over every
    /// record pages in the whole mapped file: follow it with [`Dictionary::release_records`].
    pub fn concepts(&self) -> impl ExactSizeIterator<Item = Concept> + '_ {
        (0..self.concept_count()).map(|i| self.concept(i as ConceptIdx))
    }

    /// Drops the mapped concept records from this process's resident memory (they are read
    /// back from the file when next asked for); nothing to do for records in the heap.
    pub fn release_records(&self) {
        self.records.release_pages();
    }

    pub fn concept_id(&self, idx: ConceptIdx) -> &str {
        self.ids.get(idx as usize)
    }

    pub fn concept_name(&self, idx: ConceptIdx) -> &str {
        self.preferred.get(idx as usize)
    }

    /// The concept's source, from the dictionary's source table.
    pub fn concept_source(&self, idx: ConceptIdx) -> Option<&SourceInfo> {
        self.sources
            .get(usize::from(self.concept_sources[idx as usize]))
    }

    /// Index of the concept's source in [`Dictionary::sources`].
    pub fn concept_source_index(&self, idx: ConceptIdx) -> u16 {
        self.concept_sources[idx as usize]
    }

    /// The concept's semantic types or categories.
    pub fn concept_types(&self, idx: ConceptIdx) -> impl Iterator<Item = &str> + '_ {
        self.type_ids[span(&self.type_ends, idx as usize)]
            .iter()
            .map(|&t| self.type_names[t as usize].as_str())
    }

    /// Every distinct type of any concept, in order of first appearance.
    pub fn types(&self) -> &[String] {
        &self.type_names
    }

    pub fn source_of(&self, concept: &Concept) -> Option<&SourceInfo> {
        self.sources.get(usize::from(concept.source))
    }

    /// Index of the concept with this id or secondary id; the id is normalised first, so
    /// `D003920`, `MESH:D003920` and `MSH:D003920` all resolve.
    pub fn lookup_id(&self, id: &str) -> Option<ConceptIdx> {
        self.lookup_exact_id(id)
            .or_else(|| self.lookup_exact_id(&ids::normalize_id(id)))
    }

    /// A primary id first, then a secondary one (of the lowest-numbered concept listing it):
    /// secondary ids resolve to their concept unless they are some concept's primary id.
    fn lookup_exact_id(&self, id: &str) -> Option<ConceptIdx> {
        let primary = self
            .by_id
            .partition_point(|&c| self.ids.get(c as usize) < id);
        if let Some(&c) = self.by_id.get(primary) {
            if self.ids.get(c as usize) == id {
                return Some(c);
            }
        }
        let secondary = self
            .by_alt_id
            .partition_point(|&a| self.alt_ids.get(a as usize) < id);
        self.by_alt_id
            .get(secondary)
            .filter(|&&a| self.alt_ids.get(a as usize) == id)
            .map(|&a| self.alt_owners[a as usize])
    }

    pub fn get(&self, id: &str) -> Option<Concept> {
        self.lookup_id(id).map(|i| self.concept(i))
    }

    /// The name table: one row per distinct normalised name of each active concept.
    pub fn names(&self) -> Names<'_> {
        Names { dict: self }
    }

    /// Row `idx` of the name table; panics past its end, like slice indexing.
    pub fn name(&self, idx: NameIdx) -> NameEntry<'_> {
        let row = self.names[idx as usize];
        NameEntry {
            concept: row.concept,
            text: self.name_texts.get(idx as usize),
            normalized: self.normalized.get(idx as usize),
            kind: row.kind,
        }
    }

    /// Names whose normal form equals `normalized` (already passed through `text::normalize`).
    pub fn lookup_normalized(&self, normalized: &str) -> &[NameIdx] {
        let key = |&i: &NameIdx| self.normalized.get(i as usize);
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
        for c in self.concepts() {
            synonyms += c.synonyms.len();
            active += usize::from(!c.obsolete);
            for t in &c.types {
                *types.entry(t.clone()).or_default() += 1;
            }
            for x in &c.xrefs {
                *xref_prefixes.entry(ids::prefix(x).to_string()).or_default() += 1;
            }
        }
        let concepts = self.concept_count();
        DictionaryStats {
            sources: self.sources.clone(),
            concepts,
            active_concepts: active,
            names: concepts + synonyms,
            indexed_names: self.names.len(),
            synonyms_per_concept: if concepts == 0 {
                0.0
            } else {
                synonyms as f64 / concepts as f64
            },
            types,
            xref_prefixes,
            warnings: self.warnings.clone(),
        }
    }

    /// Sources, warnings and the concept records, as the dictionary file stores them.
    pub(crate) fn parts(&self) -> (&[SourceInfo], &[String], &Records) {
        (&self.sources, &self.warnings, &self.records)
    }

    /// Sources, concepts and warnings, to rebuild an extended dictionary with
    /// [`Dictionary::from_parts`].
    pub fn into_parts(self) -> (Vec<SourceInfo>, Vec<Concept>, Vec<String>) {
        let concepts = self.concepts().collect();
        (self.sources, concepts, self.warnings)
    }
}

/// Says so when `concept` names a source past the end of `sources` (a dictionary without
/// sources accepts any).
fn unknown_source(concept: &Concept, sources: &[SourceInfo]) -> Option<String> {
    (usize::from(concept.source) >= sources.len() && !sources.is_empty()).then(|| {
        format!(
            "concept {} refers to source {} of {}",
            concept.id,
            concept.source,
            sources.len()
        )
    })
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
