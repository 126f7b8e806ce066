//! Inference of the BERT-family layer stack on the CPU over plain buffers.
//!
//! The encoder's matrix products were already near this CPU's multiply peak, yet a fifth of
//! f32 embedding time and a third of int8's went around them: candle allocates (and the
//! kernel zero-fills) a fresh tensor for every op, adds each bias and residual in a pass of
//! its own, and multiplies attention as one tiny `gemm` call per sequence and head (a
//! 7-token name: 7 × 32 by 32 × 7), each paying the call's set-up. Here:
//! - **only real tokens are computed**: the batch's unpadded rows are packed one sequence
//!   after another (the embeddings write them so: `Embeddings::forward_packed`), so the
//!   linear layers (nearly all of the work) never multiply padding, and the output is
//!   scattered back to the padded shape at the end (padding rows zero);
//! - the six linear layers write into buffers kept per thread; a bias is added by the pass
//!   that reads the product next (residual + LayerNorm, the activation), or laid down before
//!   the product accumulates onto it where attention reads the product (int8 adds it as it
//!   stores);
//! - attention runs per sequence over its own rows, heads read in place from the rows (no
//!   transposes into a heads-first layout);
//! - the residual add and LayerNorm are one pass, GELU is applied in place.
//!
//! The training path and other devices keep candle's ops (`super::layers`): this path has no
//! backward pass. Both compute the same function on every real token; the model tests hold
//! them to each other and the parity tests to transformers' outputs.

use std::cell::RefCell;
use std::ops::Range;

use candle_core::Tensor;

use super::layers::Layer;
use super::ops::erf;

/// The real tokens' rows packed one sequence after another (`rows × hidden` values), and each
/// sequence's rows.
pub(super) type Packed = (Vec<f32>, Vec<Range<usize>>);

/// The buffers one layer writes, reused from batch to batch on a thread. Each only grows:
/// its length is the largest batch seen, and a layer uses the prefix it needs.
#[derive(Default)]
pub(super) struct Buffers {
    pub(super) q: Vec<f32>,
    pub(super) k: Vec<f32>,
    pub(super) v: Vec<f32>,
    pub(super) context: Vec<f32>,
    pub(super) attended: Vec<f32>,
    pub(super) inner: Vec<f32>,
    pub(super) out: Vec<f32>,
    /// One query's attention scores, then probabilities.
    pub(super) scores: Vec<f32>,
}

impl Buffers {
    fn values(&self) -> usize {
        [
            &self.q,
            &self.k,
            &self.v,
            &self.context,
            &self.attended,
            &self.inner,
            &self.out,
            &self.scores,
        ]
        .iter()
        .map(|b| b.capacity())
        .sum()
    }
}

/// Buffers holding more values than this in all are freed after their batch rather than kept
/// (256 MiB): a linking batch (128 strings of at most 25 tokens) needs ~12 M values with
/// MiniLM and ~25 M with a BERT-base model and keeps them, while a rare batch of long windows
/// does not pin its memory to a long-lived thread.
const RETAINED_VALUES: usize = 64 << 20;

thread_local! {
    /// A worker thread encodes batch after batch: its buffers stay allocated (and their pages
    /// mapped) between them.
    static BUFFERS: RefCell<Buffers> = RefCell::new(Buffers::default());
}

/// `buffer[..len]`, growing the buffer when it is shorter (never shrinking or re-zeroing it).
pub(super) fn prefix(buffer: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buffer.len() < len {
        buffer.resize(len, 0.0);
    }
    &mut buffer[..len]
}

/// Runs `layers` over the real tokens' rows `x`, packed one sequence after another (`spans`:
/// each sequence's rows, as [`super::embeddings::Embeddings::forward_packed`] gives them from
/// `mask`); returns `(batch, seq, hidden)` for `mask` `(batch, seq)`, padded positions zero.
pub(super) fn forward_packed(
    layers: &[Layer],
    x: Vec<f32>,
    spans: &[Range<usize>],
    mask: &Tensor,
    hidden: usize,
) -> candle_core::Result<Tensor> {
    let (batch, seq) = mask.dims2()?;
    let mask: Vec<u32> = mask.flatten_all()?.to_vec1()?;
    let out = run_packed(layers, x, spans, |x| unpack(x, &mask, hidden))?;
    Tensor::from_vec(out, (batch, seq, hidden), &candle_core::Device::Cpu)
}

