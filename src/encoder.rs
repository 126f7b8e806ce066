//! Text encoders: strings in, L2-normalised vectors out.
//!
//! [`TransformerEncoder`] loads a local Hugging Face model directory of any architecture
//! [`crate::model`] runs (BERT, RoBERTa, XLM-RoBERTa, DeBERTa-v2/v3: `config.json`,
//! `model.safetensors`, `tokenizer.json`, optional `1_Pooling/config.json`) and runs it with candle. Inputs are tokenized once, sorted by token length and cut into batches, so a batch
//! pads only to its own longest member (length sorting is worth about 1.8x on short names);
//! results come back in input order. The padding configured in `tokenizer.json` is ignored
//! (sentence-transformers exports pad to a fixed 128 tokens); a batch also ends early where
//! padding to a longer string would waste tokens ([`length_buckets`]). Output vectors have unit norm, and
//! a string's vector does not depend on the batch it was encoded in.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};
use tokenizers::{Tokenizer, TruncationParams};

use crate::error::{Error, Result};
use crate::model::{self, Config, Transformer};

/// Something that turns strings into unit vectors of a fixed dimension.
pub trait Encoder: Send + Sync {
    fn dim(&self) -> usize;
    /// Identity of the model, recorded in index manifests.
    fn identity(&self) -> &ModelIdentity;
    /// One unit-norm vector per text, in input order.
    fn encode(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>>;
}

/// How token vectors become one text vector. Serialized (index manifest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    Cls,
    Mean,
}

impl std::str::FromStr for Pooling {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cls" => Ok(Pooling::Cls),
            "mean" => Ok(Pooling::Mean),
            _ => Err(Error::InvalidInput(format!(
                "unknown pooling `{s}` (expected cls or mean)"
            ))),
        }
    }
}

/// What identifies a model for index compatibility. Serialized (index manifest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelIdentity {
    /// Directory name of the model, for people.
    pub name: String,
    pub pooling: Pooling,
    pub dim: usize,
    pub max_length: usize,
    /// SHA-256 of `model.safetensors`: the part that decides compatibility.
    pub weights_sha256: String,
    /// The linear layers ran in int8 (`EncoderOptions::int8`). Informative only: vectors
    /// move slightly, so int8 queries against an f32 index (or the reverse) are allowed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub int8: bool,
}

/// Encoder settings.
#[derive(Debug, Clone)]
pub struct EncoderOptions {
    /// Tokens per input including special tokens; SapBERT uses 25 for concept names.
    pub max_length: usize,
    pub batch_size: usize,
    /// Overrides the pooling read from `1_Pooling/config.json`.
    pub pooling: Option<Pooling>,
    pub device: Device,
    /// Worker threads, each encoding whole batches (0: one per CPU).
    pub threads: usize,
    /// Runs the transformer layers' linear layers in int8 (CPU only; see `model::int8`):
    /// faster, at a measured accuracy cost (BENCHMARKS.md, "int8 encoder").
    pub int8: bool,
}

impl Default for EncoderOptions {
    fn default() -> Self {
        EncoderOptions {
            max_length: 25,
            batch_size: 128,
            pooling: None,
            device: Device::Cpu,
            threads: 0,
            int8: false,
        }
    }
}

/// A transformer encoder run by candle.
pub struct TransformerEncoder {
    model: Transformer,
    tokenizer: Tokenizer,
    /// The tokenizer's padding token (see `pad_id`).
    pad_id: u32,
    device: Device,
    batch_size: usize,
    threads: usize,
    identity: ModelIdentity,
}

#[derive(Deserialize)]
struct PoolingConfig {
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
}

