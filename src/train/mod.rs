//! `medlink train encoder`: SapBERT-style contrastive training of the bi-encoder on a CPU.
//!
//! A step takes `batch_pairs` positive pairs (see [`pairs`]) per micro-batch, embeds both
//! sides with dropout, scores the batch with the multi-similarity loss after online hard-pair
//! mining ([`loss`]), and after `accumulation` micro-batches applies one AdamW update
//! ([`optim`]) with global-norm clipping under a linear warm-up / linear decay schedule.
//! With `hard_negatives_every`, half of each micro-batch instead pairs the stream's pairs with
//! pairs of the concepts the current model puts nearest to them ([`neighbours`]).
//!
//! Repeatability: the pair order of epoch `e` comes from `(seed, e)` and the dropout masks
//! of micro-batch `g` from `(seed, g)`, so a run is fixed by its seed, and a run resumed from a
//! checkpoint (weights + AdamW moments + step, and the neighbour table in use) continues
//! exactly as if never stopped.
//!
//! Output directory:
//! - `last/`: the newest checkpoint (a complete model directory + `optimizer.safetensors` +
//!   `trainer_state.json`), replaced atomically every `checkpoint_every` steps and at the end;
//! - `best/`: the model with the best dev acc@1 so far (with `--dev-corpus`), plus `eval.json`.
//!   The dev set is scored before the first step too, so `best/` may be the base model.

pub mod dev;
pub mod loss;
pub mod model;
pub mod neighbours;
pub mod optim;
pub mod pairs;
pub mod tagger;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::Var;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fsutil::{write_atomic, StagingDir};
use crate::model::Dropout;
use crate::rng::SplitMix64;
use dev::DevSet;
use loss::MultiSimilarity;
use model::TrainableEncoder;
use neighbours::{compose_batch, NeighbourTable, PairsByLabel, NEIGHBOURS_FILE};
use optim::{learning_rate, AdamW, AdamWConfig};
use pairs::PairSet;

/// Bumped when `trainer_state.json` changes incompatibly.
const STATE_FORMAT: u32 = 1;
/// Random streams derived from the seed.
const STREAM_ORDER: u64 = 3;
pub(crate) const STREAM_DROPOUT: u64 = 4;
const STREAM_NEIGHBOURS: u64 = 5;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TrainOptions {
    /// Positive pairs per micro-batch (twice as many strings).
    pub batch_pairs: usize,
    /// Micro-batches per optimizer step.
    pub accumulation: usize,
    pub learning_rate: f64,
    pub warmup_steps: usize,
    /// Optimizer steps the schedule spans; training stops there.
    pub steps: usize,
    pub seed: u64,
    pub max_length: usize,
    /// Steps between checkpoints of `last/` (0: only at the end).
    pub checkpoint_every: usize,
    /// Steps between dev evaluations (0: only at the end); evaluation also checkpoints.
    pub eval_every: usize,
    pub weight_decay: f32,
    pub max_grad_norm: Option<f32>,
    pub alpha: f32,
    pub beta: f32,
    pub base: f32,
    pub margin: f32,
    /// Steps between refreshes of the neighbour table that composes half of every batch
    /// from the labels the model confuses ([`neighbours`]); 0: random batches only.
    #[serde(default)]
    pub hard_negatives_every: usize,
}

impl Default for TrainOptions {
    fn default() -> Self {
        let loss = MultiSimilarity::default();
        let optimizer = AdamWConfig::default();
        TrainOptions {
            batch_pairs: 64,
            accumulation: 1,
            learning_rate: 2e-5,
            warmup_steps: 100,
            steps: 2000,
            seed: 42,
            max_length: 25,
            checkpoint_every: 200,
            eval_every: 0,
            weight_decay: optimizer.weight_decay,
            max_grad_norm: optimizer.max_grad_norm,
            alpha: loss.alpha,
            beta: loss.beta,
            base: loss.base,
            margin: loss.margin,
            hard_negatives_every: 0,
        }
    }
}

impl TrainOptions {
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidInput(m));
        if self.batch_pairs < 2 {
            return bad(format!(
                "batch size must be at least 2 pairs (got {})",
                self.batch_pairs
            ));
        }
        if self.accumulation == 0 || self.steps == 0 {
            return bad("accumulation and steps must be at least 1".into());
        }
        if !(self.learning_rate > 0.0 && self.learning_rate < 1.0) {
            return bad(format!(
                "learning rate must be in (0, 1) (got {})",
                self.learning_rate
            ));
        }
        if self.max_length < 3 {
            return bad(format!(
                "max length must be at least 3 (got {})",
                self.max_length
            ));
        }
        Ok(())
    }
}

