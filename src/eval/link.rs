//! `medlink eval link`: gold mentions of a corpus -> linker -> accuracy report, under one of
//! two protocols ([`Protocol`]).
//!
//! Gold ids are mapped to the dictionary's primary ids first (a gold `MESH:D019082` that is a
//! secondary id of `OMIM:270400` counts as that concept); mentions whose gold id is not in the
//! dictionary are counted as `missing_gold`, never dropped silently. With a training corpus,
//! outcomes are marked seen / unseen by normalised mention text and by gold concept, as
//! MedProcNER reports them.
//!
//! - **medlink** (the default): the raw mention is linked whole with k = max(ks) and ranks
//!   count concepts; a composite mention hits only if all its gold ids are in the top k of the
//!   one list. With `expand_abbreviations`, short forms defined in the mention's document
//!   ("WD" after "Wilson disease (WD)", Schwartz–Hearst) are linked by their long forms, the
//!   whole mention or words of it ([`abbrev::expand_mention`]).
//! - **biosyn**: the preprocessing of the published BioSyn / SapBERT numbers
//!   ([`super::biosyn`]: abbreviations expanded token by token, composites split, lowercase and
//!   punctuation removed) and name-level ranks ([`Linker::link_names_batch`]; a part hits on any
//!   gold id, a mention when all its parts hit). The other half of that protocol, train + dev
//!   mention strings in the dictionary, is a property of the index: build it with
//!   `index build --add-mentions` ([`super::mentions`]); the report's `dictionary_sources`
//!   shows whether it was.

use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

use serde::Serialize;

use super::metrics::{breakdown, link_metrics, ranked_ids, LinkMetrics, LinkOutcome, Predicted};
use super::{abbrev, biosyn, Corpus};
use crate::error::{Error, Result};
use crate::index::Index;
use crate::linker::{LinkOptions, Linker};
use crate::text::normalize;

/// Mentions sent to the linker at once.
const BATCH: usize = 256;

/// How mentions are prepared and hits counted; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// Raw mentions, concept-level ranks.
    Medlink,
    /// BioSyn / SapBERT preprocessing, name-level ranks.
    Biosyn,
}

impl std::str::FromStr for Protocol {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "medlink" => Ok(Protocol::Medlink),
            "biosyn" => Ok(Protocol::Biosyn),
            _ => Err(Error::InvalidInput(format!(
                "unknown protocol `{s}` (expected medlink or biosyn)"
            ))),
        }
    }
}

#[derive(Debug, Clone)]
pub struct EvalOptions {
    pub protocol: Protocol,
    pub ks: Vec<usize>,
    /// Entity types of gold mentions to evaluate; empty keeps all.
    pub entity_types: Vec<String>,
    pub link: LinkOptions,
    /// Whole-mention abbreviation expansion under the medlink protocol (the BioSyn protocol
    /// always expands, token by token).
    pub expand_abbreviations: bool,
    /// Misses listed in the report, most confident wrong answers first.
    pub worst_misses: usize,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            protocol: Protocol::Medlink,
            ks: vec![1, 5, 10, 25],
            entity_types: Vec::new(),
            link: LinkOptions::default(),
            expand_abbreviations: false,
            worst_misses: 20,
        }
    }
}

/// A wrong top-1 answer, gold and predicted side by side.
#[derive(Debug, Clone, Serialize)]
pub struct Miss {
    pub document: String,
    pub mention: String,
    /// The text actually linked (differs from `mention` after abbreviation expansion; under
    /// the BioSyn protocol, normalised, and the parts of a split composite joined by ` | `).
    pub linked_text: String,
    pub gold: Vec<String>,
    pub gold_names: Vec<String>,
    /// The top concept (under the BioSyn protocol: the first concept of the top name of the
    /// first part).
    pub predicted: Option<String>,
    /// Its name (under the BioSyn protocol: the top name itself, normalised).
    pub predicted_name: Option<String>,
    pub predicted_score: Option<f32>,
    /// Rank of the gold concept(s) in the returned list, if found.
    pub gold_rank: Option<usize>,
}

/// What `medlink eval link --json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    #[serde(flatten)]
    pub metrics: LinkMetrics,
    pub breakdown: BTreeMap<String, LinkMetrics>,
    pub protocol: Protocol,
    pub mode: String,
    pub abbreviations_expanded: usize,
    /// Composite mentions split into parts (BioSyn protocol only).
    pub composites_split: usize,
    pub span_mismatches: usize,
    pub seconds: f64,
    pub mentions_per_second: f64,
    pub model: String,
    pub model_sha256: String,
    pub dictionary_sources: Vec<String>,
    /// Whether a re-ranker (the index's or `--reranker`'s) ordered the concepts (hybrid mode,
    /// the weight it was trained for; under the BioSyn protocol the names follow the
    /// re-ranked concepts).
    pub reranked: bool,
    /// Mentions no answer can be right for: no gold id (PubTator's `-1`) or a gold id the
    /// dictionary lacks.
    pub unlinkable: usize,
    /// Answering only when the top score reaches a threshold (NIL below it), per threshold.
    pub nil_curve: Vec<NilPoint>,
    pub worst_misses: Vec<Miss>,
}

