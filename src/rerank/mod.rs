//! Re-ranking the linker's top concepts with a scorer learned from annotated mentions.
//!
//! The fused score weighs two similarities and knows nothing else. A coder's annotations know
//! more: which concepts a corpus names at all, and which concept a recurring string ("MI",
//! "breast cancer") was given last time. The re-ranker scores each of the top
//! [`Reranker::depth`] concepts with a linear function of [`FEATURES`] — the linker's own
//! signals (cosine, trigram similarity, exact and singular matches, preferred name, score gap,
//! rank), surface agreement (shared words, length ratio) and counts from the training mentions
//! (how often the concept was the answer, how often this very string was linked to it) — and
//! orders them by that score. Concepts that training mentions of the same normalised text were
//! given join the list when similarity alone does not reach them ([`Reranker::remembered`]:
//! "DM" is myotonic dystrophy in this corpus). The reported `score` stays the linker's fused
//! score (NIL thresholds keep their meaning); `rerank` carries the re-ranker's probability.
//!
//! Training (`medlink train reranker`, [`fit`]): every training mention is linked with the
//! re-ranker off; lists that hold the gold concept at some rank other than alone teach a
//! listwise softmax loss (the gold concept's probability among the list), with L2 strength
//! chosen on a dev corpus. Counts seen by a training mention leave out its own document, so the
//! scorer learns how much a count from *other* documents is worth — what it will see on new
//! text — rather than that a mention always agrees with itself.
//!
//! It applies to hybrid linking only: the dense- and lexical-only modes are ablations whose
//! missing signal the scorer was never trained without.

pub mod train;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::linker::Candidate;
use crate::text::normalize;

/// File name of a re-ranker inside an index directory.
pub const RERANKER_FILE: &str = "reranker.json";
/// Bumped when the file's shape or the features change (2: [`TrainedFor`]).
pub const RERANKER_FORMAT: u32 = 2;
/// Concepts re-ranked per mention unless trained otherwise.
pub const DEFAULT_DEPTH: usize = 25;

/// Features, in the order of the weights.
pub const FEATURES: [&str; 15] = [
    "dense",
    "lexical",
    "exact",
    "singular_match",
    "preferred_name",
    "score_gap_to_top",
    "log_rank",
    "log_concept_count",
    "log_mention_concept_count",
    "mention_concept_share",
    "mention_seen_elsewhere",
    "word_jaccard",
    "length_ratio",
    "short_mention_dense",
    "short_mention_lexical",
];
const N: usize = FEATURES.len();
/// A mention this short (in characters, normalised) is likely an abbreviation, where the two
/// similarities deserve other weights.
const SHORT_MENTION: usize = 5;

/// How often training mentions named each concept, and each normalised string each concept.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Counts {
    pub concepts: BTreeMap<String, u32>,
    pub mentions: BTreeMap<String, BTreeMap<String, u32>>,
}

impl Counts {
    pub fn add(&mut self, normalized_mention: &str, concept: &str) {
        *self.concepts.entry(concept.to_string()).or_default() += 1;
        *self
            .mentions
            .entry(normalized_mention.to_string())
            .or_default()
            .entry(concept.to_string())
            .or_default() += 1;
    }

    fn concept(&self, id: &str) -> u32 {
        self.concepts.get(id).copied().unwrap_or(0)
    }

    fn mention(&self, mention: &str, id: &str) -> u32 {
        self.mentions
            .get(mention)
            .and_then(|m| m.get(id))
            .copied()
            .unwrap_or(0)
    }

    fn mention_total(&self, mention: &str) -> u32 {
        self.mentions.get(mention).map_or(0, |m| m.values().sum())
    }
}

/// Counts as one mention sees them: all of them, less those of its own document in training.
pub struct CountView<'a> {
    pub all: &'a Counts,
    pub excluded: Option<&'a Counts>,
}

impl<'a> CountView<'a> {
    fn get(&self, f: impl Fn(&Counts) -> u32) -> u32 {
        f(self.all).saturating_sub(self.excluded.map_or(0, &f))
    }