/// Runs `layers` over the packed rows `x` (`spans`: each sequence's rows) on this thread's
/// buffers and returns what `finish` makes of the last layer's rows.
pub(super) fn run_packed<T>(
    layers: &[Layer],
    mut x: Vec<f32>,
    spans: &[Range<usize>],
    finish: impl FnOnce(&[f32]) -> T,
) -> candle_core::Result<T> {
    BUFFERS.with(|buffers| {
        let buffers = &mut *buffers.borrow_mut();
        for layer in layers {
            layer.forward_buffers(&mut x, spans, buffers)?;
        }
        let out = finish(&x);
        // Each layer swaps its output buffer with `x`: after an odd number of layers `x` is
        // one of the thread's buffers, which goes back to it.
        if x.capacity() > buffers.out.capacity() {
            std::mem::swap(&mut x, &mut buffers.out);
        }
        if buffers.values() > RETAINED_VALUES {
            *buffers = Buffers::default();
        }
        Ok(out)
    })
}

/// One unit-norm vector per sequence (`batch × hidden` values) from the packed rows: the mean
/// of its rows or its first row, as [`super::pool`] pools the padded output (an empty
/// sequence gives a zero vector).
pub(super) fn pool_packed(
    x: &[f32],
    spans: &[Range<usize>],
    hidden: usize,
    mean: bool,
) -> Vec<f32> {
    let mut out = vec![0f32; spans.len() * hidden];
    for (pooled, span) in out.chunks_exact_mut(hidden).zip(spans) {
        let rows = if mean {
            span.clone()
        } else {
            span.start..span.end.min(span.start + 1)
        };
        for row in rows.clone() {
            for (p, &v) in pooled.iter_mut().zip(&x[row * hidden..(row + 1) * hidden]) {
                *p += v;
            }
        }
        let count = rows.len().max(1) as f32;
        let norm = (pooled.iter().map(|v| v * v).sum::<f32>().sqrt() / count).max(1e-12);
        let scale = 1.0 / (count * norm);
        pooled.iter_mut().for_each(|v| *v *= scale);
    }
    out
}

/// The packed rows `x` back in the padded layout of `mask` (one value per position), padding
/// rows zero.
fn unpack(x: &[f32], mask: &[u32], hidden: usize) -> Vec<f32> {
    let mut out = vec![0f32; mask.len() * hidden];
    let mut row = 0;
    for (j, &m) in mask.iter().enumerate() {
        if m != 0 {
            out[j * hidden..(j + 1) * hidden].copy_from_slice(&x[row * hidden..(row + 1) * hidden]);
            row += 1;
        }
    }
    out
}

/// Scaled dot-product attention of every row over the rows of its own sequence. `q`, `k`,
/// `v` and `context` hold `rows × hidden` values (heads side by side in each row); `spans`
/// are the sequences' rows.
pub(super) fn attention(
    (q, k, v): (&[f32], &[f32], &[f32]),
    spans: &[Range<usize>],
    (hidden, heads): (usize, usize),
    context: &mut [f32],
    scores: &mut Vec<f32>,
) {
    let rows = spans.last().map_or(0, |s| s.end);
    assert!(heads > 0 && hidden % heads == 0);
    assert!(spans.iter().all(|s| s.start <= s.end && s.end <= rows));
    assert!(q.len() >= rows * hidden && k.len() >= rows * hidden && v.len() >= rows * hidden);
    assert!(context.len() >= rows * hidden);
    #[cfg(target_arch = "x86_64")]
    {
        if (hidden / heads) % 8 == 0
            && is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU has AVX2 and FMA; every span lies within the `rows × hidden`
            // values the slices hold (asserted above), and the head width is whole vectors.
            return unsafe { avx2::attention((q, k, v), spans, (hidden, heads), context, scores) };
        }
    }
    attention_portable((q, k, v), spans, (hidden, heads), context, scores)
}

