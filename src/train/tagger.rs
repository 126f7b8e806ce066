//! `medlink train tagger`: fine-tuning a token classifier (the NER tagger) on annotated corpora.
//!
//! Documents are cut into windows of `max_length` tokens sharing `stride` tokens (the tagger's
//! own windows, [`Tagger::windows`]); gold spans are resolved by the overlap policy and turned
//! into IOB2 labels on the first sub-token of each word ([`crate::ner::labels`]). A step takes
//! `batch_size` windows from the seeded endless window stream, runs them in length-sorted
//! groups on worker threads (each group with its own seeded dropout), sums the groups' weight
//! gradients and applies one AdamW update ([`super::optim`]) under warm-up / linear decay with
//! global-norm clipping: the encoder trainer's machinery, and its promises — a run is fixed by
//! its seed and independent of the thread count, and `--resume` continues bit for bit.
//!
//! Losses ([`TokenLoss`]): cross-entropy, class-weighted cross-entropy (weights
//! `n / (classes * n_c)` from the training labels, scikit-learn's "balanced"; a label never
//! seen weighs 1) normalised by the summed weights of the step's labelled tokens (PyTorch's
//! `reduction="mean"`), and focal loss `-(1 - p)^gamma log p` averaged over labelled tokens.
//!
//! Dev evaluation tags the dev documents with the tagger itself (`first` aggregation, the same
//! windows) and scores entity-level strict F1 — exact character span and type, seqeval's
//! definition on spans — with [`crate::eval::metrics::ner_metrics`]. `best/` keeps the best
//! dev F1; training stops early after `patience` evaluations without improvement.
//!
//! Output directory: `last/` and `best/` are Hugging Face token-classification directories of
//! the base's architecture (`BertForTokenClassification`, `RobertaForTokenClassification` or
//! `XLMRobertaForTokenClassification`: `config.json` with the base's `model_type`,
//! `architectures`, `id2label`/`label2id`; `model.safetensors` with `bert.` or `roberta.` and
//! `classifier.` weights; tokenizer files); `last/` adds `optimizer.safetensors` and
//! `trainer_state.json`, `best/` adds `eval.json`. Each is replaced atomically.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use serde::{Deserialize, Serialize};

use super::optim::{learning_rate, AdamW, AdamWConfig, Grads};
use super::{read_json_file, write_checkpoint, write_json, PairOrder, StepReport, StopRule};
use super::{Silent, TrainObserver, STREAM_DROPOUT};
use crate::error::{Error, Result};
use crate::eval::metrics::{ner_metrics, NerReport, Span};
use crate::eval::Corpus;
use crate::fsutil::StagingDir;
use crate::model::{self, Config, Dropout};
use crate::ner::aggregate::Strategy;
use crate::ner::labels::{align_labels, resolve_overlaps, CharSpan, LabelSet, TokenInfo, IGNORE};
use crate::ner::tagger::{self, Tagger, TaggerOptions, TokenClassifier};
use crate::ner::CharOffsets;
use crate::parallel::parallel_map;
use crate::rng::SplitMix64;

/// Bumped when the tagger's `trainer_state.json` changes incompatibly.
const STATE_FORMAT: u32 = 1;
/// Windows per forward pass in training.
const TRAIN_GROUP: usize = 8;
const STREAM_HEAD_INIT: u64 = 5;

/// Files copied from the base model into every checkpoint (`config.json` is rewritten).
const TOKENIZER_FILES: &[&str] = &[
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "sentencepiece.bpe.model",
];

/// The training loss over labelled tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TokenLoss {
    Ce,
    WeightedCe,
    Focal,
}