/// When this invocation stops early (the schedule still spans `TrainOptions::steps`).
#[derive(Debug, Clone, Default)]
pub struct StopRule {
    /// Stop after this many steps in this invocation.
    pub run_steps: Option<usize>,
    /// Stop at the first step boundary after this much wall time.
    pub max_seconds: Option<f64>,
}

impl StopRule {
    /// Whether to stop before another step, `steps_this_run` steps after `started`.
    pub fn reached(&self, steps_this_run: usize, started: Instant) -> bool {
        self.run_steps.is_some_and(|n| steps_this_run >= n)
            || self
                .max_seconds
                .is_some_and(|s| started.elapsed().as_secs_f64() >= s)
    }
}

/// What a trainer tells its observer after each optimizer step (any trainer: `unit` says
/// what `rate` counts, pairs or tokens).
#[derive(Debug, Clone)]
pub struct StepReport<'a> {
    pub step: usize,
    pub total_steps: usize,
    pub loss: f32,
    pub learning_rate: f64,
    pub grad_norm: f32,
    /// Units per second in this step.
    pub rate: f64,
    pub unit: &'a str,
    /// Training wall time so far, summed over invocations.
    pub seconds: f64,
}

/// One optimizer step, as recorded in `trainer_state.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StepRecord {
    pub step: usize,
    pub loss: f32,
    pub learning_rate: f64,
    pub grad_norm: f32,
    pub positive_pairs: usize,
    pub negative_pairs: usize,
    /// Training wall time up to this step, summed over invocations.
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalRecord {
    pub step: usize,
    #[serde(rename = "acc@1")]
    pub acc1: f64,
    #[serde(rename = "acc@5")]
    pub acc5: f64,
    #[serde(rename = "acc@25")]
    pub acc25: f64,
    pub mentions: usize,
    pub seconds: f64,
}

/// `trainer_state.json`: everything besides weights and moments that resuming needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainerState {
    pub format: u32,
    pub step: usize,
    pub options: TrainOptions,
    /// Number of pairs and a hash of them: a resumed run must see the same data.
    pub pairs: usize,
    pub pairs_fingerprint: String,
    pub base_model: String,
    pub history: Vec<StepRecord>,
    pub evaluations: Vec<EvalRecord>,
    pub best: Option<EvalRecord>,
}

/// What a training invocation did.
#[derive(Debug, Clone)]
pub struct TrainSummary {
    pub state: TrainerState,
    pub last: PathBuf,
    pub best: Option<PathBuf>,
    pub steps_this_run: usize,
    pub seconds_this_run: f64,
}

/// Something told about every step of any trainer (a progress bar, a log).
pub trait TrainObserver {
    fn step(&mut self, report: &StepReport);
    fn message(&mut self, text: &str);
}

/// Observer that ignores everything (tests, library use).
pub struct Silent;
impl TrainObserver for Silent {
    fn step(&mut self, _: &StepReport) {}
    fn message(&mut self, _: &str) {}
}

/// Where the run starts from.
pub enum Start<'a> {
    /// A fresh run from a base model directory.
    Base(&'a Path),
    /// Continue `out/last`.
    Resume,
}

pub struct Trainer<'a> {
    pub out: &'a Path,
    /// Worker threads for the encoder passes (results do not depend on it).
    pub threads: usize,
    pub options: TrainOptions,
    pub pairs: &'a PairSet,
    pub dev: Option<&'a DevSet>,
}

