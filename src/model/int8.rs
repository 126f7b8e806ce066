//! int8 linear layers for inference: `x · Wᵀ + b` with 8-bit integer multiplies.
//!
//! The encoder's time on the CPU is its linear layers. A few token rows (one short mention)
//! are bound by streaming the weights, and int8 weights are a quarter of f32's bytes: there a
//! layer runs 2–3x faster. Many rows are bound by multiplies: AVX2's `vpmaddubsw` multiplies
//! 32 byte pairs but needs a `vpmaddwd` to widen the sums, which on AVX2-only AMD cores comes
//! out about even with f32 FMAs (BENCHMARKS.md, "int8 encoder"). VNNI's `vpdpbusd` does both in
//! one instruction; there is no VNNI kernel yet.
//!
//! - **Weights** are quantised once, symmetrically per output channel: `w ≈ s_j · q` with
//!   `q ∈ [-127, 127]`, so one outlying channel does not coarsen the others.
//! - **Activations** are quantised per token row on every call, asymmetrically into 7 bits:
//!   `x ≈ s_i · (a − z_i)` with `a ∈ [0, 127]`. Asymmetric because GELU outputs barely go below
//!   zero (a symmetric scale would waste half the codes); 7 bits because `vpmaddubsw` adds two
//!   `u8 · i8` products into a saturating `i16`, and `2 · 127 · 127` is the largest sum that
//!   cannot saturate (`2 · 255 · 127` can).
//! - Then `x_i · w_j ≈ s_i · s_j · (Σ a·q − z_i · Σ q)`: the integer dot product is exact, and
//!   `Σ q` per channel is computed once.
//!
//! Opt-in (`EncoderOptions::int8`): each rounding moves vectors a little; BENCHMARKS.md
//! ("int8 encoder") reports what it costs in acc@1 and what it gains in speed. Inference only.

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};

/// Largest activation code: see the module header for why 7 bits.
const ACTIVATION_MAX: f32 = 127.0;

/// A weight matrix `n × k` (checkpoint layout: one row per output) quantised per row.
pub struct QuantizedLinear {
    /// `n × k` codes, row-major.
    codes: Vec<i8>,
    /// Per output row: the scale `s_j` and the code sum `Σ q` (for the activations' zero point).
    scales: Vec<f32>,
    code_sums: Vec<i32>,
    inputs: usize,
    outputs: usize,
}

impl QuantizedLinear {
    /// Quantises an f32 weight tensor `(outputs, inputs)`.
    pub fn quantize(weight: &Tensor) -> candle_core::Result<Self> {
        let (outputs, inputs) = weight.dims2()?;
        let values = weight
            .to_dtype(candle_core::DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let mut codes = Vec::with_capacity(values.len());
        let mut scales = Vec::with_capacity(outputs);
        let mut code_sums = Vec::with_capacity(outputs);
        for row in values.chunks_exact(inputs.max(1)).take(outputs) {
            let largest = row.iter().fold(0f32, |m, v| m.max(v.abs()));
            let scale = if largest > 0.0 { largest / 127.0 } else { 1.0 };
            let start = codes.len();
            codes.extend(
                row.iter()
                    .map(|v| (v / scale).round().clamp(-127.0, 127.0) as i8),
            );
            code_sums.push(codes[start..].iter().map(|&q| q as i32).sum());
            scales.push(scale);
        }
        Ok(QuantizedLinear {
            codes,
            scales,
            code_sums,
            inputs,
            outputs,
        })
    }

    /// `xs (rows × inputs) · Wᵀ + bias` on the CPU, f32 in and out.
    pub fn forward(&self, xs: &Tensor, bias: Option<&Tensor>) -> candle_core::Result<Tensor> {
        let out = xs.contiguous()?.apply_op1_no_bwd(self)?;
        match bias {
            Some(bias) => out.broadcast_add(bias),
            None => Ok(out),
        }
    }

    /// `out[i][j] = x[i] · w[j]` for `x: m × inputs` (f32, row-major); `out: m × outputs`.
    pub fn matmul(&self, x: &[f32], m: usize, out: &mut [f32]) {
        let (k, n) = (self.inputs, self.outputs);
        assert!(x.len() >= m * k && out.len() >= m * n);
        let activations = Activations::quantize(x, m, k);
        let scaling = Scaling {
            row_scales: &activations.scales,
            row_zeros: &activations.zeros,
            column_scales: &self.scales,
            code_sums: &self.code_sums,
        };
        integer_matmul(&activations.codes, &self.codes, &scaling, out, m, k, n);
    }
}

impl CustomOp1 for QuantizedLinear {
    fn name(&self) -> &'static str {
        "medlink-int8-linear"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(all) = xs else {
            candle_core::bail!("the int8 linear layer takes f32 activations")
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("the int8 linear layer takes contiguous activations")
        };
        let (m, k) = layout.shape().dims2()?;
        if k != self.inputs {
            candle_core::bail!(
                "int8 linear layer: activations have {k} columns, weights {}",
                self.inputs
            )
        }
        let mut out = vec![0f32; m * self.outputs];
        self.matmul(&all[start..end], m, &mut out);
        Ok((CpuStorage::F32(out), Shape::from((m, self.outputs))))
    }
}