impl std::str::FromStr for TokenLoss {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "ce" => Ok(TokenLoss::Ce),
            "weighted-ce" => Ok(TokenLoss::WeightedCe),
            "focal" => Ok(TokenLoss::Focal),
            _ => Err(Error::InvalidInput(format!(
                "unknown loss `{s}` (expected ce, weighted-ce or focal)"
            ))),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TaggerTrainOptions {
    /// Windows per optimizer step.
    pub batch_size: usize,
    pub learning_rate: f64,
    pub warmup_steps: usize,
    /// Optimizer steps the schedule spans; training stops there.
    pub steps: usize,
    pub seed: u64,
    /// Tokens per window, special tokens included.
    pub max_length: usize,
    /// Tokens shared by consecutive windows of a document.
    pub stride: usize,
    /// Steps between checkpoints of `last/` (0: only at the end).
    pub checkpoint_every: usize,
    /// Steps between dev evaluations (0: only at the end).
    pub eval_every: usize,
    /// Evaluations without a better dev F1 before stopping (0: never stop early).
    pub patience: usize,
    pub weight_decay: f32,
    pub max_grad_norm: Option<f32>,
    pub loss: TokenLoss,
    pub focal_gamma: f32,
}

impl Default for TaggerTrainOptions {
    fn default() -> Self {
        TaggerTrainOptions {
            batch_size: 16,
            // README's recipe ("Training a tagger"), chosen on NCBI-disease dev: over 1,000
            // steps, 1e-4 led 5e-5 at every evaluation (strict F1 0.821 / 0.801 at the end).
            learning_rate: 1e-4,
            warmup_steps: 30,
            steps: 1000,
            seed: 42,
            max_length: 128,
            stride: 32,
            checkpoint_every: 100,
            eval_every: 100,
            patience: 0,
            weight_decay: 0.01,
            max_grad_norm: Some(1.0),
            loss: TokenLoss::Ce,
            focal_gamma: 2.0,
        }
    }
}

impl TaggerTrainOptions {
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidInput(m));
        if self.batch_size == 0 || self.steps == 0 {
            return bad("batch size and steps must be at least 1".into());
        }
        if !(self.learning_rate > 0.0 && self.learning_rate < 1.0) {
            return bad(format!(
                "learning rate must be in (0, 1) (got {})",
                self.learning_rate
            ));
        }
        if self.max_length < 4 || self.stride + 3 > self.max_length {
            return bad(format!(
                "max length {} leaves no room to advance with stride {}",
                self.max_length, self.stride
            ));
        }
        if !(self.focal_gamma >= 0.0 && self.focal_gamma.is_finite()) {
            return bad(format!(
                "focal gamma must be >= 0 (got {})",
                self.focal_gamma
            ));
        }
        Ok(())
    }
}

/// One training window: token ids and a label per token ([`IGNORE`] for special tokens and
/// later sub-tokens).
#[derive(Debug, Clone, PartialEq)]
pub struct TrainWindow {
    pub ids: Vec<u32>,
    pub labels: Vec<i64>,
}

/// A corpus turned into training windows, with what the conversion had to drop.
#[derive(Debug, Clone, Default)]
pub struct WindowSet {
    pub windows: Vec<TrainWindow>,
    /// Gold spans dropped by the overlap policy (nested or crossing spans).
    pub dropped_overlapping: usize,
    /// Kept spans that no token covers (whitespace-only or past the text).
    pub uncovered: usize,
    pub spans: usize,
    /// Labelled tokens per label id.
    pub label_counts: Vec<usize>,
}

