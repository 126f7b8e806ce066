//! The parts every architecture shares: linear layers, LayerNorm, dropout, and the
//! post-LayerNorm transformer layer (self-attention, then a feed-forward block, each followed
//! by a residual connection and LayerNorm) in Hugging Face's `BertLayer` weight layout, which
//! RoBERTa and XLM-R use unchanged and DeBERTa-v2 uses with `*_proj` attention names.
//!
//! Where architectures differ inside the layer is only how queries and keys become masked
//! attention scores: [`AttentionScores`]. BERT's is [`ScaledDotProduct`]; DeBERTa's
//! disentangled attention lives in `super::deberta`.
//!
//! Linear layers flatten `(batch, seq, in)` to 2-D before the matrix product: one large gemm
//! instead of a batched one, and a cheaper backward pass. On the CPU, GELU, LayerNorm and
//! softmax run as fused kernels with their own backward pass ([`super::ops`]); on other
//! devices, candle's differentiable ops in training and its fused kernels in inference.

use candle_core::Tensor;
use candle_nn::VarBuilder;

use super::inference::{self, Buffers};
use super::int8::QuantizedLinear;
use super::ops;
use super::Config;
use crate::rng::SplitMix64;

/// Dropout for one training step: masks come from a generator seeded for that step, so a step
/// is repeatable and a resumed run identical.
pub struct Dropout {
    pub(super) hidden: f32,
    pub(super) attention: f32,
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

    pub(super) fn apply(&mut self, xs: &Tensor, p: f32) -> candle_core::Result<Tensor> {
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

pub(super) struct Dense {
    weight: Tensor,
    /// None for a projection without bias (DeBERTa's `embed_proj`).
    bias: Option<Tensor>,
    /// The weight in int8, once [`Dense::quantize`] ran: inference then takes it.
    int8: Option<QuantizedLinear>,
}

impl Dense {
    pub(super) fn load(vb: VarBuilder, inputs: usize, outputs: usize) -> candle_core::Result<Self> {
        let mut dense = Self::load_without_bias(vb.clone(), inputs, outputs)?;
        dense.bias = Some(vb.get_with_hints(outputs, "bias", candle_nn::init::ZERO)?);
        Ok(dense)
    }

    pub(super) fn load_without_bias(
        vb: VarBuilder,
        inputs: usize,
        outputs: usize,
    ) -> candle_core::Result<Self> {
        Ok(Dense {
            weight: vb.get_with_hints(
                (outputs, inputs),
                "weight",
                candle_nn::init::DEFAULT_KAIMING_NORMAL,
            )?,
            bias: None,
            int8: None,
        })
    }

    /// Runs inference in int8 from now on (see [`super::int8`]); training keeps f32.
    pub(super) fn quantize(&mut self) -> candle_core::Result<()> {
        self.int8 = Some(QuantizedLinear::quantize(&self.weight, self.bias.as_ref())?);
        Ok(())
    }

    /// `training` keeps the differentiable path; inference takes the int8 weights when the
    /// layer has them, else, on a few rows (one mention, a small batch), the packing-free
    /// kernel of [`super::skinny`].
    pub(super) fn forward(&self, xs: &Tensor, training: bool) -> candle_core::Result<Tensor> {
        let (b, s, h) = xs.dims3()?;
        let rows = xs.reshape((b * s, h))?;
        let out = match (&self.int8, &self.bias) {
            (Some(int8), _) if !training => int8.forward(&rows)?,
            (_, Some(bias))
                if !training && xs.device().is_cpu() && b * s <= super::skinny::MAX_ROWS =>
            {
                super::skinny::linear(&rows, &self.weight, bias)?
            }
            (_, Some(bias)) => rows.matmul(&self.weight.t()?)?.broadcast_add(bias)?,
            (_, None) => rows.matmul(&self.weight.t()?)?,
        };
        out.reshape((b, s, ()))
    }

    fn outputs(&self) -> candle_core::Result<usize> {
        self.weight.dim(0)
    }

    /// Inference on plain buffers (see [`inference`]): `out[..rows · outputs] = x · Wᵀ + b`
    /// for `x`: `rows × inputs`. With `defer_bias`, an f32 product leaves the bias out and
    /// returns it, for the caller's next pass over `out` (LayerNorm, activation) to add: a
    /// pass of its own saved. int8 adds it as it stores and always returns `None`.
    fn forward_into(
        &self,
        x: &[f32],
        rows: usize,
        out: &mut Vec<f32>,
        defer_bias: bool,
    ) -> candle_core::Result<Option<F32View<'_>>> {
        let (n, k) = self.weight.dims2()?;
        let x = &x[..rows * k];
        let out = inference::prefix(out, rows * n);
        if let Some(int8) = &self.int8 {
            int8.matmul(x, rows, out);
            return Ok(None);
        }
        let weight = F32View::of(&self.weight)?;
        let bias = self.bias.as_ref().map(F32View::of).transpose()?;
        if rows <= super::skinny::MAX_ROWS {
            super::skinny::matmul_rows(x, weight.slice(), out, rows, k, n);
            if defer_bias {
                return Ok(bias);
            }
            if let Some(bias) = &bias {
                inference::add_bias(out, bias.slice());
            }
            Ok(None)
        } else if defer_bias {
            inference::gemm_with_bias(x, weight.slice(), None, out, (rows, k, n));
            Ok(bias)
        } else {
            let bias_values = bias.as_ref().map(F32View::slice);
            inference::gemm_with_bias(x, weight.slice(), bias_values, out, (rows, k, n));
            Ok(None)
        }
    }
}

/// A CPU f32 tensor's elements, read-locked while the view lives (no copy of the weights).
pub(super) struct F32View<'a> {
    storage: candle_core::StorageRef<'a>,
    range: std::ops::Range<usize>,
}