/// Activation rows as 7-bit codes with a scale and zero point per row.
struct Activations {
    codes: Vec<u8>,
    scales: Vec<f32>,
    zeros: Vec<i32>,
}

impl Activations {
    fn quantize(x: &[f32], m: usize, k: usize) -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU has AVX2.
                return unsafe { avx2::quantize_activations(x, m, k) };
            }
        }
        Self::quantize_portable(x, m, k)
    }

    fn quantize_portable(x: &[f32], m: usize, k: usize) -> Self {
        let mut codes = vec![0u8; m * k];
        let mut scales = Vec::with_capacity(m);
        let mut zeros = Vec::with_capacity(m);
        for (row, row_codes) in x
            .chunks_exact(k.max(1))
            .zip(codes.chunks_exact_mut(k.max(1)))
            .take(m)
        {
            let (low, high) = row
                .iter()
                .fold((0f32, 0f32), |(lo, hi), &v| widen(lo, hi, v));
            let (scale, zero) = scale_and_zero(low, high);
            let inverse = 1.0 / scale;
            for (c, &v) in row_codes.iter_mut().zip(row) {
                *c = code(v, inverse, zero);
            }
            scales.push(scale);
            zeros.push(zero as i32);
        }
        Activations {
            codes,
            scales,
            zeros,
        }
    }
}

/// The running range of a row, which starts at (0, 0): it always includes 0, so 0 is
/// represented exactly (padding, ReLU-like outputs) and the zero point lies within the codes.
/// NaN is skipped.
#[inline(always)]
fn widen(low: f32, high: f32, v: f32) -> (f32, f32) {
    (
        if v < low { v } else { low },
        if v > high { v } else { high },
    )
}

/// A row's scale and zero point (a whole number, as f32) from its range.
#[inline(always)]
fn scale_and_zero(low: f32, high: f32) -> (f32, f32) {
    let scale = if high > low {
        (high - low) / ACTIVATION_MAX
    } else {
        1.0
    };
    let zero = (-low / scale).round_ties_even().clamp(0.0, ACTIVATION_MAX);
    (scale, zero)
}

/// One activation's code. The vector path computes the same operations in the same order
/// (multiply, add, round half to even, clamp), so both give the same codes.
#[inline(always)]
fn code(v: f32, inverse: f32, zero: f32) -> u8 {
    (v * inverse + zero)
        .round_ties_even()
        .clamp(0.0, ACTIVATION_MAX) as u8
}

/// Turns an exact integer dot product back into f32: `s_i · s_j · (Σ a·q − z_i · Σ q)`.
struct Scaling<'a> {
    row_scales: &'a [f32],
    row_zeros: &'a [i32],
    column_scales: &'a [f32],
    code_sums: &'a [i32],
}