impl Trainer<'_> {
    pub fn run(
        &self,
        start: Start,
        stop: &StopRule,
        observer: &mut dyn TrainObserver,
    ) -> Result<TrainSummary> {
        self.options.validate()?;
        let o = &self.options;
        if self.pairs.pairs.len() < o.batch_pairs {
            return Err(Error::InvalidInput(format!(
                "{} training pairs, fewer than one batch of {}",
                self.pairs.pairs.len(),
                o.batch_pairs
            )));
        }
        let fingerprint = fingerprint(self.pairs);
        let last_dir = self.out.join("last");
        let (encoder, mut state) = match start {
            Start::Base(base) => {
                let encoder = TrainableEncoder::load(base, o.max_length)?;
                let state = TrainerState {
                    format: STATE_FORMAT,
                    step: 0,
                    options: o.clone(),
                    pairs: self.pairs.pairs.len(),
                    pairs_fingerprint: fingerprint.clone(),
                    base_model: base.display().to_string(),
                    history: Vec::new(),
                    evaluations: Vec::new(),
                    best: None,
                };
                (encoder, state)
            }
            Start::Resume => {
                let state = read_state(&last_dir)?;
                if state.options != *o {
                    return Err(Error::InvalidInput(format!(
                        "{}: the checkpoint was trained with other options ({:?}); resume with the same ones",
                        last_dir.display(),
                        state.options
                    )));
                }
                if state.pairs_fingerprint != fingerprint {
                    return Err(Error::InvalidInput(format!(
                        "{}: the training pairs differ from the checkpoint's ({} pairs then, {} now): resume with the same ontologies and corpora",
                        last_dir.display(),
                        state.pairs,
                        self.pairs.pairs.len()
                    )));
                }
                (TrainableEncoder::load(&last_dir, o.max_length)?, state)
            }
        };
        let mut optimizer = AdamW::new(
            encoder.vars(),
            AdamWConfig {
                weight_decay: o.weight_decay,
                max_grad_norm: o.max_grad_norm,
                ..AdamWConfig::default()
            },
        );
        if state.step > 0 {
            optimizer.load(&last_dir.join("optimizer.safetensors"))?;
            if optimizer.steps() as usize != state.step {
                return Err(Error::DataCorruption {
                    path: last_dir.clone(),
                    comment: format!(
                        "optimizer has taken {} steps, trainer state says {}",
                        optimizer.steps(),
                        state.step
                    ),
                });
            }
        }
        let tokens = encoder.tokenize(&self.pairs.texts)?;
        let loss_fn = MultiSimilarity {
            alpha: o.alpha,
            beta: o.beta,
            base: o.base,
            margin: o.margin,
        };
        let mut order = PairOrder::new(self.pairs.pairs.len(), o.seed);
        let by_label = (o.hard_negatives_every > 0).then(|| PairsByLabel::new(self.pairs));
        // A run resumed between refreshes continues with the table its checkpoint saved; at a
        // refresh step (and at step 0) the loop builds it, as the uninterrupted run did.
        let mut table: Option<NeighbourTable> =
            if by_label.is_some() && state.step % o.hard_negatives_every != 0 {
                Some(NeighbourTable::load(&last_dir.join(NEIGHBOURS_FILE))?)
            } else {
                None
            };
        let started = Instant::now();
        let seconds_before = state.history.last().map_or(0.0, |r| r.seconds);
        let first_step = state.step;
        let best_dir = self.out.join("best");
        observer.message(&format!(
            "{} pairs over {} strings; step {} of {}",
            self.pairs.pairs.len(),
            self.pairs.texts.len(),
            state.step,
            o.steps
        ));

        // The untrained model's dev score: the learning curve's origin, and `best/` stays the
        // base model if no step beats it.
        if self.dev.is_some() && state.step == 0 && state.evaluations.is_empty() {
            save_checkpoint(&last_dir, &encoder, &optimizer, &state, None)?;
            self.evaluate(&encoder, &mut state, &last_dir, &best_dir, observer)?;
        }
        while state.step < o.steps {
            if stop.reached(state.step - first_step, started) {
                break;
            }
            let step_started = Instant::now();
            let step = state.step;
            if let Some(by_label) = &by_label {
                if step % o.hard_negatives_every == 0 {
                    let built = Instant::now();
                    table = Some(NeighbourTable::build(
                        &encoder,
                        self.pairs,
                        by_label,
                        self.threads,
                    )?);
                    observer.message(&format!(
                        "neighbour table at step {step}: {:.0} s",
                        built.elapsed().as_secs_f64()
                    ));
                }
            }
            let mut parts = Vec::new();
            let (mut loss_sum, mut positive, mut negative) = (0f32, 0usize, 0usize);
            for micro in 0..o.accumulation {
                let global = (step * o.accumulation + micro) as u64;
                let batch = match (&by_label, &table) {
                    (Some(by_label), Some(table)) => {
                        let half = o.batch_pairs.div_ceil(2);
                        let stream = order.batch(global as usize * half, half);
                        let mut rng = SplitMix64::derive(o.seed, STREAM_NEIGHBOURS, global);
                        compose_batch(
                            &stream,
                            o.batch_pairs,
                            self.pairs,
                            by_label,
                            table,
                            &mut rng,
                        )
                    }
                    _ => order.batch(global as usize * o.batch_pairs, o.batch_pairs),
                };
                let mut texts: Vec<&[u32]> = Vec::with_capacity(2 * batch.len());
                let mut labels = Vec::with_capacity(2 * batch.len());
                for side in 0..2 {
                    for &i in &batch {
                        let p = self.pairs.pairs[i];
                        let t = if side == 0 { p.a } else { p.b };
                        texts.push(&tokens[t as usize]);
                        labels.push(p.label);
                    }
                }
                let forward = encoder.forward_groups(&texts, self.threads, |group| {
                    Dropout::new(
                        encoder.config(),
                        SplitMix64::derive(o.seed ^ group as u64, STREAM_DROPOUT, global),
                    )
                })?;
                // The loss sees the whole batch; its gradient flows back group by group.
                let embeddings = Var::from_tensor(&forward.embeddings()?)?;
                let out = loss_fn.loss(embeddings.as_tensor(), &labels)?;
                loss_sum += out.loss.to_scalar::<f32>()?;
                positive += out.positive_pairs;
                negative += out.negative_pairs;
                let scaled = (out.loss / o.accumulation as f64)?;
                let upstream = scaled
                    .backward()?
                    .remove(embeddings.as_tensor())
                    .ok_or_else(|| Error::Internal("loss has no gradient".into()))?;
                parts.extend(forward.backward(&upstream, self.threads, |g| optimizer.collect(g))?);
            }
            let lr = learning_rate(step, o.warmup_steps, o.steps, o.learning_rate);
            let stats = optimizer.step(&parts, lr)?;
            drop(parts);
            if stats.missing_grads > 0 {
                return Err(Error::Internal(format!(
                    "{} weights received no gradient at step {}",
                    stats.missing_grads,
                    step + 1
                )));
            }
            state.step += 1;
            let record = StepRecord {
                step: state.step,
                loss: loss_sum / o.accumulation as f32,
                learning_rate: lr,
                grad_norm: stats.grad_norm,
                positive_pairs: positive,
                negative_pairs: negative,
                seconds: seconds_before + started.elapsed().as_secs_f64(),
            };
            let pairs_per_second = (o.batch_pairs * o.accumulation) as f64
                / step_started.elapsed().as_secs_f64().max(1e-9);
            observer.step(&StepReport {
                step: record.step,
                total_steps: o.steps,
                loss: record.loss,
                learning_rate: record.learning_rate,
                grad_norm: record.grad_norm,
                rate: pairs_per_second,
                unit: "pairs",
                seconds: record.seconds,
            });
            state.history.push(record);

            let at = |every: usize| every > 0 && state.step % every == 0;
            let evaluate_now = self.dev.is_some() && at(o.eval_every);
            if at(o.checkpoint_every) || evaluate_now {
                save_checkpoint(&last_dir, &encoder, &optimizer, &state, table.as_ref())?;
            }
            if evaluate_now {
                self.evaluate(&encoder, &mut state, &last_dir, &best_dir, observer)?;
            }
        }
        let steps_this_run = state.step - first_step;
        if steps_this_run > 0 || !last_dir.join("trainer_state.json").is_file() {
            save_checkpoint(&last_dir, &encoder, &optimizer, &state, table.as_ref())?;
        }
        let evaluated_here = state.evaluations.last().map(|e| e.step) == Some(state.step);
        if self.dev.is_some() && !evaluated_here && steps_this_run > 0 {
            self.evaluate(&encoder, &mut state, &last_dir, &best_dir, observer)?;
        }
        Ok(TrainSummary {
            best: state.best.as_ref().map(|_| best_dir.clone()),
            last: last_dir,
            steps_this_run,
            seconds_this_run: started.elapsed().as_secs_f64(),
            state,
        })
    }

    /// Scores the dev set, records it, and copies the model to `best/` if it is the best yet.
    fn evaluate(
        &self,
        encoder: &TrainableEncoder,
        state: &mut TrainerState,
        last_dir: &Path,
        best_dir: &Path,
        observer: &mut dyn TrainObserver,
    ) -> Result<()> {
        let Some(dev) = self.dev else { return Ok(()) };
        let started = Instant::now();
        let metrics = dev.evaluate(encoder, self.threads)?;
        let acc = |k: usize| metrics.acc.get(&k).copied().unwrap_or(0.0);
        let record = EvalRecord {
            step: state.step,
            acc1: acc(1),
            acc5: acc(5),
            acc25: acc(25),
            mentions: metrics.evaluated,
            seconds: started.elapsed().as_secs_f64(),
        };
        observer.message(&format!(
            "dev at step {}: acc@1 {:.4} acc@5 {:.4} acc@25 {:.4} ({} mentions, {:.0} s)",
            record.step, record.acc1, record.acc5, record.acc25, record.mentions, record.seconds
        ));
        state.evaluations.push(record.clone());
        let improved = state.best.as_ref().is_none_or(|b| record.acc1 > b.acc1);
        if improved {
            state.best = Some(record.clone());
            let staging = StagingDir::new(best_dir)?;
            encoder.save_model(staging.path())?;
            write_json(&staging.path().join("eval.json"), &record)?;
            staging.commit()?;
        }
        // The state in last/ records the evaluation too.
        write_json(&last_dir.join("trainer_state.json"), state)?;
        Ok(())
    }
}

