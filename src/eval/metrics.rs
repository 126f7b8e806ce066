//! Linking metrics (accuracy at k and mean reciprocal rank) and NER span metrics (strict and
//! lenient precision, recall and F1).
//!
//! # Linking
//! Each gold mention becomes a [`LinkOutcome`]: its gold ids and what the linker returned, in
//! one of two shapes ([`Predicted`]), one per evaluation protocol.
//!
//! ## medlink's protocol: ranked concepts ([`Predicted::Concepts`])
//! **The order of a ranked list is authoritative**: ties in score were already broken by the
//! linker, so a gold concept tied with the top candidate but listed second has rank 2 and
//! misses at k = 1. Repeated ids in a list are ignored after their first occurrence, so ranks
//! count distinct concepts.
//!
//! A mention's rank is the 1-based position of its gold id in the list. A mention with several
//! gold ids is *composite* ("breast and ovarian cancer"); every id is a part that must be
//! found, so its rank is the **largest** of the part ranks and it hits at k iff every part is in
//! the top k. Corpora that separate ids with `|` (NCBI-disease, BC5CDR) or `+` are read the same
//! way: the ids are all parts, never acceptable alternatives. The parts are ranked in one of
//! three ways, chosen by the number of predicted lists:
//! - one list (the mention was linked whole): each gold id is looked up in that list;
//! - as many lists as gold ids (the mention was split and its parts linked separately): gold id
//!   `i` is looked up in list `i` only;
//! - any other number (a split that disagrees with the gold): each gold id takes its best
//!   position over all lists. Such mentions are counted in [`LinkMetrics::split_mismatch`].
//!
//! ## The BioSyn / SapBERT protocol: ranked names ([`Predicted::Names`])
//! One list per linked part (a composite mention split into its parts, or the whole mention);
//! each entry is a *name*, given as the ids of every concept having it, and ranks count names,
//! so one concept may fill several ranks. As in BioSyn's `evaluate_topk_acc` and
//! `check_label`, a part's rank is the first name naming **any** of the mention's gold ids
//! (parts are not aligned with gold ids), and the mention's rank is the largest part rank: it
//! hits at k iff every part hits at k. A composite left whole therefore hits when any of its
//! gold ids is found.
//!
//! In both, a gold id absent from its list is a miss at every k (however large k is) and adds
//! 0 to the MRR: the MRR is over the returned list, not the whole dictionary.
//!
//! Mentions without a gold id (`-1` in PubTator) are counted in `no_gold` and excluded.
//! Mentions whose gold id is not in the dictionary cannot be linked by any system; they are
//! counted in `missing_gold`, excluded from `acc` and `mrr`, and counted as misses in `acc_all`
//! and `mrr_all`.
//!
//! # NER
//! [`ner_metrics`] compares predicted spans with gold spans, strictly (same document, same
//! boundaries, same type) and leniently (same document and type, overlapping by at least one
//! character; each gold and each predicted span is matched at most once, greedily by largest
//! overlap). Precision, recall and F1 are micro-averaged overall and also given per type.
//!
//! # Zero division
//! Every ratio with a zero denominator is 0.0: accuracy and MRR of an empty set, precision with
//! no predictions, recall with no gold spans, F1 when precision and recall are both 0. An empty
//! evaluation therefore reports zeros, never NaN and never a perfect score.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use crate::linker::Candidate;

/// What the linker returned for one mention, in the shape of its evaluation protocol (see the
/// module docs). Serialized in per-mention reports as `{"concepts": ...}` or `{"names": ...}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Predicted {
    /// One ranked concept-id list per linked part: a single list for a mention linked whole,
    /// one per part for a composite mention that was split.
    Concepts(Vec<Vec<String>>),
    /// One ranked name list per linked part; each name is the ids of the concepts having it.
    Names(Vec<Vec<Vec<String>>>),
}

