//! Token predictions to entities, exactly as transformers' `pipeline("token-classification")`
//! does it (`transformers/pipelines/token_classification.py`, 5.x): softmax per token, the
//! aggregation strategies `none`, `simple`, `first`, `average`, `max`, `B-`/`I-` grouping,
//! dropping `O`, and the merge of overlapping entities from strided windows.
//!
//! Promises (checked against transformers by the `tagger` integration tests):
//! - ties are broken as numpy and Python break them: `argmax` and `max` take the *first*
//!   maximum (Rust's `max_by` would take the last);
//! - a token is a sub-word when its vocabulary form is longer or shorter (in characters) than
//!   the text it covers (`##ing` vs `ing`) for tokenizers with a continuing-sub-word prefix,
//!   else when it touches the previous character without a space (transformers' fallback);
//!   an unknown token takes the text it covers as its word and is never a sub-word;
//! - offsets are character offsets into the whole text, end exclusive.
//!
//! Unlike transformers, which refuses `stride` with `none`, windows are merged for `none` too
//! (by the same overlap rule, token by token).

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::error::{Error, Result};

/// How token predictions become entities (transformers' `aggregation_strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// Every token on its own, labelled with its full label (`B-Disease`).
    None,
    /// Tokens grouped by `B-`/`I-` tags; sub-words may get different labels.
    Simple,
    /// A word takes the label of its first token.
    #[default]
    First,
    /// A word takes the label with the best score averaged over its tokens.
    Average,
    /// A word takes the label of its most confident token.
    Max,
}

impl FromStr for Strategy {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "none" => Strategy::None,
            "simple" => Strategy::Simple,
            "first" => Strategy::First,
            "average" => Strategy::Average,
            "max" => Strategy::Max,
            _ => {
                return Err(Error::InvalidInput(format!(
                "unknown aggregation strategy `{s}` (expected none, simple, first, average or max)"
            )))
            }
        })
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Strategy::None => "none",
            Strategy::Simple => "simple",
            Strategy::First => "first",
            Strategy::Average => "average",
            Strategy::Max => "max",
        })
    }
}

/// One entity in the Hugging Face pipeline shape. Serialized (`entity_group`, `score`,
/// `word`, `start`, `end`; with strategy `none`, `entity_group` holds the token's full label,
/// what transformers calls `entity`, and `index` its token position in its window).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entity {
    pub entity_group: String,
    pub score: f32,
    pub word: String,
    /// Character offsets into the text, end exclusive.
    pub start: usize,
    pub end: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
}

/// One non-special token of a window, ready for aggregation (transformers' "pre-entity").
#[derive(Debug, Clone)]
pub struct PreEntity {
    /// The vocabulary form (`##ing`), or the covered text for an unknown token.
    pub word: String,
    /// Softmax of the token's logits.
    pub scores: Vec<f32>,
    pub start: usize,
    pub end: usize,
    /// Position of the token in its window (special tokens included).
    pub index: usize,
    pub is_subword: bool,
}

/// Softmax of one row of logits, computed as transformers does (max-shifted, in f32).
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    exp.iter().map(|e| e / sum).collect()
}

/// Index of the first maximum, as numpy's `argmax` (NaN never wins).
pub fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] || values[best].is_nan() && !v.is_nan() {
            best = i;
        }
    }
    best
}

/// Whether a token is a sub-word (see the module docs). `word` is its vocabulary form,
/// `covered` the text its offsets cover, `before_and_first` the previous and first covered
/// characters (for the fallback heuristic), `prefix` the tokenizer's continuing-sub-word
/// prefix if it has one.
pub fn is_subword(
    word: &str,
    covered: &str,
    start: usize,
    before_and_first: &str,
    prefix: Option<&str>,
) -> bool {
    match prefix {
        Some(p) if !p.is_empty() => word.chars().count() != covered.chars().count(),
        _ => start > 0 && !before_and_first.contains(' '),
    }
}

