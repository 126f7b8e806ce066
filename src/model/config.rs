//! A checkpoint's `config.json`: which architecture it is and the sizes medlink needs.
//!
//! The architecture is `model_type`. Anything medlink does not implement is refused, before
//! any other field is read: read as BERT, a RoBERTa checkpoint loads (its weight names match
//! once the prefix is stripped) and gives silently wrong vectors, and another architecture's
//! config often lacks BERT's fields, so "missing field `hidden_size`" would hide the reason.
//! A config without `model_type` is BERT (sentence-transformers BERT exports sometimes omit it).
//!
//! DeBERTa-v2/v3 fields ([`DebertaConfig`]) are read only for `deberta-v2`; its defaults for
//! fields BERT also has (`type_vocab_size` 0, `layer_norm_eps` 1e-7) are those of
//! transformers' `DebertaV2Config`, so a field left out means what it means in transformers.

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
    /// DeBERTa-v2 and v3 (both are `deberta-v2` in transformers).
    DebertaV2,
}

impl Architecture {
    pub const ALL: &'static [Architecture] = &[
        Architecture::Bert,
        Architecture::Roberta,
        Architecture::XlmRoberta,
        Architecture::DebertaV2,
    ];

    /// The `model_type` of this architecture in `config.json`.
    pub fn model_type(self) -> &'static str {
        match self {
            Architecture::Bert => "bert",
            Architecture::Roberta => "roberta",
            Architecture::XlmRoberta => "xlm-roberta",
            Architecture::DebertaV2 => "deberta-v2",
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
            Architecture::DebertaV2 => "deberta",
        }
    }

    /// transformers' token-classification class, written into a tagger's `architectures`.
    pub fn token_classification_class(self) -> &'static str {
        match self {
            Architecture::Bert => "BertForTokenClassification",
            Architecture::Roberta => "RobertaForTokenClassification",
            Architecture::XlmRoberta => "XLMRobertaForTokenClassification",
            Architecture::DebertaV2 => "DebertaV2ForTokenClassification",
        }
    }

    /// The token-type table's rows when `config.json` does not say (transformers' default).
    fn default_type_vocab_size(self) -> usize {
        match self {
            Architecture::DebertaV2 => 0,
            _ => 2,
        }
    }

    /// LayerNorm's epsilon when `config.json` does not say (transformers' default).
    fn default_layer_norm_eps(self) -> f64 {
        match self {
            Architecture::DebertaV2 => 1e-7,
            _ => 1e-12,
        }
    }

    /// How token positions are numbered (see `model::embeddings`).
    pub fn positions(self) -> Positions {
        match self {
            Architecture::Bert | Architecture::DebertaV2 => Positions::FromZero,
            Architecture::Roberta | Architecture::XlmRoberta => Positions::AfterPadding,
        }
    }

    /// transformers' default `pad_token_id` of the architecture's config class.
    fn default_pad_token_id(self) -> u32 {
        match self {
            Architecture::Bert | Architecture::DebertaV2 => 0,
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
    /// Rows of the token-type table; 0 (DeBERTa-v3) means none. Absent: the
    /// architecture's default.
    #[serde(default)]
    type_vocab_size: Option<usize>,
    /// Absent: the architecture's default.
    #[serde(default)]
    layer_norm_eps: Option<f64>,
    /// BERT's `relative_key` variants add learned relative-position terms to attention,
    /// which medlink does not implement.
    #[serde(default = "default_position_embedding_type")]
    pub position_embedding_type: String,
    /// The padding token; RoBERTa's positions are offset by it. Absent: the architecture's
    /// default (see [`Config::pad_token_id`]).
    #[serde(default)]
    pad_token_id: Option<u32>,
    /// DeBERTa-v2/v3's own fields (ignored for the other architectures).
    #[serde(flatten)]
    pub deberta: DebertaConfig,
}

/// DeBERTa-v2/v3's `config.json` fields, with `DebertaV2Config`'s defaults.
#[derive(Debug, Clone, Deserialize)]
pub struct DebertaConfig {
    /// Disentangled attention over relative positions; without it DeBERTa attends by
    /// content alone.
    #[serde(default)]
    pub relative_attention: bool,
    /// The relative distances with an embedding; < 1 means `max_position_embeddings`.
    #[serde(default = "minus_one")]
    pub max_relative_positions: i64,
    /// Log-spaced buckets of relative distance (256 in v3); <= 0 means none.
    #[serde(default = "minus_one")]
    pub position_buckets: i64,
    /// Which relative terms attention adds: `c2p` (content to position), `p2c` (position to
    /// content). A list, or a `|`-separated string in older configs.
    #[serde(default, deserialize_with = "att_types")]
    pub pos_att_type: Vec<String>,
    /// Whether relative positions are projected by the layer's own query and key
    /// projections (v3) or by separate `pos_key_proj` / `pos_query_proj`.
    #[serde(default)]
    pub share_att_key: bool,
    /// `layer_norm` normalises the relative embeddings; `none` leaves them.
    #[serde(default = "none_string")]
    pub norm_rel_ebd: String,
    /// Absolute position embeddings added to the word embeddings (false in v3).
    #[serde(default = "yes")]
    pub position_biased_input: bool,
    /// Width of the word embeddings when it differs from `hidden_size` (then `embed_proj`
    /// maps them to `hidden_size`).
    #[serde(default)]
    pub embedding_size: Option<usize>,
    /// v2-xlarge's convolution beside the first layer: not implemented, refused when > 0.
    #[serde(default)]
    pub conv_kernel_size: i64,
    /// A head width other than `hidden_size / num_attention_heads`: refused.
    #[serde(default)]
    pub attention_head_size: Option<usize>,
}

fn minus_one() -> i64 {
    -1
}
fn none_string() -> String {
    "none".into()
}
fn yes() -> bool {
    true
}

/// `pos_att_type` as transformers reads it: a list, or `"p2c|c2p"`, lower-cased.
fn att_types<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        List(Vec<String>),
        Joined(String),
    }
    Ok(match Option::<Either>::deserialize(d)? {
        None => Vec::new(),
        Some(Either::List(list)) => list.iter().map(|t| t.trim().to_lowercase()).collect(),
        Some(Either::Joined(joined)) => joined
            .split('|')
            .map(|t| t.trim().to_lowercase())
            .filter(|t| !t.is_empty())
            .collect(),
    })
}

