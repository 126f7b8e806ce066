//! medlink's BERT: one model definition for embedding and for training.
//!
//! candle-transformers ships a BERT, but it cannot be trained: its LayerNorm is a fused op
//! with no backward pass (so `backward()` succeeds and no weight receives a gradient) and its
//! dropout is a no-op. This module runs the same architecture (Hugging Face `BertModel`
//! weights, with or without the `bert.` prefix) in two ways:
//! - inference ([`Bert::forward`] with no [`Dropout`]);
//! - training (with a [`Dropout`]): dropout masks drawn from a seeded generator, so a step is
//!   repeatable and a resumed run identical.
//!
//! On the CPU, GELU, LayerNorm and softmax run as fused kernels with their own backward pass
//! ([`ops`]); on other devices, candle's differentiable ops in training and its fused kernels
//! in inference.
//!
//! Linear layers flatten `(batch, seq, in)` to 2-D before the matrix product: one large gemm
//! instead of a batched one, and a cheaper backward pass.

use candle_core::{DType, Module, Tensor};
use candle_nn::VarBuilder;
use serde::Deserialize;

pub mod ops;

use crate::encoder::Pooling;
use crate::rng::SplitMix64;

/// The architectures medlink implements, named as `config.json`'s `model_type` names them.
/// A checkpoint of any other architecture is refused: read as BERT it would load (the weight
/// names often match) and give silently wrong vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(try_from = "String")]
pub enum Architecture {
    /// Also what a `config.json` without `model_type` is: sentence-transformers BERT exports
    /// sometimes omit it.
    #[default]
    Bert,
}

impl Architecture {
    pub const ALL: &'static [Architecture] = &[Architecture::Bert];

    /// The `model_type` of this architecture in `config.json`.
    pub fn model_type(self) -> &'static str {
        match self {
            Architecture::Bert => "bert",
        }
    }

    pub fn from_model_type(model_type: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|a| a.model_type() == model_type)
    }

    /// The supported `model_type`s, for error messages: "bert, roberta".
    pub fn supported() -> String {
        Self::ALL
            .iter()
            .map(|a| a.model_type())
            .collect::<Vec<_>>()
            .join(", ")
    }
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
    /// Checks what the forward pass relies on, so a bad config fails at load, not mid-batch.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.num_attention_heads == 0 || self.hidden_size % self.num_attention_heads != 0 {
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
        match self.hidden_act.as_str() {
            "gelu" | "gelu_new" | "gelu_pytorch_tanh" | "relu" => Ok(()),
            other => Err(format!("unsupported hidden_act `{other}`")),
        }
    }
}

/// Dropout for one training step: masks come from a generator seeded for that step.
pub struct Dropout {
    hidden: f32,
    attention: f32,
    rng: SplitMix64,
}

impl Dropout {
    pub fn new(config: &Config, rng: SplitMix64) -> Self {
        Dropout {
            hidden: config.hidden_dropout_prob,
            attention: config.attention_probs_dropout_prob,
            rng,
        }
    }

    /// Hidden-state dropout on `xs` (what a task head applies to the encoder's output).
    pub fn hidden(&mut self, xs: &Tensor) -> candle_core::Result<Tensor> {
        let p = self.hidden;
        self.apply(xs, p)
    }

    fn apply(&mut self, xs: &Tensor, p: f32) -> candle_core::Result<Tensor> {
        if p <= 0.0 {
            return Ok(xs.clone());
        }
        let keep = 1.0 / (1.0 - p);
        let mask: Vec<f32> = (0..xs.elem_count())
            .map(|_| if self.rng.next_f32() < p { 0.0 } else { keep })
            .collect();
        xs.mul(&Tensor::from_vec(mask, xs.shape(), xs.device())?)
    }
}

struct Dense {
    weight: Tensor,
    bias: Tensor,
}

impl Dense {
    fn load(vb: VarBuilder, inputs: usize, outputs: usize) -> candle_core::Result<Self> {
        Ok(Dense {
            weight: vb.get_with_hints(
                (outputs, inputs),
                "weight",
                candle_nn::init::DEFAULT_KAIMING_NORMAL,
            )?,
            bias: vb.get_with_hints(outputs, "bias", candle_nn::init::ZERO)?,
        })
    }

    fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        let (b, s, h) = xs.dims3()?;
        let out = xs
            .reshape((b * s, h))?
            .matmul(&self.weight.t()?)?
            .broadcast_add(&self.bias)?;
        out.reshape((b, s, ()))
    }
}