/// Replaces `dir` with a checkpoint of the current weights, moments and state (and the
/// neighbour table in use, if any).
fn save_checkpoint(
    dir: &Path,
    encoder: &TrainableEncoder,
    optimizer: &AdamW,
    state: &TrainerState,
    table: Option<&NeighbourTable>,
) -> Result<()> {
    let save = |d: &Path| {
        encoder.save_model(d)?;
        match table {
            Some(table) => table.save(&d.join(NEIGHBOURS_FILE)),
            None => Ok(()),
        }
    };
    write_checkpoint(dir, save, optimizer, state)
}

/// Writes a checkpoint directory atomically (any trainer): the model files written by
/// `save_model` into a staging directory, the AdamW moments and `trainer_state.json`, then
/// renamed over `dir`.
pub(crate) fn write_checkpoint(
    dir: &Path,
    save_model: impl FnOnce(&Path) -> Result<()>,
    optimizer: &AdamW,
    state: &impl Serialize,
) -> Result<()> {
    let staging = StagingDir::new(dir)?;
    save_model(staging.path())?;
    optimizer.save(&staging.path().join("optimizer.safetensors"))?;
    write_json(&staging.path().join("trainer_state.json"), state)?;
    staging.commit()?;
    Ok(())
}

/// Reads a `trainer_state.json` (any trainer's), naming the file in errors.
pub(crate) fn read_json_file<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::parse(path, e.line(), None, e.to_string()))
}