impl DebertaConfig {
    /// The relative distances with an embedding (`max_relative_positions`, or
    /// `max_position_embeddings` when that is < 1).
    pub fn max_relative_positions(&self, max_position_embeddings: usize) -> usize {
        if self.max_relative_positions < 1 {
            max_position_embeddings
        } else {
            self.max_relative_positions as usize
        }
    }

    /// Half the rows of the relative embedding table that attention uses (transformers'
    /// `pos_ebd_size`): the buckets, or the relative positions without buckets.
    pub fn attention_span(&self, max_position_embeddings: usize) -> usize {
        if self.position_buckets > 0 {
            self.position_buckets as usize
        } else {
            self.max_relative_positions(max_position_embeddings)
        }
    }

    pub fn c2p(&self) -> bool {
        self.pos_att_type.iter().any(|t| t == "c2p")
    }

    pub fn p2c(&self) -> bool {
        self.pos_att_type.iter().any(|t| t == "p2c")
    }

    fn validate(&self, hidden_size: usize, heads: usize) -> std::result::Result<(), String> {
        if self.conv_kernel_size > 0 {
            return Err(format!(
                "conv_kernel_size {}: DeBERTa-v2's convolution layer is not implemented",
                self.conv_kernel_size
            ));
        }
        if let Some(size) = self.attention_head_size {
            if size * heads != hidden_size {
                return Err(format!(
                    "attention_head_size {size} x {heads} heads is not hidden_size {hidden_size}"
                ));
            }
        }
        if let Some(other) = self
            .pos_att_type
            .iter()
            .find(|t| t.as_str() != "c2p" && t.as_str() != "p2c")
        {
            return Err(format!(
                "pos_att_type `{other}` is not supported (only c2p and p2c)"
            ));
        }
        let norms: Vec<&str> = self.norm_rel_ebd.split('|').map(str::trim).collect();
        if let Some(other) = norms
            .iter()
            .find(|n| !matches!(n.to_lowercase().as_str(), "none" | "layer_norm"))
        {
            return Err(format!("norm_rel_ebd `{other}` is not supported"));
        }
        if self.position_buckets == 1 {
            return Err("position_buckets 1 leaves no exact bucket (use -1 for none)".into());
        }
        if self.embedding_size == Some(0) {
            return Err("embedding_size is 0".into());
        }
        Ok(())
    }

    /// Whether the relative embeddings are layer-normalised (`norm_rel_ebd` has `layer_norm`).
    pub fn normalises_relative_embeddings(&self) -> bool {
        self.norm_rel_ebd
            .split('|')
            .any(|n| n.trim().eq_ignore_ascii_case("layer_norm"))
    }
}

fn default_act() -> String {
    "gelu".into()
}
fn default_dropout() -> f32 {
    0.1
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

    /// Rows of the token-type table (0: none).
    pub fn type_vocab_size(&self) -> usize {
        self.type_vocab_size
            .unwrap_or(self.architecture.default_type_vocab_size())
    }

    pub fn layer_norm_eps(&self) -> f64 {
        self.layer_norm_eps
            .unwrap_or(self.architecture.default_layer_norm_eps())
    }

    /// Width of the word (and position, type) embeddings: DeBERTa's `embedding_size`,
    /// else `hidden_size`.
    pub fn embedding_size(&self) -> usize {
        match self.architecture {
            Architecture::DebertaV2 => self.deberta.embedding_size.unwrap_or(self.hidden_size),
            _ => self.hidden_size,
        }
    }

    /// Whether absolute position embeddings are added (all but DeBERTa with
    /// `position_biased_input` false).
    pub fn has_position_embeddings(&self) -> bool {
        self.architecture != Architecture::DebertaV2 || self.deberta.position_biased_input
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
        if self.hidden_size == 0 || self.intermediate_size == 0 {
            return Err(format!(
                "hidden_size {} and intermediate_size {} must both be positive",
                self.hidden_size, self.intermediate_size
            ));
        }
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
        if self.architecture == Architecture::DebertaV2 {
            self.deberta
                .validate(self.hidden_size, self.num_attention_heads)?;
        } else if self.type_vocab_size() == 0 {
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