impl TransformerEncoder {
    pub fn load(dir: &Path, options: &EncoderOptions) -> Result<Self> {
        let _span = tracing::info_span!("load_model", dir = %dir.display()).entered();
        if options.max_length < 3 || options.batch_size == 0 {
            return Err(Error::InvalidInput(format!(
                "max length must be at least 3 and batch size at least 1 (got {} and {})",
                options.max_length, options.batch_size
            )));
        }
        let files = model_files(dir)?;
        let (config_path, weights_path, tokenizer_path) =
            (files.config, files.weights, files.tokenizer);
        let config = model::read_config(&config_path)?;
        let pooling = match options.pooling {
            Some(p) => p,
            None => read_pooling(dir)?,
        };

        let max_length = options.max_length.min(config.max_tokens());
        let mut tokenizer = Tokenizer::from_file(&tokenizer_path)
            .map_err(|e| Error::model(format!("{}: {e}", tokenizer_path.display())))?;
        let pad_id = pad_id(&tokenizer, &config);
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length,
                ..Default::default()
            }))
            .map_err(|e| Error::model(format!("{}: {e}", tokenizer_path.display())))?;

        // SAFETY: the weights file is memory-mapped read-only; medlink never writes to a model
        // directory while an encoder is loaded from it.
        let vb = unsafe {
            VarBuilder::from_mmaped_safetensors(&[&weights_path], DType::F32, &options.device)?
        };
        let mut model = Transformer::load(vb, &config)
            .map_err(|e| Error::model(format!("{}: {e}", weights_path.display())))?;
        if options.int8 {
            if !options.device.is_cpu() {
                return Err(Error::InvalidInput(
                    "int8 encoding runs on the CPU only: leave out --int8 with a GPU".into(),
                ));
            }
            model.quantize_int8()?;
        }
        let name = dir
            .canonicalize()
            .unwrap_or_else(|_| dir.to_path_buf())
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".into());
        Ok(TransformerEncoder {
            model,
            tokenizer,
            pad_id,
            device: options.device.clone(),
            batch_size: options.batch_size,
            threads: crate::parallel::threads(options.threads),
            identity: ModelIdentity {
                name,
                pooling,
                dim: config.hidden_size,
                max_length,
                weights_sha256: crate::fsutil::sha256_files(&[&weights_path])?,
                int8: options.int8,
            },
        })
    }

    fn encode_batch(&self, batch: &[&tokenizers::Encoding]) -> Result<Vec<Vec<f32>>> {
        let tokens: Vec<&[u32]> = batch.iter().map(|e| e.get_ids()).collect();
        let (ids, mask) = model::batch_tensors(&tokens, self.pad_id, &self.device)?;
        let pooled = self
            .model
            .forward_pooled(&ids, &mask, self.identity.pooling)?;
        Ok(pooled.to_vec2::<f32>()?)
    }
}

/// The three files every model directory needs.
pub(crate) struct ModelFiles {
    pub config: PathBuf,
    pub weights: PathBuf,
    pub tokenizer: PathBuf,
}

pub(crate) fn model_files(dir: &Path) -> Result<ModelFiles> {
    let file = |name: &str| -> Result<PathBuf> {
        let p = dir.join(name);
        if p.is_file() {
            Ok(p)
        } else {
            Err(Error::MissingAsset(format!(
                "{} has no {name}: a model directory needs config.json, model.safetensors and tokenizer.json",
                dir.display()
            )))
        }
    };
    Ok(ModelFiles {
        config: file("config.json")?,
        weights: file("model.safetensors")?,
        tokenizer: file("tokenizer.json")?,
    })
}

/// The id batches are padded with: the padding `tokenizer.json` configures (what transformers'
/// tokenizer pads with), else the config's `pad_token_id`. Padded tokens are masked, so it
/// changes no token's vector, but RoBERTa numbers positions by it, and with the same id the
/// padded rows equal transformers' too. Read it before switching the tokenizer's padding off.
pub(crate) fn pad_id(tokenizer: &Tokenizer, config: &Config) -> u32 {
    tokenizer
        .get_padding()
        .map_or(config.pad_token_id(), |p| p.pad_id)
}

pub(crate) fn read_pooling(dir: &Path) -> Result<Pooling> {
    let path = dir.join("1_Pooling/config.json");
    if !path.is_file() {
        // Plain transformers checkpoints (SapBERT) use the [CLS] vector.
        return Ok(Pooling::Cls);
    }
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let config: PoolingConfig = serde_json::from_str(&text)
        .map_err(|e| Error::parse(&path, e.line(), None, e.to_string()))?;
    match (config.pooling_mode_mean_tokens, config.pooling_mode_cls_token) {
        (true, false) => Ok(Pooling::Mean),
        (false, true) => Ok(Pooling::Cls),
        _ => Err(Error::parse(
            &path,
            1,
            None,
            "unsupported pooling: exactly one of mean or cls pooling must be enabled (or pass --pooling)",
        )),
    }
}

impl Encoder for TransformerEncoder {
    fn dim(&self) -> usize {
        self.identity.dim
    }

    fn identity(&self) -> &ModelIdentity {
        &self.identity
    }