impl WindowSet {
    /// Windows of every document of `corpus` for `tagger` (its tokenizer, window and labels).
    /// A span past its document's end is an error naming the document.
    pub fn new(corpus: &Corpus, tagger: &Tagger) -> Result<Self> {
        let labels = tagger.labels();
        let mut set = WindowSet {
            label_counts: vec![0; labels.len()],
            ..Default::default()
        };
        for doc in &corpus.documents {
            let chars = CharOffsets::new(&doc.text);
            let spans: Vec<CharSpan> = doc
                .mentions
                .iter()
                .map(|m| {
                    if m.end > chars.len() || m.start > m.end {
                        return Err(Error::InvalidInput(format!(
                            "document {}: span {}..{} ({:?}) lies outside its {} characters",
                            doc.id,
                            m.start,
                            m.end,
                            m.text,
                            chars.len()
                        )));
                    }
                    Ok(CharSpan {
                        start: m.start,
                        end: m.end,
                        entity_type: m.entity_type.clone(),
                    })
                })
                .collect::<Result<_>>()?;
            let (kept, dropped) = resolve_overlaps(&spans);
            set.dropped_overlapping += dropped;
            set.spans += kept.len();
            let mut covered = vec![false; kept.len()];
            for encoding in tagger.windows(&doc.text)? {
                let tokens: Vec<TokenInfo> = encoding
                    .get_offsets()
                    .iter()
                    .zip(encoding.get_word_ids())
                    .zip(encoding.get_special_tokens_mask())
                    .map(|((&(b0, b1), &word), &special)| TokenInfo {
                        word: if special == 1 { None } else { word },
                        start: chars.char_at(b0),
                        end: chars.char_at(b1),
                    })
                    .collect();
                for (k, s) in kept.iter().enumerate() {
                    covered[k] |= tokens
                        .iter()
                        .any(|t| t.word.is_some() && t.start < s.end && t.end > s.start);
                }
                let window_labels = align_labels(&tokens, &kept, labels)?;
                for &l in &window_labels {
                    if l != IGNORE {
                        set.label_counts[l as usize] += 1;
                    }
                }
                set.windows.push(TrainWindow {
                    ids: encoding.get_ids().to_vec(),
                    labels: window_labels,
                });
            }
            set.uncovered += covered.iter().filter(|c| !**c).count();
        }
        Ok(set)
    }

    /// Class weights `n / (classes * n_c)` (1 for a label never seen).
    pub fn class_weights(&self) -> Vec<f32> {
        let n: usize = self.label_counts.iter().sum();
        let classes = self.label_counts.len();
        self.label_counts
            .iter()
            .map(|&c| {
                if c == 0 {
                    1.0
                } else {
                    n as f32 / (classes as f32 * c as f32)
                }
            })
            .collect()
    }

    /// A hash of the windows, to refuse resuming on other data.
    fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for w in &self.windows {
            for id in &w.ids {
                h.update(id.to_le_bytes());
            }
            for l in &w.labels {
                h.update(l.to_le_bytes());
            }
            h.update([0xff]);
        }
        crate::fsutil::hex(&h.finalize())
    }
}

