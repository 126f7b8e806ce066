//! medlink's transformer encoders: one model definition for embedding, tagging and training,
//! for every architecture medlink runs (BERT, RoBERTa, XLM-RoBERTa, DeBERTa-v2/v3).
//!
//! [`Transformer`] is what the linker's encoder, the tagger and both trainers call. RoBERTa
//! and XLM-R are BERT with other position ids, so the architectures share one encoder stack
//! (`layers`) and differ only where [`Architecture`] says: `model_type`, the weight prefix
//! of task checkpoints, the token-classification class name, and the numbering of positions
//! (`embeddings`). A further architecture of this family is one more [`Architecture`]
//! variant. DeBERTa-v2 shares the layer too but scores attention its own way (`deberta`:
//! disentangled attention over relative positions, through `layers::AttentionScores`).
//!
//! Why not candle-transformers' BERT: it cannot be trained (its LayerNorm is a fused op with
//! no backward pass, so `backward()` succeeds and no weight receives a gradient, and its
//! dropout is a no-op). Here the same weights run in two ways:
//! - inference ([`Transformer::forward`] with no [`Dropout`]);
//! - training (with a [`Dropout`]): dropout masks drawn from a seeded generator.
//!
//! Weights load from Hugging Face checkpoints with or without the architecture's prefix
//! (`bert.`, `roberta.`, `deberta.`): task models carry it, base models and sentence-transformers
//! checkpoints do not. No pooler is loaded: medlink pools token vectors itself.

use candle_core::{DType, Tensor};
use candle_nn::VarBuilder;

pub mod config;
mod deberta;
mod embeddings;
mod inference;
pub mod int8;
mod layers;
pub mod ops;
pub mod skinny;

pub use config::{read_config, Architecture, Config};
pub use layers::Dropout;

use crate::encoder::Pooling;
use embeddings::Embeddings;
use layers::{Layer, ScaledDotProduct};

/// A transformer encoder stack (no pooler, no task head).
pub struct Transformer {
    embeddings: Embeddings,
    stack: Stack,
    config: Config,
}

/// The layers after the embeddings, by how they attend.
enum Stack {
    /// BERT, RoBERTa, XLM-R: scaled dot-product attention.
    Bert(Vec<Layer>),
    /// DeBERTa-v2/v3: disentangled attention over relative positions.
    Deberta(deberta::Encoder),
}