/// One gold mention and what the linker returned for it. Serialized in per-mention reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LinkOutcome {
    /// Normalised gold ids; more than one makes a composite mention, empty means no gold id.
    pub gold: Vec<String>,
    pub predicted: Predicted,
    pub entity_type: String,
    /// Whether the mention text occurs in the training data (`None`: not computed).
    pub seen_mention: Option<bool>,
    /// Whether the gold concept occurs in the training data (`None`: not computed).
    pub seen_concept: Option<bool>,
    /// Whether every gold id is a concept of the dictionary searched.
    pub gold_in_dictionary: bool,
}

impl LinkOutcome {
    /// The mention's rank as described in the module docs: `None` when it has no gold id or
    /// some part is not found. Ignores [`LinkOutcome::gold_in_dictionary`].
    pub fn rank(&self) -> Option<usize> {
        if self.gold.is_empty() {
            return None;
        }
        match &self.predicted {
            Predicted::Concepts(lists) => {
                let aligned = lists.len() == self.gold.len();
                let mut worst = 0;
                for (i, gold) in self.gold.iter().enumerate() {
                    let part = if aligned {
                        position(&lists[i], gold)
                    } else {
                        lists.iter().filter_map(|list| position(list, gold)).min()
                    };
                    worst = worst.max(part?);
                }
                Some(worst)
            }
            Predicted::Names(parts) => {
                let mut worst = None;
                for names in parts {
                    let part = names
                        .iter()
                        .position(|ids| ids.iter().any(|id| self.gold.contains(id)))?;
                    worst = worst.max(Some(part + 1));
                }
                worst
            }
        }
    }

    /// A split whose number of parts differs from the number of gold ids (medlink's protocol
    /// only: BioSyn's does not align parts with gold ids).
    fn split_mismatch(&self) -> bool {
        match &self.predicted {
            Predicted::Concepts(lists) => lists.len() > 1 && lists.len() != self.gold.len(),
            Predicted::Names(_) => false,
        }
    }
}

/// The ids of ranked linker candidates, in order, each concept once.
pub fn ranked_ids(candidates: &[Candidate]) -> Vec<String> {
    let mut seen = HashSet::new();
    candidates
        .iter()
        .filter(|c| seen.insert(c.id.as_str()))
        .map(|c| c.id.clone())
        .collect()
}

/// 1-based position of `id` among the distinct ids of `list`.
fn position(list: &[String], id: &str) -> Option<usize> {
    let mut seen = HashSet::new();
    for candidate in list {
        if seen.insert(candidate.as_str()) && candidate == id {
            return Some(seen.len());
        }
    }
    None
}

/// Linking metrics over a set of mentions. Serialized as a flat JSON object with keys
/// `mentions`, `evaluated`, `missing_gold`, `no_gold`, `split_mismatch`, `acc@{k}` for each k,
/// `acc_all@{k}` for each k, `mrr` and `mrr_all`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LinkMetrics {
    /// All mentions given, whatever their gold.
    pub mentions: usize,
    /// Mentions with a gold id that is in the dictionary: the denominator of `acc` and `mrr`.
    pub evaluated: usize,
    /// Mentions whose gold id is not in the dictionary.
    pub missing_gold: usize,
    /// Mentions without a gold id.
    pub no_gold: usize,
    /// Evaluated mentions whose number of predicted lists is neither 1 nor the number of gold
    /// ids (see the module docs for how they are ranked).
    pub split_mismatch: usize,
    /// k -> fraction of evaluated mentions found in the top k.
    pub acc: BTreeMap<usize, f64>,
    /// k -> fraction found in the top k over evaluated and missing-gold mentions together.
    pub acc_all: BTreeMap<usize, f64>,
    /// Mean of 1/rank over evaluated mentions (0 for a mention not found).
    pub mrr: f64,
    /// Mean of 1/rank over evaluated and missing-gold mentions.
    pub mrr_all: f64,
}

impl Serialize for LinkMetrics {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(7 + self.acc.len() + self.acc_all.len()))?;
        map.serialize_entry("mentions", &self.mentions)?;
        map.serialize_entry("evaluated", &self.evaluated)?;
        map.serialize_entry("missing_gold", &self.missing_gold)?;
        map.serialize_entry("no_gold", &self.no_gold)?;
        map.serialize_entry("split_mismatch", &self.split_mismatch)?;
        for (k, acc) in &self.acc {
            map.serialize_entry(&format!("acc@{k}"), acc)?;
        }
        for (k, acc) in &self.acc_all {
            map.serialize_entry(&format!("acc_all@{k}"), acc)?;
        }
        map.serialize_entry("mrr", &self.mrr)?;
        map.serialize_entry("mrr_all", &self.mrr_all)?;
        map.end()
    }
}

