//! Text encoders: strings in, L2-normalised vectors out.
//!
//! [`BertEncoder`] loads any local Hugging Face BERT-family directory (`config.json`,
//! `model.safetensors`, `tokenizer.json`, optional `1_Pooling/config.json`) and runs it with
//! candle. Inputs are tokenized once, sorted by token length and cut into batches, so a batch
//! pads only to its own longest member (length sorting is worth about 1.8x on short names);
//! results come back in input order. The padding configured in `tokenizer.json` is ignored
//! (sentence-transformers exports pad to a fixed 128 tokens). Output vectors have unit norm, and
//! a string's vector does not depend on the batch it was encoded in.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};
use tokenizers::{Tokenizer, TruncationParams};

use crate::bert::{self, Architecture, Bert, Config as BertConfig};
use crate::error::{Error, Result};

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
}

impl Default for EncoderOptions {
    fn default() -> Self {
        EncoderOptions {
            max_length: 25,
            batch_size: 128,
            pooling: None,
            device: Device::Cpu,
            threads: 0,
        }
    }
}

/// A BERT-family encoder run by candle.
pub struct BertEncoder {
    model: Bert,
    tokenizer: Tokenizer,
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

impl BertEncoder {
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
        let config = read_config(&config_path)?;
        let pooling = match options.pooling {
            Some(p) => p,
            None => read_pooling(dir)?,
        };

        let max_length = options.max_length.min(config.max_position_embeddings);
        let mut tokenizer = Tokenizer::from_file(&tokenizer_path)
            .map_err(|e| Error::model(format!("{}: {e}", tokenizer_path.display())))?;
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
        let model = Bert::load(vb, &config)?;
        let name = dir
            .canonicalize()
            .unwrap_or_else(|_| dir.to_path_buf())
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".into());
        Ok(BertEncoder {
            model,
            tokenizer,
            device: options.device.clone(),
            batch_size: options.batch_size,
            threads: crate::parallel::threads(options.threads),
            identity: ModelIdentity {
                name,
                pooling,
                dim: config.hidden_size,
                max_length,
                weights_sha256: crate::fsutil::sha256_files(&[&weights_path])?,
            },
        })
    }

    fn encode_batch(&self, batch: &[&tokenizers::Encoding]) -> Result<Vec<Vec<f32>>> {
        let tokens: Vec<&[u32]> = batch.iter().map(|e| e.get_ids()).collect();
        let (ids, mask) = bert::batch_tensors(&tokens, &self.device)?;
        let hidden = self.model.forward(&ids, &mask, None)?;
        let pooled = bert::pool(&hidden, &mask, self.identity.pooling)?;
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

/// Reads and checks a model's `config.json`. The `model_type` is checked before anything
/// else: another architecture's config usually lacks BERT's fields, and "missing field
/// `hidden_size`" would hide the real reason.
pub(crate) fn read_config(path: &Path) -> Result<BertConfig> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::parse(path, e.line(), None, format!("not a model config: {e}")))?;
    match value.get("model_type") {
        None | Some(serde_json::Value::Null) => {}
        Some(serde_json::Value::String(found)) => {
            if Architecture::from_model_type(found).is_none() {
                return Err(Error::UnsupportedModel {
                    path: path.to_path_buf(),
                    found: found.clone(),
                    supported: Architecture::supported(),
                });
            }
        }
        Some(other) => {
            return Err(Error::parse(
                path,
                1,
                Some("model_type"),
                format!("expected a string, found {other}"),
            ))
        }
    }
    let config = BertConfig::deserialize(&value)
        .map_err(|e| Error::parse(path, 1, None, format!("not a supported model config: {e}")))?;
    config
        .validate()
        .map_err(|m| Error::parse(path, 1, None, m))?;
    Ok(config)
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

impl Encoder for BertEncoder {
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
        let chunks: Vec<&[usize]> = order.chunks(self.batch_size).collect();
        let threads = if self.device.is_cpu() {
            self.threads
        } else {
            1
        };
        let vectors = crate::parallel::parallel_map(chunks.len(), threads, |c| {
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

/// Dot product of two vectors of equal length (cosine similarity for unit vectors).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
