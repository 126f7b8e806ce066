//! The linker: mention strings in, ranked concepts out.
//!
//! For each mention:
//! 1. **Normalise** it ([`crate::text::normalize`]; its singular and American-spelling
//!    variants are tried too: "kidney cysts", "oedema").
//! 2. **Generate candidates** (names of the name table) from three sources: exact normal-form
//!    matches, the dense top-`dense_k` from HNSW and the lexical top-`lexical_k` from tantivy.
//! 3. **Score every candidate on both signals**, whichever source found it: the cosine between
//!    the mention's vector and the name's stored vector, and the character-trigram similarity of
//!    the two normal forms ([`crate::index::lexical::LexicalIndex::similarity`], TF-IDF weighted). The fused score is
//!    `alpha * dense + (1 - alpha) * lexical`, plus 1.0 for an exact normal-form match (so exact
//!    names always rank first) or 0.5 when only a variant of the mention matches (singular, American spelling). Because both signals are computed for every candidate, the
//!    score of a candidate does not depend on which source proposed it or in which order — the
//!    union only decides *which* names are scored.
//! 4. **Group by concept**: a concept's score is its best name's score; the best name is
//!    reported as `matched_name`. Filters on source ontology and semantic type apply here.
//!    Concepts with equal scores (two concepts sharing an exact name) are ordered with the one
//!    matched by its preferred name first, then by dictionary order.
//!
//! `mode` restricts both generation and scoring to one signal (dense-only, lexical-only) for
//! ablations. Mention text is never logged.
//!
//! [`Linker::link_names_batch`] stops after step 3 and ranks **names** instead of concepts, as
//! the BioSyn / SapBERT evaluation does: names that normalise alike are one entry carrying
//! every concept that has that name (BioSyn's dictionary of unique names), and one concept may
//! fill several ranks through several names. Every row sharing a candidate's normal form is
//! scored, so an entry's score is the best of its rows whichever of them was retrieved.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::cache::RecentCache;
use crate::encoder::Encoder;
use crate::error::{Error, Result};
use crate::index::dense::VectorIndex;
use crate::index::Index;
use crate::ontology::{ConceptIdx, NameIdx};
use crate::rerank::Reranker;
use crate::text::{american_spelling, normalize, singular_variant};

pub const MAX_K: usize = 100;
/// Longest mention accepted, in characters. Concept names and mentions are short; anything
/// longer is almost certainly a whole document sent by mistake.
pub const MAX_MENTION_CHARS: usize = 1_000;
/// [`LinkOptions::candidates`] unless set (BENCHMARKS.md, "Candidate pool", measures others).
pub const DEFAULT_CANDIDATES: usize = 64;
/// Largest [`LinkOptions::candidates`]: beyond it a query scores thousands of names.
pub const MAX_CANDIDATES: usize = 1_000;

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

/// Weight of the dense score in hybrid mode for an index never tuned: chosen on NCBI-disease
/// dev and GSC+ dev with the base model.
pub const DEFAULT_ALPHA: f32 = 0.6;

#[derive(Debug, Clone)]
pub struct LinkOptions {
    pub k: usize,
    pub mode: Mode,
    /// Weight of the dense score in hybrid mode; `None`: the index's tuned weight
    /// (`medlink index tune`, kept in its manifest), else [`DEFAULT_ALPHA`].
    pub alpha: Option<f32>,
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
            alpha: None,
            candidates: DEFAULT_CANDIDATES,
            sources: Vec::new(),
            types: Vec::new(),
        }
    }
}

/// Why a mention cannot be linked (too long, or nothing left after normalisation), worded
/// without the mention's text; `None` when it can.
pub fn mention_problem(mention: &str) -> Option<String> {
    let chars = mention.chars().count();
    if chars > MAX_MENTION_CHARS {
        return Some(format!(
            "is {chars} characters long; the limit is {MAX_MENTION_CHARS}"
        ));
    }
    if normalize(mention).is_empty() {
        return Some("is empty or has no letters or digits".into());
    }
    None
}

