//! `medlink train reranker`: candidate lists of annotated mentions -> a [`Reranker`].
//!
//! 1. Every gold mention of the training corpora with one gold concept in the dictionary is
//!    prepared as `eval link` prepares it (abbreviations expanded if asked) and counted: the
//!    concept, and the normalised text with the concept, overall and per document.
//! 2. Each is linked (hybrid, the index's weight, no re-ranker) to its top `depth` concepts,
//!    followed by the concepts other documents' mentions of the same text were given (as the
//!    linker does with a re-ranker, [`Reranker::remembered`]), and described by [`features`],
//!    with its own document's counts left out.
//! 3. [`fit`] runs once per L2 strength of the grid; the dev corpus (all counts seen) picks the
//!    strength with the best acc@1, ties going to the stronger regularisation.

use std::collections::HashMap;

use super::{
    features, fit, reranked_gold_rank, CountView, Counts, DevReport, Fitted, Reranker, TrainedFor,
    TrainingList, FEATURES, RERANKER_FORMAT,
};
use crate::error::{Error, Result};
use crate::eval::link::{link_in_batches, medlink_protocol_mentions, ProtocolMention};
use crate::eval::Corpus;
use crate::index::Index;
use crate::linker::{LinkOptions, Linker, Mode};
use crate::text::normalize;

#[derive(Debug, Clone)]
pub struct RerankTrainOptions {
    /// Concepts re-ranked per mention.
    pub depth: usize,
    /// Link short forms defined in their document by their long form.
    pub abbreviations: bool,
    /// Gold mention types used; empty keeps all.
    pub entity_types: Vec<String>,
    /// L2 strengths tried, the dev corpus choosing (the first alone without one; with one,
    /// ties go to the strongest).
    pub l2_grid: Vec<f32>,
    /// Full-batch optimiser steps per fit.
    pub iterations: usize,
}

impl Default for RerankTrainOptions {
    fn default() -> Self {
        RerankTrainOptions {
            depth: super::DEFAULT_DEPTH,
            abbreviations: false,
            entity_types: Vec::new(),
            l2_grid: vec![0.01, 0.1, 0.001, 0.0],
            iterations: 300,
        }
    }
}

/// The mentions that teach: one gold concept, present in the dictionary.
fn usable(index: &Index, mentions: Vec<ProtocolMention>) -> Vec<ProtocolMention> {
    mentions
        .into_iter()
        .filter(|m| m.gold.len() == 1 && index.dictionary.lookup_id(&m.gold[0]).is_some())
        .collect()
}

/// The training lists of `mentions`, each seen through its own count view: linked (hybrid,
/// `depth` deep, the linker's order) and followed by the concepts the view remembers for its
/// text that the top `depth` lacks — as a linker with the re-ranker builds them. A text the
/// linker refuses gets an empty list.
fn candidate_lists(
    linker: &Linker,
    mentions: &[&ProtocolMention],
    views: &[CountView],
    depth: usize,
) -> Result<Vec<TrainingList>> {
    let options = LinkOptions {
        k: depth,
        mode: Mode::Hybrid,
        ..LinkOptions::default()
    };
    let normalized: Vec<String> = mentions.iter().map(|m| normalize(&m.text)).collect();
    let remembered: Vec<Vec<&str>> = views
        .iter()
        .zip(&normalized)
        .map(|(view, text)| view.remembered(text))
        .collect();
    let texts: Vec<&str> = mentions.iter().map(|m| m.text.as_str()).collect();
    let lists = link_in_batches(&texts, |batch, at| {
        let extra: Vec<Vec<&str>> = at.iter().map(|&i| remembered[i].clone()).collect();
        linker.link_batch_with_extra(batch, &extra, &options)
    })?;
    Ok(lists
        .iter()
        .enumerate()
        .map(|(i, list)| TrainingList {
            features: features(&normalized[i], list, &views[i]),
            gold: list.iter().map(|c| c.id == mentions[i].gold[0]).collect(),
        })
        .collect())
}