/// The attention kernel with vectors of eight lanes: a key's score is one fused
/// multiply-add per eight dimensions and one horizontal sum, a query's context row the
/// probability-weighted sum of the value rows, kept in registers.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;
    use std::ops::Range;

    /// Vectors of one output row kept in registers at a time (64 dimensions).
    const ACCUMULATORS: usize = 8;

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn attention(
        (q, k, v): (&[f32], &[f32], &[f32]),
        spans: &[Range<usize>],
        (hidden, heads): (usize, usize),
        context: &mut [f32],
        scores: &mut Vec<f32>,
    ) {
        let head = hidden / heads;
        let vectors = head / 8;
        let scale = 1.0 / (head as f32).sqrt();
        for span in spans {
            scores.resize(span.len(), 0.0);
            for h in 0..heads {
                let column = h * head;
                for i in span.clone() {
                    let query = q.as_ptr().add(i * hidden + column);
                    let mut max = f32::NEG_INFINITY;
                    for (score, j) in scores.iter_mut().zip(span.clone()) {
                        let key = k.as_ptr().add(j * hidden + column);
                        let mut acc = _mm256_setzero_ps();
                        for l in 0..vectors {
                            acc = _mm256_fmadd_ps(
                                _mm256_loadu_ps(query.add(8 * l)),
                                _mm256_loadu_ps(key.add(8 * l)),
                                acc,
                            );
                        }
                        *score = horizontal_sum(acc) * scale;
                        max = max.max(*score);
                    }
                    let mut total = 0.0;
                    for score in scores.iter_mut() {
                        *score = (*score - max).exp();
                        total += *score;
                    }
                    let inverse = 1.0 / total;
                    let out = context.as_mut_ptr().add(i * hidden + column);
                    for start in (0..vectors).step_by(ACCUMULATORS) {
                        let width = (vectors - start).min(ACCUMULATORS);
                        let mut acc = [_mm256_setzero_ps(); ACCUMULATORS];
                        for (&score, j) in scores.iter().zip(span.clone()) {
                            let p = _mm256_set1_ps(score * inverse);
                            let value = v.as_ptr().add(j * hidden + column + 8 * start);
                            for (l, a) in acc.iter_mut().enumerate().take(width) {
                                *a = _mm256_fmadd_ps(p, _mm256_loadu_ps(value.add(8 * l)), *a);
                            }
                        }
                        for (l, a) in acc.iter().enumerate().take(width) {
                            _mm256_storeu_ps(out.add(8 * (start + l)), *a);
                        }
                    }
                }
            }
        }
    }

    /// `gelu(row + bias)` in place, eight values at a time ([`super::gelu`]'s formula and
    /// erf polynomials). The compiler vectorised the scalar loop too, but divided for erf's
    /// rational function; here the reciprocal is `vrcpps` refined by one Newton step
    /// (relative error ~1e-7, under the approximation's own 1e-6): a third of GELU's time.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn gelu_row(row: &mut [f32], bias: Option<&[f32]>) {
        let n = row.len();
        assert!(bias.is_none_or(|b| b.len() >= n));
        let p = row.as_mut_ptr();
        let mut i = 0;
        // SAFETY: i + 8 <= n for every load and store; `bias` holds at least n values.
        while i + 8 <= n {
            let mut x = _mm256_loadu_ps(p.add(i));
            if let Some(bias) = bias {
                x = _mm256_add_ps(x, _mm256_loadu_ps(bias.as_ptr().add(i)));
            }
            _mm256_storeu_ps(p.add(i), gelu8(x));
            i += 8;
        }
        for j in i..n {
            row[j] = super::gelu(row[j] + bias.map_or(0.0, |b| b[j]));
        }
    }

    #[inline(always)]
    unsafe fn gelu8(x: __m256) -> __m256 {
        let fma = |a, b, c: f32| _mm256_fmadd_ps(a, b, _mm256_set1_ps(c));
        let z = _mm256_mul_ps(x, _mm256_set1_ps(std::f32::consts::FRAC_1_SQRT_2));
        let z = _mm256_min_ps(_mm256_max_ps(z, _mm256_set1_ps(-4.0)), _mm256_set1_ps(4.0));
        let z2 = _mm256_mul_ps(z, z);
        let mut p = fma(z2, _mm256_set1_ps(-2.726_142_3e-10), 2.770_681_4e-8);
        p = fma(z2, p, -2.101_024e-6);
        p = fma(z2, p, -5.692_506_4e-5);
        p = fma(z2, p, -7.349_906_3e-4);
        p = fma(z2, p, -2.954_600_1e-3);
        p = fma(z2, p, -1.609_603_3e-2);
        let mut q = fma(z2, _mm256_set1_ps(-1.456_607_2e-5), -2.133_740_6e-4);
        q = fma(z2, q, -1.682_827e-3);
        q = fma(z2, q, -7.373_329e-3);
        q = fma(z2, q, -1.426_473_9e-2);
        // q lies in [-2.4, -0.0143] over the clamp: never zero.
        let r = _mm256_rcp_ps(q);
        let r = _mm256_mul_ps(r, _mm256_fnmadd_ps(q, r, _mm256_set1_ps(2.0)));
        let erf = _mm256_mul_ps(_mm256_mul_ps(z, p), r);
        let half_x = _mm256_mul_ps(x, _mm256_set1_ps(0.5));
        _mm256_fmadd_ps(half_x, erf, half_x)
    }

    #[inline(always)]
    unsafe fn horizontal_sum(v: __m256) -> f32 {
        let pair = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let pair = _mm_add_ps(pair, _mm_movehl_ps(pair, pair));
        _mm_cvtss_f32(_mm_add_ss(pair, _mm_shuffle_ps(pair, pair, 1)))
    }
}