impl<'a> F32View<'a> {
    pub(super) fn of(tensor: &'a Tensor) -> candle_core::Result<Self> {
        let (storage, layout) = tensor.storage_and_layout();
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("inference buffers take contiguous weights")
        };
        if !matches!(
            &*storage,
            candle_core::Storage::Cpu(candle_core::CpuStorage::F32(_))
        ) {
            candle_core::bail!("inference buffers take f32 weights on the CPU")
        }
        Ok(F32View {
            storage,
            range: start..end,
        })
    }

    /// The view of the first `len` values only (a table's first row).
    pub(super) fn first(mut self, len: usize) -> candle_core::Result<Self> {
        if self.range.len() < len {
            candle_core::bail!(
                "a tensor of {} values has no {len} first values",
                self.range.len()
            )
        }
        self.range.end = self.range.start + len;
        Ok(self)
    }

    pub(super) fn slice(&self) -> &[f32] {
        match &*self.storage {
            candle_core::Storage::Cpu(candle_core::CpuStorage::F32(all)) => {
                &all[self.range.clone()]
            }
            _ => unreachable!("F32View::of admits only CPU f32 storage"),
        }
    }
}

pub(super) struct Norm {
    weight: Tensor,
    bias: Tensor,
    eps: f32,
}

impl Norm {
    pub(super) fn load(vb: VarBuilder, size: usize, eps: f64) -> candle_core::Result<Self> {
        Ok(Norm {
            weight: vb.get_with_hints(size, "weight", candle_nn::init::ONE)?,
            bias: vb.get_with_hints(size, "bias", candle_nn::init::ZERO)?,
            eps: eps as f32,
        })
    }

    pub(super) fn forward(&self, xs: &Tensor, training: bool) -> candle_core::Result<Tensor> {
        if training || xs.device().is_cpu() {
            ops::layer_norm(xs, &self.weight, &self.bias, self.eps)
        } else {
            candle_nn::ops::layer_norm(xs, &self.weight, &self.bias, self.eps)
        }
    }