/// Entities of one window's tokens, `O` (and any of `ignore`) dropped. `labels[i]` is the
/// label of class i; `decode` joins tokens into a string as the tokenizer's decoder does
/// (transformers' `convert_tokens_to_string`).
pub fn aggregate(
    pre: &[PreEntity],
    strategy: Strategy,
    labels: &[String],
    ignore: &[&str],
    decode: &dyn Fn(&[String]) -> String,
) -> Vec<Entity> {
    let tokens: Vec<Entity> = match strategy {
        Strategy::None | Strategy::Simple => pre
            .iter()
            .map(|p| {
                let best = argmax(&p.scores);
                Entity {
                    entity_group: labels[best].clone(),
                    score: p.scores[best],
                    word: p.word.clone(),
                    start: p.start,
                    end: p.end,
                    index: Some(p.index),
                }
            })
            .collect(),
        _ => words(pre)
            .into_iter()
            .map(|w| aggregate_word(w, strategy, labels, decode))
            .collect(),
    };
    let entities = if strategy == Strategy::None {
        tokens
    } else {
        group_entities(&tokens, decode)
    };
    entities
        .into_iter()
        .filter(|e| !ignore.contains(&e.entity_group.as_str()))
        .collect()
}

/// Consecutive tokens cut into words: a word starts at every token that is not a sub-word
/// (and at the first token, even a sub-word).
fn words(pre: &[PreEntity]) -> Vec<&[PreEntity]> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..pre.len() {
        if !pre[i].is_subword {
            out.push(&pre[start..i]);
            start = i;
        }
    }
    if !pre.is_empty() {
        out.push(&pre[start..]);
    }
    out
}

fn aggregate_word(
    tokens: &[PreEntity],
    strategy: Strategy,
    labels: &[String],
    decode: &dyn Fn(&[String]) -> String,
) -> Entity {
    let word = decode(&tokens.iter().map(|t| t.word.clone()).collect::<Vec<_>>());
    let (label, score) = match strategy {
        Strategy::Max => {
            // Python's max(): the first token with the largest maximum.
            let mut best = &tokens[0];
            let top = |t: &PreEntity| t.scores[argmax(&t.scores)];
            for t in &tokens[1..] {
                if top(t) > top(best) {
                    best = t;
                }
            }
            let i = argmax(&best.scores);
            (i, best.scores[i])
        }
        Strategy::Average => {
            let n = tokens[0].scores.len();
            let mean: Vec<f32> = (0..n)
                .map(|c| {
                    let values: Vec<f32> = tokens
                        .iter()
                        .map(|t| t.scores[c])
                        .filter(|v| !v.is_nan())
                        .collect();
                    values.iter().sum::<f32>() / values.len() as f32
                })
                .collect();
            let i = argmax(&mean);
            (i, mean[i])
        }
        // First (None and Simple never reach here).
        _ => {
            let i = argmax(&tokens[0].scores);
            (i, tokens[0].scores[i])
        }
    };
    Entity {
        entity_group: labels[label].clone(),
        score,
        word,
        start: tokens[0].start,
        end: tokens[tokens.len() - 1].end,
        index: None,
    }
}

/// `B-X` -> (B, X); `I-X` -> (I, X); anything else is a continuation of itself.
fn tag(label: &str) -> (bool, &str) {
    if let Some(t) = label.strip_prefix("B-") {
        (true, t)
    } else if let Some(t) = label.strip_prefix("I-") {
        (false, t)
    } else {
        (false, label)
    }
}

/// Groups consecutive entities of one type: a new group starts at a `B-` or a change of type.
fn group_entities(entities: &[Entity], decode: &dyn Fn(&[String]) -> String) -> Vec<Entity> {
    let mut groups = Vec::new();
    let mut start = 0;
    for i in 1..entities.len() {
        let (begins, t) = tag(&entities[i].entity_group);
        let (_, last) = tag(&entities[i - 1].entity_group);
        if t != last || begins {
            groups.push(group(&entities[start..i], decode));
            start = i;
        }
    }
    if !entities.is_empty() {
        groups.push(group(&entities[start..], decode));
    }
    groups
}

fn group(entities: &[Entity], decode: &dyn Fn(&[String]) -> String) -> Entity {
    let label = &entities[0].entity_group;
    // transformers: `entity.split("-", 1)[-1]`.
    let entity_group = label.split_once('-').map_or(label.as_str(), |(_, t)| t);
    let scores: Vec<f32> = entities
        .iter()
        .map(|e| e.score)
        .filter(|s| !s.is_nan())
        .collect();
    Entity {
        entity_group: entity_group.to_string(),
        score: scores.iter().sum::<f32>() / scores.len() as f32,
        word: decode(&entities.iter().map(|e| e.word.clone()).collect::<Vec<_>>()),
        start: entities[0].start,
        end: entities[entities.len() - 1].end,
        index: None,
    }
}

