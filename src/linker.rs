//! The linker: mention strings in, ranked concepts out.
//!
//! For each mention:
//! 1. **Normalise** it ([`crate::text::normalize`]; a singular variant is tried too).
//! 2. **Generate candidates** (names of the name table) from three sources: exact normal-form
//!    matches, the dense top-`dense_k` from HNSW and the lexical top-`lexical_k` from tantivy.
//! 3. **Score every candidate on both signals**, whichever source found it: the cosine between
//!    the mention's vector and the name's stored vector, and the character-trigram similarity of
//!    the two normal forms ([`crate::index::lexical::LexicalIndex::similarity`], TF-IDF weighted). The fused score is
//!    `alpha * dense + (1 - alpha) * lexical`, plus 1.0 for an exact normal-form match (so exact
//!    names always rank first) or 0.5 when only the mention's singular form matches. Because both signals are computed for every candidate, the
//!    score of a candidate does not depend on which source proposed it or in which order — the
//!    union only decides *which* names are scored.
//! 4. **Group by concept**: a concept's score is its best name's score; the best name is
//!    reported as `matched_name`. Filters on source ontology and semantic type apply here.
//!    Concepts with equal scores (two concepts sharing an exact name) are ordered with the one
//!    matched by its preferred name first, then by dictionary order.
//!
//! `mode` restricts both generation and scoring to one signal (dense-only, lexical-only) for
//! ablations. Mention text is never logged.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::encoder::{dot, Encoder};
use crate::error::{Error, Result};
use crate::index::Index;
use crate::ontology::{ConceptIdx, NameIdx};
use crate::text::{normalize, singular_variant};

pub const MAX_K: usize = 100;
/// Longest mention accepted, in characters. Concept names and mentions are short; anything
/// longer is almost certainly a whole document sent by mistake.
pub const MAX_MENTION_CHARS: usize = 1_000;

/// Which signals generate and score candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Hybrid,
    Dense,
    Lexical,
}

impl std::str::FromStr for Mode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "hybrid" => Ok(Mode::Hybrid),
            "dense" => Ok(Mode::Dense),
            "lexical" => Ok(Mode::Lexical),
            _ => Err(Error::InvalidInput(format!(
                "unknown mode `{s}` (expected hybrid, dense or lexical)"
            ))),
        }
    }
}

#[derive(Debug, Clone)]
pub struct LinkOptions {
    pub k: usize,
    pub mode: Mode,
    /// Weight of the dense score in hybrid mode.
    pub alpha: f32,
    /// Candidate names taken from each of HNSW and tantivy before grouping.
    pub candidates: usize,
    /// Keep only concepts from these source names (`HPO`, `MEDIC`...); empty keeps all.
    pub sources: Vec<String>,
    /// Keep only concepts with one of these types; empty keeps all.
    pub types: Vec<String>,
}

impl Default for LinkOptions {
    fn default() -> Self {
        LinkOptions {
            k: 10,
            mode: Mode::Hybrid,
            alpha: 0.6,
            candidates: 64,
            sources: Vec::new(),
            types: Vec::new(),
        }
    }
}

impl LinkOptions {
    pub fn validate(&self) -> Result<()> {
        if self.k == 0 || self.k > MAX_K {
            return Err(Error::InvalidInput(format!(
                "k must be between 1 and {MAX_K}, got {}",
                self.k
            )));
        }
        if !(0.0..=1.0).contains(&self.alpha) {
            return Err(Error::InvalidInput(format!(
                "alpha must be between 0 and 1, got {}",
                self.alpha
            )));
        }
        Ok(())
    }
}

/// One ranked concept for a mention.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Candidate {
    pub id: String,
    pub name: String,
    pub score: f32,
    /// The synonym of the concept that scored best.
    pub matched_name: String,
    /// Cosine similarity of the mention and `matched_name` (absent in lexical mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dense: Option<f32>,
    /// Trigram similarity of the mention and `matched_name` (absent in dense mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lexical: Option<f32>,
    pub exact: bool,
    /// What was added to the fused score: 1.0 for an exact normal-form match, 0.5 for a match
    /// of the mention's singular form ("kidney cysts" -> "kidney cyst"), else 0.
    pub bonus: f32,
    pub source: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub types: Vec<String>,
}