    /// Concepts training mentions with this normalised text were given (as this view counts
    /// them): they join the candidate list even when similarity alone does not reach them
    /// ("DM" for myotonic dystrophy).
    pub fn remembered(&self, normalized_mention: &str) -> Vec<&'a str> {
        self.all
            .mentions
            .get(normalized_mention)
            .map(|concepts| {
                concepts
                    .keys()
                    .filter(|id| self.get(|c| c.mention(normalized_mention, id)) > 0)
                    .map(String::as_str)
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The features of every candidate of one mention's list (best first, as the linker ranked it).
pub fn features(
    normalized_mention: &str,
    candidates: &[Candidate],
    counts: &CountView,
) -> Vec<[f32; N]> {
    let Some(top) = candidates.first().map(|c| c.score) else {
        return Vec::new();
    };
    let mention_words: HashSet<&str> = normalized_mention.split_whitespace().collect();
    let mention_chars = normalized_mention.chars().count();
    let short = f32::from(u8::from(mention_chars <= SHORT_MENTION));
    let total = counts.get(|c| c.mention_total(normalized_mention));
    candidates
        .iter()
        .enumerate()
        .map(|(rank, c)| {
            let matched = normalize(&c.matched_name);
            let matched_words: HashSet<&str> = matched.split_whitespace().collect();
            let union = mention_words.union(&matched_words).count().max(1);
            let shared = mention_words.intersection(&matched_words).count();
            let matched_chars = matched.chars().count();
            let dense = c.dense.unwrap_or(0.0);
            let lexical = c.lexical.unwrap_or(0.0);
            let concept = counts.get(|t| t.concept(&c.id));
            let together = counts.get(|t| t.mention(normalized_mention, &c.id));
            [
                dense,
                lexical,
                f32::from(u8::from(c.exact)),
                f32::from(u8::from(!c.exact && c.bonus > 0.0)),
                f32::from(u8::from(c.matched_name == c.name)),
                c.score - top,
                (1.0 + rank as f32).ln(),
                (1.0 + concept as f32).ln(),
                (1.0 + together as f32).ln(),
                if total == 0 {
                    0.0
                } else {
                    together as f32 / total as f32
                },
                f32::from(u8::from(total > 0 && together == 0)),
                shared as f32 / union as f32,
                mention_chars.min(matched_chars) as f32
                    / mention_chars.max(matched_chars).max(1) as f32,
                short * dense,
                short * lexical,
            ]
        })
        .collect()
}

/// How the re-ranker did on the dev corpus it was selected on.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DevReport {
    pub corpus: String,
    /// Dev mentions whose gold concept is in the dictionary.
    pub mentions: usize,
    /// acc@1 with the linker's order and with the re-ranker's.
    pub linker_acc_at_1: f64,
    pub reranked_acc_at_1: f64,
}

/// What a re-ranker's dense and fused features depend on: the model that made the vectors and
/// the hybrid weight that ordered the lists. Under another model or weight its scores mean
/// something else, so it is not used there.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TrainedFor {
    /// SHA-256 of the model's weights (the index manifest's `model.weights_sha256`).
    pub model_weights_sha256: String,
    /// The hybrid weight of the linker whose lists it learned from.
    pub alpha: f32,
}

/// A trained re-ranker, as stored in `reranker.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Reranker {
    pub format: u32,
    /// Feature names in weight order (checked against [`FEATURES`] on load).
    pub features: Vec<String>,
    /// Weights of the standardised features.
    pub weights: Vec<f32>,
    pub mean: Vec<f32>,
    pub scale: Vec<f32>,
    /// Concepts re-ranked per mention.
    pub depth: usize,
    pub l2: f32,
    /// Whether training mentions that are short forms defined in their document were linked
    /// by their long form (as `eval link --abbreviations`).
    pub abbreviations: bool,
    pub trained_on: Vec<String>,
    /// The scores its features were drawn from.
    pub trained_for: TrainedFor,
    pub training_lists: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<DevReport>,
    pub counts: Counts,
}

impl Reranker {
    /// Reorders `candidates` (the linker's list for `normalized_mention`, best first) by the
    /// learned score and sets each one's `rerank` probability. Ties keep the linker's order.
    pub fn rerank(&self, normalized_mention: &str, candidates: Vec<Candidate>) -> Vec<Candidate> {
        let scores: Vec<f32> = features(normalized_mention, &candidates, &self.view())
            .iter()
            .map(|f| standardised_score(&self.weights, &self.mean, &self.scale, f))
            .collect();
        let probabilities = softmax(&scores);
        let mut slots: Vec<Option<Candidate>> = candidates.into_iter().map(Some).collect();
        best_first(&scores)
            .into_iter()
            .map(|i| {
                let mut c = slots[i].take().expect("each index once");
                c.rerank = Some(probabilities[i]);
                c
            })
            .collect()
    }

