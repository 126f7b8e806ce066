//! End-to-end concept recognition scores (`medlink eval e2e`): the annotate pipeline's output
//! (detected spans, each with its top-ranked concept) against a corpus's gold mentions.
//!
//! Three views, each micro-averaged over the corpus:
//! - **spans**: mention detection alone, types ignored ([`super::metrics::ner_metrics`] with
//!   every type blank) — `eval ner` scores typed spans;
//! - **mentions**: a prediction is right when its span matches a gold mention (`strict`: same
//!   start and end; `lenient`: overlapping, pairs taken greedily by overlap) *and* its top
//!   concept is one of that mention's gold ids (a composite mention accepts any of its parts).
//!   Gold mentions without an id (BC5CDR's `-1`) are left out, and so are predictions
//!   overlapping them: nobody can say whether those are right;
//! - **documents**: the set of concepts a document mentions (every gold id, composites split)
//!   against the set of top concepts predicted in it — the BioCreative V CDR "DNER" measure
//!   and PhenoTagger's document-level GSC+ measure.
//!
//! Gold ids are resolved through the index's dictionary (a secondary id counts as its concept's
//! primary id), as `eval link` does.

use std::collections::{BTreeSet, HashSet};

use serde::Serialize;

use super::metrics::{ner_metrics, NerReport, Prf, Span};
use super::Corpus;
use crate::index::Index;
use crate::ner::annotate::LinkedMention;

/// A predicted mention as scored: its span and its top concept, if any. Made from
/// medlink's own annotations or read from another system's output (`--predicted`).
#[derive(Debug, Clone, PartialEq)]
pub struct PredictedMention {
    pub start: usize,
    pub end: usize,
    pub concept: Option<String>,
}

impl From<&LinkedMention> for PredictedMention {
    fn from(m: &LinkedMention) -> Self {
        PredictedMention {
            start: m.start,
            end: m.end,
            concept: m.candidates.first().map(|c| c.id.clone()),
        }
    }
}

/// Another system's annotations of `corpus`'s documents, read as a corpus (each mention's
/// first id is its concept; ids are normalised and resolved like gold ids). Documents are
/// matched by id; a gold document the predictions lack has no predicted mention, and a
/// predicted document the gold lacks is an error (it would be silently ignored otherwise).
pub fn predictions_from_corpus(
    corpus: &Corpus,
    predicted: &Corpus,
    index: &Index,
) -> crate::error::Result<Vec<Vec<PredictedMention>>> {
    let position: std::collections::HashMap<&str, usize> = corpus
        .documents
        .iter()
        .enumerate()
        .map(|(i, d)| (d.id.as_str(), i))
        .collect();
    let mut out = vec![Vec::new(); corpus.documents.len()];
    for doc in &predicted.documents {
        let &i = position.get(doc.id.as_str()).ok_or_else(|| {
            crate::error::Error::InvalidInput(format!(
                "predicted document `{}` is not in the gold corpus",
                doc.id
            ))
        })?;
        out[i].extend(doc.mentions.iter().map(|m| PredictedMention {
            start: m.start,
            end: m.end,
            concept: m.ids.first().map(|id| super::link::primary_id(index, id)),
        }));
    }
    Ok(out)
}

/// Serialized by `medlink eval e2e --json`.
#[derive(Debug, Clone, Serialize)]
pub struct E2eReport {
    pub documents: usize,
    pub gold_mentions: usize,
    /// Gold mentions without any id (left out of the mention scores).
    pub gold_without_id: usize,
    pub predicted_mentions: usize,
    pub spans: NerReport,
    pub mentions_strict: Prf,
    pub mentions_lenient: Prf,
    pub document_concepts: Prf,
}

/// One scored prediction or gold mention: document index, span, concept ids.
struct Item {
    doc: usize,
    start: usize,
    end: usize,
    ids: Vec<String>,
}

fn overlap(a: &Item, b: &Item) -> usize {
    a.end.min(b.end).saturating_sub(a.start.max(b.start))
}

/// Scores `predicted[i]`, the annotations of `corpus.documents[i]`.
pub fn evaluate(corpus: &Corpus, predicted: &[Vec<PredictedMention>], index: &Index) -> E2eReport {
    let resolve = |id: &str| super::link::primary_id(index, id);
    let mut gold = Vec::new();
    let mut unlinkable = Vec::new();
    let mut predictions = Vec::new();
    let (mut gold_spans, mut predicted_spans) = (Vec::new(), Vec::new());
    let (mut doc_tp, mut doc_fp, mut doc_fn) = (0, 0, 0);
    for (d, doc) in corpus.documents.iter().enumerate() {
        let mut gold_concepts = BTreeSet::new();
        for m in &doc.mentions {
            gold_spans.push(Span {
                doc: d.to_string(),
                start: m.start,
                end: m.end,
                entity_type: String::new(),
            });
            let ids: Vec<String> = m.ids.iter().map(|id| resolve(id)).collect();
            gold_concepts.extend(ids.iter().cloned());
            let item = Item {
                doc: d,
                start: m.start,
                end: m.end,
                ids,
            };
            if item.ids.is_empty() {
                unlinkable.push(item);
            } else {
                gold.push(item);
            }
        }
        let mut predicted_concepts = BTreeSet::new();
        for m in predicted.get(d).map(Vec::as_slice).unwrap_or_default() {
            predicted_spans.push(Span {
                doc: d.to_string(),
                start: m.start,
                end: m.end,
                entity_type: String::new(),
            });
            let ids: Vec<String> = m.concept.iter().cloned().collect();
            predicted_concepts.extend(ids.iter().cloned());
            let item = Item {
                doc: d,
                start: m.start,
                end: m.end,
                ids,
            };
            if !unlinkable
                .iter()
                .any(|u| u.doc == d && overlap(u, &item) > 0)
            {
                predictions.push(item);
            }
        }
        doc_tp += gold_concepts.intersection(&predicted_concepts).count();
        doc_fp += predicted_concepts.difference(&gold_concepts).count();
        doc_fn += gold_concepts.difference(&predicted_concepts).count();
    }
    let score = |strict: bool| {
        let mut pairs = Vec::new();
        let mut by_doc = vec![Vec::new(); corpus.documents.len()];
        for (p, pm) in predictions.iter().enumerate() {
            by_doc[pm.doc].push(p);
        }
        for (g, gm) in gold.iter().enumerate() {
            for &p in &by_doc[gm.doc] {
                let pm = &predictions[p];
                let right_concept = pm.ids.first().is_some_and(|id| gm.ids.contains(id));
                let fits = if strict {
                    gm.start == pm.start && gm.end == pm.end
                } else {
                    overlap(gm, pm) > 0
                };
                if right_concept && fits {
                    pairs.push((overlap(gm, pm), g, p));
                }
            }
        }
        pairs.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        let (mut used_gold, mut used_pred) = (HashSet::new(), HashSet::new());
        let mut tp = 0;
        for (_, g, p) in pairs {
            if !used_gold.contains(&g) && !used_pred.contains(&p) {
                used_gold.insert(g);
                used_pred.insert(p);
                tp += 1;
            }
        }
        Prf::from_counts(tp, predictions.len() - tp, gold.len() - tp)
    };
    E2eReport {
        documents: corpus.documents.len(),
        gold_mentions: gold.len() + unlinkable.len(),
        gold_without_id: unlinkable.len(),
        predicted_mentions: predicted_spans.len(),
        spans: ner_metrics(&gold_spans, &predicted_spans),
        mentions_strict: score(true),
        mentions_lenient: score(false),
        document_concepts: Prf::from_counts(doc_tp, doc_fp, doc_fn),
    }
}