/// The best-scoring name of a concept so far.
#[derive(Debug, Clone, Copy)]
struct ScoredName {
    score: f32,
    name: NameIdx,
    dense: Option<f32>,
    lexical: Option<f32>,
    exact: bool,
    bonus: f32,
    /// The name is the concept's preferred name (not a synonym).
    preferred: bool,
}

/// Score added for an exact normal-form match: exact names always outrank fuzzy ones.
const EXACT_BONUS: f32 = 1.0;
/// Score added when only the singular form matches: plural folding can be wrong ("aids").
const SINGULAR_BONUS: f32 = 0.5;

/// Links mentions against one index with one encoder.
pub struct Linker<'a> {
    index: &'a Index,
    encoder: &'a dyn Encoder,
    /// Every concept type of the dictionary, lowercased, to validate `--type` filters.
    known_types: std::collections::BTreeSet<String>,
}

impl<'a> Linker<'a> {
    /// Fails if the encoder is not the model the index was built with.
    pub fn new(index: &'a Index, encoder: &'a dyn Encoder) -> Result<Self> {
        index.check_model(encoder.identity())?;
        let known_types = index
            .dictionary
            .concepts()
            .iter()
            .flat_map(|c| c.types.iter().map(|t| t.to_lowercase()))
            .collect();
        Ok(Linker {
            index,
            encoder,
            known_types,
        })
    }

    pub fn link(&self, mention: &str, options: &LinkOptions) -> Result<Vec<Candidate>> {
        Ok(self
            .link_batch(&[mention], options)?
            .pop()
            .unwrap_or_default())
    }

    /// Links many mentions; the encoder sees them as one length-sorted batch.
    pub fn link_batch(
        &self,
        mentions: &[&str],
        options: &LinkOptions,
    ) -> Result<Vec<Vec<Candidate>>> {
        options.validate()?;
        self.validate_filters(options)?;
        let mut normalized = Vec::with_capacity(mentions.len());
        for (i, m) in mentions.iter().enumerate() {
            let chars = m.chars().count();
            if chars > MAX_MENTION_CHARS {
                return Err(Error::InvalidInput(format!(
                    "mention {} is {chars} characters long; the limit is {MAX_MENTION_CHARS}",
                    i + 1
                )));
            }
            let n = normalize(m);
            if n.is_empty() {
                return Err(Error::InvalidInput(format!(
                    "mention {} is empty or has no letters or digits",
                    i + 1
                )));
            }
            normalized.push(n);
        }
        let vectors = if options.mode == Mode::Lexical {
            vec![Vec::new(); mentions.len()]
        } else {
            self.encoder.encode(mentions)?
        };
        normalized
            .iter()
            .zip(&vectors)
            .map(|(n, v)| self.rank(n, v, options))
            .collect()
    }

