//! Hard negatives from the model being trained: neighbour-aware batches.
//!
//! The multi-similarity loss mines its hard pairs inside a batch, and a batch of 64 random
//! pairs over tens of thousands of concepts rarely holds two concepts the model confuses:
//! most in-batch negatives are already far apart and teach nothing. BioSyn retrieves each
//! mention's candidates with the current model and SapBERT mines over a larger pool; here the
//! trainer does it per batch. Every `hard_negatives_every` steps it embeds one name per concept
//! (label) with the current weights and records each label's [`NEIGHBOURS`] nearest other
//! labels that share none of its names ([`NeighbourTable::build`], exact search). A batch is
//! then half pairs from the usual seeded stream and half partners: for each stream pair, a
//! pair of one of its label's neighbours ([`compose_batch`]), so the concepts the model
//! confuses now meet in one batch.
//!
//! The table in use is saved with every checkpoint (`neighbours.bin`), so a resumed run
//! composes the same batches as an uninterrupted one. Measured on NCBI-disease dev it is not
//! yet worth its cost (BENCHMARKS.md "Hard negatives from the model"), so it is off by default.

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;

use candle_core::{Device, Tensor};

use super::model::TrainableEncoder;
use super::pairs::PairSet;
use crate::error::{Error, Result};
use crate::rng::SplitMix64;
use crate::text::normalize;

/// Nearest other labels kept per label.
pub const NEIGHBOURS: usize = 8;
/// File of the neighbour table inside a checkpoint directory.
pub const NEIGHBOURS_FILE: &str = "neighbours.bin";
const MAGIC: &[u8; 8] = b"MLNBRS1\0";
/// Labels scored against all the others at once (a `CHUNK x labels` similarity matrix).
const CHUNK: usize = 512;

/// Each training label's nearest other labels under the weights of one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeighbourTable {
    /// Distinct labels, ascending.
    labels: Vec<u32>,
    /// `NEIGHBOURS` labels per entry of `labels`, nearest first.
    neighbours: Vec<u32>,
}

/// The pairs of each label, for drawing a partner pair of a neighbouring label, and the
/// normalised names each label's pairs use.
pub struct PairsByLabel {
    labels: Vec<u32>,
    /// `pairs[starts[i]..starts[i + 1]]` are the pairs of `labels[i]`.
    starts: Vec<usize>,
    pairs: Vec<u32>,
    /// Two concepts that share a name (MEDIC lists many diseases under both a MeSH and an
    /// OMIM id) are not negatives of each other: pushing that name away from itself would
    /// teach noise. [`NeighbourTable::build`] skips such labels.
    names: Vec<HashSet<String>>,
}

impl PairsByLabel {
    pub fn new(set: &PairSet) -> Self {
        let mut order: Vec<u32> = (0..set.pairs.len() as u32).collect();
        order.sort_by_key(|&p| (set.pairs[p as usize].label, p));
        let mut labels = Vec::new();
        let mut starts = Vec::new();
        for (i, &p) in order.iter().enumerate() {
            let label = set.pairs[p as usize].label;
            if labels.last() != Some(&label) {
                labels.push(label);
                starts.push(i);
            }
        }
        starts.push(order.len());
        let names = starts
            .windows(2)
            .map(|w| {
                order[w[0]..w[1]]
                    .iter()
                    .flat_map(|&p| {
                        let pair = set.pairs[p as usize];
                        [pair.a, pair.b]
                    })
                    .map(|t| normalize(&set.texts[t as usize]))
                    .collect()
            })
            .collect();
        PairsByLabel {
            labels,
            starts,
            pairs: order,
            names,
        }
    }

    fn of(&self, label: u32) -> &[u32] {
        match self.labels.binary_search(&label) {
            Ok(i) => &self.pairs[self.starts[i]..self.starts[i + 1]],
            Err(_) => &[],
        }
    }

    /// A name of each label standing for it in the table: the first side of its first pair
    /// (synonym pairs come first and start with the concept's preferred name).
    fn representatives(&self, set: &PairSet) -> Vec<u32> {
        self.starts[..self.labels.len()]
            .iter()
            .map(|&s| set.pairs[self.pairs[s] as usize].a)
            .collect()
    }
}

