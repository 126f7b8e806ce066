//! `medlink index tune`: chooses an index's hybrid weight on a development corpus.
//!
//! One global `alpha` does not suit every vocabulary: HPO's names are short and lexical
//! overlap says more there than in MEDIC's. The tuner evaluates a grid of weights on the
//! corpus's gold mentions (medlink's raw protocol, hybrid mode, acc@1, ties broken by MRR and
//! then by closeness to the default) and the winner goes into the index's manifest, where the
//! linker finds it whenever a request names no alpha. Mentions are encoded once: every grid
//! point reuses their vectors.
//!
//! Tune on a training or development split, never on the split you report.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::Serialize;

use super::link::{evaluate, EvalOptions};
use super::Corpus;
use crate::encoder::{Encoder, ModelIdentity};
use crate::error::{Error, Result};
use crate::index::Index;
use crate::linker::{Linker, Mode, DEFAULT_ALPHA};

/// Dense weights tried: 0, 0.05, ..., 1.
pub fn default_grid() -> Vec<f32> {
    (0..=20).map(|i| i as f32 / 20.0).collect()
}

/// One grid point's result.
#[derive(Debug, Clone, Serialize)]
pub struct GridPoint {
    pub alpha: f32,
    pub acc_at_1: f64,
    pub mrr: f64,
}

/// The grid and its winner.
#[derive(Debug, Clone, Serialize)]
pub struct Tuning {
    pub grid: Vec<GridPoint>,
    pub best: GridPoint,
    /// The default weight's result (it is on the grid).
    pub default: GridPoint,
    pub mentions: usize,
}

/// Remembers every vector it encodes, so later passes over the same mentions cost nothing.
struct Memo<'a> {
    inner: &'a dyn Encoder,
    seen: Mutex<HashMap<String, Vec<f32>>>,
}

impl Encoder for Memo<'_> {
    fn dim(&self) -> usize {
        self.inner.dim()
    }

    fn identity(&self) -> &ModelIdentity {
        self.inner.identity()
    }

    fn encode(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let missing: Vec<&str> = {
            let seen = self
                .seen
                .lock()
                .map_err(|_| Error::Internal("memo lock".into()))?;
            texts
                .iter()
                .copied()
                .filter(|t| !seen.contains_key(*t))
                .collect()
        };
        let fresh = if missing.is_empty() {
            Vec::new()
        } else {
            self.inner.encode(&missing)?
        };
        let mut seen = self
            .seen
            .lock()
            .map_err(|_| Error::Internal("memo lock".into()))?;
        for (text, vector) in missing.into_iter().zip(fresh) {
            seen.insert(text.to_string(), vector);
        }
        Ok(texts.iter().map(|t| seen[*t].clone()).collect())
    }
}

/// Evaluates every weight of `grid` on `corpus` (hybrid mode; the other options as given).
pub fn tune_alpha(
    index: &Index,
    encoder: &dyn Encoder,
    corpus: &Corpus,
    options: &EvalOptions,
    grid: &[f32],
    threads: usize,
) -> Result<Tuning> {
    if grid.is_empty() || grid.iter().any(|a| !(0.0..=1.0).contains(a)) {
        return Err(Error::InvalidInput(
            "alpha grid values must lie between 0 and 1".into(),
        ));
    }
    let memo = Memo {
        inner: encoder,
        seen: Mutex::new(HashMap::new()),
    };
    // The fused order is what is tuned; a re-ranker trained on it sits on top.
    let linker = Linker::new(index, &memo)?
        .without_reranker()
        .with_threads(threads);
    let mut points = Vec::with_capacity(grid.len() + 1);
    let mut mentions = 0;
    let mut with_default = grid.to_vec();
    if !grid.contains(&DEFAULT_ALPHA) {
        with_default.push(DEFAULT_ALPHA);
    }
    for &alpha in &with_default {
        let mut opts = options.clone();
        opts.link.mode = Mode::Hybrid;
        opts.link.alpha = Some(alpha);
        opts.ks = vec![1];
        opts.worst_misses = 0;
        let (report, _) = evaluate(&linker, index, corpus, None, &opts)?;
        mentions = report.metrics.evaluated;
        points.push(GridPoint {
            alpha,
            acc_at_1: report.metrics.acc.get(&1).copied().unwrap_or(0.0),
            mrr: report.metrics.mrr,
        });
    }
    if mentions == 0 {
        return Err(Error::InvalidInput(
            "the tuning corpus has no mention whose gold concept is in the index".into(),
        ));
    }
    let default = points
        .iter()
        .find(|p| p.alpha == DEFAULT_ALPHA)
        .cloned()
        .expect("the default is evaluated");
    let best = points
        .iter()
        .filter(|p| grid.contains(&p.alpha))
        .max_by(|a, b| {
            a.acc_at_1
                .total_cmp(&b.acc_at_1)
                .then(a.mrr.total_cmp(&b.mrr))
                .then(
                    (b.alpha - DEFAULT_ALPHA)
                        .abs()
                        .total_cmp(&(a.alpha - DEFAULT_ALPHA).abs()),
                )
        })
        .cloned()
        .expect("the grid is not empty");
    points.retain(|p| grid.contains(&p.alpha));
    Ok(Tuning {
        grid: points,
        best,
        default,
        mentions,
    })
}