/// What a NIL threshold gains and costs: below it medlink answers "no concept".
#[derive(Debug, Clone, Serialize)]
pub struct NilPoint {
    pub threshold: f32,
    /// Mentions answered (top score at or above the threshold).
    pub answered: usize,
    /// Of the answered, the fraction whose top concept is right.
    pub precision: f64,
    /// Of the linkable mentions, the fraction answered right.
    pub recall: f64,
    /// Of the unlinkable mentions, the fraction left unanswered.
    pub nil_recall: f64,
    /// Of the unanswered, the fraction that is unlinkable.
    pub nil_precision: f64,
    /// Right answers plus right abstentions, over all mentions.
    pub accuracy: f64,
}

/// NIL thresholds reported: 0 (always answer), then the range where fused scores of non-exact
/// matches lie (an exact normal-form match adds 1 and is always answered).
const NIL_THRESHOLDS: [f32; 16] = [
    0.0, 0.30, 0.35, 0.40, 0.45, 0.50, 0.55, 0.60, 0.65, 0.70, 0.75, 0.80, 0.85, 0.90, 0.95, 1.00,
];

/// The NIL trade-off of `outcomes` given each mention's top score (`None`: nothing returned).
fn nil_curve(outcomes: &[LinkOutcome], top_scores: &[Option<f32>]) -> Vec<NilPoint> {
    let linkable = outcomes.iter().filter(|o| o.gold_in_dictionary).count();
    let unlinkable = outcomes.len() - linkable;
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    NIL_THRESHOLDS
        .iter()
        .map(|&threshold| {
            let (mut answered, mut right, mut abstained, mut right_abstained) = (0, 0, 0, 0);
            for (o, score) in outcomes.iter().zip(top_scores) {
                if score.is_some_and(|s| s >= threshold) {
                    answered += 1;
                    right += usize::from(o.gold_in_dictionary && o.rank() == Some(1));
                } else {
                    abstained += 1;
                    right_abstained += usize::from(!o.gold_in_dictionary);
                }
            }
            NilPoint {
                threshold,
                answered,
                precision: ratio(right, answered),
                recall: ratio(right, linkable),
                nil_recall: ratio(right_abstained, unlinkable),
                nil_precision: ratio(right_abstained, abstained),
                accuracy: ratio(right + right_abstained, outcomes.len()),
            }
        })
        .collect()
}

/// Training-corpus facts for the seen / unseen breakdown.
#[derive(Debug, Default)]
pub struct SeenSets {
    mentions: HashSet<String>,
    concepts: HashSet<String>,
}

impl SeenSets {
    pub fn from_corpus(corpus: &Corpus, index: &Index) -> Self {
        let mut seen = SeenSets::default();
        for (_, m) in corpus.mentions() {
            seen.mentions.insert(normalize(&m.text));
            for id in &m.ids {
                seen.concepts.insert(primary_id(index, id));
            }
        }
        seen
    }
}

/// The primary id of the concept `id` names in the index (secondary ids resolve to their
/// concept), else `id` normalised.
pub(crate) fn primary_id(index: &Index, id: &str) -> String {
    index
        .dictionary
        .get(id)
        .map(|c| c.id.clone())
        .unwrap_or_else(|| crate::ontology::ids::normalize_id(id))
}

/// A gold mention ready to link.
struct Item<'c> {
    doc: &'c str,
    mention: &'c str,
    /// Texts to link: the mention (maybe expanded), or the parts of a split composite.
    parts: Vec<String>,
    gold: Vec<String>,
    entity_type: &'c str,
}

/// What one linked text gave: ranks (each the ids at that rank: one concept, or every concept
/// of a name) and the top answer for the misses list.
struct PartResult {
    ranks: Vec<Vec<String>>,
    top: Option<(String, String, f32)>,
}