impl LinkOptions {
    pub fn validate(&self) -> Result<()> {
        if self.k == 0 || self.k > MAX_K {
            return Err(Error::InvalidInput(format!(
                "k must be between 1 and {MAX_K}, got {}",
                self.k
            )));
        }
        if self.candidates == 0 || self.candidates > MAX_CANDIDATES {
            return Err(Error::InvalidInput(format!(
                "candidates must be between 1 and {MAX_CANDIDATES}, got {}",
                self.candidates
            )));
        }
        if let Some(alpha) = self.alpha.filter(|a| !(0.0..=1.0).contains(a)) {
            return Err(Error::InvalidInput(format!(
                "alpha must be between 0 and 1, got {alpha}"
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
    /// of a variant of the mention ("kidney cysts" -> "kidney cyst", "oedema" -> "edema"),
    /// else 0.
    pub bonus: f32,
    pub source: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub types: Vec<String>,
    /// The re-ranker's probability for this concept among the list ([`crate::rerank`]), when
    /// the index has one: candidates are then ordered by it, not by `score`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rerank: Option<f32>,
}

/// One ranked name for a mention ([`Linker::link_names_batch`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NameCandidate {
    /// The name's normal form: names that normalise alike are one entry.
    pub name: String,
    /// Every concept having this name (after filters), in dictionary order.
    pub ids: Vec<String>,
    /// The best fused score among the name's rows.
    pub score: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dense: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lexical: Option<f32>,
    pub exact: bool,
    pub bonus: f32,
}

/// Name-level ranks that follow a concept order (the re-ranker's): each concept of `concepts`
/// by its best-scoring name, in that order, then every other name in its own (score) order.
/// Listing a concept's further names only after every re-ranked concept keeps the top k as
/// broad as the re-ranker's concepts. A concept none of whose names was retrieved (the
/// re-ranker also lists concepts remembered from training mentions) enters by its matched
/// name.
fn names_in_concept_order(names: Vec<NameCandidate>, concepts: &[Candidate]) -> Vec<NameCandidate> {
    let position: HashMap<&str, usize> = concepts
        .iter()
        .enumerate()
        .map(|(i, c)| (c.id.as_str(), i))
        .collect();
    let named: HashSet<&str> = names
        .iter()
        .flat_map(|n| n.ids.iter().map(String::as_str))
        .collect();
    let missing: Vec<NameCandidate> = concepts
        .iter()
        .filter(|c| !named.contains(c.id.as_str()))
        .map(|c| NameCandidate {
            name: normalize(&c.matched_name),
            ids: vec![c.id.clone()],
            score: c.score,
            dense: c.dense,
            lexical: c.lexical,
            exact: c.exact,
            bonus: c.bonus,
        })
        .collect();
    let mut claimed: HashSet<usize> = HashSet::new();
    let mut keyed: Vec<(usize, usize, NameCandidate)> = names
        .into_iter()
        .chain(missing)
        .enumerate()
        .map(|(order, n)| {
            let best = n
                .ids
                .iter()
                .filter_map(|id| position.get(id.as_str()).copied())
                .min()
                .filter(|&p| claimed.insert(p))
                .unwrap_or(usize::MAX);
            (best, order, n)
        })
        .collect();
    keyed.sort_by_key(|&(best, order, _)| (best, order));
    keyed.into_iter().map(|(_, _, n)| n).collect()
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
/// Score added when only a variant matches: a variant can be wrong (plural folding: "aids").
const VARIANT_BONUS: f32 = 0.5;

/// The keys a mention's exact matches are looked up by: its normal form, then its singular and
/// American variants ([`singular_variant`], [`american_spelling`]; "tumours" also finds
/// "tumor"). A match of any but the first earns [`VARIANT_BONUS`].
fn lookup_keys(normalized: &str) -> Vec<String> {
    let american = american_spelling(normalized);
    let mut keys = Vec::with_capacity(4);
    for base in std::iter::once(normalized).chain(american.as_deref()) {
        for key in std::iter::once(base.to_string()).chain(singular_variant(base)) {
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
    }
    keys
}

/// Scores names for one mention on both signals (step 3 of the module docs).
struct NameScorer<'s> {
    linker: &'s Linker<'s>,
    normalized: &'s str,
    /// [`lookup_keys`]: an exact match of any earns a bonus.
    exact_keys: Vec<String>,
    vector: &'s [f32],
    profile: Option<crate::index::lexical::Profile>,
    options: &'s LinkOptions,
}

impl<'s> NameScorer<'s> {
    fn new(
        linker: &'s Linker<'s>,
        normalized: &'s str,
        vector: &'s [f32],
        options: &'s LinkOptions,
    ) -> Self {
        NameScorer {
            linker,
            normalized,
            exact_keys: lookup_keys(normalized),
            vector,
            profile: (options.mode != Mode::Dense)
                .then(|| linker.index.lexical.query_profile(normalized)),
            options,
        }
    }

    fn score(&self, name_idx: NameIdx) -> ScoredName {
        self.score_with_lexical(name_idx, None)
    }

    /// [`Self::score`], with the name's lexical score when the lexical search already gave it
    /// (the same value: [`crate::index::lexical::LexicalIndex::similarity_to_name`]).
    fn score_with_lexical(&self, name_idx: NameIdx, known: Option<f32>) -> ScoredName {
        let index = self.linker.index;
        let entry = index.dictionary.name(name_idx);
        let dense = (self.options.mode != Mode::Lexical)
            .then(|| index.vectors.dot(name_idx as usize, self.vector));
        let lexical = self.profile.as_ref().map(|p| {
            known.unwrap_or_else(|| {
                index
                    .lexical
                    .similarity_to_name(p, name_idx, entry.normalized)
            })
        });
        let exact = entry.normalized == self.normalized;
        let bonus = if exact {
            EXACT_BONUS
        } else if self.exact_keys.iter().any(|k| k == entry.normalized) {
            VARIANT_BONUS
        } else {
            0.0
        };
        let alpha = self.options.alpha.unwrap_or(self.linker.default_alpha);
        let fused = match (dense, lexical) {
            (Some(d), Some(l)) => alpha * d + (1.0 - alpha) * l,
            (Some(d), None) => d,
            (None, Some(l)) => l,
            (None, None) => 0.0,
        };
        ScoredName {
            score: fused + bonus,
            name: name_idx,
            dense,
            lexical,
            exact,
            bonus,
            preferred: entry.kind.is_none(),
        }
    }
}

/// Links mentions against one index with one encoder.
pub struct Linker<'a> {
    index: &'a Index,
    /// Dense retrieval: the index's HNSW graph unless [`Linker::with_vector_index`] set another.
    dense: &'a dyn VectorIndex,
    /// None for a lexical-only linker ([`Linker::lexical_only`]).
    encoder: Option<&'a dyn Encoder>,
    /// Every concept type of the dictionary, lowercased, to validate `--type` filters.
    known_types: std::collections::BTreeSet<String>,
    /// Threads ranking the mentions of one batch after encoding ([`Linker::with_threads`]).
    threads: usize,
    /// Hybrid weight when the options name none: the index's tuned one, else the default.
    default_alpha: f32,
    /// Re-orders the top concepts of hybrid linking: the index's, unless
    /// [`Linker::without_reranker`].
    reranker: Option<&'a Reranker>,
    /// Recently linked mentions ([`Linker::with_cache`]).
    cache: Option<std::sync::Arc<RecentCache<std::sync::Arc<Vec<Candidate>>>>>,
}

impl<'a> Linker<'a> {
    /// Fails if the encoder is not the model the index was built with.
    pub fn new(index: &'a Index, encoder: &'a dyn Encoder) -> Result<Self> {
        index.check_model(encoder.identity())?;
        Ok(Self::with_encoder(index, Some(encoder)))
    }

    /// A linker with no model: only [`Mode::Lexical`] options are accepted. For callers that
    /// must not pay for loading or running the encoder (the annotate pipeline's dictionary
    /// linking).
    pub fn lexical_only(index: &'a Index) -> Self {
        Self::with_encoder(index, None)
    }

    fn with_encoder(index: &'a Index, encoder: Option<&'a dyn Encoder>) -> Self {
        let known_types = index
            .dictionary
            .types()
            .iter()
            .map(|t| t.to_lowercase())
            .collect();
        Linker {
            index,
            dense: &index.dense,
            encoder,
            known_types,
            threads: 1,
            default_alpha: index.fusion_alpha(),
            reranker: index.reranker.as_ref(),
            cache: None,
        }
    }

    /// Remembers the candidates of up to `capacity` recently linked mentions (keyed by the
    /// mention's text and the options), so a mention that recurs in a stream or across service
    /// requests is answered without encoding or searching. Results are the same with or
    /// without it; 0 turns it off.
    pub fn with_cache(mut self, capacity: usize) -> Self {
        self.cache = (capacity > 0).then(|| std::sync::Arc::new(RecentCache::new(capacity)));
        self
    }

    /// Re-ranks with `reranker` instead of the index's own; refuses one trained for another
    /// model or hybrid weight.
    pub fn with_reranker(mut self, reranker: &'a Reranker) -> Result<Self> {
        reranker.check_fits(
            &self.index.manifest.model.weights_sha256,
            self.default_alpha,
        )?;
        self.reranker = Some(reranker);
        Ok(self.fresh_cache())
    }

    /// The hybrid weight used when the options name none: the index's tuned one, else the
    /// default.
    pub fn default_alpha(&self) -> f32 {
        self.default_alpha
    }

    /// After a change that changes answers, remembered answers are stale.
    fn fresh_cache(mut self) -> Self {
        self.cache = self
            .cache
            .as_ref()
            .map(|c| std::sync::Arc::new(RecentCache::new(c.capacity())));
        self
    }

    /// Links with the linker's own order even if the index has a re-ranker (for ablations).
    pub fn without_reranker(mut self) -> Self {
        self.reranker = None;
        self.fresh_cache()
    }

    /// The re-ranker in use, if any.
    pub fn reranker(&self) -> Option<&Reranker> {
        self.reranker
    }

    /// Hits and misses of the mention cache, if it is on.
    pub fn cache_stats(&self) -> Option<(u64, u64)> {
        self.cache.as_ref().map(|c| c.stats())
    }

    /// Retrieves dense candidates from `dense` instead of the index's graph: the seam for an
    /// external vector engine loaded from `medlink index export` (its ids must be the index's
    /// name rows). Scoring still reads the index's own vectors.
    pub fn with_vector_index(mut self, dense: &'a dyn VectorIndex) -> Self {
        self.dense = dense;
        self.fresh_cache()
    }

    /// Ranks the mentions of a batch on up to `threads` threads once they are encoded (HNSW
    /// search, lexical retrieval and scoring are per mention and share nothing mutable; the
    /// encoder has its own threads). For batch callers — `link`, `eval link`, `annotate`;
    /// a server already runs one request per thread and keeps 1. Results do not depend on it.
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = crate::parallel::threads(threads);
        self
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
        let Some(cache) = &self.cache else {
            return self.link_uncached(mentions, options);
        };
        options.validate()?;
        self.validate_filters(options)?;
        // Every option that changes the answer is part of the key.
        let prefix = format!(
            "{}|{:?}|{:?}|{}|{:?}|{:?}\u{0}",
            options.k,
            options.mode,
            options.alpha,
            options.candidates,
            options.sources,
            options.types
        );
        let mut results: Vec<Option<Vec<Candidate>>> = mentions
            .iter()
            .map(|m| {
                cache
                    .get(&format!("{prefix}{m}"))
                    .map(|c| c.as_ref().clone())
            })
            .collect();
        let missing: Vec<usize> = (0..mentions.len())
            .filter(|&i| results[i].is_none())
            .collect();
        if !missing.is_empty() {
            let texts: Vec<&str> = missing.iter().map(|&i| mentions[i]).collect();
            for (&i, candidates) in missing.iter().zip(self.link_uncached(&texts, options)?) {
                cache.put(
                    format!("{prefix}{}", mentions[i]),
                    std::sync::Arc::new(candidates.clone()),
                );
                results[i] = Some(candidates);
            }
        }
        Ok(results.into_iter().map(Option::unwrap_or_default).collect())
    }

    fn link_uncached(
        &self,
        mentions: &[&str],
        options: &LinkOptions,
    ) -> Result<Vec<Vec<Candidate>>> {
        let (normalized, vectors) = self.prepare(mentions, options)?;
        crate::parallel::parallel_map(normalized.len(), self.threads, |i| {
            self.rank(&normalized[i], &vectors[i], options)
        })
    }

    /// Like [`Linker::link_batch`], but ranks the top `options.k` names rather than concepts
    /// (see the module docs).
    pub fn link_names_batch(
        &self,
        mentions: &[&str],
        options: &LinkOptions,
    ) -> Result<Vec<Vec<NameCandidate>>> {
        let (normalized, vectors) = self.prepare(mentions, options)?;
        crate::parallel::parallel_map(normalized.len(), self.threads, |i| {
            self.rank_names(&normalized[i], &vectors[i], options)
        })
    }

    /// Validates options and mentions; normal forms and (unless lexical-only) vectors.
    fn prepare(
        &self,
        mentions: &[&str],
        options: &LinkOptions,
    ) -> Result<(Vec<String>, Vec<Vec<f32>>)> {
        options.validate()?;
        self.validate_filters(options)?;
        for (i, m) in mentions.iter().enumerate() {
            if let Some(problem) = mention_problem(m) {
                return Err(Error::InvalidInput(format!("mention {} {problem}", i + 1)));
            }
        }
        let normalized: Vec<String> = mentions.iter().map(|m| normalize(m)).collect();
        let vectors = match (options.mode, self.encoder) {
            (Mode::Lexical, _) => vec![Vec::new(); mentions.len()],
            (_, Some(encoder)) => encoder.encode(mentions)?,
            (mode, None) => {
                return Err(Error::InvalidInput(format!(
                    "{mode:?} linking needs the model, and this linker was opened without one (lexical only)"
                )))
            }
        };
        Ok((normalized, vectors))
    }

    /// Candidate names of one mention (exact ∪ dense ∪ lexical; with `same_form`, also every
    /// row sharing a candidate's normal form), each scored on both signals, filters applied.
    fn scored_names(
        &self,
        normalized: &str,
        vector: &[f32],
        options: &LinkOptions,
        same_form: bool,
    ) -> Result<Vec<ScoredName>> {
        let dict = &self.index.dictionary;
        let filtered = !options.sources.is_empty() || !options.types.is_empty();
        // Filters discard candidates after retrieval: fetch more so k survive.
        let pool = options.candidates.max(options.k * 2) * if filtered { 4 } else { 1 };

        // The scorer's keys are the exact-match lookups too: computed once per mention.
        let scorer = NameScorer::new(self, normalized, vector, options);
        let mut names: Vec<NameIdx> = Vec::new();
        for key in &scorer.exact_keys {
            names.extend_from_slice(dict.lookup_normalized(key));
        }
        if options.mode != Mode::Lexical {
            names.extend(
                self.dense
                    .search_ef(vector, pool, pool.max(self.index.dense.params().ef_search))?
                    .into_iter()
                    .map(|h| h.id),
            );
        }
        // The lexical hits' scores, by name: the scorer below would compute the same again.
        let mut lexical_hits: Vec<(NameIdx, f32)> = Vec::new();
        if options.mode != Mode::Dense {
            let lexical = &self.index.lexical;
            lexical_hits = if options.mode == Mode::Hybrid {
                // Beside the dense candidates, a lexical pool of exactly `pool` names loses
                // nothing (acc@1/5/25 on NCBI-disease dev and train, BC5CDR dev: equal or
                // higher than with the deeper pool lexical-only linking keeps; BENCHMARKS.md,
                // "Speed").
                lexical.search_in_pool(normalized, pool, pool)?
            } else {
                lexical.search(normalized, pool)?
            };
            names.extend(lexical_hits.iter().map(|&(n, _)| n));
            lexical_hits.sort_unstable_by_key(|&(n, _)| n);
        }
        if same_form {
            let retrieved = names.len();
            for i in 0..retrieved {
                let form = &dict.name(names[i]).normalized;
                names.extend_from_slice(dict.lookup_normalized(form));
            }
        }
        names.sort_unstable();
        names.dedup();

        let mut scored = Vec::with_capacity(names.len());
        for name_idx in names {
            if filtered && !self.passes_filters(dict.name(name_idx).concept, options) {
                continue;
            }
            let known = lexical_hits
                .binary_search_by_key(&name_idx, |&(n, _)| n)
                .ok()
                .map(|i| lexical_hits[i].1);
            scored.push(scorer.score_with_lexical(name_idx, known));
        }
        Ok(scored)
    }

    /// Scores the concepts `ids` for one mention exactly as [`Linker::link`] scores candidates
    /// (each concept by its best name), best first; ids not in the index or not passing the
    /// filters are left out. For concepts another stage already chose — a dictionary match —
    /// that the linker's own top k did not reach.
    pub fn score_concepts(
        &self,
        mention: &str,
        ids: &[String],
        options: &LinkOptions,
    ) -> Result<Vec<Candidate>> {
        let (normalized, vectors) = self.prepare(&[mention], options)?;
        let scorer = NameScorer::new(self, &normalized[0], &vectors[0], options);
        let concepts: Vec<ConceptIdx> = ids
            .iter()
            .filter_map(|id| self.index.dictionary.lookup_id(id))
            .collect();
        Ok(self.score_concept_rows(&scorer, &concepts, options))
    }

    /// Each of `concepts` (passing the filters) scored by its best name, best first.
    fn score_concept_rows(
        &self,
        scorer: &NameScorer,
        concepts: &[ConceptIdx],
        options: &LinkOptions,
    ) -> Vec<Candidate> {
        let dict = &self.index.dictionary;
        let mut scored = Vec::new();
        for &concept in concepts {
            if !self.passes_filters(concept, options) {
                continue;
            }
            for name in dict.concept(concept).names() {
                for &row in dict.lookup_normalized(&normalize(name)) {
                    if dict.name(row).concept == concept {
                        scored.push(scorer.score(row));
                    }
                }
            }
        }
        let options = LinkOptions {
            k: concepts.len().max(1),
            ..options.clone()
        };
        self.group_by_concept(scored, &options)
    }

    /// Like [`Linker::link_batch`] (no cache, no re-ranker), but the concepts `extra[i]` (ids)
    /// join mention `i`'s top `options.k` after it, scored alike, when the linker did not rank
    /// them there: the candidate lists a re-ranker is trained on, where the concepts training
    /// mentions of the same text were given join the list ([`crate::rerank`]).
    pub fn link_batch_with_extra(
        &self,
        mentions: &[&str],
        extra: &[Vec<&str>],
        options: &LinkOptions,
    ) -> Result<Vec<Vec<Candidate>>> {
        if extra.len() != mentions.len() {
            return Err(Error::Internal(format!(
                "{} extra lists for {} mentions",
                extra.len(),
                mentions.len()
            )));
        }
        let (normalized, vectors) = self.prepare(mentions, options)?;
        crate::parallel::parallel_map(normalized.len(), self.threads, |i| {
            self.rank_with_extra(&normalized[i], &vectors[i], options, &extra[i])
        })
    }

    /// The top `options.k` concepts, then those of `extra` the top k lacks.
    fn rank_with_extra(
        &self,
        normalized: &str,
        vector: &[f32],
        options: &LinkOptions,
        extra: &[&str],
    ) -> Result<Vec<Candidate>> {
        let scored = self.scored_names(normalized, vector, options, false)?;
        let mut ranked = self.group_by_concept(scored, options);
        let dict = &self.index.dictionary;
        let missing: Vec<ConceptIdx> = extra
            .iter()
            .filter_map(|id| dict.lookup_id(id))
            .filter(|&c| !ranked.iter().any(|r| r.id == dict.concept_id(c)))
            .collect();
        if !missing.is_empty() {
            let scorer = NameScorer::new(self, normalized, vector, options);
            ranked.extend(self.score_concept_rows(&scorer, &missing, options));
        }
        Ok(ranked)
    }

    fn rank(
        &self,
        normalized: &str,
        vector: &[f32],
        options: &LinkOptions,
    ) -> Result<Vec<Candidate>> {
        // A re-ranker learned lists fused with one weight; an `alpha` option naming another
        // gets the linker's order (its candidates carry no `rerank`).
        match self.reranker {
            Some(reranker) if self.reranks(options) => {
                // The list the re-ranker was trained on: the top `depth`, then remembered
                // concepts. A larger k continues in the linker's order after it.
                let at_depth = LinkOptions {
                    k: reranker.depth,
                    ..options.clone()
                };
                let remembered = reranker.remembered(normalized);
                let list = self.rank_with_extra(normalized, vector, &at_depth, &remembered)?;
                let mut ranked = reranker.rerank(normalized, list);
                if options.k > reranker.depth {
                    let scored = self.scored_names(normalized, vector, options, false)?;
                    for candidate in self.group_by_concept(scored, options) {
                        if !ranked.iter().any(|r| r.id == candidate.id) {
                            ranked.push(candidate);
                        }
                    }
                }
                ranked.truncate(options.k);
                Ok(ranked)
            }
            _ => {
                let scored = self.scored_names(normalized, vector, options, false)?;
                Ok(self.group_by_concept(scored, options))
            }
        }
    }

    /// Step 4 of the module docs: the top `options.k` concepts, each by its best name.
    fn group_by_concept(&self, scored: Vec<ScoredName>, options: &LinkOptions) -> Vec<Candidate> {
        let dict = &self.index.dictionary;
        let mut best: HashMap<ConceptIdx, ScoredName> = HashMap::new();
        for scored in scored {
            // Ties between names of one concept go to the lower name index (the preferred
            // name comes first), so results do not depend on candidate order.
            best.entry(dict.name(scored.name).concept)
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
        ranked
            .into_iter()
            .map(|(cidx, best)| Candidate {
                id: dict.concept_id(cidx).to_string(),
                name: dict.concept_name(cidx).to_string(),
                score: best.score,
                matched_name: dict.name(best.name).text.to_string(),
                dense: best.dense,
                lexical: best.lexical,
                exact: best.exact,
                bonus: best.bonus,
                source: dict
                    .concept_source(cidx)
                    .map(|s| s.name.clone())
                    .unwrap_or_default(),
                types: dict.concept_types(cidx).map(str::to_string).collect(),
                rerank: None,
            })
            .collect()
    }

    fn rank_names(
        &self,
        normalized: &str,
        vector: &[f32],
        options: &LinkOptions,
    ) -> Result<Vec<NameCandidate>> {
        /// The rows of the name table sharing one normal form.
        struct Group<'d> {
            form: &'d str,
            best: ScoredName,
            /// In dictionary order: rows arrive in name-index order.
            concepts: Vec<ConceptIdx>,
        }
        let dict = &self.index.dictionary;
        let mut groups: HashMap<&str, Group> = HashMap::new();
        for scored in self.scored_names(normalized, vector, options, true)? {
            let entry = dict.name(scored.name);
            let group = groups.entry(entry.normalized).or_insert_with(|| Group {
                form: entry.normalized,
                best: scored,
                concepts: Vec::new(),
            });
            // Equal scores keep the earlier row, so the result does not depend on order.
            if scored.score > group.best.score {
                group.best = scored;
            }
            if !group.concepts.contains(&entry.concept) {
                group.concepts.push(entry.concept);
            }
        }
        let mut ranked: Vec<Group> = groups.into_values().collect();
        // Ties go to the group whose first concept comes first in the dictionary.
        ranked.sort_by(|a, b| {
            b.best
                .score
                .total_cmp(&a.best.score)
                .then(a.concepts[0].cmp(&b.concepts[0]))
                .then(a.form.cmp(b.form))
        });
        let mut names: Vec<NameCandidate> = ranked
            .into_iter()
            .map(|g| NameCandidate {
                name: g.form.to_string(),
                ids: g
                    .concepts
                    .iter()
                    .map(|&c| dict.concept_id(c).to_string())
                    .collect(),
                score: g.best.score,
                dense: g.best.dense,
                lexical: g.best.lexical,
                exact: g.best.exact,
                bonus: g.best.bonus,
            })
            .collect();
        if self.reranks(options) {
            let concepts = self.rank(normalized, vector, options)?;
            names = names_in_concept_order(names, &concepts);
        }
        names.truncate(options.k);
        Ok(names)
    }

    /// Whether linking under `options` applies the re-ranker (hybrid mode, with the hybrid
    /// weight it was trained for).
    pub fn reranks(&self, options: &LinkOptions) -> bool {
        let alpha = options.alpha.unwrap_or(self.default_alpha);
        self.reranker
            .is_some_and(|r| options.mode == Mode::Hybrid && r.uses_alpha(alpha))
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
        let source_ok = options.sources.is_empty()
            || dict.concept_source(concept_idx).is_some_and(|s| {
                options
                    .sources
                    .iter()
                    .any(|f| f.eq_ignore_ascii_case(&s.name))
            });
        let type_ok = options.types.is_empty()
            || dict
                .concept_types(concept_idx)
                .any(|t| options.types.iter().any(|f| f.eq_ignore_ascii_case(t)));
        source_ok && type_ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(form: &str, ids: &[&str], score: f32) -> NameCandidate {
        NameCandidate {
            name: form.into(),
            ids: ids.iter().map(|s| s.to_string()).collect(),
            score,
            dense: None,
            lexical: None,
            exact: false,
            bonus: 0.0,
        }
    }

    fn concept(id: &str, matched_name: &str) -> Candidate {
        Candidate {
            id: id.into(),
            name: matched_name.into(),
            score: 0.5,
            matched_name: matched_name.into(),
            dense: None,
            lexical: None,
            exact: false,
            bonus: 0.0,
            source: String::new(),
            types: Vec::new(),
            rerank: Some(0.9),
        }
    }

    #[test]
    fn names_follow_the_reranked_concepts_and_unretrieved_ones_enter_by_their_name() {
        let names = vec![
            name("a", &["C1"], 0.9),
            name("b", &["C2", "C3"], 0.8),
            name("c", &["C4"], 0.7),
            name("a2", &["C1"], 0.6),
        ];
        // The re-ranker put C3 first, then C5 (remembered: none of its names retrieved), C1.
        let concepts = [
            concept("C3", "B"),
            concept("C5", "Mammary Tumour"),
            concept("C1", "A"),
        ];
        let ranked = names_in_concept_order(names, &concepts);
        let forms: Vec<&str> = ranked.iter().map(|n| n.name.as_str()).collect();
        // Each re-ranked concept's best name in its order, then the rest by score.
        assert_eq!(forms, ["b", "mammary tumour", "a", "c", "a2"]);
        assert_eq!(ranked[1].ids, ["C5"]);
    }
}