/// Accuracy at each k of `ks` and MRR over `outcomes`. Repeated ks are reported once; k = 0
/// is allowed and always 0.
pub fn link_metrics(outcomes: &[LinkOutcome], ks: &[usize]) -> LinkMetrics {
    metrics_of(outcomes.iter(), ks)
}

fn metrics_of<'a>(outcomes: impl Iterator<Item = &'a LinkOutcome>, ks: &[usize]) -> LinkMetrics {
    let mut m = LinkMetrics::default();
    let mut hits: BTreeMap<usize, usize> = ks.iter().map(|&k| (k, 0)).collect();
    let mut reciprocal = 0.0;
    for outcome in outcomes {
        m.mentions += 1;
        if outcome.gold.is_empty() {
            m.no_gold += 1;
            continue;
        }
        if !outcome.gold_in_dictionary {
            m.missing_gold += 1;
            continue;
        }
        m.evaluated += 1;
        m.split_mismatch += usize::from(outcome.split_mismatch());
        if let Some(rank) = outcome.rank() {
            reciprocal += 1.0 / rank as f64;
            for (k, count) in hits.iter_mut() {
                *count += usize::from(rank <= *k);
            }
        }
    }
    let all = m.evaluated + m.missing_gold;
    m.acc = hits
        .iter()
        .map(|(&k, &h)| (k, ratio(h as f64, m.evaluated)))
        .collect();
    m.acc_all = hits
        .iter()
        .map(|(&k, &h)| (k, ratio(h as f64, all)))
        .collect();
    m.mrr = ratio(reciprocal, m.evaluated);
    m.mrr_all = ratio(reciprocal, all);
    m
}

/// Metrics per group: `type={entity_type}`, `mention=seen|unseen` and `concept=seen|unseen`
/// (the last two only for outcomes where that is known). A mention falls in one group of each
/// kind; the totals are [`link_metrics`].
pub fn breakdown(outcomes: &[LinkOutcome], ks: &[usize]) -> BTreeMap<String, LinkMetrics> {
    let seen = |s: bool| if s { "seen" } else { "unseen" };
    let mut groups: BTreeMap<String, Vec<&LinkOutcome>> = BTreeMap::new();
    for outcome in outcomes {
        let mut keys = vec![format!("type={}", outcome.entity_type)];
        if let Some(s) = outcome.seen_mention {
            keys.push(format!("mention={}", seen(s)));
        }
        if let Some(s) = outcome.seen_concept {
            keys.push(format!("concept={}", seen(s)));
        }
        for key in keys {
            groups.entry(key).or_default().push(outcome);
        }
    }
    groups
        .into_iter()
        .map(|(key, group)| (key, metrics_of(group.into_iter(), ks)))
        .collect()
}

fn ratio(numerator: f64, denominator: usize) -> f64 {
    if denominator == 0 {
        0.0
    } else {
        numerator / denominator as f64
    }
}

/// A typed span of a document, in character offsets, end exclusive.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Span {
    pub doc: String,
    pub start: usize,
    pub end: usize,
    pub entity_type: String,
}

/// Counts and scores of one comparison. Serialized with keys `tp`, `fp`, `fn`, `precision`,
/// `recall`, `f1`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Prf {
    pub tp: usize,
    pub fp: usize,
    #[serde(rename = "fn")]
    pub fn_: usize,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

impl Prf {
    pub fn from_counts(tp: usize, fp: usize, fn_: usize) -> Self {
        let precision = ratio(tp as f64, tp + fp);
        let recall = ratio(tp as f64, tp + fn_);
        let f1 = if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        };
        Prf {
            tp,
            fp,
            fn_,
            precision,
            recall,
            f1,
        }
    }
}

/// Micro-averaged scores and scores per entity type (every type seen in gold or predictions).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NerScores {
    pub overall: Prf,
    pub per_type: BTreeMap<String, Prf>,
}