/// Links every gold mention of `corpus` and scores the result.
pub fn evaluate(
    linker: &Linker,
    index: &Index,
    corpus: &Corpus,
    seen: Option<&SeenSets>,
    options: &EvalOptions,
) -> Result<(EvalReport, Vec<LinkOutcome>)> {
    let dict = &index.dictionary;
    let k_max = options
        .ks
        .iter()
        .copied()
        .max()
        .unwrap_or(1)
        .clamp(1, crate::linker::MAX_K);
    let link_options = LinkOptions {
        k: k_max,
        ..options.link.clone()
    };
    let (items, expanded, split) = prepare_items(index, corpus, options);

    let texts: Vec<&str> = items
        .iter()
        .flat_map(|it| it.parts.iter().map(String::as_str))
        .collect();
    let started = Instant::now();
    let parts: Vec<PartResult> = match options.protocol {
        Protocol::Medlink => {
            link_in_batches(&texts, |batch, _| linker.link_batch(batch, &link_options))?
                .into_iter()
                .map(|cands| PartResult {
                    ranks: ranked_ids(&cands).into_iter().map(|id| vec![id]).collect(),
                    top: cands
                        .first()
                        .map(|c| (c.id.clone(), c.name.clone(), c.score)),
                })
                .collect()
        }
        Protocol::Biosyn => link_in_batches(&texts, |batch, _| {
            linker.link_names_batch(batch, &link_options)
        })?
        .into_iter()
        .map(|names| PartResult {
            top: names
                .first()
                .map(|n| (n.ids[0].clone(), n.name.clone(), n.score)),
            ranks: names.into_iter().map(|n| n.ids).collect(),
        })
        .collect(),
    };
    let seconds = started.elapsed().as_secs_f64();

    // Regroup the parts by mention.
    let mut parts = parts.into_iter();
    let mut outcomes = Vec::with_capacity(items.len());
    let mut tops = Vec::with_capacity(items.len());
    for it in &items {
        let mine: Vec<PartResult> = parts.by_ref().take(it.parts.len()).collect();
        tops.push(mine.first().and_then(|p| p.top.clone()));
        let lists: Vec<Vec<Vec<String>>> = mine.into_iter().map(|p| p.ranks).collect();
        let predicted = match options.protocol {
            Protocol::Medlink => {
                Predicted::Concepts(lists.into_iter().map(|l| l.concat()).collect())
            }
            Protocol::Biosyn => Predicted::Names(lists),
        };
        outcomes.push(LinkOutcome {
            gold: it.gold.clone(),
            predicted,
            entity_type: it.entity_type.to_string(),
            seen_mention: seen.map(|s| s.mentions.contains(&normalize(it.mention))),
            seen_concept: seen
                .map(|s| !it.gold.is_empty() && it.gold.iter().all(|g| s.concepts.contains(g))),
            gold_in_dictionary: !it.gold.is_empty()
                && it.gold.iter().all(|g| dict.lookup_id(g).is_some()),
        });
    }

    let mut misses: Vec<Miss> = items
        .iter()
        .zip(&tops)
        .zip(&outcomes)
        .filter(|(_, o)| o.gold_in_dictionary && o.rank() != Some(1))
        .map(|((it, top), o)| Miss {
            document: it.doc.to_string(),
            mention: it.mention.to_string(),
            linked_text: it.parts.join(" | "),
            gold: it.gold.clone(),
            gold_names: it
                .gold
                .iter()
                .filter_map(|g| dict.lookup_id(g))
                .map(|c| dict.concept_name(c).to_string())
                .collect(),
            predicted: top.as_ref().map(|t| t.0.clone()),
            predicted_name: top.as_ref().map(|t| t.1.clone()),
            predicted_score: top.as_ref().map(|t| t.2),
            gold_rank: o.rank(),
        })
        .collect();
    misses.sort_by(|a, b| {
        b.predicted_score
            .unwrap_or(f32::NEG_INFINITY)
            .total_cmp(&a.predicted_score.unwrap_or(f32::NEG_INFINITY))
    });
    misses.truncate(options.worst_misses);

    let top_scores: Vec<Option<f32>> = tops.iter().map(|t| t.as_ref().map(|t| t.2)).collect();
    let report = EvalReport {
        metrics: link_metrics(&outcomes, &options.ks),
        breakdown: breakdown(&outcomes, &options.ks),
        protocol: options.protocol,
        mode: format!("{:?}", options.link.mode).to_lowercase(),
        abbreviations_expanded: expanded,
        composites_split: split,
        span_mismatches: corpus.span_mismatches.len(),
        seconds,
        mentions_per_second: items.len() as f64 / seconds.max(1e-9),
        model: index.manifest.model.name.clone(),
        model_sha256: index.manifest.model.weights_sha256.clone(),
        reranked: linker.reranks(&link_options),
        dictionary_sources: index
            .manifest
            .sources
            .iter()
            .map(|s| {
                format!(
                    "{} {} {} sha256:{}",
                    s.name,
                    s.path,
                    s.version.as_deref().unwrap_or("-"),
                    s.sha256
                )
            })
            .collect(),
        unlinkable: outcomes.iter().filter(|o| !o.gold_in_dictionary).count(),
        nil_curve: nil_curve(&outcomes, &top_scores),
        worst_misses: misses,
    };
    Ok((report, outcomes))
}