    /// The training counts, all of them: what a mention seen after training sees.
    fn view(&self) -> CountView<'_> {
        CountView {
            all: &self.counts,
            excluded: None,
        }
    }

    /// [`CountView::remembered`] over every training mention.
    pub fn remembered(&self, normalized_mention: &str) -> Vec<&str> {
        self.view().remembered(normalized_mention)
    }

    /// Writes the re-ranker into the index directory `dir` and names it in `manifest`, which
    /// is saved there: from then on the index opens with it.
    pub fn record_in(
        &self,
        dir: &Path,
        manifest: &mut crate::index::manifest::Manifest,
    ) -> Result<()> {
        self.save(&dir.join(RERANKER_FILE))?;
        manifest.files.reranker = Some(RERANKER_FILE.into());
        manifest.save(dir)
    }

    /// Refuses a re-ranker trained for another model or hybrid weight than `model_weights_sha256`
    /// and `alpha` (an index re-tuned after training, or another index's file).
    pub fn check_fits(&self, model_weights_sha256: &str, alpha: f32) -> Result<()> {
        let trained = &self.trained_for;
        let problem = if trained.model_weights_sha256 != model_weights_sha256 {
            format!(
                "it was trained with the model whose weights hash {}, the index uses {}",
                short_hash(&trained.model_weights_sha256),
                short_hash(model_weights_sha256)
            )
        } else if !self.uses_alpha(alpha) {
            format!(
                "it was trained with the hybrid weight {} and the index now uses {alpha} (`medlink index tune` ran after it)",
                trained.alpha
            )
        } else {
            return Ok(());
        };
        Err(Error::InvalidInput(format!(
            "the re-ranker does not fit this index: {problem}; train it again with `medlink train reranker`"
        )))
    }

    /// Whether lists fused with `alpha` are the lists it learned from.
    pub fn uses_alpha(&self, alpha: f32) -> bool {
        (self.trained_for.alpha - alpha).abs() <= 1e-6
    }

    /// Reads a re-ranker file, refusing one made for other features.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| Error::parse(path, e.line(), None, e.to_string()))?;
        // An older format is named as such, not reported as a field it lacks.
        let format = value.get("format").and_then(|f| f.as_u64());
        if format != Some(u64::from(RERANKER_FORMAT)) {
            return Err(Error::FileFormat {
                path: path.to_path_buf(),
                expected: format!("re-ranker format {RERANKER_FORMAT}"),
                found: format!(
                    "{}; train it again with `medlink train reranker`",
                    format.map_or("no format".into(), |f| format!("format {f}"))
                ),
            });
        }
        let reranker: Reranker = serde_json::from_value(value)
            .map_err(|e| Error::parse(path, 1, None, e.to_string()))?;
        let expected: Vec<String> = FEATURES.iter().map(|s| s.to_string()).collect();
        if reranker.format != RERANKER_FORMAT
            || reranker.features != expected
            || [&reranker.weights, &reranker.mean, &reranker.scale]
                .iter()
                .any(|v| v.len() != N)
        {
            return Err(Error::FileFormat {
                path: path.to_path_buf(),
                expected: format!(
                    "re-ranker (format {RERANKER_FORMAT}, {N} features: {})",
                    FEATURES.join(", ")
                ),
                found: format!(
                    "format {} with {} features; train it again with `medlink train reranker`",
                    reranker.format,
                    reranker.features.len()
                ),
            });
        }
        let finite = |v: &[f32]| v.iter().all(|x| x.is_finite());
        if !reranker.scale.iter().all(|s| s.is_finite() && *s > 0.0)
            || !finite(&reranker.weights)
            || !finite(&reranker.mean)
            || !(1..=crate::linker::MAX_K).contains(&reranker.depth)
        {
            return Err(Error::DataCorruption {
                path: path.to_path_buf(),
                comment: format!(
                    "weights and means must be finite, feature scales positive and depth between 1 and {}",
                    crate::linker::MAX_K
                ),
            });
        }
        Ok(reranker)
    }

    /// Writes the re-ranker atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        crate::fsutil::write_atomic(path, |w| {
            serde_json::to_writer(&mut *w, self).map_err(std::io::Error::other)?;
            std::io::Write::write_all(w, b"\n")
        })
    }
}