/// The loss of one group of windows: the sum over its labelled tokens of each token's loss
/// times `coefficient` (its class weight over the step's normaliser). `logits` is `(n, labels)`
/// of the labelled tokens, `targets` their label ids.
pub fn token_loss(
    logits: &Tensor,
    targets: &[u32],
    coefficients: &[f32],
    loss: TokenLoss,
    gamma: f32,
) -> candle_core::Result<Tensor> {
    let (n, classes) = logits.dims2()?;
    let mut one_hot = vec![0f32; n * classes];
    for (row, &t) in targets.iter().enumerate() {
        one_hot[row * classes + t as usize] = 1.0;
    }
    let one_hot = Tensor::from_vec(one_hot, (n, classes), logits.device())?;
    let coefficients = Tensor::from_slice(coefficients, n, logits.device())?;
    let log_p = candle_nn::ops::log_softmax(logits, 1)?;
    let log_p_target = (log_p * one_hot)?.sum(1)?;
    let per_token = match loss {
        TokenLoss::Ce | TokenLoss::WeightedCe => log_p_target.neg()?,
        TokenLoss::Focal => {
            let p = log_p_target.exp()?;
            // (1 - p)^gamma, with 1 - p kept off 0 so the power's gradient stays finite.
            let modulator = (p.neg()? + 1.0)?
                .clamp(1e-12f32, 1f32)?
                .powf(gamma as f64)?;
            (modulator * log_p_target)?.neg()?
        }
    };
    (per_token * coefficients)?.sum_all()
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TaggerStepRecord {
    pub step: usize,
    pub loss: f32,
    pub learning_rate: f64,
    pub grad_norm: f32,
    /// Tokens (not padding) in the step.
    pub tokens: usize,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaggerEvalRecord {
    pub step: usize,
    /// Entity-level strict F1 (exact span and type), micro-averaged.
    pub f1: f64,
    pub precision: f64,
    pub recall: f64,
    pub per_type_f1: BTreeMap<String, f64>,
    pub gold: usize,
    pub predicted: usize,
    pub seconds: f64,
}

/// The tagger trainer's `trainer_state.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaggerTrainerState {
    pub format: u32,
    pub kind: String,
    pub step: usize,
    pub options: TaggerTrainOptions,
    pub labels: Vec<String>,
    pub windows: usize,
    pub windows_fingerprint: String,
    pub base_model: String,
    pub history: Vec<TaggerStepRecord>,
    pub evaluations: Vec<TaggerEvalRecord>,
    pub best: Option<TaggerEvalRecord>,
    /// Set when early stopping ended the run.
    #[serde(default)]
    pub stopped_early: bool,
}

/// The model being trained: trainable weights, the tagger built over them (its weights are
/// the variables, updated in place), and what saving a checkpoint needs.
pub struct TrainableTagger {
    pub varmap: VarMap,
    pub tagger: Tagger,
    config_json: serde_json::Value,
    base: PathBuf,
}

impl TrainableTagger {
    /// Loads `dir` with trainable weights. `labels`: the training labels; when `dir` already
    /// has a classification head, its labels must be the same (in any order: the checkpoint's
    /// ids are kept). A new head is drawn from `seed`.
    pub fn load(dir: &Path, labels: &LabelSet, options: &TaggerOptions, seed: u64) -> Result<Self> {
        let files = crate::encoder::model_files(dir)?;
        let config = model::read_config(&files.config)?;
        let mut config_json: serde_json::Value = read_json_file(&files.config)?;
        let weights = candle_core::safetensors::load(&files.weights, &Device::Cpu)
            .map_err(|e| Error::model(format!("{}: {e}", files.weights.display())))?;
        let has_head = weights.contains_key("classifier.weight");
        let mut labels = labels.clone();
        if has_head {
            let theirs = LabelSet::from_config(&config_json, &files.config)?;
            let sorted = |l: &LabelSet| {
                let mut v = l.labels().to_vec();
                v.sort();
                v
            };
            // The same labels in another order: keep the checkpoint's ids.
            match theirs {
                Some(t) if sorted(&t) == sorted(&labels) => labels = t,
                theirs => {
                    return Err(Error::InvalidInput(format!(
                    "{}: the checkpoint's labels [{}] differ from the training corpus's [{}]: train from a base without a classification head, or on corpora with the same entity types",
                    files.config.display(),
                    theirs.map(|l| l.labels().join(", ")).unwrap_or_default(),
                    labels.labels().join(", ")
                )));
                }
            }
        }
        let labels = &labels;
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        // Saved under transformers' names for the task model: `bert.…` / `roberta.…`.
        let prefix = config.architecture.weight_prefix();
        let model =
            TokenClassifier::load(vb.pp(prefix), vb.pp("classifier"), &config, labels.len())?;
        let unprefixed = format!("{prefix}.");
        for (name, var) in varmap.data().lock().expect("varmap lock").iter() {
            let stored = weights
                .get(name)
                .or_else(|| name.strip_prefix(&unprefixed).and_then(|n| weights.get(n)));
            let value = match stored {
                Some(t) => t.to_dtype(DType::F32)?,
                None if name == "classifier.weight" && !has_head => {
                    // transformers' initialisation: N(0, 0.02), drawn from the seed.
                    let mut rng = SplitMix64::derive(seed, STREAM_HEAD_INIT, 0);
                    let values: Vec<f32> = (0..var.elem_count())
                        .map(|_| 0.02 * normal(&mut rng))
                        .collect();
                    Tensor::from_vec(values, var.shape(), &Device::Cpu)?
                }
                None if name == "classifier.bias" && !has_head => var.zeros_like()?,
                None => {
                    return Err(Error::model(format!(
                        "{}: no tensor `{name}`",
                        files.weights.display()
                    )))
                }
            };
            var.set(&value)
                .map_err(|e| Error::model(format!("{}: `{name}`: {e}", files.weights.display())))?;
        }
        let (id2label, label2id) = labels.to_config();
        config_json["id2label"] = id2label;
        config_json["label2id"] = label2id;
        config_json["architectures"] =
            serde_json::json!([config.architecture.token_classification_class()]);
        // transformers picks the class by `model_type`; a BERT base may lack it.
        config_json["model_type"] = config.architecture.model_type().into();
        if let Some(map) = config_json.as_object_mut() {
            map.remove("num_labels");
        }
        let tokenizer = tagger::load_tokenizer(&files.tokenizer)?;
        let window = tagger::default_window(dir, &config)?;
        let tagger = Tagger::new(model, tokenizer, labels.clone(), &config, window, options)?;
        Ok(TrainableTagger {
            varmap,
            tagger,
            config_json,
            base: dir.to_path_buf(),
        })
    }

    pub fn config(&self) -> &Config {
        self.tagger.model().encoder.config()
    }

    /// Named trainable weights.
    pub fn vars(&self) -> Vec<(String, candle_core::Var)> {
        let mut vars: Vec<_> = self
            .varmap
            .data()
            .lock()
            .expect("varmap lock")
            .iter()
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        vars
    }

    /// Forward pass and loss of one group of windows, with dropout; `coefficient(label)` is
    /// the factor of a token of that label (weight over the step's normaliser).
    pub fn group_loss(
        &self,
        windows: &[&TrainWindow],
        dropout: &mut Dropout,
        coefficient: &dyn Fn(usize) -> f32,
        loss: TokenLoss,
        gamma: f32,
    ) -> Result<Tensor> {
        let tokens: Vec<&[u32]> = windows.iter().map(|w| w.ids.as_slice()).collect();
        let (ids, mask) = model::batch_tensors(&tokens, self.tagger.pad_id(), &Device::Cpu)?;
        let logits = self.tagger.model().forward(&ids, &mask, Some(dropout))?;
        let (b, s, classes) = logits.dims3()?;
        let mut rows = Vec::new();
        let mut targets = Vec::new();
        let mut coefficients = Vec::new();
        for (w, window) in windows.iter().enumerate() {
            for (t, &label) in window.labels.iter().enumerate() {
                if label != IGNORE {
                    rows.push((w * s + t) as u32);
                    targets.push(label as u32);
                    coefficients.push(coefficient(label as usize));
                }
            }
        }
        if rows.is_empty() {
            // No labelled token: a zero loss that still reaches every weight (with zeros).
            return Ok((logits.sum_all()? * 0.0)?);
        }
        let index = Tensor::from_vec(rows.clone(), rows.len(), &Device::Cpu)?;
        let picked = logits.reshape((b * s, classes))?.index_select(&index, 0)?;
        Ok(token_loss(&picked, &targets, &coefficients, loss, gamma)?)
    }

    /// Writes the model directory into `dir` (an empty staging directory).
    pub fn save_model(&self, dir: &Path) -> Result<()> {
        for name in TOKENIZER_FILES {
            let from = self.base.join(name);
            if from.is_file() {
                let to = dir.join(name);
                std::fs::copy(&from, &to).map_err(|e| Error::io(&to, e))?;
            }
        }
        // The window the model was trained on is the one to tag with: a tagger fine-tuned on
        // 128-token windows lost 4.5 points of BC5CDR dev F1 when run on the base's 512-token
        // windows. medlink's tagger and transformers' pipeline both read it from here.
        let tokenizer_config = dir.join("tokenizer_config.json");
        let mut fields = match std::fs::read(&tokenizer_config) {
            Ok(bytes) => serde_json::from_slice::<serde_json::Value>(&bytes).map_err(|e| {
                Error::DataCorruption {
                    path: tokenizer_config.clone(),
                    comment: format!("not JSON: {e}"),
                }
            })?,
            Err(_) => serde_json::json!({}),
        };
        if let Some(object) = fields.as_object_mut() {
            object.insert("model_max_length".into(), self.tagger.max_length().into());
        }
        write_json(&tokenizer_config, &fields)?;
        write_json(&dir.join("config.json"), &self.config_json)?;
        let weights = dir.join("model.safetensors");
        self.varmap
            .save(&weights)
            .map_err(|e| Error::model(format!("{}: {e}", weights.display())))
    }
}

/// A standard normal draw (Box–Muller) from a seeded generator.
fn normal(rng: &mut SplitMix64) -> f32 {
    let u1 = rng.next_f32().max(f32::MIN_POSITIVE);
    let u2 = rng.next_f32();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f32::consts::PI * u2).cos()
}

