//! IOB2 labels: the label set of a tagger, gold spans to token labels for training, and token
//! tags back to spans.
//!
//! Promises:
//! - a label set made from entity types is `O, B-T1, I-T1, B-T2, I-T2, ...` with the types in
//!   sorted order, so the same corpus always gives the same ids;
//! - **first-sub-token labelling**: the first token of each word (tokenizer word ids) carries
//!   the word's label, every other token [`IGNORE`] (transformers' `-100`), as do special tokens;
//! - a word is `B-T` when a kept span of type T starts inside it, `I-T` when it lies inside a
//!   span that started before it (also when that start is in an earlier window), else `O`;
//! - **overlapping or nested gold spans**: the longest span is kept and every span overlapping
//!   a kept one is dropped (ties: the earlier start, then the type name); the count of dropped
//!   spans is returned so the trainer can warn. IOB2 cannot express nesting, and the longest
//!   span keeps most of the annotated text.

use std::collections::BTreeSet;

use crate::error::{Error, Result};

/// Label of a token that the loss ignores (transformers' convention).
pub const IGNORE: i64 = -100;

/// The labels of a token classifier, by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelSet {
    labels: Vec<String>,
}

impl LabelSet {
    /// `O` then `B-`/`I-` for each type, types sorted.
    pub fn iob2<S: AsRef<str>>(types: impl IntoIterator<Item = S>) -> Self {
        let types: BTreeSet<String> = types.into_iter().map(|t| t.as_ref().to_string()).collect();
        let mut labels = vec!["O".to_string()];
        for t in types {
            labels.push(format!("B-{t}"));
            labels.push(format!("I-{t}"));
        }
        LabelSet { labels }
    }

    /// Labels in id order; they must be distinct and non-empty.
    pub fn new(labels: Vec<String>) -> Result<Self> {
        let distinct: BTreeSet<&String> = labels.iter().collect();
        if labels.is_empty()
            || distinct.len() != labels.len()
            || labels.iter().any(String::is_empty)
        {
            return Err(Error::InvalidInput(format!(
                "labels must be distinct and non-empty (got {labels:?})"
            )));
        }
        Ok(LabelSet { labels })
    }

    /// `id2label` of a Hugging Face `config.json` (keys are ids as strings), if it has one.
    /// `path` names the file in errors.
    pub fn from_config(config: &serde_json::Value, path: &std::path::Path) -> Result<Option<Self>> {
        let Some(map) = config.get("id2label").and_then(|v| v.as_object()) else {
            return Ok(None);
        };
        let bad = |m: String| Error::parse(path, 1, Some("id2label"), m);
        let mut labels = vec![None; map.len()];
        for (key, value) in map {
            let id: usize = key
                .parse()
                .map_err(|_| bad(format!("key `{key}` is not a label id")))?;
            let label = value
                .as_str()
                .ok_or_else(|| bad(format!("label of id {key} is not a string")))?;
            let slot = labels
                .get_mut(id)
                .ok_or_else(|| bad(format!("ids must be 0..{}, found {id}", map.len())))?;
            *slot = Some(label.to_string());
        }
        let labels: Vec<String> = labels.into_iter().map(|l| l.unwrap_or_default()).collect();
        LabelSet::new(labels)
            .map(Some)
            .map_err(|e| bad(e.to_string()))
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    pub fn id(&self, label: &str) -> Option<usize> {
        self.labels.iter().position(|l| l == label)
    }

    /// Entity types named by `B-`/`I-` labels.
    pub fn types(&self) -> BTreeSet<String> {
        self.labels
            .iter()
            .filter_map(|l| l.strip_prefix("B-").or_else(|| l.strip_prefix("I-")))
            .map(str::to_string)
            .collect()
    }

    /// `id2label` and `label2id` for `config.json`.
    pub fn to_config(&self) -> (serde_json::Value, serde_json::Value) {
        let id2label: serde_json::Map<String, serde_json::Value> = self
            .labels
            .iter()
            .enumerate()
            .map(|(i, l)| (i.to_string(), l.clone().into()))
            .collect();
        let label2id: serde_json::Map<String, serde_json::Value> = self
            .labels
            .iter()
            .enumerate()
            .map(|(i, l)| (l.clone(), i.into()))
            .collect();
        (id2label.into(), label2id.into())
    }
}

/// A typed character span (end exclusive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CharSpan {
    pub start: usize,
    pub end: usize,
    pub entity_type: String,
}