struct Norm {
    weight: Tensor,
    bias: Tensor,
    eps: f32,
}

impl Norm {
    fn load(vb: VarBuilder, size: usize, eps: f64) -> candle_core::Result<Self> {
        Ok(Norm {
            weight: vb.get_with_hints(size, "weight", candle_nn::init::ONE)?,
            bias: vb.get_with_hints(size, "bias", candle_nn::init::ZERO)?,
            eps: eps as f32,
        })
    }

    fn forward(&self, xs: &Tensor, training: bool) -> candle_core::Result<Tensor> {
        if training || xs.device().is_cpu() {
            ops::layer_norm(xs, &self.weight, &self.bias, self.eps)
        } else {
            candle_nn::ops::layer_norm(xs, &self.weight, &self.bias, self.eps)
        }
    }
}

struct Layer {
    query: Dense,
    key: Dense,
    value: Dense,
    attention_out: Dense,
    attention_norm: Norm,
    intermediate: Dense,
    output: Dense,
    output_norm: Norm,
}

impl Layer {
    fn load(vb: VarBuilder, c: &Config) -> candle_core::Result<Self> {
        let h = c.hidden_size;
        let att = vb.pp("attention");
        Ok(Layer {
            query: Dense::load(att.pp("self").pp("query"), h, h)?,
            key: Dense::load(att.pp("self").pp("key"), h, h)?,
            value: Dense::load(att.pp("self").pp("value"), h, h)?,
            attention_out: Dense::load(att.pp("output").pp("dense"), h, h)?,
            attention_norm: Norm::load(att.pp("output").pp("LayerNorm"), h, c.layer_norm_eps)?,
            intermediate: Dense::load(vb.pp("intermediate").pp("dense"), h, c.intermediate_size)?,
            output: Dense::load(vb.pp("output").pp("dense"), c.intermediate_size, h)?,
            output_norm: Norm::load(vb.pp("output").pp("LayerNorm"), h, c.layer_norm_eps)?,
        })
    }
}

/// A BERT encoder stack (no pooler: medlink pools token vectors itself).
pub struct Bert {
    word_embeddings: candle_nn::Embedding,
    position_embeddings: candle_nn::Embedding,
    token_type_embeddings: candle_nn::Embedding,
    embedding_norm: Norm,
    layers: Vec<Layer>,
    config: Config,
}