/// Where a run starts from.
pub enum TaggerStart<'a> {
    /// A fresh run from a base model directory (with or without a head).
    Base(&'a Path),
    /// Continue `out/last`.
    Resume,
}

/// What a tagger training invocation did.
#[derive(Debug, Clone)]
pub struct TaggerTrainSummary {
    pub state: TaggerTrainerState,
    pub last: PathBuf,
    pub best: Option<PathBuf>,
    pub steps_this_run: usize,
    pub seconds_this_run: f64,
}

pub struct TaggerTrainer<'a> {
    pub out: &'a Path,
    pub threads: usize,
    pub options: TaggerTrainOptions,
    pub train: &'a Corpus,
    pub dev: Option<&'a Corpus>,
}

impl TaggerTrainer<'_> {
    /// The label set of the training corpus (IOB2 over its entity types).
    pub fn labels(&self) -> LabelSet {
        LabelSet::iob2(self.train.mentions().map(|(_, m)| m.entity_type.clone()))
    }

    fn tagger_options(&self) -> TaggerOptions {
        TaggerOptions {
            max_length: Some(self.options.max_length),
            stride: self.options.stride,
            threads: self.threads,
            strategy: Strategy::First,
            ..TaggerOptions::default()
        }
    }

    pub fn run(
        &self,
        start: TaggerStart,
        stop: &StopRule,
        observer: &mut dyn TrainObserver,
    ) -> Result<TaggerTrainSummary> {
        self.options.validate()?;
        let o = &self.options;
        let labels = self.labels();
        if labels.len() < 3 {
            return Err(Error::InvalidInput(
                "the training corpus has no gold mention: nothing to learn".into(),
            ));
        }
        let last_dir = self.out.join("last");
        let best_dir = self.out.join("best");
        let (model, mut state) = match start {
            TaggerStart::Base(base) => {
                let model = TrainableTagger::load(base, &labels, &self.tagger_options(), o.seed)?;
                let state = TaggerTrainerState {
                    format: STATE_FORMAT,
                    kind: "tagger".into(),
                    step: 0,
                    options: o.clone(),
                    labels: labels.labels().to_vec(),
                    windows: 0,
                    windows_fingerprint: String::new(),
                    base_model: base.display().to_string(),
                    history: Vec::new(),
                    evaluations: Vec::new(),
                    best: None,
                    stopped_early: false,
                };
                (model, state)
            }
            TaggerStart::Resume => {
                let path = last_dir.join("trainer_state.json");
                let state: TaggerTrainerState = read_json_file(&path)?;
                if state.format != STATE_FORMAT || state.kind != "tagger" {
                    return Err(Error::parse(
                        &path,
                        1,
                        Some("format"),
                        format!(
                            "not a tagger trainer state of format {STATE_FORMAT} (kind `{}`, format {})",
                            state.kind, state.format
                        ),
                    ));
                }
                if state.options != *o {
                    return Err(Error::InvalidInput(format!(
                        "{}: the checkpoint was trained with other options ({:?}); resume with the same ones",
                        last_dir.display(),
                        state.options
                    )));
                }
                let model =
                    TrainableTagger::load(&last_dir, &labels, &self.tagger_options(), o.seed)?;
                (model, state)
            }
        };
        state.labels = model.tagger.labels().labels().to_vec();
        let data = WindowSet::new(self.train, &model.tagger)?;
        let fingerprint = data.fingerprint();
        if state.step > 0 && state.windows_fingerprint != fingerprint {
            return Err(Error::InvalidInput(format!(
                "{}: the training windows differ from the checkpoint's ({} windows then, {} now): resume with the same corpora and options",
                last_dir.display(),
                state.windows,
                data.windows.len()
            )));
        }
        state.windows = data.windows.len();
        state.windows_fingerprint = fingerprint;
        if data.windows.is_empty() {
            return Err(Error::InvalidInput(
                "the training corpus has no document".into(),
            ));
        }
        observer.message(&format!(
            "{} windows of at most {} tokens from {} documents; {} gold spans ({} dropped as nested or overlapping, {} cover no token); labels {}",
            data.windows.len(),
            model.tagger.max_length(),
            self.train.documents.len(),
            data.spans,
            data.dropped_overlapping,
            data.uncovered,
            labels.labels().join(" ")
        ));
        let weights = match o.loss {
            TokenLoss::WeightedCe => data.class_weights(),
            _ => vec![1.0; labels.len()],
        };

        let mut optimizer = AdamW::new(
            model.vars(),
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
        let mut order = PairOrder::new(data.windows.len(), o.seed);
        let started = Instant::now();
        let seconds_before = state.history.last().map_or(0.0, |r| r.seconds);
        let first_step = state.step;

        while state.step < o.steps && !state.stopped_early {
            if stop.reached(state.step - first_step, started) {
                break;
            }
            let step_started = Instant::now();
            let step = state.step;
            let batch = order.batch(step * o.batch_size, o.batch_size);
            let mut sorted = batch.clone();
            sorted.sort_by_key(|&i| (data.windows[i].ids.len(), i));
            let groups: Vec<Vec<&TrainWindow>> = sorted
                .chunks(TRAIN_GROUP)
                .map(|c| c.iter().map(|&i| &data.windows[i]).collect())
                .collect();
            // The step's normaliser: labelled tokens (CE, focal) or their summed weights.
            let normaliser: f32 = groups
                .iter()
                .flatten()
                .flat_map(|w| w.labels.iter())
                .filter(|&&l| l != IGNORE)
                .map(|&l| weights[l as usize])
                .sum::<f32>()
                .max(1e-12);
            let coefficient = |label: usize| weights[label] / normaliser;
            let results = parallel_map(groups.len(), self.threads, |g| {
                let mut dropout = Dropout::new(
                    model.config(),
                    SplitMix64::derive(o.seed ^ g as u64, STREAM_DROPOUT, step as u64),
                );
                let loss = model.group_loss(
                    &groups[g],
                    &mut dropout,
                    &coefficient,
                    o.loss,
                    o.focal_gamma,
                )?;
                let value = loss.to_scalar::<f32>()?;
                let grads: Grads = optimizer.collect(&loss.backward()?);
                Ok((value, grads))
            })?;
            let loss: f32 = results.iter().map(|(v, _)| v).sum();
            let parts: Vec<Grads> = results.into_iter().map(|(_, g)| g).collect();
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
            let tokens: usize = batch.iter().map(|&i| data.windows[i].ids.len()).sum();
            let record = TaggerStepRecord {
                step: state.step,
                loss,
                learning_rate: lr,
                grad_norm: stats.grad_norm,
                tokens,
                seconds: seconds_before + started.elapsed().as_secs_f64(),
            };
            observer.step(&StepReport {
                step: record.step,
                total_steps: o.steps,
                loss,
                learning_rate: lr,
                grad_norm: stats.grad_norm,
                rate: tokens as f64 / step_started.elapsed().as_secs_f64().max(1e-9),
                unit: "tokens",
                seconds: record.seconds,
            });
            state.history.push(record);

            let at = |every: usize| every > 0 && state.step % every == 0;
            let evaluate_now = self.dev.is_some() && at(o.eval_every);
            if at(o.checkpoint_every) || evaluate_now {
                write_checkpoint(&last_dir, |d| model.save_model(d), &optimizer, &state)?;
            }
            if evaluate_now {
                self.evaluate(&model, &mut state, &last_dir, &best_dir, observer)?;
            }
        }
        let steps_this_run = state.step - first_step;
        if steps_this_run > 0 || !last_dir.join("trainer_state.json").is_file() {
            write_checkpoint(&last_dir, |d| model.save_model(d), &optimizer, &state)?;
        }
        let evaluated_here = state.evaluations.last().map(|e| e.step) == Some(state.step);
        if self.dev.is_some() && !evaluated_here && steps_this_run > 0 {
            self.evaluate(&model, &mut state, &last_dir, &best_dir, observer)?;
        }
        Ok(TaggerTrainSummary {
            best: state.best.as_ref().map(|_| best_dir.clone()),
            last: last_dir,
            steps_this_run,
            seconds_this_run: started.elapsed().as_secs_f64(),
            state,
        })
    }

    /// Scores the dev corpus, records it, updates `best/`, and decides early stopping.
    fn evaluate(
        &self,
        model: &TrainableTagger,
        state: &mut TaggerTrainerState,
        last_dir: &Path,
        best_dir: &Path,
        observer: &mut dyn TrainObserver,
    ) -> Result<()> {
        let Some(dev) = self.dev else { return Ok(()) };
        let started = Instant::now();
        let report = evaluate_tagger(&model.tagger, dev)?;
        let s = &report.strict;
        let record = TaggerEvalRecord {
            step: state.step,
            f1: s.overall.f1,
            precision: s.overall.precision,
            recall: s.overall.recall,
            per_type_f1: s.per_type.iter().map(|(t, p)| (t.clone(), p.f1)).collect(),
            gold: report.gold,
            predicted: report.predicted,
            seconds: started.elapsed().as_secs_f64(),
        };
        let per_type: Vec<String> = record
            .per_type_f1
            .iter()
            .map(|(t, f)| format!("{t} {f:.4}"))
            .collect();
        observer.message(&format!(
            "dev at step {}: strict F1 {:.4} (P {:.4} R {:.4}; {}) {} gold, {} predicted ({:.0} s)",
            record.step,
            record.f1,
            record.precision,
            record.recall,
            per_type.join(", "),
            record.gold,
            record.predicted,
            record.seconds
        ));
        state.evaluations.push(record.clone());
        let improved = state.best.as_ref().is_none_or(|b| record.f1 > b.f1);
        if improved {
            state.best = Some(record.clone());
            let staging = StagingDir::new(best_dir)?;
            model.save_model(staging.path())?;
            write_json(&staging.path().join("eval.json"), &record)?;
            staging.commit()?;
        } else if self.options.patience > 0 {
            let best_step = state.best.as_ref().map_or(0, |b| b.step);
            let since = state
                .evaluations
                .iter()
                .filter(|e| e.step > best_step)
                .count();
            if since >= self.options.patience {
                state.stopped_early = true;
                observer.message(&format!(
                    "early stop: {since} evaluations without a better dev F1 than step {best_step}"
                ));
            }
        }
        write_json(&last_dir.join("trainer_state.json"), state)?;
        Ok(())
    }
}

