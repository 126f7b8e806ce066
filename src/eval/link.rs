//! `medlink eval link`: gold mentions of a corpus -> linker -> accuracy report.
//!
//! Gold ids are mapped to the dictionary's primary ids first (a gold `MESH:D019082` that is a
//! secondary id of `OMIM:270400` counts as that concept); mentions whose gold id is not in the
//! dictionary are counted as `missing_gold`, never dropped silently. Each mention is linked
//! whole with k = max(ks) (a composite mention hits only if all its parts are in the top k of
//! the one list). With `expand_abbreviations`, a mention that is a short form defined in its
//! document ("WD" after "Wilson disease (WD)", Schwartz–Hearst) is linked by its long form.
//! With a training corpus, outcomes are marked seen / unseen by normalised mention text and by
//! gold concept, as MedProcNER reports them.

use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

use serde::Serialize;

use super::abbrev;
use super::metrics::{breakdown, link_metrics, ranked_ids, LinkMetrics, LinkOutcome};
use super::Corpus;
use crate::error::Result;
use crate::index::Index;
use crate::linker::{Candidate, LinkOptions, Linker};
use crate::text::normalize;

/// Mentions sent to the linker at once.
const BATCH: usize = 256;

#[derive(Debug, Clone)]
pub struct EvalOptions {
    pub ks: Vec<usize>,
    /// Entity types of gold mentions to evaluate; empty keeps all.
    pub entity_types: Vec<String>,
    pub link: LinkOptions,
    pub expand_abbreviations: bool,
    /// Misses listed in the report, most confident wrong answers first.
    pub worst_misses: usize,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
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
    /// The text actually linked (differs from `mention` after abbreviation expansion).
    pub linked_text: String,
    pub gold: Vec<String>,
    pub gold_names: Vec<String>,
    pub predicted: Option<String>,
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
    pub mode: String,
    pub abbreviations_expanded: usize,
    pub span_mismatches: usize,
    pub seconds: f64,
    pub mentions_per_second: f64,
    pub model: String,
    pub model_sha256: String,
    pub dictionary_sources: Vec<String>,
    pub worst_misses: Vec<Miss>,
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

fn primary_id(index: &Index, id: &str) -> String {
    index
        .dictionary
        .get(id)
        .map(|c| c.id.clone())
        .unwrap_or_else(|| crate::ontology::ids::normalize_id(id))
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
    struct Item<'c> {
        doc: &'c str,
        mention: &'c str,
        text: String,
        gold: Vec<String>,
        entity_type: &'c str,
    }
    let mut items = Vec::new();
    let mut expanded = 0usize;
    for doc in &corpus.documents {
        let abbreviations = if options.expand_abbreviations {
            abbrev::abbreviation_map(&doc.text)
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
            let text = match abbreviations
                .get(m.text.as_str())
                .filter(|long| plausible_expansion(&m.text, long))
            {
                Some(long) => {
                    expanded += 1;
                    long.clone()
                }
                None => m.text.clone(),
            };
            items.push(Item {
                doc: &doc.id,
                mention: &m.text,
                text,
                gold: m.ids.iter().map(|id| primary_id(index, id)).collect(),
                entity_type: &m.entity_type,
            });
        }
    }

    let started = Instant::now();
    let mut results: Vec<Vec<Candidate>> = Vec::with_capacity(items.len());
    for chunk in items.chunks(BATCH) {
        // Mentions with nothing to link (only punctuation) get an empty list, not an error.
        let (linkable, idx): (Vec<&str>, Vec<usize>) = chunk
            .iter()
            .enumerate()
            .filter(|(_, it)| !normalize(&it.text).is_empty())
            .map(|(i, it)| (it.text.as_str(), i))
            .unzip();
        let mut out = vec![Vec::new(); chunk.len()];
        for (i, cands) in idx
            .into_iter()
            .zip(linker.link_batch(&linkable, &link_options)?)
        {
            out[i] = cands;
        }
        results.extend(out);
    }
    let seconds = started.elapsed().as_secs_f64();

    let outcomes: Vec<LinkOutcome> = items
        .iter()
        .zip(&results)
        .map(|(it, cands)| LinkOutcome {
            gold: it.gold.clone(),
            predicted: vec![ranked_ids(cands)],
            entity_type: it.entity_type.to_string(),
            seen_mention: seen.map(|s| s.mentions.contains(&normalize(it.mention))),
            seen_concept: seen
                .map(|s| !it.gold.is_empty() && it.gold.iter().all(|g| s.concepts.contains(g))),
            gold_in_dictionary: !it.gold.is_empty()
                && it.gold.iter().all(|g| dict.lookup_id(g).is_some()),
        })
        .collect();

    let mut misses: Vec<Miss> = items
        .iter()
        .zip(&results)
        .zip(&outcomes)
        .filter(|(_, o)| o.gold_in_dictionary && o.rank() != Some(1))
        .map(|((it, cands), o)| Miss {
            document: it.doc.to_string(),
            mention: it.mention.to_string(),
            linked_text: it.text.clone(),
            gold: it.gold.clone(),
            gold_names: it
                .gold
                .iter()
                .filter_map(|g| dict.get(g))
                .map(|c| c.name.clone())
                .collect(),
            predicted: cands.first().map(|c| c.id.clone()),
            predicted_name: cands.first().map(|c| c.name.clone()),
            predicted_score: cands.first().map(|c| c.score),
            gold_rank: o.rank(),
        })
        .collect();
    misses.sort_by(|a, b| {
        b.predicted_score
            .unwrap_or(f32::NEG_INFINITY)
            .total_cmp(&a.predicted_score.unwrap_or(f32::NEG_INFINITY))
    });
    misses.truncate(options.worst_misses);

    let report = EvalReport {
        metrics: link_metrics(&outcomes, &options.ks),
        breakdown: breakdown(&outcomes, &options.ks),
        mode: format!("{:?}", options.link.mode).to_lowercase(),
        abbreviations_expanded: expanded,
        span_mismatches: corpus.span_mismatches.len(),
        seconds,
        mentions_per_second: items.len() as f64 / seconds.max(1e-9),
        model: index.manifest.model.name.clone(),
        model_sha256: index.manifest.model.weights_sha256.clone(),
        dictionary_sources: index
            .manifest
            .sources
            .iter()
            .map(|s| {
                format!(
                    "{} {} sha256:{}",
                    s.name,
                    s.version.as_deref().unwrap_or("-"),
                    s.sha256
                )
            })
            .collect(),
        worst_misses: misses,
    };
    Ok((report, outcomes))
}

/// Schwartz–Hearst can return a whole clause or a string no longer than the short form
/// ("A-T" -> "ATM"); such expansions are not used.
fn plausible_expansion(short: &str, long: &str) -> bool {
    long.chars().count() > short.chars().count() + 2 && long.split_whitespace().count() <= 8
}