/// The mentions to evaluate (entity-type filter applied), prepared for the protocol, with the
/// number of abbreviations expanded and of composites split.
fn prepare_items<'c>(
    index: &Index,
    corpus: &'c Corpus,
    options: &EvalOptions,
) -> (Vec<Item<'c>>, usize, usize) {
    let (mut items, mut expanded, mut split) = (Vec::new(), 0usize, 0usize);
    for doc in &corpus.documents {
        let abbreviations = if options.protocol == Protocol::Biosyn || options.expand_abbreviations
        {
            abbrev::expansion_map(&doc.text)
        } else {
            BTreeMap::new()
        };
        for m in &doc.mentions {
            if !options.entity_types.is_empty()
                && !options
                    .entity_types
                    .iter()
                    .any(|t| t.eq_ignore_ascii_case(&m.entity_type))
            {
                continue;
            }
            let (parts, gold) = match options.protocol {
                Protocol::Medlink => {
                    let long = abbrev::expand_mention(&abbreviations, &m.text);
                    expanded += usize::from(long.is_some());
                    (
                        vec![long.unwrap_or_else(|| m.text.clone())],
                        m.ids.iter().map(|id| primary_id(index, id)).collect(),
                    )
                }
                Protocol::Biosyn => {
                    let mut gold: Vec<String> = Vec::new();
                    for id in biosyn::gold_ids(&m.ids) {
                        let id = primary_id(index, &id);
                        if !gold.contains(&id) {
                            gold.push(id);
                        }
                    }
                    let query = biosyn::prepare(&m.text, gold.len(), &abbreviations);
                    expanded += usize::from(query.expanded);
                    split += usize::from(query.split);
                    (query.parts, gold)
                }
            };
            items.push(Item {
                doc: &doc.id,
                mention: &m.text,
                parts,
                gold,
                entity_type: &m.entity_type,
            });
        }
    }
    (items, expanded, split)
}

/// A gold mention as the medlink protocol links it.
pub struct ProtocolMention {
    pub document: String,
    /// The text linked: the mention, with its short forms expanded when `expand_abbreviations`
    /// found any.
    pub text: String,
    /// Gold ids mapped to the dictionary's primary ids.
    pub gold: Vec<String>,
}

/// The gold mentions of `corpus` (only `entity_types` if not empty) prepared as `eval link`
/// prepares them under the medlink protocol, for stages trained on what the linker sees.
pub fn medlink_protocol_mentions(
    index: &Index,
    corpus: &Corpus,
    entity_types: &[String],
    expand_abbreviations: bool,
) -> Vec<ProtocolMention> {
    let options = EvalOptions {
        protocol: Protocol::Medlink,
        entity_types: entity_types.to_vec(),
        expand_abbreviations,
        ..EvalOptions::default()
    };
    prepare_items(index, corpus, &options)
        .0
        .into_iter()
        .map(|mut it| ProtocolMention {
            document: it.doc.to_string(),
            text: it.parts.swap_remove(0),
            gold: it.gold,
        })
        .collect()
}

/// Links `texts` in batches of [`BATCH`]; `link` also gets each text's position in `texts`
/// (to pass what goes with it). A text the linker would refuse (nothing left after
/// normalisation, or too long) gets an empty list instead of failing the whole evaluation.
pub(crate) fn link_in_batches<T>(
    texts: &[&str],
    mut link: impl FnMut(&[&str], &[usize]) -> Result<Vec<Vec<T>>>,
) -> Result<Vec<Vec<T>>> {
    let mut results = Vec::with_capacity(texts.len());
    for (c, chunk) in texts.chunks(BATCH).enumerate() {
        let (linkable, idx): (Vec<&str>, Vec<usize>) = chunk
            .iter()
            .enumerate()
            .filter(|(_, t)| crate::linker::mention_problem(t).is_none())
            .map(|(i, t)| (*t, i))
            .unzip();
        let positions: Vec<usize> = idx.iter().map(|i| c * BATCH + i).collect();
        let mut out: Vec<Vec<T>> = (0..chunk.len()).map(|_| Vec::new()).collect();
        for (i, ranked) in idx.into_iter().zip(link(&linkable, &positions)?) {
            out[i] = ranked;
        }
        results.extend(out);
    }
    Ok(results)
}