/// Tags `corpus` with `tagger` (`first` aggregation) and scores the spans against its gold
/// mentions (strict and lenient, per type). Gold mentions of types the tagger does not know
/// still count as misses.
pub fn evaluate_tagger(tagger: &Tagger, corpus: &Corpus) -> Result<NerReport> {
    let predicted = tag_corpus(tagger, corpus, Strategy::First)?;
    Ok(ner_metrics(&corpus.spans(), &predicted))
}

/// The entities `tagger` finds in every document of `corpus`, as spans to score.
pub fn tag_corpus(tagger: &Tagger, corpus: &Corpus, strategy: Strategy) -> Result<Vec<Span>> {
    let texts: Vec<&str> = corpus.documents.iter().map(|d| d.text.as_str()).collect();
    let mut predicted = Vec::new();
    // Batches of documents keep memory bounded on large dev sets.
    for (chunk, docs) in texts.chunks(64).zip(corpus.documents.chunks(64)) {
        let entities = tagger.tag_batch(chunk, strategy)?;
        for (doc, ents) in docs.iter().zip(entities) {
            predicted.extend(ents.into_iter().map(|e| Span {
                doc: doc.id.clone(),
                start: e.start,
                end: e.end,
                entity_type: e.entity_group,
            }));
        }
    }
    Ok(predicted)
}

/// Trains with no observer (tests, library use).
pub fn train_silently(
    trainer: &TaggerTrainer,
    start: TaggerStart,
    stop: &StopRule,
) -> Result<TaggerTrainSummary> {
    trainer.run(start, stop, &mut Silent)
}