pub fn read_state(dir: &Path) -> Result<TrainerState> {
    let path = dir.join("trainer_state.json");
    let state: TrainerState = read_json_file(&path)?;
    if state.format != STATE_FORMAT {
        return Err(Error::parse(
            &path,
            1,
            Some("format"),
            format!(
                "trainer state format {} (this medlink reads {STATE_FORMAT})",
                state.format
            ),
        ));
    }
    Ok(state)
}

pub(crate) fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    let text = serde_json::to_vec_pretty(value).map_err(|e| Error::Internal(e.to_string()))?;
    write_atomic(path, |w| w.write_all(&text))
}

/// A stable hash of the pair set (texts and pairs), to refuse resuming on other data.
fn fingerprint(pairs: &PairSet) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for t in &pairs.texts {
        h.update(t.as_bytes());
        h.update([0]);
    }
    for p in &pairs.pairs {
        h.update(p.a.to_le_bytes());
        h.update(p.b.to_le_bytes());
        h.update(p.label.to_le_bytes());
    }
    crate::fsutil::hex(&h.finalize())
}

/// The endless stream of item indices (pairs, windows): epoch `e` is a permutation drawn
/// from `(seed, e)`, so position `p` of the stream is fixed by the seed alone.
pub(crate) struct PairOrder {
    n: usize,
    seed: u64,
    epochs: HashMap<usize, Vec<u32>>,
}

impl PairOrder {
    pub(crate) fn new(n: usize, seed: u64) -> Self {
        PairOrder {
            n,
            seed,
            epochs: HashMap::new(),
        }
    }

    /// Pair indices at stream positions `start..start + len`.
    pub(crate) fn batch(&mut self, start: usize, len: usize) -> Vec<usize> {
        (start..start + len)
            .map(|pos| {
                let epoch = pos / self.n;
                if !self.epochs.contains_key(&epoch) {
                    // Only the current and next epoch are ever needed.
                    self.epochs.retain(|&e, _| e + 1 >= epoch);
                    let mut perm: Vec<u32> = (0..self.n as u32).collect();
                    SplitMix64::derive(self.seed, STREAM_ORDER, epoch as u64).shuffle(&mut perm);
                    self.epochs.insert(epoch, perm);
                }
                self.epochs[&epoch][pos % self.n] as usize
            })
            .collect()
    }
}