impl Transformer {
    /// Loads (or, from a `VarMap`-backed builder, creates) the weights, under the
    /// architecture's prefix when the checkpoint has it.
    pub fn load(vb: VarBuilder, config: &Config) -> candle_core::Result<Self> {
        config.validate().map_err(candle_core::Error::msg)?;
        let prefix = config.architecture.weight_prefix();
        let vb = if vb.contains_tensor(&format!("{prefix}.embeddings.word_embeddings.weight")) {
            vb.pp(prefix)
        } else {
            vb
        };
        let stack = match config.architecture {
            Architecture::DebertaV2 => {
                Stack::Deberta(deberta::Encoder::load(vb.pp("encoder"), config)?)
            }
            Architecture::Bert | Architecture::Roberta | Architecture::XlmRoberta => Stack::Bert(
                (0..config.num_hidden_layers)
                    .map(|i| Layer::load(vb.pp(format!("encoder.layer.{i}")), config))
                    .collect::<candle_core::Result<_>>()?,
            ),
        };
        Ok(Transformer {
            embeddings: Embeddings::load(vb.pp("embeddings"), config)?,
            stack,
            config: config.clone(),
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Runs every transformer layer's linear layers in int8 at inference (CPU only; see
    /// [`int8`]). The embeddings, attention products and norms stay f32.
    pub fn quantize_int8(&mut self) -> candle_core::Result<()> {
        let layers: &mut [Layer] = match &mut self.stack {
            Stack::Bert(layers) => layers,
            Stack::Deberta(encoder) => encoder.layers_mut(),
        };
        layers.iter_mut().try_for_each(Layer::quantize)
    }

    /// Token vectors `(batch, seq, hidden)` for `ids` and `mask` (both `(batch, seq)`, u32).
    /// With `dropout`, runs the differentiable training path.
    pub fn forward(
        &self,
        ids: &Tensor,
        mask: &Tensor,
        mut dropout: Option<&mut Dropout>,
    ) -> candle_core::Result<Tensor> {
        // Inference on the CPU: plain buffers instead of a tensor per op.
        if let (Stack::Bert(layers), None) = (&self.stack, &dropout) {
            if let Some((x, spans)) = self.embeddings.forward_packed(ids, mask)? {
                return inference::forward_packed(layers, x, &spans, mask, self.config.hidden_size);
            }
        }
        let mut xs = self.embeddings.forward(ids, mask, dropout.as_deref_mut())?;
        match &self.stack {
            Stack::Bert(layers) => {
                let scores = scores_for(mask)?;
                for layer in layers {
                    xs = layer.forward(&xs, &scores, dropout.as_deref_mut())?;
                }
                Ok(xs)
            }
            Stack::Deberta(encoder) => encoder.forward(xs, mask, dropout),
        }
    }

    /// [`Self::forward`] then [`pool`], without the padded token vectors in between where the
    /// inference path runs (BERT-family stacks on the CPU; for CLS pooling, every sequence
    /// starting with a token, as right padding leaves it): `(batch, hidden)` unit-norm vectors.
    pub fn forward_pooled(
        &self,
        ids: &Tensor,
        mask: &Tensor,
        pooling: Pooling,
    ) -> candle_core::Result<Tensor> {
        if let Stack::Bert(layers) = &self.stack {
            let (batch, seq) = mask.dims2()?;
            // CLS is position 0, the first packed row only where position 0 is a token.
            let first_is_token = |mask: &Tensor| -> candle_core::Result<bool> {
                let firsts = mask.narrow(1, 0, 1)?.flatten_all()?.to_vec1::<u32>()?;
                Ok(firsts.iter().all(|&m| m != 0))
            };
            if pooling == Pooling::Mean || (seq > 0 && first_is_token(mask)?) {
                if let Some((x, spans)) = self.embeddings.forward_packed(ids, mask)? {
                    let hidden = self.config.hidden_size;
                    let mean = pooling == Pooling::Mean;
                    let pooled = inference::run_packed(layers, x, &spans, |x| {
                        inference::pool_packed(x, &spans, hidden, mean)
                    })?;
                    return Tensor::from_vec(pooled, (batch, hidden), ids.device());
                }
            }
        }
        pool(&self.forward(ids, mask, None)?, mask, pooling)
    }
}

/// BERT's attention scores with an additive mask: 0 for tokens, a very negative number for
/// padding.
fn scores_for(mask: &Tensor) -> candle_core::Result<ScaledDotProduct> {
    let additive_mask = ((mask.to_dtype(DType::F32)? - 1.0)? * f32::MAX as f64)?
        .unsqueeze(1)?
        .unsqueeze(1)?;
    Ok(ScaledDotProduct { additive_mask })
}

/// Pools token vectors into one unit-norm vector per row; `mask` is `(batch, seq)` u32.
/// CLS pooling takes the first token: `[CLS]` for BERT and DeBERTa, `<s>` for RoBERTa and
/// XLM-R.
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

/// Token ids and attention mask for a batch of token-id sequences, padded to the longest
/// with `pad_id` (the tokenizer's padding token: RoBERTa numbers positions by it).
pub fn batch_tensors(
    batch: &[&[u32]],
    pad_id: u32,
    device: &candle_core::Device,
) -> candle_core::Result<(Tensor, Tensor)> {
    let len = batch.iter().map(|t| t.len()).max().unwrap_or(0);
    let mut ids = vec![pad_id; batch.len() * len];
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

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// A two-layer BERT with random weights, biases and norms, two heads (`hidden` 16: heads
    /// 8 wide, the vector attention kernel's case; 12: the portable kernel's), no dropout.
    fn random_bert(activation: &str, hidden: usize) -> Transformer {
        let config: Config = serde_json::from_value(serde_json::json!({
            "model_type": "bert", "vocab_size": 50, "hidden_size": hidden,
            "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 2 * hidden,
            "max_position_embeddings": 32, "type_vocab_size": 2, "hidden_act": activation,
            "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0
        }))
        .unwrap();
        let varmap = candle_nn::VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let model = Transformer::load(vb, &config).unwrap();
        perturb(&varmap, 7);
        model
    }

    /// Biases start at zero and norms at one: moves every variable off its initial value by
    /// seeded noise in [-0.5, 0.5).
    pub(super) fn perturb(varmap: &candle_nn::VarMap, seed: u64) {
        let mut rng = crate::rng::SplitMix64::new(seed);
        for var in varmap.all_vars() {
            let noise: Vec<f32> = (0..var.elem_count())
                .map(|_| rng.next_f32() - 0.5)
                .collect();
            let noise = Tensor::from_vec(noise, var.shape(), &Device::Cpu).unwrap();
            var.set(&(var.as_tensor() + noise).unwrap()).unwrap();
        }
    }

    /// Batches under (4 tokens) and over (19) the few-row kernel's limit.
    const FEW: [&[u32]; 1] = [&[2, 7, 9, 3]];
    const MANY: [&[u32]; 3] = [
        &[2, 5, 6, 7, 8, 9, 10, 11, 3],
        &[2, 4, 3],
        &[2, 12, 13, 14, 15, 16, 3],
    ];

    /// Asserts `fast` within `tolerance` of `reference` at every real token of `batch`, and
    /// zero at every padding position.
    fn assert_equal_on_real_tokens(
        fast: &Tensor,
        reference: &Tensor,
        batch: &[&[u32]],
        tolerance: f32,
        what: &str,
    ) {
        let (fast, reference) = (
            fast.to_vec3::<f32>().unwrap(),
            reference.to_vec3::<f32>().unwrap(),
        );
        for (b, tokens) in batch.iter().enumerate() {
            for t in 0..fast[b].len() {
                let real = t < tokens.len();
                for (f, r) in fast[b][t].iter().zip(&reference[b][t]) {
                    if real {
                        assert!(
                            (f - r).abs() < tolerance,
                            "{what}: row {b} token {t}: {f} vs {r}"
                        );
                    } else {
                        assert_eq!(*f, 0.0, "{what}: padding row {b} token {t}");
                    }
                }
            }
        }
    }

    /// Inference (plain buffers, real tokens only) and the training path (candle's ops over
    /// the padded batch, dropout off) give the same vector at every real token, for batches
    /// under and over the few-row kernel's limit, with both attention kernels; inference's
    /// padding rows are zero.
    #[test]
    fn inference_equals_the_training_path_on_every_real_token() {
        for hidden in [16, 12] {
            for activation in ["gelu", "gelu_new", "relu"] {
                let model = random_bert(activation, hidden);
                let config = model.config().clone();
                for batch in [&FEW[..], &MANY[..]] {
                    let (ids, mask) = batch_tensors(batch, 0, &Device::Cpu).unwrap();
                    let fast = model.forward(&ids, &mask, None).unwrap();
                    let mut dropout = Dropout::new(&config, crate::rng::SplitMix64::new(1));
                    let reference = model.forward(&ids, &mask, Some(&mut dropout)).unwrap();
                    let what = format!("{activation}, hidden {hidden}");
                    assert_equal_on_real_tokens(&fast, &reference, batch, 1e-4, &what);
                }
            }
        }
    }

    /// With int8 linear layers, inference equals candle's inference ops (the same int8
    /// layers, the bias added as they store) on every real token: the plain-buffer path
    /// loses no bias, whether the next pass or the kernel adds it.
    #[test]
    fn int8_inference_equals_candles_int8_layers_on_every_real_token() {
        for activation in ["gelu", "relu"] {
            let mut model = random_bert(activation, 16);
            model.quantize_int8().unwrap();
            let Stack::Bert(layers) = &model.stack else {
                unreachable!("random_bert is a BERT")
            };
            for batch in [&FEW[..], &MANY[..]] {
                let (ids, mask) = batch_tensors(batch, 0, &Device::Cpu).unwrap();
                let fast = model.forward(&ids, &mask, None).unwrap();
                let mut reference = model.embeddings.forward(&ids, &mask, None).unwrap();
                let scores = scores_for(&mask).unwrap();
                for layer in layers {
                    reference = layer.forward(&reference, &scores, None).unwrap();
                }
                // The same integer products; attention's float sums differ in order, which can
                // move an activation code by one step.
                assert_equal_on_real_tokens(&fast, &reference, batch, 2e-2, activation);
            }
        }
    }

    /// Pooling straight from the packed rows equals pooling the padded output, mean and CLS,
    /// with and without int8 layers.
    #[test]
    fn pooled_inference_equals_pooling_the_padded_output() {
        for int8 in [false, true] {
            let mut model = random_bert("gelu", 16);
            if int8 {
                model.quantize_int8().unwrap();
            }
            for batch in [&FEW[..], &MANY[..]] {
                let (ids, mask) = batch_tensors(batch, 0, &Device::Cpu).unwrap();
                for pooling in [Pooling::Mean, Pooling::Cls] {
                    let fast = model.forward_pooled(&ids, &mask, pooling).unwrap();
                    let padded = model.forward(&ids, &mask, None).unwrap();
                    let want = pool(&padded, &mask, pooling).unwrap();
                    let (fast, want) = (
                        fast.to_vec2::<f32>().unwrap(),
                        want.to_vec2::<f32>().unwrap(),
                    );
                    assert_eq!(fast.len(), batch.len());
                    for (f, w) in fast.iter().flatten().zip(want.iter().flatten()) {
                        assert!((f - w).abs() < 1e-5, "{pooling:?} int8 {int8}: {f} vs {w}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_mask_of_another_shape_is_an_error() {
        let model = random_bert("gelu", 16);
        let (ids, _) = batch_tensors(&MANY, 0, &Device::Cpu).unwrap();
        let (_, one_row_mask) = batch_tensors(&MANY[..1], 0, &Device::Cpu).unwrap();
        let err = model.forward(&ids, &one_row_mask, None).unwrap_err();
        assert!(err.to_string().contains("attention mask"), "{err}");
    }
}