/// The same computation without vectors (and for heads not a multiple of eight wide).
fn attention_portable(
    (q, k, v): (&[f32], &[f32], &[f32]),
    spans: &[Range<usize>],
    (hidden, heads): (usize, usize),
    context: &mut [f32],
    scores: &mut Vec<f32>,
) {
    let head = hidden / heads;
    let scale = 1.0 / (head as f32).sqrt();
    for span in spans {
        for h in 0..heads {
            let cols = h * head..(h + 1) * head;
            for i in span.clone() {
                let query = &q[i * hidden..][cols.clone()];
                scores.clear();
                scores.extend(span.clone().map(|j| {
                    let key = &k[j * hidden..][cols.clone()];
                    query.iter().zip(key).map(|(a, b)| a * b).sum::<f32>() * scale
                }));
                softmax_in_place(scores);
                let out = &mut context[i * hidden..][cols.clone()];
                out.fill(0.0);
                for (&p, j) in scores.iter().zip(span.clone()) {
                    for (o, &value) in out.iter_mut().zip(&v[j * hidden..][cols.clone()]) {
                        *o += p * value;
                    }
                }
            }
        }
    }
}

#[inline(always)]
fn softmax_in_place(xs: &mut [f32]) {
    let max = xs.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let mut sum = 0.0;
    for v in xs.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    for v in xs.iter_mut() {
        *v /= sum;
    }
}

/// Eight partial sums, so the compiler keeps them in one vector instead of a serial chain.
#[inline(always)]
fn sum(xs: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let chunks = xs.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for l in 0..8 {
            lanes[l] += c[l];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// `xs[r] = LayerNorm(xs[r] + residual[r] + add) · weight + bias` for every row `r` of
/// `weight.len()` values (`add`: a bias the linear layer before left out, if any).
pub(super) fn add_layer_norm(
    xs: &mut [f32],
    residual: &[f32],
    add: Option<&[f32]>,
    weight: &[f32],
    bias: &[f32],
    eps: f32,
) {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has AVX2 and FMA.
            return unsafe { add_layer_norm_avx2(xs, residual, add, weight, bias, eps) };
        }
    }
    add_layer_norm_body(xs, residual, add, weight, bias, eps)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn add_layer_norm_avx2(
    xs: &mut [f32],
    residual: &[f32],
    add: Option<&[f32]>,
    weight: &[f32],
    bias: &[f32],
    eps: f32,
) {
    add_layer_norm_body(xs, residual, add, weight, bias, eps)
}

#[inline(always)]
fn add_layer_norm_body(
    xs: &mut [f32],
    residual: &[f32],
    add: Option<&[f32]>,
    weight: &[f32],
    bias: &[f32],
    eps: f32,
) {
    let h = weight.len();
    let n = h as f32;
    for (row, res) in xs.chunks_exact_mut(h).zip(residual.chunks_exact(h)) {
        match add {
            Some(add) => {
                for ((x, &r), &a) in row.iter_mut().zip(res).zip(add) {
                    *x += r + a;
                }
            }
            None => {
                for (x, &r) in row.iter_mut().zip(res) {
                    *x += r;
                }
            }
        }
        let mean = sum(row) / n;
        let mut lanes = [0f32; 8];
        let chunks = row.chunks_exact(8);
        let tail: f32 = chunks
            .remainder()
            .iter()
            .map(|&v| (v - mean) * (v - mean))
            .sum();
        for c in chunks {
            for l in 0..8 {
                lanes[l] += (c[l] - mean) * (c[l] - mean);
            }
        }
        let var = (lanes.iter().sum::<f32>() + tail) / n;
        let rstd = 1.0 / (var + eps).sqrt();
        for ((x, &w), &b) in row.iter_mut().zip(weight).zip(bias) {
            *x = (*x - mean) * rstd * w + b;
        }
    }
}

/// `f(x + bias)` in place for each value (`bias`, if any, repeats row after row).
#[inline(always)]
fn activate_rows(xs: &mut [f32], bias: Option<&[f32]>, f: impl Fn(f32) -> f32) {
    match bias {
        Some(bias) => {
            for row in xs.chunks_exact_mut(bias.len().max(1)) {
                for (v, &b) in row.iter_mut().zip(bias) {
                    *v = f(*v + b);
                }
            }
        }
        None => xs.iter_mut().for_each(|v| *v = f(*v)),
    }
}

#[inline(always)]
fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// The exact (erf) GELU of `xs + bias` in place.
pub(super) fn gelu_in_place(xs: &mut [f32], bias: Option<&[f32]>) {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has AVX2 and FMA.
            return unsafe { gelu_avx2(xs, bias) };
        }
    }
    activate_rows(xs, bias, gelu)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn gelu_avx2(xs: &mut [f32], bias: Option<&[f32]>) {
    match bias {
        Some(bias) => {
            for row in xs.chunks_exact_mut(bias.len().max(1)) {
                avx2::gelu_row(row, Some(bias));
            }
        }
        None => avx2::gelu_row(xs, None),
    }
}