impl Scaling<'_> {
    #[inline(always)]
    fn apply(&self, i: usize, j: usize, dot: i32) -> f32 {
        let exact = dot - self.row_zeros[i] * self.code_sums[j];
        self.row_scales[i] * self.column_scales[j] * exact as f32
    }
}

/// `out[i][j] = scaling(Σ_t a[i][t] · q[j][t])`; the sum is exact in `i32` (`k` up to
/// 2^16 cannot overflow), so every path gives the same bits.
fn integer_matmul(
    a: &[u8],
    q: &[i8],
    scaling: &Scaling,
    out: &mut [f32],
    m: usize,
    k: usize,
    n: usize,
) {
    assert!(a.len() >= m * k && q.len() >= n * k && out.len() >= m * n);
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2; the slices hold the shapes (asserted above).
            return unsafe { avx2::integer_matmul(a, q, scaling, out, m, k, n) };
        }
    }
    integer_matmul_scalar(a, q, scaling, out, m, k, n)
}

fn integer_matmul_scalar(
    a: &[u8],
    q: &[i8],
    scaling: &Scaling,
    out: &mut [f32],
    m: usize,
    k: usize,
    n: usize,
) {
    for i in 0..m {
        for j in 0..n {
            let dot = dot_scalar(&a[i * k..(i + 1) * k], &q[j * k..(j + 1) * k]);
            out[i * n + j] = scaling.apply(i, j, dot);
        }
    }
}