/// Trains a re-ranker for `index` from `corpora` (name, corpus), choosing its L2 strength on
/// `dev` when given. `linker` must link with the index's own order (no re-ranker).
pub fn train(
    index: &Index,
    linker: &Linker,
    corpora: &[(String, Corpus)],
    dev: Option<(&str, &Corpus)>,
    options: &RerankTrainOptions,
) -> Result<Reranker> {
    if linker.reranker().is_some() {
        return Err(Error::Internal(
            "a re-ranker is trained on the linker's own order: pass a linker without one".into(),
        ));
    }
    if options.depth == 0 || options.depth > crate::linker::MAX_K {
        return Err(Error::InvalidInput(format!(
            "re-ranking depth must be between 1 and {}, got {}",
            crate::linker::MAX_K,
            options.depth
        )));
    }
    if options.l2_grid.is_empty() {
        return Err(Error::InvalidInput("the L2 grid is empty".into()));
    }
    let mut counts = Counts::default();
    let mut by_document: HashMap<(usize, String), Counts> = HashMap::new();
    let mut mentions: Vec<(usize, ProtocolMention)> = Vec::new();
    for (c, (_, corpus)) in corpora.iter().enumerate() {
        let prepared =
            medlink_protocol_mentions(index, corpus, &options.entity_types, options.abbreviations);
        for m in usable(index, prepared) {
            let text = normalize(&m.text);
            counts.add(&text, &m.gold[0]);
            by_document
                .entry((c, m.document.clone()))
                .or_default()
                .add(&text, &m.gold[0]);
            mentions.push((c, m));
        }
    }
    if mentions.is_empty() {
        return Err(Error::InvalidInput(
            "the training corpora have no mention with one gold concept in this index's dictionary"
                .into(),
        ));
    }
    // Each training mention sees the counts less its own document's.
    let views: Vec<CountView> = mentions
        .iter()
        .map(|(c, m)| CountView {
            all: &counts,
            excluded: by_document.get(&(*c, m.document.clone())),
        })
        .collect();
    let own: Vec<&ProtocolMention> = mentions.iter().map(|(_, m)| m).collect();
    let training = candidate_lists(linker, &own, &views, options.depth)?;

    let dev_lists: Option<(&str, Vec<TrainingList>)> = match dev {
        Some((name, corpus)) => {
            let prepared = usable(
                index,
                medlink_protocol_mentions(
                    index,
                    corpus,
                    &options.entity_types,
                    options.abbreviations,
                ),
            );
            // Dev mentions see every training count.
            let views: Vec<CountView> = prepared
                .iter()
                .map(|_| CountView {
                    all: &counts,
                    excluded: None,
                })
                .collect();
            let dev: Vec<&ProtocolMention> = prepared.iter().collect();
            Some((name, candidate_lists(linker, &dev, &views, options.depth)?))
        }
        None => None,
    };

    let acc_at_1 = |lists: &[TrainingList], ranks: &dyn Fn(&TrainingList) -> Option<usize>| {
        let right = lists.iter().filter(|l| ranks(l) == Some(0)).count();
        right as f64 / lists.len().max(1) as f64
    };
    if !training.iter().any(TrainingList::informative) {
        return Err(Error::InvalidInput(
            "no training mention has its gold concept among other candidates: nothing to learn"
                .into(),
        ));
    }
    // With a dev corpus, strongest regularisation first, so that ties keep it; without one,
    // the grid's first strength.
    let mut grid = options.l2_grid.clone();
    if dev_lists.is_some() {
        grid.sort_by(|a, b| b.total_cmp(a));
    }
    let mut chosen: Option<(f32, Fitted, Option<DevReport>)> = None;
    for &l2 in &grid {
        let fitted = fit(&training, l2, options.iterations);
        let Some((name, lists)) = &dev_lists else {
            chosen = Some((l2, fitted, None));
            break;
        };
        let (w, mean, scale) = &fitted;
        let report = DevReport {
            corpus: name.to_string(),
            mentions: lists.len(),
            linker_acc_at_1: acc_at_1(lists, &|l| l.gold.iter().position(|&g| g)),
            reranked_acc_at_1: acc_at_1(lists, &|l| reranked_gold_rank(l, w, mean, scale)),
        };
        tracing::info!(
            l2,
            dev_acc_at_1 = report.reranked_acc_at_1,
            linker_acc_at_1 = report.linker_acc_at_1,
            "re-ranker fitted"
        );
        let better = chosen.as_ref().is_none_or(|(_, _, best)| {
            report.reranked_acc_at_1 > best.as_ref().map_or(-1.0, |b| b.reranked_acc_at_1)
        });
        if better {
            chosen = Some((l2, fitted, Some(report)));
        }
    }
    let (l2, (weights, mean, scale), dev_report) = chosen.expect("the grid is not empty");
    if !weights
        .iter()
        .chain(&mean)
        .chain(&scale)
        .all(|x| x.is_finite())
    {
        return Err(Error::InvalidInput(format!(
            "the fit diverged (non-finite weights) with L2 {l2}: try a larger --l2"
        )));
    }
    Ok(Reranker {
        format: RERANKER_FORMAT,
        features: FEATURES.iter().map(|s| s.to_string()).collect(),
        weights,
        mean,
        scale,
        depth: options.depth,
        l2,
        abbreviations: options.abbreviations,
        trained_on: corpora.iter().map(|(name, _)| name.clone()).collect(),
        trained_for: TrainedFor {
            model_weights_sha256: index.manifest.model.weights_sha256.clone(),
            alpha: linker.default_alpha(),
        },
        training_lists: training.iter().filter(|l| l.informative()).count(),
        dev: dev_report,
        counts,
    })
}
