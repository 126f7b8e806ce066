//! Multi-similarity loss with online hard-pair mining, as SapBERT trains.
//!
//! Wang et al. 2019 ("Multi-Similarity Loss with General Pair Weighting"), with the
//! defaults SapBERT uses through pytorch-metric-learning: alpha 1, beta 60, base 0.5 and the
//! miner's margin (epsilon) 0.2. For a batch of unit vectors with concept labels and cosine
//! similarities `s`:
//!
//! - mining keeps a positive pair (i, p) if `s_ip - margin < max_n s_in` (it is not already
//!   clearly closer than anchor i's hardest negative) and a negative pair (i, n) if
//!   `s_in + margin > min_p s_ip` (it is not already clearly farther than i's hardest positive);
//! - anchor i's loss is `1/alpha * ln(1 + sum_p exp(-alpha (s_ip - base)))
//!   + 1/beta * ln(1 + sum_n exp(beta (s_in - base)))` over the kept pairs;
//! - the batch loss is the mean over all anchors (an anchor with no kept pair adds 0).
//!
//! Mining reads the similarities once (no gradient flows through the choice of pairs); the
//! loss is then one differentiable expression over the similarity matrix and two masks.
//! Cosine similarities lie in [-1, 1], so `exp(beta (s - base))` is at most e^30 and the
//! plain `ln(1 + sum exp)` form cannot overflow in f32.

use candle_core::Tensor;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy)]
pub struct MultiSimilarity {
    pub alpha: f32,
    pub beta: f32,
    pub base: f32,
    /// The miner's epsilon.
    pub margin: f32,
}

impl Default for MultiSimilarity {
    fn default() -> Self {
        MultiSimilarity {
            alpha: 1.0,
            beta: 60.0,
            base: 0.5,
            margin: 0.2,
        }
    }
}

/// The pairs mining kept: row-major `n x n` 0/1 masks.
#[derive(Debug, Clone, PartialEq)]
pub struct MinedPairs {
    pub n: usize,
    pub positive: Vec<f32>,
    pub negative: Vec<f32>,
    pub positive_pairs: usize,
    pub negative_pairs: usize,
}

/// The loss of one batch and how many pairs contributed.
pub struct LossOutput {
    /// Scalar, differentiable.
    pub loss: Tensor,
    pub positive_pairs: usize,
    pub negative_pairs: usize,
}

/// Online hard-pair mining over a row-major `n x n` similarity matrix.
pub fn mine(similarity: &[f32], labels: &[u32], margin: f32) -> MinedPairs {
    let n = labels.len();
    debug_assert_eq!(similarity.len(), n * n);
    let mut mined = MinedPairs {
        n,
        positive: vec![0.0; n * n],
        negative: vec![0.0; n * n],
        positive_pairs: 0,
        negative_pairs: 0,
    };
    for i in 0..n {
        let row = &similarity[i * n..(i + 1) * n];
        let mut hardest_positive = f32::INFINITY;
        let mut hardest_negative = f32::NEG_INFINITY;
        for j in (0..n).filter(|&j| j != i) {
            if labels[j] == labels[i] {
                hardest_positive = hardest_positive.min(row[j]);
            } else {
                hardest_negative = hardest_negative.max(row[j]);
            }
        }
        for j in (0..n).filter(|&j| j != i) {
            if labels[j] == labels[i] {
                if row[j] - margin < hardest_negative {
                    mined.positive[i * n + j] = 1.0;
                    mined.positive_pairs += 1;
                }
            } else if row[j] + margin > hardest_positive {
                mined.negative[i * n + j] = 1.0;
                mined.negative_pairs += 1;
            }
        }
    }
    mined
}

impl MultiSimilarity {
    /// Loss of unit-norm `embeddings` `(n, dim)` with one concept label per row.
    pub fn loss(&self, embeddings: &Tensor, labels: &[u32]) -> Result<LossOutput> {
        let (n, _) = embeddings.dims2()?;
        if n != labels.len() {
            return Err(Error::Internal(format!(
                "{n} embeddings but {} labels",
                labels.len()
            )));
        }
        let similarity = embeddings.matmul(&embeddings.t()?)?;
        let values = similarity.flatten_all()?.to_vec1::<f32>()?;
        let mined = mine(&values, labels, self.margin);
        let device = embeddings.device();
        let positive = Tensor::from_vec(mined.positive, (n, n), device)?;
        let negative = Tensor::from_vec(mined.negative, (n, n), device)?;
        let (a, b, base) = (self.alpha as f64, self.beta as f64, self.base as f64);
        let positive_term = ((similarity.affine(-a, a * base)?.exp()? * positive)?.sum(1)? + 1.0)?
            .log()?
            .affine(1.0 / a, 0.0)?;
        let negative_term = ((similarity.affine(b, -b * base)?.exp()? * negative)?.sum(1)? + 1.0)?
            .log()?
            .affine(1.0 / b, 0.0)?;
        let loss = (positive_term + negative_term)?.mean_all()?;
        Ok(LossOutput {
            loss,
            positive_pairs: mined.positive_pairs,
            negative_pairs: mined.negative_pairs,
        })
    }
}