/// The tanh approximation of GELU (`gelu_new`, `gelu_pytorch_tanh`, as candle's) of
/// `xs + bias` in place.
pub(super) fn gelu_tanh_in_place(xs: &mut [f32], bias: Option<&[f32]>) {
    const SQRT_TWO_OVER_PI: f32 = 0.797_884_6;
    activate_rows(xs, bias, |x| {
        0.5 * x * (1.0 + (SQRT_TWO_OVER_PI * x * (1.0 + 0.044_715 * x * x)).tanh())
    })
}

/// ReLU of `xs + bias` in place.
pub(super) fn relu_in_place(xs: &mut [f32], bias: Option<&[f32]>) {
    activate_rows(xs, bias, |x| x.max(0.0))
}

/// `out += bias` row after row.
pub(super) fn add_bias(out: &mut [f32], bias: &[f32]) {
    for row in out.chunks_exact_mut(bias.len().max(1)) {
        row.iter_mut().zip(bias).for_each(|(o, &b)| *o += b);
    }
}

/// `out (m × n) = x (m × k) · wᵀ + bias`, `w` stored `n × k` as in a checkpoint, on the
/// calling thread. The bias is written first and the product accumulated onto it; without
/// one the product overwrites `out`.
pub(super) fn gemm_with_bias(
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
    (m, k, n): (usize, usize, usize),
) {
    assert!(x.len() >= m * k && w.len() >= n * k && out.len() >= m * n);
    if let Some(bias) = bias {
        out.chunks_exact_mut(n)
            .take(m)
            .for_each(|row| row.copy_from_slice(&bias[..n]));
    }
    // SAFETY: the pointers cover `m × k`, `n × k` and `m × n` elements (asserted above) with
    // the strides given: x row-major, wᵀ read from w's rows, out row-major. Without
    // `read_dst`, gemm writes `out` without reading it.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            bias.is_some(),
            x.as_ptr(),
            1,
            k as isize,
            w.as_ptr(),
            k as isize,
            1,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive_dot(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    /// The vector GELU (reciprocal by Newton step) equals the scalar formula, with and without
    /// a bias, at every tail length, across and beyond erf's clamp.
    #[test]
    fn gelu_in_place_matches_the_scalar_formula() {
        for len in [1usize, 7, 8, 9, 23, 1536] {
            let xs: Vec<f32> = (0..len).map(|i| (i as f32 * 0.731).sin() * 9.0).collect();
            let bias: Vec<f32> = (0..len).map(|i| (i as f32 * 0.17).cos()).collect();
            for with_bias in [false, true] {
                let mut got = xs.clone();
                gelu_in_place(&mut got, with_bias.then_some(&bias[..]));
                for (i, (&g, &x)) in got.iter().zip(&xs).enumerate() {
                    let x = x + if with_bias { bias[i] } else { 0.0 };
                    let want = gelu(x);
                    assert!(
                        (g - want).abs() <= 1e-6 * x.abs().max(1.0),
                        "len {len} bias {with_bias} x {x}: {g} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn sum_matches_a_plain_loop_at_every_tail_length() {
        for len in 0..30 {
            let a: Vec<f32> = (0..len).map(|i| (i as f32 * 0.37).sin()).collect();
            assert!((sum(&a) - a.iter().sum::<f32>()).abs() < 1e-5, "len {len}");
        }
    }

    #[test]
    fn gemm_with_bias_matches_a_plain_product() {
        let (m, k, n) = (5, 7, 3);
        let x: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.3).sin()).collect();
        let w: Vec<f32> = (0..n * k).map(|i| (i as f32 * 0.7).cos()).collect();
        let bias = [0.5, -1.0, 2.0];
        // Stale values in the output must not leak into the result.
        for with_bias in [true, false] {
            let mut out = vec![9.0; m * n];
            gemm_with_bias(&x, &w, with_bias.then_some(&bias[..]), &mut out, (m, k, n));
            for i in 0..m {
                for j in 0..n {
                    let product = naive_dot(&x[i * k..(i + 1) * k], &w[j * k..(j + 1) * k]);
                    let want = product + if with_bias { bias[j] } else { 0.0 };
                    assert!(
                        (out[i * n + j] - want).abs() < 1e-5,
                        "({i}, {j}) {with_bias}"
                    );
                }
            }
        }
    }

    /// Attention by hand for two sequences packed back to back, one head of width 2.
    fn attention_by_hand() -> (Vec<f32>, Vec<f32>) {
        let q = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0];
        let k = [1.0, 0.0, 0.0, 1.0, 50.0, 50.0];
        let v = [1.0, 2.0, 3.0, 4.0, 100.0, 100.0];
        let spans = [0..2, 2..3];
        let mut context = vec![0f32; 6];
        attention((&q, &k, &v), &spans, (2, 1), &mut context, &mut Vec::new());
        let s = 1.0 / 2f32.sqrt();
        // Row 0 scores rows 0 and 1 as s and 0; row 1 as 0 and s; row 2 sees only itself.
        let p = s.exp() / (s.exp() + 1.0);
        let want = vec![
            p + 3.0 * (1.0 - p),
            2.0 * p + 4.0 * (1.0 - p),
            (1.0 - p) + 3.0 * p,
            2.0 * (1.0 - p) + 4.0 * p,
            100.0,
            100.0,
        ];
        (context, want)
    }

    #[test]
    fn attention_stays_within_each_sequence_and_matches_softmax_by_hand() {
        let (got, want) = attention_by_hand();
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-5, "{got:?} vs {want:?}");
        }
    }

    #[test]
    fn vector_and_portable_attention_agree() {
        // Two heads of width 8 and of width 16 (the vector kernel's cases, one and two vectors
        // per head) over sequences of 3, 17 and 8 rows.
        let rows = 28;
        let spans = [0..3, 3..20, 20..28];
        for (hidden, heads) in [(16, 2), (32, 2)] {
            let values = |seed: f32| -> Vec<f32> {
                (0..rows * hidden)
                    .map(|i| ((i as f32 + seed) * 0.37).sin())
                    .collect()
            };
            let (q, k, v) = (values(1.0), values(2.0), values(3.0));
            let mut fast = vec![0f32; rows * hidden];
            let mut portable = vec![0f32; rows * hidden];
            attention(
                (&q, &k, &v),
                &spans,
                (hidden, heads),
                &mut fast,
                &mut Vec::new(),
            );
            attention_portable(
                (&q, &k, &v),
                &spans,
                (hidden, heads),
                &mut portable,
                &mut Vec::new(),
            );
            for (a, b) in fast.iter().zip(&portable) {
                assert!((a - b).abs() < 1e-5, "hidden {hidden}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn add_layer_norm_normalises_the_sum() {
        let mut xs = vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0];
        let residual = vec![1.0; 10];
        let weight = vec![2.0; 10];
        let bias = vec![0.5; 10];
        add_layer_norm(&mut xs, &residual, None, &weight, &bias, 1e-12);
        let mean: f32 = xs.iter().sum::<f32>() / 10.0;
        let var: f32 = xs.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / 10.0;
        assert!(
            (mean - 0.5).abs() < 1e-5 && (var - 4.0).abs() < 1e-4,
            "{mean} {var}"
        );
    }
}