impl NeighbourTable {
    /// Embeds each label's representative name with `encoder` and finds every label's
    /// nearest other labels by exact cosine similarity (ties: lower label first), leaving out
    /// labels that share a name with it (unless that leaves none).
    pub fn build(
        encoder: &TrainableEncoder,
        set: &PairSet,
        by_label: &PairsByLabel,
        threads: usize,
    ) -> Result<Self> {
        let labels = by_label.labels.clone();
        let texts: Vec<String> = by_label
            .representatives(set)
            .into_iter()
            .map(|t| set.texts[t as usize].clone())
            .collect();
        let vectors = encoder.embed_all(&encoder.tokenize(&texts)?, 128, threads)?;
        let names = &by_label.names;
        let n = labels.len();
        let dim = encoder.config().hidden_size;
        let keep = NEIGHBOURS.min(n.saturating_sub(1));
        let matrix = Tensor::from_vec(
            vectors.iter().flatten().copied().collect::<Vec<f32>>(),
            (n, dim),
            &Device::Cpu,
        )?;
        let transposed = matrix.t()?.contiguous()?;
        let mut neighbours = Vec::with_capacity(n * NEIGHBOURS);
        for start in (0..n).step_by(CHUNK) {
            let len = CHUNK.min(n - start);
            let scores = matrix.narrow(0, start, len)?.matmul(&transposed)?;
            for (row, scores) in scores.to_vec2::<f32>()?.iter().enumerate() {
                let me = start + row;
                let mut order: Vec<usize> = (0..n).filter(|&j| j != me).collect();
                let by_score =
                    |a: &usize, b: &usize| scores[*b].total_cmp(&scores[*a]).then(a.cmp(b));
                // Room for the labels skipped below; past it, the nearest that remain.
                let take = (4 * keep).min(order.len());
                if take < order.len() {
                    order.select_nth_unstable_by(take, by_score);
                    order.truncate(take);
                }
                order.sort_by(by_score);
                let mut mine: Vec<u32> = order
                    .iter()
                    .filter(|&&j| names[me].is_disjoint(&names[j]))
                    .take(keep)
                    .map(|&j| labels[j])
                    .collect();
                if mine.is_empty() {
                    mine = order.iter().take(keep).map(|&j| labels[j]).collect();
                }
                // A dictionary of fewer than NEIGHBOURS + 1 labels repeats its nearest ones.
                for k in 0..NEIGHBOURS {
                    neighbours.push(
                        mine.get(k % mine.len().max(1))
                            .copied()
                            .unwrap_or(labels[me]),
                    );
                }
            }
        }
        Ok(NeighbourTable { labels, neighbours })
    }

    /// The nearest other labels of `label`, nearest first (empty for a label not in the table).
    pub fn neighbours(&self, label: u32) -> &[u32] {
        match self.labels.binary_search(&label) {
            Ok(i) => &self.neighbours[i * NEIGHBOURS..(i + 1) * NEIGHBOURS],
            Err(_) => &[],
        }
    }

    /// Writes the table into a checkpoint's staging directory.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut bytes = Vec::with_capacity(16 + 4 * (self.labels.len() + self.neighbours.len()));
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&(self.labels.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&(NEIGHBOURS as u32).to_le_bytes());
        for word in self.labels.iter().chain(&self.neighbours) {
            bytes.extend_from_slice(&word.to_le_bytes());
        }
        let mut file = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
        file.write_all(&bytes).map_err(|e| Error::io(path, e))
    }

    /// Reads a table written by [`NeighbourTable::save`], checking its shape.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let corrupt = |comment: String| Error::DataCorruption {
            path: path.to_path_buf(),
            comment,
        };
        if bytes.len() < 16 || &bytes[..8] != MAGIC {
            return Err(corrupt("not a neighbour table (bad header)".into()));
        }
        let word =
            |i: usize| u32::from_le_bytes(bytes[i * 4..i * 4 + 4].try_into().expect("4 bytes"));
        let (n, k) = (word(2) as usize, word(3) as usize);
        if k != NEIGHBOURS || bytes.len() != 16 + 4 * n * (1 + k) {
            return Err(corrupt(format!(
                "expected {n} labels with {NEIGHBOURS} neighbours each, found {} bytes and {k} per label",
                bytes.len()
            )));
        }
        let labels: Vec<u32> = (0..n).map(|i| word(4 + i)).collect();
        let neighbours: Vec<u32> = (0..n * k).map(|i| word(4 + n + i)).collect();
        if labels.windows(2).any(|w| w[0] >= w[1]) {
            return Err(corrupt("labels out of order".into()));
        }
        Ok(NeighbourTable { labels, neighbours })
    }
}

/// A micro-batch of `len` pair indices: the `ceil(len / 2)` pairs of `stream` (the seeded
/// order), each followed in the second half by a pair of one of its label's neighbours,
/// drawn with `rng`.
pub fn compose_batch(
    stream: &[usize],
    len: usize,
    set: &PairSet,
    by_label: &PairsByLabel,
    table: &NeighbourTable,
    rng: &mut SplitMix64,
) -> Vec<usize> {
    let mut batch: Vec<usize> = stream.to_vec();
    for &p in stream {
        if batch.len() >= len {
            break;
        }
        let near = table.neighbours(set.pairs[p].label);
        let partner = if near.is_empty() {
            None
        } else {
            let pairs = by_label.of(near[rng.below(near.len())]);
            (!pairs.is_empty()).then(|| pairs[rng.below(pairs.len())] as usize)
        };
        // The table covers every label of the pair set it was built from; only a set of one
        // label has no neighbour, and then the pair itself keeps the batch full.
        batch.push(partner.unwrap_or(p));
    }
    batch
}