    /// Inference on plain buffers: `xs = LayerNorm(xs + residual + bias)`, row by row (`bias`:
    /// what the linear layer that wrote `xs` left to add).
    pub(super) fn add_in_place(
        &self,
        xs: &mut [f32],
        residual: &[f32],
        bias: Option<F32View>,
    ) -> candle_core::Result<()> {
        let (weight, shift) = (F32View::of(&self.weight)?, F32View::of(&self.bias)?);
        let bias = bias.as_ref().map(F32View::slice);
        inference::add_layer_norm(xs, residual, bias, weight.slice(), shift.slice(), self.eps);
        Ok(())
    }
}

/// How an architecture turns one layer's queries and keys into masked attention scores,
/// the softmax's input.
pub(super) trait AttentionScores {
    /// `q` and `k` are `(batch, heads, seq, head)`; returns `(batch, heads, seq, seq)`.
    fn scores(
        &self,
        layer: &Layer,
        q: &Tensor,
        k: &Tensor,
        dropout: Option<&mut Dropout>,
    ) -> candle_core::Result<Tensor>;
}

/// BERT's attention scores: `q k^T / sqrt(head)` plus an additive padding mask.
pub(super) struct ScaledDotProduct {
    /// `(batch, 1, 1, seq)`: 0 for tokens, very negative for padding.
    pub(super) additive_mask: Tensor,
}

impl AttentionScores for ScaledDotProduct {
    fn scores(
        &self,
        _layer: &Layer,
        q: &Tensor,
        k: &Tensor,
        _dropout: Option<&mut Dropout>,
    ) -> candle_core::Result<Tensor> {
        let head = q.dim(3)?;
        (q.matmul(&k.t()?)? / (head as f64).sqrt())?.broadcast_add(&self.additive_mask)
    }
}

/// One transformer layer (`encoder.layer.N` in the checkpoint).
pub(super) struct Layer {
    pub(super) query: Dense,
    pub(super) key: Dense,
    value: Dense,
    attention_out: Dense,
    attention_norm: Norm,
    intermediate: Dense,
    output: Dense,
    output_norm: Norm,
    heads: usize,
    activation: Activation,
}

#[derive(Clone, Copy)]
enum Activation {
    /// The exact (erf) GELU, `hidden_act = "gelu"`.
    Gelu,
    /// The tanh approximation (`gelu_new`, `gelu_pytorch_tanh`).
    GeluTanh,
    Relu,
}

impl Layer {
    pub(super) fn load(vb: VarBuilder, c: &Config) -> candle_core::Result<Self> {
        let h = c.hidden_size;
        let att = vb.pp("attention");
        // DeBERTa-v2 names its projections `query_proj`, `key_proj`, `value_proj`.
        let (query, key, value) = match c.architecture {
            super::Architecture::DebertaV2 => ("query_proj", "key_proj", "value_proj"),
            _ => ("query", "key", "value"),
        };
        let eps = c.layer_norm_eps();
        let activation = match c.hidden_act.as_str() {
            "gelu" => Activation::Gelu,
            "relu" => Activation::Relu,
            // `Config::validate` admits only these four.
            _ => Activation::GeluTanh,
        };
        Ok(Layer {
            query: Dense::load(att.pp("self").pp(query), h, h)?,
            key: Dense::load(att.pp("self").pp(key), h, h)?,
            value: Dense::load(att.pp("self").pp(value), h, h)?,
            attention_out: Dense::load(att.pp("output").pp("dense"), h, h)?,
            attention_norm: Norm::load(att.pp("output").pp("LayerNorm"), h, eps)?,
            intermediate: Dense::load(vb.pp("intermediate").pp("dense"), h, c.intermediate_size)?,
            output: Dense::load(vb.pp("output").pp("dense"), c.intermediate_size, h)?,
            output_norm: Norm::load(vb.pp("output").pp("LayerNorm"), h, eps)?,
            heads: c.num_attention_heads,
            activation,
        })
    }

    /// Quantises the layer's six linear layers for int8 inference.
    pub(super) fn quantize(&mut self) -> candle_core::Result<()> {
        for dense in [
            &mut self.query,
            &mut self.key,
            &mut self.value,
            &mut self.attention_out,
            &mut self.intermediate,
            &mut self.output,
        ] {
            dense.quantize()?;
        }
        Ok(())
    }