    fn rank(
        &self,
        normalized: &str,
        vector: &[f32],
        options: &LinkOptions,
    ) -> Result<Vec<Candidate>> {
        let dict = &self.index.dictionary;
        let filtered = !options.sources.is_empty() || !options.types.is_empty();
        // Filters discard candidates after retrieval: fetch more so k survive.
        let pool = options.candidates.max(options.k * 2) * if filtered { 4 } else { 1 };

        let mut names: Vec<NameIdx> = Vec::new();
        let exact_keys: Vec<String> = std::iter::once(normalized.to_string())
            .chain(singular_variant(normalized))
            .collect();
        for key in &exact_keys {
            names.extend_from_slice(dict.lookup_normalized(key));
        }
        if options.mode != Mode::Lexical {
            names.extend(
                self.index
                    .dense
                    .search_ef(vector, pool, pool.max(self.index.dense.params().ef_search))?
                    .into_iter()
                    .map(|h| h.id),
            );
        }
        if options.mode != Mode::Dense {
            names.extend(
                self.index
                    .lexical
                    .search(normalized, pool)?
                    .into_iter()
                    .map(|(n, _)| n),
            );
        }
        names.sort_unstable();
        names.dedup();

        let profile =
            (options.mode != Mode::Dense).then(|| self.index.lexical.query_profile(normalized));
        let mut best: HashMap<ConceptIdx, ScoredName> = HashMap::new();
        for name_idx in names {
            let entry = dict.name(name_idx);
            if filtered && !self.passes_filters(entry.concept, options) {
                continue;
            }
            let dense = (options.mode != Mode::Lexical)
                .then(|| dot(vector, self.index.vectors.row(name_idx as usize)));
            let lexical = profile
                .as_ref()
                .map(|p| self.index.lexical.similarity_to(p, &entry.normalized));
            let exact = entry.normalized == normalized;
            let bonus = if exact {
                EXACT_BONUS
            } else if exact_keys.contains(&entry.normalized) {
                SINGULAR_BONUS
            } else {
                0.0
            };
            let fused = match (dense, lexical) {
                (Some(d), Some(l)) => options.alpha * d + (1.0 - options.alpha) * l,
                (Some(d), None) => d,
                (None, Some(l)) => l,
                (None, None) => 0.0,
            };
            let scored = ScoredName {
                score: fused + bonus,
                name: name_idx,
                dense,
                lexical,
                exact,
                bonus,
                preferred: entry.kind.is_none(),
            };
            // Ties between names of one concept go to the lower name index (the preferred
            // name comes first), so results do not depend on candidate order.
            best.entry(entry.concept)
                .and_modify(|slot| {
                    if scored.score > slot.score
                        || (scored.score == slot.score && scored.name < slot.name)
                    {
                        *slot = scored;
                    }
                })
                .or_insert(scored);
        }
        let mut ranked: Vec<(ConceptIdx, ScoredName)> = best.into_iter().collect();
        ranked.sort_by(|a, b| {
            b.1.score
                .total_cmp(&a.1.score)
                .then(b.1.preferred.cmp(&a.1.preferred))
                .then(a.0.cmp(&b.0))
        });
        ranked.truncate(options.k);
        Ok(ranked
            .into_iter()
            .map(|(cidx, best)| {
                let concept = dict.concept(cidx);
                Candidate {
                    id: concept.id.clone(),
                    name: concept.name.clone(),
                    score: best.score,
                    matched_name: dict.name(best.name).text.clone(),
                    dense: best.dense,
                    lexical: best.lexical,
                    exact: best.exact,
                    bonus: best.bonus,
                    source: dict
                        .source_of(concept)
                        .map(|s| s.name.clone())
                        .unwrap_or_default(),
                    types: concept.types.clone(),
                }
            })
            .collect())
    }

    /// A filter naming no source or type of the index is a typo, not an empty result.
    fn validate_filters(&self, options: &LinkOptions) -> Result<()> {
        let sources = self.index.dictionary.sources();
        for s in &options.sources {
            if !sources
                .iter()
                .any(|known| known.name.eq_ignore_ascii_case(s))
            {
                let names: Vec<&str> = sources.iter().map(|k| k.name.as_str()).collect();
                return Err(Error::InvalidInput(format!(
                    "unknown source `{s}`; this index has: {}",
                    names.join(", ")
                )));
            }
        }
        for t in &options.types {
            if !self.known_types.contains(&t.to_lowercase()) {
                let some: Vec<&str> = self
                    .known_types
                    .iter()
                    .take(12)
                    .map(String::as_str)
                    .collect();
                return Err(Error::InvalidInput(format!(
                    "unknown type `{t}`; {} types exist, e.g. {}",
                    self.known_types.len(),
                    some.join(", ")
                )));
            }
        }
        Ok(())
    }

    fn passes_filters(&self, concept_idx: ConceptIdx, options: &LinkOptions) -> bool {
        let dict = &self.index.dictionary;
        let concept = dict.concept(concept_idx);
        let source_ok = options.sources.is_empty()
            || dict.source_of(concept).is_some_and(|s| {
                options
                    .sources
                    .iter()
                    .any(|f| f.eq_ignore_ascii_case(&s.name))
            });
        let type_ok = options.types.is_empty()
            || concept
                .types
                .iter()
                .any(|t| options.types.iter().any(|f| f.eq_ignore_ascii_case(t)));
        source_ok && type_ok
    }
}