/// The first 12 hex digits of a SHA-256, enough to tell models apart in a message.
fn short_hash(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

/// The linear score of one candidate's features.
fn standardised_score(weights: &[f32], mean: &[f32], scale: &[f32], f: &[f32; N]) -> f32 {
    (0..N)
        .map(|j| weights[j] * (f[j] - mean[j]) / scale[j])
        .sum()
}

/// Positions of `scores`, highest first; ties keep the linker's order.
fn best_first(scores: &[f32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    order
}

fn softmax(scores: &[f32]) -> Vec<f32> {
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = scores.iter().map(|s| (s - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    exp.into_iter().map(|e| e / sum).collect()
}

/// One mention's candidate list with its features and which entries are gold.
#[derive(Debug, Clone)]
pub struct TrainingList {
    pub features: Vec<[f32; N]>,
    pub gold: Vec<bool>,
}

impl TrainingList {
    /// Teaches something only if the gold concept is in the list and not all of it.
    pub fn informative(&self) -> bool {
        self.gold.iter().any(|&g| g) && !self.gold.iter().all(|&g| g)
    }
}

/// Weights, feature means and feature scales: a scorer over standardised features.
pub type Fitted = (Vec<f32>, Vec<f32>, Vec<f32>);

/// Weights over standardised features minimising the listwise softmax loss plus `l2 * |w|^2`,
/// by full-batch Adam; deterministic.
pub fn fit(lists: &[TrainingList], l2: f32, iterations: usize) -> Fitted {
    let rows: Vec<&[f32; N]> = lists.iter().flat_map(|l| l.features.iter()).collect();
    let count = rows.len().max(1) as f64;
    let mut mean = vec![0f32; N];
    let mut scale = vec![1f32; N];
    for j in 0..N {
        let m = rows.iter().map(|r| f64::from(r[j])).sum::<f64>() / count;
        let var = rows
            .iter()
            .map(|r| (f64::from(r[j]) - m).powi(2))
            .sum::<f64>()
            / count;
        mean[j] = m as f32;
        // A constant feature (say, no short mention in training) keeps scale 1: its weight
        // then only ever sees zero.
        scale[j] = if var > 1e-12 { var.sqrt() as f32 } else { 1.0 };
    }
    let standardised: Vec<Vec<[f32; N]>> = lists
        .iter()
        .map(|l| {
            l.features
                .iter()
                .map(|f| std::array::from_fn(|j| (f[j] - mean[j]) / scale[j]))
                .collect()
        })
        .collect();
    let informative: Vec<usize> = (0..lists.len())
        .filter(|&i| lists[i].informative())
        .collect();
    let mut w = vec![0f32; N];
    let (mut m1, mut m2) = (vec![0f32; N], vec![0f32; N]);
    let (lr, beta1, beta2, eps) = (0.05f32, 0.9f32, 0.999f32, 1e-8f32);
    for step in 1..=iterations {
        let mut grad = [0f32; N];
        for &i in &informative {
            let x = &standardised[i];
            let scores: Vec<f32> = x.iter().map(|f| dot(&w, f)).collect();
            let p = softmax(&scores);
            let gold_mass: f32 = p
                .iter()
                .zip(&lists[i].gold)
                .filter(|(_, &g)| g)
                .map(|(p, _)| p)
                .sum();
            for (r, f) in x.iter().enumerate() {
                // d(-log gold_mass)/d score_r = p_r - [gold_r] p_r / gold_mass
                let target = if lists[i].gold[r] {
                    p[r] / gold_mass.max(1e-30)
                } else {
                    0.0
                };
                let g = p[r] - target;
                for j in 0..N {
                    grad[j] += g * f[j];
                }
            }
        }
        let n = informative.len().max(1) as f32;
        for j in 0..N {
            let g = grad[j] / n + 2.0 * l2 * w[j];
            m1[j] = beta1 * m1[j] + (1.0 - beta1) * g;
            m2[j] = beta2 * m2[j] + (1.0 - beta2) * g * g;
            let m1_hat = m1[j] / (1.0 - beta1.powi(step as i32));
            let m2_hat = m2[j] / (1.0 - beta2.powi(step as i32));
            w[j] -= lr * m1_hat / (m2_hat.sqrt() + eps);
        }
    }
    (w, mean, scale)
}

fn dot(w: &[f32], f: &[f32; N]) -> f32 {
    w.iter().zip(f).map(|(a, b)| a * b).sum()
}

/// Position of the first gold entry after ordering `list` by the weights (ties keep the list's
/// order), or `None` when no gold entry is in it.
pub fn reranked_gold_rank(
    list: &TrainingList,
    weights: &[f32],
    mean: &[f32],
    scale: &[f32],
) -> Option<usize> {
    if !list.gold.iter().any(|&g| g) {
        return None;
    }
    let scores: Vec<f32> = list
        .features
        .iter()
        .map(|f| standardised_score(weights, mean, scale, f))
        .collect();
    best_first(&scores).iter().position(|&i| list.gold[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(id: &str, name: &str, dense: f32, lexical: f32) -> Candidate {
        Candidate {
            id: id.into(),
            name: name.into(),
            score: 0.6 * dense + 0.4 * lexical,
            matched_name: name.into(),
            dense: Some(dense),
            lexical: Some(lexical),
            exact: false,
            bonus: 0.0,
            source: "T".into(),
            types: Vec::new(),
            rerank: None,
        }
    }

    #[test]
    fn counts_of_the_own_document_are_left_out() {
        let mut all = Counts::default();
        all.add("mi", "D1");
        all.add("mi", "D1");
        all.add("mi", "D2");
        let mut own = Counts::default();
        own.add("mi", "D1");
        let list = [candidate("D1", "myocardial infarction", 0.5, 0.1)];
        let view = |excluded| CountView {
            all: &all,
            excluded,
        };
        let with = features("mi", &list, &view(None))[0];
        let without = features("mi", &list, &view(Some(&own)))[0];
        assert_eq!(with[7], 3f32.ln(), "two mentions of D1");
        assert_eq!(without[7], 2f32.ln());
        assert_eq!(with[9], 2.0 / 3.0);
        assert_eq!(without[9], 0.5);
        assert_eq!(with[10], 0.0);
    }

    /// A concept the training mentions always chose, ranked second by similarity, is learned
    /// to go first.
    #[test]
    fn fit_learns_that_training_answers_win() {
        let mut counts = Counts::default();
        for _ in 0..5 {
            counts.add("heart attack", "D1");
        }
        let list = vec![
            candidate("D2", "heart disease", 0.8, 0.5),
            candidate("D1", "myocardial infarction", 0.6, 0.1),
            candidate("D3", "attack", 0.3, 0.4),
        ];
        let view = CountView {
            all: &counts,
            excluded: None,
        };
        let lists: Vec<TrainingList> = (0..20)
            .map(|_| TrainingList {
                features: features("heart attack", &list, &view),
                gold: vec![false, true, false],
            })
            .collect();
        let (weights, mean, scale) = fit(&lists, 0.01, 200);
        assert_eq!(
            reranked_gold_rank(&lists[0], &weights, &mean, &scale),
            Some(0)
        );
        let reranker = Reranker {
            format: RERANKER_FORMAT,
            features: FEATURES.iter().map(|s| s.to_string()).collect(),
            weights,
            mean,
            scale,
            depth: 25,
            l2: 0.01,
            abbreviations: false,
            trained_on: Vec::new(),
            trained_for: TrainedFor {
                model_weights_sha256: "ab".repeat(32),
                alpha: 0.5,
            },
            training_lists: 20,
            dev: None,
            counts,
        };
        let ranked = reranker.rerank("heart attack", list.clone());
        assert_eq!(ranked[0].id, "D1");
        assert_eq!(ranked.len(), 3);
        let total: f32 = ranked.iter().map(|c| c.rerank.unwrap()).sum();
        assert!((total - 1.0).abs() < 1e-5);
        assert!(ranked[0].rerank > ranked[1].rerank);
        // The fused scores are the linker's, untouched.
        assert_eq!(ranked[0].score, list[1].score);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(RERANKER_FILE);
        reranker.save(&path).unwrap();
        assert_eq!(Reranker::load(&path).unwrap(), reranker);
        let mut other = reranker.clone();
        other.features.pop();
        other.save(&path).unwrap();
        let err = Reranker::load(&path).unwrap_err().to_string();
        assert!(err.contains("train it again"), "{err}");
        // A file of the first format (no `trained_for`) is named as that, not as a parse error.
        let mut first: serde_json::Value = serde_json::to_value(&reranker).unwrap();
        first["format"] = 1.into();
        first.as_object_mut().unwrap().remove("trained_for");
        std::fs::write(&path, first.to_string()).unwrap();
        let err = Reranker::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("format 1") && err.contains("train it again"),
            "{err}"
        );
        // A depth the linker could never fetch is refused, not obeyed.
        let mut deep = reranker.clone();
        deep.depth = 1_000_000_000;
        deep.save(&path).unwrap();
        let err = Reranker::load(&path).unwrap_err().to_string();
        assert!(err.contains("depth between 1 and 100"), "{err}");

        // It fits only the model and hybrid weight it was trained with.
        reranker.check_fits(&"ab".repeat(32), 0.5).unwrap();
        let err = reranker
            .check_fits(&"cd".repeat(32), 0.5)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("abababababab") && err.contains("cdcdcdcdcdcd"),
            "{err}"
        );
        let err = reranker
            .check_fits(&"ab".repeat(32), 0.6)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("hybrid weight 0.5") && err.contains("0.6"),
            "{err}"
        );
    }
}