impl Bert {
    /// Loads (or, from a `VarMap`-backed builder, creates) the weights.
    pub fn load(vb: VarBuilder, config: &Config) -> candle_core::Result<Self> {
        config.validate().map_err(candle_core::Error::msg)?;
        let vb = if vb.contains_tensor("bert.embeddings.word_embeddings.weight") {
            vb.pp("bert")
        } else {
            vb
        };
        let h = config.hidden_size;
        let emb = vb.pp("embeddings");
        let embedding = |name: &str, rows: usize| {
            let w = emb.pp(name).get_with_hints(
                (rows, h),
                "weight",
                candle_nn::Init::Randn {
                    mean: 0.0,
                    stdev: 0.02,
                },
            )?;
            Ok::<_, candle_core::Error>(candle_nn::Embedding::new(w, h))
        };
        Ok(Bert {
            word_embeddings: embedding("word_embeddings", config.vocab_size)?,
            position_embeddings: embedding("position_embeddings", config.max_position_embeddings)?,
            token_type_embeddings: embedding("token_type_embeddings", config.type_vocab_size)?,
            embedding_norm: Norm::load(emb.pp("LayerNorm"), h, config.layer_norm_eps)?,
            layers: (0..config.num_hidden_layers)
                .map(|i| Layer::load(vb.pp(format!("encoder.layer.{i}")), config))
                .collect::<candle_core::Result<_>>()?,
            config: config.clone(),
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Token vectors `(batch, seq, hidden)` for `ids` and `mask` (both `(batch, seq)`, u32).
    /// With `dropout`, runs the differentiable training path.
    pub fn forward(
        &self,
        ids: &Tensor,
        mask: &Tensor,
        mut dropout: Option<&mut Dropout>,
    ) -> candle_core::Result<Tensor> {
        let training = dropout.is_some();
        let (_, seq) = ids.dims2()?;
        let positions = Tensor::arange(0u32, seq as u32, ids.device())?;
        let mut xs = self
            .word_embeddings
            .forward(ids)?
            .broadcast_add(&self.position_embeddings.forward(&positions)?)?
            .broadcast_add(&self.token_type_embeddings.forward(&ids.zeros_like()?)?)?;
        xs = self.embedding_norm.forward(&xs, training)?;
        if let Some(d) = dropout.as_deref_mut() {
            xs = d.apply(&xs, d.hidden)?;
        }
        // Additive attention mask: 0 for tokens, a very negative number for padding.
        let additive = ((mask.to_dtype(DType::F32)? - 1.0)? * f32::MAX as f64)?
            .unsqueeze(1)?
            .unsqueeze(1)?;
        for layer in &self.layers {
            xs = self.layer_forward(layer, &xs, &additive, dropout.as_deref_mut())?;
        }
        Ok(xs)
    }

    fn layer_forward(
        &self,
        layer: &Layer,
        xs: &Tensor,
        additive_mask: &Tensor,
        mut dropout: Option<&mut Dropout>,
    ) -> candle_core::Result<Tensor> {
        let training = dropout.is_some();
        let (b, s, h) = xs.dims3()?;
        let heads = self.config.num_attention_heads;
        let head = h / heads;
        let split = |t: Tensor| -> candle_core::Result<Tensor> {
            t.reshape((b, s, heads, head))?
                .transpose(1, 2)?
                .contiguous()
        };
        let q = split(layer.query.forward(xs)?)?;
        let k = split(layer.key.forward(xs)?)?;
        let v = split(layer.value.forward(xs)?)?;
        let scores = (q.matmul(&k.t()?)? / (head as f64).sqrt())?.broadcast_add(additive_mask)?;
        let mut probs = if training || scores.device().is_cpu() {
            ops::softmax_last_dim(&scores)?
        } else {
            candle_nn::ops::softmax_last_dim(&scores)?
        };
        if let Some(d) = dropout.as_deref_mut() {
            probs = d.apply(&probs, d.attention)?;
        }
        let context = probs
            .matmul(&v)?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((b, s, h))?;
        let mut attended = layer.attention_out.forward(&context)?;
        if let Some(d) = dropout.as_deref_mut() {
            attended = d.apply(&attended, d.hidden)?;
        }
        let attended = layer.attention_norm.forward(&(attended + xs)?, training)?;
        let inner = self.activation(&layer.intermediate.forward(&attended)?)?;
        let mut out = layer.output.forward(&inner)?;
        if let Some(d) = dropout {
            out = d.apply(&out, d.hidden)?;
        }
        layer.output_norm.forward(&(out + attended)?, training)
    }

    fn activation(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        match self.config.hidden_act.as_str() {
            "gelu" => ops::gelu(xs),
            "relu" => xs.relu(),
            _ => xs.gelu(),
        }
    }
}

/// Pools token vectors into one unit-norm vector per row; `mask` is `(batch, seq)` u32.
pub fn pool(hidden: &Tensor, mask: &Tensor, pooling: Pooling) -> candle_core::Result<Tensor> {
    let pooled = match pooling {
        Pooling::Cls => hidden.narrow(1, 0, 1)?.squeeze(1)?,
        Pooling::Mean => {
            let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
            let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
            let counts = mask.sum(1)?.clamp(1e-9, f64::MAX)?;
            summed.broadcast_div(&counts)?
        }
    };
    let norms = pooled
        .sqr()?
        .sum_keepdim(1)?
        .sqrt()?
        .clamp(1e-12, f64::MAX)?;
    pooled.broadcast_div(&norms)
}

/// Token ids and attention mask for a batch of token-id sequences, padded to the longest.
pub fn batch_tensors(
    batch: &[&[u32]],
    device: &candle_core::Device,
) -> candle_core::Result<(Tensor, Tensor)> {
    let len = batch.iter().map(|t| t.len()).max().unwrap_or(0);
    let mut ids = vec![0u32; batch.len() * len];
    let mut mask = vec![0u32; batch.len() * len];
    for (row, t) in batch.iter().enumerate() {
        ids[row * len..row * len + t.len()].copy_from_slice(t);
        mask[row * len..row * len + t.len()].fill(1);
    }
    let shape = (batch.len(), len);
    Ok((
        Tensor::from_vec(ids, shape, device)?,
        Tensor::from_vec(mask, shape, device)?,
    ))
}