fn dot_scalar(a: &[u8], q: &[i8]) -> i32 {
    a.iter().zip(q).map(|(&x, &w)| x as i32 * w as i32).sum()
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// Activation rows per pass over the weights: 64 rows of 384 codes (24 KB) stay in L1
    /// while every weight row streams past them.
    const ROW_TILE: usize = 64;
    /// Activation rows and weight rows per register block: 8 accumulators, the weight
    /// vectors and the constant leave AVX2's 16 registers room for the products (measured
    /// with `cargo bench --bench linking -- dense_layer`: 4 × 2 beat 4 × 3, 3 × 4, 2 × 4, 5 × 2
    /// and 6 × 2 at 256 rows and matched them at 1–24).
    const ROWS: usize = 4;
    const WROWS: usize = 2;

    /// [`super::Activations::quantize_portable`] eight lanes at a time, with the same codes.
    #[target_feature(enable = "avx2")]
    pub unsafe fn quantize_activations(x: &[f32], m: usize, k: usize) -> super::Activations {
        assert!(x.len() >= m * k);
        let mut codes = vec![0u8; m * k];
        let mut scales = Vec::with_capacity(m);
        let mut zeros = Vec::with_capacity(m);
        let (lanes, blocks) = (k / 8 * 8, k / 32 * 32);
        for i in 0..m {
            let row = &x[i * k..(i + 1) * k];
            let (rp, out) = (row.as_ptr(), codes[i * k..(i + 1) * k].as_mut_ptr());
            let (mut lo, mut hi) = (_mm256_setzero_ps(), _mm256_setzero_ps());
            for t in (0..lanes).step_by(8) {
                // SAFETY: t + 8 <= k. `min(v, lo)` returns `lo` when `v` is NaN, as `widen`.
                let v = _mm256_loadu_ps(rp.add(t));
                lo = _mm256_min_ps(v, lo);
                hi = _mm256_max_ps(v, hi);
            }
            let (mut low, mut high) = (0f32, 0f32);
            let (mut lo_lanes, mut hi_lanes) = ([0f32; 8], [0f32; 8]);
            _mm256_storeu_ps(lo_lanes.as_mut_ptr(), lo);
            _mm256_storeu_ps(hi_lanes.as_mut_ptr(), hi);
            for (&l, &h) in lo_lanes.iter().zip(&hi_lanes) {
                (low, high) = (low.min(l), high.max(h));
            }
            for &v in &row[lanes..] {
                (low, high) = super::widen(low, high, v);
            }
            let (scale, zero) = super::scale_and_zero(low, high);
            let inverse = 1.0 / scale;
            let (inv, zp) = (_mm256_set1_ps(inverse), _mm256_set1_ps(zero));
            let (floor, top) = (_mm256_setzero_ps(), _mm256_set1_ps(super::ACTIVATION_MAX));
            // `packs` and `packus` interleave the 128-bit halves: this puts the 32 codes back
            // in order.
            let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
            for t in (0..blocks).step_by(32) {
                let eight = |o: usize| {
                    // SAFETY: t + 32 <= k.
                    let v = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(rp.add(t + o)), inv), zp);
                    let v = _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
                    // `max(v, 0)` returns 0 for NaN, as the scalar cast does.
                    _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(v, floor), top))
                };
                let low_half = _mm256_packs_epi32(eight(0), eight(8));
                let high_half = _mm256_packs_epi32(eight(16), eight(24));
                let packed = _mm256_packus_epi16(low_half, high_half);
                let ordered = _mm256_permutevar8x32_epi32(packed, order);
                _mm256_storeu_si256(out.add(t) as *mut __m256i, ordered);
            }
            for (t, &v) in row.iter().enumerate().skip(blocks) {
                *out.add(t) = super::code(v, inverse, zero);
            }
            scales.push(scale);
            zeros.push(zero as i32);
        }
        super::Activations {
            codes,
            scales,
            zeros,
        }
    }

    #[target_feature(enable = "avx2")]
    pub unsafe fn integer_matmul(
        a: &[u8],
        q: &[i8],
        scaling: &super::Scaling,
        out: &mut [f32],
        m: usize,
        k: usize,
        n: usize,
    ) {
        for tile in (0..m).step_by(ROW_TILE) {
            let end = (tile + ROW_TILE).min(m);
            let mut j = 0;
            while j + WROWS <= n {
                let mut i = tile;
                while i + ROWS <= end {
                    block::<ROWS, WROWS>(a, q, scaling, out, i, j, k, n);
                    i += ROWS;
                }
                match end - i {
                    3 => block::<3, WROWS>(a, q, scaling, out, i, j, k, n),
                    2 => block::<2, WROWS>(a, q, scaling, out, i, j, k, n),
                    1 => block::<1, WROWS>(a, q, scaling, out, i, j, k, n),
                    _ => {}
                }
                j += WROWS;
            }
            // The last weight rows when n is not a multiple of WROWS.
            while j < n {
                for i in tile..end {
                    block::<1, 1>(a, q, scaling, out, i, j, k, n);
                }
                j += 1;
            }
        }
    }

    /// Dots `R` activation rows from `i` with `C` weight rows from `j`, 32 codes per step.
    #[inline]
    #[target_feature(enable = "avx2")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn block<const R: usize, const C: usize>(
        a: &[u8],
        q: &[i8],
        scaling: &super::Scaling,
        out: &mut [f32],
        i: usize,
        j: usize,
        k: usize,
        n: usize,
    ) {
        let (ap, qp) = (a.as_ptr(), q.as_ptr());
        let ones = _mm256_set1_epi16(1);
        let mut acc = [[_mm256_setzero_si256(); C]; R];
        let full = k / 32 * 32;
        let mut t = 0;
        while t < full {
            // SAFETY: rows i..i+R of a and j..j+C of q exist, and t + 32 <= k.
            let mut wv = [_mm256_setzero_si256(); C];
            for (c, v) in wv.iter_mut().enumerate() {
                *v = _mm256_loadu_si256(qp.add((j + c) * k + t) as *const __m256i);
            }
            for (r, acc_r) in acc.iter_mut().enumerate() {
                let xv = _mm256_loadu_si256(ap.add((i + r) * k + t) as *const __m256i);
                for c in 0..C {
                    // u7 · i8 pairs summed into i16 (cannot saturate), then pairs of those
                    // into i32.
                    let pairs = _mm256_maddubs_epi16(xv, wv[c]);
                    acc_r[c] = _mm256_add_epi32(acc_r[c], _mm256_madd_epi16(pairs, ones));
                }
            }
            t += 32;
        }
        for (r, acc_r) in acc.iter().enumerate() {
            let row = (i + r) * k;
            for (c, &v) in acc_r.iter().enumerate() {
                let w_row = (j + c) * k;
                let tail = super::dot_scalar(&a[row + full..row + k], &q[w_row + full..w_row + k]);
                out[(i + r) * n + j + c] = scaling.apply(i + r, j + c, hsum(v) + tail);
            }
        }
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn hsum(v: __m256i) -> i32 {
        let halves = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
        let pairs = _mm_add_epi32(halves, _mm_unpackhi_epi64(halves, halves));
        let one = _mm_add_epi32(pairs, _mm_shuffle_epi32(pairs, 1));
        _mm_cvtsi128_si32(one)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn random(rng: &mut crate::rng::SplitMix64, len: usize) -> Vec<f32> {
        (0..len).map(|_| rng.next_f32() - 0.5).collect()
    }

    /// The rescaling's four tables, owned, for tests to lend out as a [`Scaling`].
    struct ScalingTables(Vec<f32>, Vec<i32>, Vec<f32>, Vec<i32>);

    impl ScalingTables {
        /// Scale 1 and zero point 0: the output is the integer dot product itself.
        fn unit(m: usize, n: usize) -> Self {
            ScalingTables(vec![1.0; m], vec![0; m], vec![1.0; n], vec![0; n])
        }

        fn scaling(&self) -> Scaling<'_> {
            Scaling {
                row_scales: &self.0,
                row_zeros: &self.1,
                column_scales: &self.2,
                code_sums: &self.3,
            }
        }
    }

    fn bits(values: &[f32]) -> Vec<u32> {
        values.iter().map(|v| v.to_bits()).collect()
    }

    #[test]
    fn vector_kernel_matches_the_scalar_path_bit_for_bit() {
        let mut rng = crate::rng::SplitMix64::new(11);
        // Row and weight-row counts off the register blocks, k with and without a tail,
        // and more rows than one tile.
        for (m, k, n) in [
            (1, 384, 384),
            (5, 37, 7),
            (70, 64, 5),
            (3, 1, 2),
            (9, 96, 1),
        ] {
            let a: Vec<u8> = (0..m * k).map(|_| rng.below(128) as u8).collect();
            let q: Vec<i8> = (0..n * k)
                .map(|_| (rng.below(255) as i32 - 127) as i8)
                .collect();
            let tables = ScalingTables(
                (0..m).map(|_| rng.next_f32() + 0.01).collect(),
                (0..m).map(|_| rng.below(128) as i32).collect(),
                (0..n).map(|_| rng.next_f32() + 0.01).collect(),
                (0..n)
                    .map(|j| q[j * k..(j + 1) * k].iter().map(|&v| v as i32).sum())
                    .collect(),
            );
            let scaling = tables.scaling();
            let mut want = vec![0f32; m * n];
            integer_matmul_scalar(&a, &q, &scaling, &mut want, m, k, n);
            let mut got = vec![f32::NAN; m * n];
            integer_matmul(&a, &q, &scaling, &mut got, m, k, n);
            assert_eq!(bits(&got), bits(&want), "{m}x{k}x{n}");
        }
    }

    #[test]
    fn activation_codes_match_the_portable_path() {
        let mut rng = crate::rng::SplitMix64::new(17);
        for (m, k) in [(3, 384), (2, 37), (4, 100), (1, 1), (2, 33), (1, 64)] {
            let mut x: Vec<f32> = (0..m * k).map(|_| (rng.next_f32() - 0.3) * 8.0).collect();
            // An all-zero row, a row of one sign, and a NaN (skipped by the range, coded 0).
            x[..k].fill(0.0);
            if m > 1 {
                x[k..2 * k].iter_mut().for_each(|v| *v = v.abs() + 1.0);
                x[k + k / 2] = f32::NAN;
            }
            let want = Activations::quantize_portable(&x, m, k);
            let got = Activations::quantize(&x, m, k);
            assert_eq!(got.codes, want.codes, "{m}x{k} codes");
            assert_eq!(got.zeros, want.zeros, "{m}x{k} zero points");
            assert_eq!(bits(&got.scales), bits(&want.scales), "{m}x{k} scales");
            assert!(want.codes.iter().all(|&c| c <= 127));
        }
    }

    #[test]
    fn extreme_codes_do_not_saturate() {
        // Every pair at the largest magnitude: 127 · ±127 twice per i16 lane.
        let (m, k, n) = (2, 64, 2);
        let a = vec![127u8; m * k];
        let q: Vec<i8> = (0..n * k).map(|t| if t < k { 127 } else { -127 }).collect();
        let mut out = vec![0f32; m * n];
        let tables = ScalingTables::unit(m, n);
        integer_matmul(&a, &q, &tables.scaling(), &mut out, m, k, n);
        let full = (127 * 127 * 64) as f32;
        assert_eq!(out, vec![full, -full, full, -full]);
    }

    #[test]
    fn quantised_layer_is_close_to_the_f32_product() {
        let mut rng = crate::rng::SplitMix64::new(5);
        let (m, k, n) = (6, 384, 96);
        let w = random(&mut rng, n * k);
        // Skewed activations, as after GELU: mostly positive.
        let x: Vec<f32> = random(&mut rng, m * k)
            .iter()
            .map(|v| (v + 0.3) * 2.0)
            .collect();
        let weight = Tensor::from_vec(w.clone(), (n, k), &Device::Cpu).unwrap();
        let layer = QuantizedLinear::quantize(&weight).unwrap();
        let mut got = vec![0f32; m * n];
        layer.matmul(&x, m, &mut got);
        for i in 0..m {
            let want: Vec<f32> = (0..n)
                .map(|j| (0..k).map(|t| x[i * k + t] * w[j * k + t]).sum())
                .collect();
            let row = &got[i * n..(i + 1) * n];
            let dot: f32 = row.iter().zip(&want).map(|(a, b)| a * b).sum();
            let norms = row.iter().map(|v| v * v).sum::<f32>().sqrt()
                * want.iter().map(|v| v * v).sum::<f32>().sqrt();
            let largest = want.iter().fold(0f32, |m, v| m.max(v.abs()));
            let worst = row
                .iter()
                .zip(&want)
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(dot / norms > 0.999, "row {i}: cosine {}", dot / norms);
            assert!(
                worst < 0.05 * largest,
                "row {i}: error {worst} of {largest}"
            );
        }
    }

    #[test]
    fn zero_rows_and_zero_weights_give_zero() {
        let weight = Tensor::zeros((3, 40), candle_core::DType::F32, &Device::Cpu).unwrap();
        let layer = QuantizedLinear::quantize(&weight).unwrap();
        let mut out = vec![f32::NAN; 2 * 3];
        layer.matmul(&[0.0; 80], 2, &mut out);
        assert_eq!(out, vec![0.0; 6]);
    }

    #[test]
    fn forward_adds_the_bias_and_checks_the_width() {
        let weight = Tensor::new(&[[1f32, 0.0], [0.0, -2.0]], &Device::Cpu).unwrap();
        let layer = QuantizedLinear::quantize(&weight).unwrap();
        let bias = Tensor::new(&[0.5f32, 1.0], &Device::Cpu).unwrap();
        let xs = Tensor::new(&[[1f32, 1.0]], &Device::Cpu).unwrap();
        let out: Vec<Vec<f32>> = layer.forward(&xs, Some(&bias)).unwrap().to_vec2().unwrap();
        assert!(
            (out[0][0] - 1.5).abs() < 0.02 && (out[0][1] + 1.0).abs() < 0.03,
            "{out:?}"
        );
        let wrong = Tensor::new(&[[1f32, 1.0, 1.0]], &Device::Cpu).unwrap();
        let error = layer.forward(&wrong, None).unwrap_err().to_string();
        assert!(error.contains("3 columns"), "{error}");
    }
}