/// Merges the entities of several overlapping windows of one text (transformers'
/// `aggregate_overlapping_entities`): sorted by start (stable), an entity starting inside the
/// one kept before it replaces it when longer, or as long with a higher score.
pub fn merge_overlapping(mut entities: Vec<Entity>) -> Vec<Entity> {
    if entities.is_empty() {
        return entities;
    }
    entities.sort_by_key(|e| e.start);
    let mut out = Vec::new();
    let mut previous = entities[0].clone();
    for entity in entities {
        if previous.start <= entity.start && entity.start < previous.end {
            let (len, previous_len) = (entity.end - entity.start, previous.end - previous.start);
            if len > previous_len || len == previous_len && entity.score > previous.score {
                previous = entity;
            }
        } else {
            out.push(std::mem::replace(&mut previous, entity));
        }
    }
    out.push(previous);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Vec<String> {
        ["O", "B-D", "I-D"].map(String::from).to_vec()
    }

    fn join(tokens: &[String]) -> String {
        let mut s = String::new();
        for (i, t) in tokens.iter().enumerate() {
            match t.strip_prefix("##") {
                Some(rest) if i > 0 => s.push_str(rest),
                _ => {
                    if i > 0 {
                        s.push(' ');
                    }
                    s.push_str(t);
                }
            }
        }
        s
    }

    fn pre(word: &str, scores: [f32; 3], start: usize, end: usize, sub: bool) -> PreEntity {
        PreEntity {
            word: word.into(),
            scores: scores.to_vec(),
            start,
            end,
            index: 0,
            is_subword: sub,
        }
    }

    #[test]
    fn argmax_takes_the_first_maximum() {
        assert_eq!(argmax(&[0.2, 0.4, 0.4]), 1);
        assert_eq!(argmax(&[f32::NAN, 0.1]), 1);
    }

    #[test]
    fn word_strategies_differ_as_transformers_documents() {
        // "head ##ache": first token says O, second strongly B-D.
        let tokens = [
            pre("head", [0.5, 0.4, 0.1], 0, 4, false),
            pre("##ache", [0.05, 0.9, 0.05], 4, 8, true),
        ];
        let l = labels();
        let run = |s| aggregate(&tokens, s, &l, &["O"], &join);
        assert!(run(Strategy::First).is_empty());
        let max = run(Strategy::Max);
        assert_eq!((max[0].start, max[0].end), (0, 8));
        assert_eq!(max[0].word, "headache");
        let avg = run(Strategy::Average);
        assert_eq!(avg[0].entity_group, "D");
        assert!((avg[0].score - 0.65).abs() < 1e-6);
        let simple = run(Strategy::Simple);
        assert_eq!((simple[0].start, simple[0].end), (4, 8));
        assert_eq!(run(Strategy::None)[0].entity_group, "B-D");
    }

    #[test]
    fn two_b_tags_make_two_groups_and_i_continues() {
        let tokens = [
            pre("a", [0.1, 0.8, 0.1], 0, 1, false),
            pre("b", [0.1, 0.1, 0.8], 2, 3, false),
            pre("c", [0.1, 0.8, 0.1], 4, 5, false),
        ];
        let out = aggregate(&tokens, Strategy::Simple, &labels(), &["O"], &join);
        assert_eq!(out.len(), 2);
        assert_eq!(
            (out[0].start, out[0].end, out[0].word.as_str()),
            (0, 3, "a b")
        );
        assert_eq!((out[1].start, out[1].end), (4, 5));
    }

    #[test]
    fn overlapping_windows_keep_the_longer_entity() {
        let e = |s, e, score| Entity {
            entity_group: "D".into(),
            score,
            word: String::new(),
            start: s,
            end: e,
            index: None,
        };
        let merged = merge_overlapping(vec![
            e(0, 4, 0.9),
            e(10, 12, 0.5),
            e(2, 8, 0.1),
            e(10, 12, 0.6),
        ]);
        assert_eq!(
            merged
                .iter()
                .map(|x| (x.start, x.end, x.score))
                .collect::<Vec<_>>(),
            vec![(2, 8, 0.1), (10, 12, 0.6)]
        );
    }
}