    /// `(batch, seq, hidden)` → `(batch, heads, seq, head)`.
    pub(super) fn split_heads(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        let (b, s, h) = xs.dims3()?;
        xs.reshape((b, s, self.heads, h / self.heads))?
            .transpose(1, 2)?
            .contiguous()
    }

    /// `xs` is `(batch, seq, hidden)`; `attention` scores the queries against the keys (and
    /// masks padding). With `dropout`, the differentiable training path.
    pub(super) fn forward(
        &self,
        xs: &Tensor,
        attention: &dyn AttentionScores,
        mut dropout: Option<&mut Dropout>,
    ) -> candle_core::Result<Tensor> {
        let training = dropout.is_some();
        let (b, s, h) = xs.dims3()?;
        let q = self.split_heads(&self.query.forward(xs, training)?)?;
        let k = self.split_heads(&self.key.forward(xs, training)?)?;
        let v = self.split_heads(&self.value.forward(xs, training)?)?;
        let scores = attention.scores(self, &q, &k, dropout.as_deref_mut())?;
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
        let mut attended = self.attention_out.forward(&context, training)?;
        if let Some(d) = dropout.as_deref_mut() {
            attended = d.apply(&attended, d.hidden)?;
        }
        let attended = self.attention_norm.forward(&(attended + xs)?, training)?;
        let inner = self.activate(&self.intermediate.forward(&attended, training)?)?;
        let mut out = self.output.forward(&inner, training)?;
        if let Some(d) = dropout {
            out = d.apply(&out, d.hidden)?;
        }
        self.output_norm.forward(&(out + attended)?, training)
    }

    /// The same layer for inference on the CPU over plain buffers ([`inference`]): `x` holds
    /// the real tokens' rows, one sequence after another (`spans`: each sequence's rows), and
    /// is replaced by the layer's output.
    pub(super) fn forward_buffers(
        &self,
        x: &mut Vec<f32>,
        spans: &[std::ops::Range<usize>],
        buffers: &mut Buffers,
    ) -> candle_core::Result<()> {
        let rows = spans.last().map_or(0, |s| s.end);
        let hidden = self.query.outputs()?;
        let len = rows * hidden;
        let input = &x[..len];
        self.query
            .forward_into(input, rows, &mut buffers.q, false)?;
        self.key.forward_into(input, rows, &mut buffers.k, false)?;
        self.value
            .forward_into(input, rows, &mut buffers.v, false)?;
        inference::attention(
            (&buffers.q[..len], &buffers.k[..len], &buffers.v[..len]),
            spans,
            (hidden, self.heads),
            inference::prefix(&mut buffers.context, len),
            &mut buffers.scores,
        );
        let bias = self.attention_out.forward_into(
            &buffers.context[..len],
            rows,
            &mut buffers.attended,
            true,
        )?;
        self.attention_norm
            .add_in_place(&mut buffers.attended[..len], input, bias)?;
        let bias = self.intermediate.forward_into(
            &buffers.attended[..len],
            rows,
            &mut buffers.inner,
            true,
        )?;
        let inner = &mut buffers.inner[..rows * self.intermediate.outputs()?];
        let bias_values = bias.as_ref().map(F32View::slice);
        match self.activation {
            Activation::Gelu => inference::gelu_in_place(inner, bias_values),
            Activation::GeluTanh => inference::gelu_tanh_in_place(inner, bias_values),
            Activation::Relu => inference::relu_in_place(inner, bias_values),
        }
        // The intermediate bias is added: its storage's read lock need not last the layer.
        drop(bias);
        let bias = self
            .output
            .forward_into(inner, rows, &mut buffers.out, true)?;
        self.output_norm
            .add_in_place(&mut buffers.out[..len], &buffers.attended[..len], bias)?;
        std::mem::swap(x, &mut buffers.out);
        Ok(())
    }

    fn activate(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        match self.activation {
            Activation::Gelu => ops::gelu(xs),
            Activation::GeluTanh => xs.gelu(),
            Activation::Relu => xs.relu(),
        }
    }
}