/// Applies the overlap policy (module docs): returns the kept spans sorted by start, and the
/// number dropped. Empty spans are dropped too.
pub fn resolve_overlaps(spans: &[CharSpan]) -> (Vec<CharSpan>, usize) {
    let mut order: Vec<&CharSpan> = spans.iter().filter(|s| s.end > s.start).collect();
    order.sort_by(|a, b| {
        (b.end - b.start)
            .cmp(&(a.end - a.start))
            .then(a.start.cmp(&b.start))
            .then(a.entity_type.cmp(&b.entity_type))
    });
    let mut kept: Vec<CharSpan> = Vec::new();
    for s in order {
        if kept.iter().all(|k| s.end <= k.start || s.start >= k.end) {
            kept.push(s.clone());
        }
    }
    kept.sort_by_key(|s| s.start);
    let dropped = spans.len() - kept.len();
    (kept, dropped)
}

/// One token of a window as the aligner sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenInfo {
    /// The tokenizer's word index (None for special tokens).
    pub word: Option<u32>,
    /// Character offsets into the document.
    pub start: usize,
    pub end: usize,
}

/// Token labels of one window under first-sub-token labelling (module docs); `spans` must be
/// non-overlapping and sorted by start (see [`resolve_overlaps`]).
pub fn align_labels(
    tokens: &[TokenInfo],
    spans: &[CharSpan],
    labels: &LabelSet,
) -> Result<Vec<i64>> {
    let mut out = vec![IGNORE; tokens.len()];
    let mut i = 0;
    while i < tokens.len() {
        let Some(word) = tokens[i].word else {
            i += 1;
            continue;
        };
        // The word's extent: its tokens in this window.
        let mut j = i + 1;
        while j < tokens.len() && tokens[j].word == Some(word) {
            j += 1;
        }
        let (start, end) = (tokens[i].start, tokens[j - 1].end);
        let span = spans.iter().find(|s| s.start < end && s.end > start);
        let label = match span {
            None => "O".to_string(),
            Some(s) if s.start >= start => format!("B-{}", s.entity_type),
            Some(s) => format!("I-{}", s.entity_type),
        };
        let id = labels.id(&label).ok_or_else(|| {
            Error::InvalidInput(format!(
                "label `{label}` is not one of the tagger's labels ({})",
                labels.labels().join(", ")
            ))
        })?;
        out[i] = id as i64;
        i = j;
    }
    Ok(out)
}

/// Spans `(first, last + 1, type)` over positions of an IOB2 tag sequence, as seqeval reads
/// it in its default mode: an entity starts at `B-T`, or at `I-T` after anything but `B-T` /
/// `I-T` of the same type, and ends before `O`, `B-` or another type.
pub fn decode_iob2(tags: &[&str]) -> Vec<(usize, usize, String)> {
    let mut out: Vec<(usize, usize, String)> = Vec::new();
    let mut open: Option<(usize, &str)> = None;
    for (i, tag) in tags.iter().enumerate() {
        let (begins, t) = match (tag.strip_prefix("B-"), tag.strip_prefix("I-")) {
            (Some(t), _) => (true, Some(t)),
            (_, Some(t)) => (false, Some(t)),
            _ => (false, None),
        };
        let continues = matches!((open, t), (Some((_, o)), Some(t)) if o == t && !begins);
        if continues {
            continue;
        }
        if let Some((s, o)) = open.take() {
            out.push((s, i, o.to_string()));
        }
        if let Some(t) = t {
            open = Some((i, t));
        }
    }
    if let Some((s, o)) = open {
        out.push((s, tags.len(), o.to_string()));
    }
    out
}