    fn encode(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| Error::model(format!("tokenizer: {e}")))?;
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| encodings[i].get_ids().len());
        let threads = if self.device.is_cpu() {
            self.threads
        } else {
            1
        };
        // Every worker gets a share of a small input, not one worker all of it.
        let batch_size = self.batch_size.min(texts.len().div_ceil(threads.max(1)));
        let lengths: Vec<usize> = order
            .iter()
            .map(|&i| encodings[i].get_ids().len())
            .collect();
        let ranges = length_buckets(&lengths, batch_size);
        // Tokens a batch multiplies (BERT-family stacks skip padding): the dearest batches
        // start first, so no worker is left with a long one while the other has finished.
        let cost: Vec<usize> = ranges
            .iter()
            .map(|r| lengths[r.clone()].iter().sum())
            .collect();
        let chunks: Vec<&[usize]> = ranges.into_iter().map(|r| &order[r]).collect();
        let vectors = crate::parallel::parallel_map_costliest_first(&cost, threads, |c| {
            let batch: Vec<&tokenizers::Encoding> =
                chunks[c].iter().map(|&i| &encodings[i]).collect();
            self.encode_batch(&batch)
        })?;
        let mut out = vec![Vec::new(); texts.len()];
        for (chunk, vs) in chunks.iter().zip(vectors) {
            for (&i, vector) in chunk.iter().zip(vs) {
                out[i] = vector;
            }
        }
        Ok(out)
    }
}

/// Padded tokens a batch may spend per real token before a longer string starts a new batch.
/// BERT-family stacks on the CPU no longer multiply padding (`model::inference`), but the
/// embeddings, pooling, the copies around the stack and DeBERTa still pay for it.
const MAX_PADDING_RATIO: f64 = 1.2;
/// Strings a batch holds before padding may end it (tiny batches cost more per string).
const MIN_BUCKET: usize = 4;

/// Cuts the ascending token `lengths` into ranges of at most `batch_size` strings, ending a
/// range early once padding to its longest member would waste more than [`MAX_PADDING_RATIO`].
/// Fixed-size chunks of a short, mixed input (a `link` batch of 256 mentions: half of them
/// padded to the longest) spent twice the tokens the strings had.
fn length_buckets(lengths: &[usize], batch_size: usize) -> Vec<std::ops::Range<usize>> {
    let batch_size = batch_size.max(1);
    let mut ranges = Vec::new();
    let (mut start, mut real) = (0, 0usize);
    for (i, &len) in lengths.iter().enumerate() {
        let count = i - start;
        let padded = (count + 1) * len;
        let wasteful =
            count >= MIN_BUCKET && padded as f64 > MAX_PADDING_RATIO * (real + len) as f64;
        if count == batch_size || wasteful {
            ranges.push(start..i);
            (start, real) = (i, 0);
        }
        real += len;
    }
    if start < lengths.len() {
        ranges.push(start..lengths.len());
    }
    ranges
}

/// Dot product of two vectors of equal length (cosine similarity for unit vectors).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    crate::index::kernels::dot_f32(a, b)
}

#[cfg(test)]
mod tests {
    use super::length_buckets;

    fn padded_tokens(lengths: &[usize], batch_size: usize) -> (usize, Vec<usize>) {
        let ranges = length_buckets(lengths, batch_size);
        let sizes = ranges.iter().map(|r| r.len()).collect();
        let padded = ranges.iter().map(|r| r.len() * lengths[r.end - 1]).sum();
        (padded, sizes)
    }

    #[test]
    fn buckets_cover_every_string_once_in_order() {
        let lengths: Vec<usize> = (0..300).map(|i| 3 + i / 10).collect();
        let ranges = length_buckets(&lengths, 64);
        assert_eq!(ranges.first().unwrap().start, 0);
        assert_eq!(ranges.last().unwrap().end, 300);
        for pair in ranges.windows(2) {
            assert_eq!(pair[0].end, pair[1].start);
        }
        assert!(ranges.iter().all(|r| !r.is_empty() && r.len() <= 64));
    }

    #[test]
    fn equal_lengths_fill_whole_batches() {
        let (_, sizes) = padded_tokens(&[7; 300], 128);
        assert_eq!(sizes, [128, 128, 44]);
    }

    #[test]
    fn a_long_tail_starts_its_own_batch() {
        // 120 short names and 8 long ones: one chunk of 128 would pad all to 25 tokens.
        let mut lengths = vec![5; 120];
        lengths.extend([25; 8]);
        let (padded, sizes) = padded_tokens(&lengths, 128);
        assert_eq!(sizes, [120, 8]);
        let real: usize = lengths.iter().sum();
        assert_eq!(padded, real);
        assert_eq!(128 * 25, 4 * real, "fixed chunks would have padded 4x");
    }

    #[test]
    fn padding_stays_bounded_on_a_spread_of_lengths() {
        let lengths: Vec<usize> = (0..256).map(|i| 3 + i * 22 / 256).collect();
        let (padded, _) = padded_tokens(&lengths, 128);
        let real: usize = lengths.iter().sum();
        assert!(
            (padded as f64) <= 1.2 * real as f64,
            "{padded} padded for {real}"
        );
    }
}