/// Strict and lenient NER scores. Serialized by `medlink eval ner`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NerReport {
    pub gold: usize,
    pub predicted: usize,
    pub strict: NerScores,
    pub lenient: NerScores,
}

/// Compares `predicted` with `gold` spans; see the module docs for the matching rules.
/// Duplicate spans are matched one-to-one, so a span predicted twice counts once as a true
/// positive and once as a false positive.
pub fn ner_metrics(gold: &[Span], predicted: &[Span]) -> NerReport {
    NerReport {
        gold: gold.len(),
        predicted: predicted.len(),
        strict: scores(gold, predicted, &strict_matches(gold, predicted)),
        lenient: scores(gold, predicted, &lenient_matches(gold, predicted)),
    }
}

/// For each predicted span, whether it was matched to a gold span (one-to-one).
fn strict_matches(gold: &[Span], predicted: &[Span]) -> Vec<bool> {
    let mut open: HashMap<&Span, usize> = HashMap::new();
    for span in gold {
        *open.entry(span).or_default() += 1;
    }
    predicted
        .iter()
        .map(|span| match open.get_mut(span) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        })
        .collect()
}

/// For each predicted span, whether it was matched to an overlapping gold span of the same
/// document and type; pairs are taken greedily by largest overlap, ties by text order of gold
/// then prediction, so the result does not depend on hashing.
fn lenient_matches(gold: &[Span], predicted: &[Span]) -> Vec<bool> {
    /// Indexes of the gold and predicted spans of one (document, type).
    #[derive(Default)]
    struct Group {
        gold: Vec<usize>,
        predicted: Vec<usize>,
    }
    let mut groups: HashMap<(&str, &str), Group> = HashMap::new();
    for (i, span) in gold.iter().enumerate() {
        let key = (span.doc.as_str(), span.entity_type.as_str());
        groups.entry(key).or_default().gold.push(i);
    }
    for (j, span) in predicted.iter().enumerate() {
        let key = (span.doc.as_str(), span.entity_type.as_str());
        groups.entry(key).or_default().predicted.push(j);
    }
    let mut matched = vec![false; predicted.len()];
    for group in groups.values() {
        let mut pairs = Vec::new();
        for &i in &group.gold {
            for &j in &group.predicted {
                let overlap = gold[i]
                    .end
                    .min(predicted[j].end)
                    .saturating_sub(gold[i].start.max(predicted[j].start));
                if overlap > 0 {
                    pairs.push((overlap, i, j));
                }
            }
        }
        pairs.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        let mut gold_used = HashSet::new();
        for (_, i, j) in pairs {
            if !matched[j] && gold_used.insert(i) {
                matched[j] = true;
            }
        }
    }
    matched
}

/// Turns a one-to-one matching into counts: true positives are matched predictions (one gold
/// each), so false negatives are the gold spans left over.
fn scores(gold: &[Span], predicted: &[Span], matched: &[bool]) -> NerScores {
    #[derive(Default)]
    struct Tally {
        tp: usize,
        fp: usize,
        gold: usize,
    }
    let mut tallies: BTreeMap<&str, Tally> = BTreeMap::new();
    for span in gold {
        tallies.entry(&span.entity_type).or_default().gold += 1;
    }
    for (span, &hit) in predicted.iter().zip(matched) {
        let tally = tallies.entry(&span.entity_type).or_default();
        if hit {
            tally.tp += 1;
        } else {
            tally.fp += 1;
        }
    }
    let (mut tp, mut fp, mut fn_) = (0, 0, 0);
    let mut per_type = BTreeMap::new();
    for (entity_type, t) in tallies {
        // Matches never cross types, so a type's true positives never exceed its gold count.
        let missed = t.gold.saturating_sub(t.tp);
        tp += t.tp;
        fp += t.fp;
        fn_ += missed;
        per_type.insert(
            entity_type.to_string(),
            Prf::from_counts(t.tp, t.fp, missed),
        );
    }
    NerScores {
        overall: Prf::from_counts(tp, fp, fn_),
        per_type,
    }
}
