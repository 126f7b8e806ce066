//! A checkpoint's `config.json`: which architecture it is and the sizes medlink needs.
//!
//! The architecture is `model_type`. Anything medlink does not implement is refused, before
//! any other field is read: read as BERT, a RoBERTa checkpoint loads (its weight names match
//! once the prefix is stripped) and gives silently wrong vectors, and another architecture's
//! config often lacks BERT's fields, so "missing field `hidden_size`" would hide the reason.
//! A config without `model_type` is BERT (sentence-transformers BERT exports sometimes omit it).

use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};

/// The architectures medlink implements, as `config.json`'s `model_type` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(try_from = "String")]
pub enum Architecture {
    #[default]
    Bert,
    Roberta,
    XlmRoberta,
}

impl Architecture {
    pub const ALL: &'static [Architecture] = &[
        Architecture::Bert,
        Architecture::Roberta,
        Architecture::XlmRoberta,
    ];

    /// The `model_type` of this architecture in `config.json`.
    pub fn model_type(self) -> &'static str {
        match self {
            Architecture::Bert => "bert",
            Architecture::Roberta => "roberta",
            Architecture::XlmRoberta => "xlm-roberta",
        }
    }

    pub fn from_model_type(model_type: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|a| a.model_type() == model_type)
    }

    /// The supported `model_type`s, for error messages: "bert, roberta, xlm-roberta".
    pub fn supported() -> String {
        Self::ALL
            .iter()
            .map(|a| a.model_type())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The prefix of the encoder's weights in transformers' task models
    /// (`bert.embeddings...`, `roberta.embeddings...`); base models and sentence-transformers
    /// checkpoints have none. XLM-R's classes inherit RoBERTa's prefix.
    pub fn weight_prefix(self) -> &'static str {
        match self {
            Architecture::Bert => "bert",
            Architecture::Roberta | Architecture::XlmRoberta => "roberta",
        }
    }

    /// transformers' token-classification class, written into a tagger's `architectures`.
    pub fn token_classification_class(self) -> &'static str {
        match self {
            Architecture::Bert => "BertForTokenClassification",
            Architecture::Roberta => "RobertaForTokenClassification",
            Architecture::XlmRoberta => "XLMRobertaForTokenClassification",
        }
    }

    /// How token positions are numbered (see `model::embeddings`).
    pub fn positions(self) -> Positions {
        match self {
            Architecture::Bert => Positions::FromZero,
            Architecture::Roberta | Architecture::XlmRoberta => Positions::AfterPadding,
        }
    }

    /// transformers' default `pad_token_id` of the architecture's config class.
    fn default_pad_token_id(self) -> u32 {
        match self {
            Architecture::Bert => 0,
            Architecture::Roberta | Architecture::XlmRoberta => 1,
        }
    }
}

/// How an architecture numbers token positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Positions {
    /// BERT: 0, 1, 2, ... for every row, padding included.
    FromZero,
    /// RoBERTa (fairseq's convention): tokens count from `pad_token_id + 1`; padding tokens
    /// sit at position `pad_token_id`, so `max_position_embeddings - pad_token_id - 1`
    /// positions are usable.
    AfterPadding,
}

impl TryFrom<String> for Architecture {
    type Error = String;
    fn try_from(model_type: String) -> std::result::Result<Self, String> {
        Architecture::from_model_type(&model_type).ok_or_else(|| {
            format!(
                "model_type `{model_type}` is not supported (medlink runs {})",
                Architecture::supported()
            )
        })
    }
}

/// The `config.json` fields medlink reads.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    /// `model_type`; absent means BERT.
    #[serde(default, rename = "model_type")]
    pub architecture: Architecture,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    #[serde(default = "default_dropout")]
    pub hidden_dropout_prob: f32,
    #[serde(default = "default_dropout")]
    pub attention_probs_dropout_prob: f32,
    pub max_position_embeddings: usize,
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    /// BERT's `relative_key` variants add learned relative-position terms to attention,
    /// which medlink does not implement.
    #[serde(default = "default_position_embedding_type")]
    pub position_embedding_type: String,
    /// The padding token; RoBERTa's positions are offset by it. Absent: the architecture's
    /// default (see [`Config::pad_token_id`]).
    #[serde(default)]
    pad_token_id: Option<u32>,
}

fn default_act() -> String {
    "gelu".into()
}
fn default_dropout() -> f32 {
    0.1
}
fn default_type_vocab() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
}
fn default_position_embedding_type() -> String {
    "absolute".into()
}

impl Config {
    /// The padding token id (transformers' default for the architecture when absent).
    pub fn pad_token_id(&self) -> u32 {
        self.pad_token_id
            .unwrap_or(self.architecture.default_pad_token_id())
    }

    /// The longest input, special tokens included, that has a position embedding.
    pub fn max_tokens(&self) -> usize {
        match self.architecture.positions() {
            Positions::FromZero => self.max_position_embeddings,
            Positions::AfterPadding => self
                .max_position_embeddings
                .saturating_sub(self.pad_token_id() as usize + 1),
        }
    }

    /// Checks what the forward pass relies on, so a bad config fails at load, not mid-batch.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.num_attention_heads == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            return Err(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if self.position_embedding_type != "absolute" {
            return Err(format!(
                "position_embedding_type `{}` is not supported (only `absolute`)",
                self.position_embedding_type
            ));
        }
        if self.type_vocab_size == 0 {
            return Err("type_vocab_size is 0: token type 0 needs an embedding".into());
        }
        if self.max_tokens() < 3 {
            return Err(format!(
                "max_position_embeddings {} leaves {} positions for {} (pad_token_id {})",
                self.max_position_embeddings,
                self.max_tokens(),
                self.architecture.model_type(),
                self.pad_token_id()
            ));
        }
        match self.hidden_act.as_str() {
            "gelu" | "gelu_new" | "gelu_pytorch_tanh" | "relu" => Ok(()),
            other => Err(format!("unsupported hidden_act `{other}`")),
        }
    }
}

/// Reads and checks a model's `config.json`, refusing an unsupported `model_type` first.
pub fn read_config(path: &Path) -> Result<Config> {
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
    let config = Config::deserialize(&value)
        .map_err(|e| Error::parse(path, 1, None, format!("not a supported model config: {e}")))?;
    config
        .validate()
        .map_err(|m| Error::parse(path, 1, None, m))?;
    Ok(config)
}
