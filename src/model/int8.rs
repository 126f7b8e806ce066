//! int8 linear layers for inference: `x · Wᵀ + b` with 8-bit integer multiplies.
//!
//! The encoder's time on the CPU is its linear layers. A few token rows (one short mention)
//! are bound by streaming the weights, and int8 weights are a quarter of f32's bytes: there a
//! layer runs 3–4x faster. Many rows are bound by multiplies: AVX2's `vpmaddubsw` multiplies
//! 32 byte pairs but needs a `vpmaddwd` to widen the sums, two multiply-pipe instructions for
//! 32 multiply-adds where two FMAs do 16: at best twice f32, about 1.9x in practice
//! (BENCHMARKS.md, "int8 encoder"). AVX-512 VNNI's `vpdpbusd` does both, and the add, in one
//! instruction over 16 lanes: CPUs that have it run that kernel ([`avx512vnni`]), with the same
//! integer sums and so the same outputs.
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
//! - **Layout**: weights are stored packed ([`PackedCodes`]) so that the kernel broadcasts four
//!   activation codes and meets eight channels' codes in one vector: every lane accumulates one
//!   output, with no horizontal sums at the end (the first kernel, which dotted whole rows and
//!   summed each output's lanes, took half as long again).
//!
//! Opt-in (`EncoderOptions::int8`): each rounding moves vectors a little; BENCHMARKS.md
//! ("int8 encoder") reports what it costs in acc@1 and what it gains in speed. Inference only.

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};

/// Largest activation code: see the module header for why 7 bits.
const ACTIVATION_MAX: f32 = 127.0;
/// Most inputs per output: `2^16 · 127 · 127` still fits the kernel's `i32` sums.
const MAX_INPUTS: usize = 1 << 16;

/// A weight matrix `n × k` (checkpoint layout: one row per output) quantised per row, with
/// its bias.
pub struct QuantizedLinear {
    /// The `n × k` codes in the kernel's order.
    codes: PackedCodes,
    /// Added as each output is stored (zeros for a layer without bias): a separate add
    /// would be another pass over the outputs and another tensor.
    biases: Vec<f32>,
    /// Per output row: the scale `s_j` and the code sum `Σ q` (for the activations' zero point).
    scales: Vec<f32>,
    code_sums: Vec<i32>,
    inputs: usize,
    outputs: usize,
}

impl QuantizedLinear {
    /// Quantises an f32 weight tensor `(outputs, inputs)`; keeps the bias `(outputs)` in f32.
    pub fn quantize(weight: &Tensor, bias: Option<&Tensor>) -> candle_core::Result<Self> {
        let (outputs, inputs) = weight.dims2()?;
        if inputs > MAX_INPUTS {
            candle_core::bail!("int8 linear layer: {inputs} inputs; at most {MAX_INPUTS}")
        }
        let biases = match bias {
            Some(bias) => bias.to_dtype(candle_core::DType::F32)?.to_vec1::<f32>()?,
            None => vec![0.0; outputs],
        };
        if biases.len() != outputs {
            candle_core::bail!(
                "int8 linear layer: {} biases for {outputs} outputs",
                biases.len()
            )
        }
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
            codes: PackedCodes::pack(&codes, outputs, inputs),
            biases,
            scales,
            code_sums,
            inputs,
            outputs,
        })
    }

    /// `xs (rows × inputs) · Wᵀ + bias` on the CPU, f32 in and out.
    pub fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        xs.contiguous()?.apply_op1_no_bwd(self)
    }

    /// `out[i][j] = x[i] · w[j] + bias[j]` for `x: m × inputs` (f32, row-major);
    /// `out: m × outputs`.
    pub fn matmul(&self, x: &[f32], m: usize, out: &mut [f32]) {
        let (k, n) = (self.inputs, self.outputs);
        assert!(x.len() >= m * k && out.len() >= m * n);
        let stride = self.codes.stride();
        let activations = Activations::quantize_reusing(x, m, k, stride, RECYCLED.take());
        let scaling = Scaling {
            row_scales: &activations.scales,
            row_zeros: &activations.zeros,
            column_scales: &self.scales,
            code_sums: &self.code_sums,
            biases: &self.biases,
        };
        integer_matmul(&activations.codes, &self.codes, &scaling, out, m, n);
        RECYCLED.set(activations);
    }
}

thread_local! {
    /// The last call's activation buffers on this thread, for the next call: fresh ones each
    /// time cost a page fault per 4 KB (the kernel zero-fills new memory).
    static RECYCLED: std::cell::Cell<Activations> = std::cell::Cell::new(Activations::default());
}

/// Output channels per block of [`PackedCodes`]: two vectors of eight `i32` lanes.
const BLOCK: usize = 16;
/// Inputs per group: the four codes one `i32` broadcast carries.
const GROUP: usize = 4;

/// Weight codes in the kernel's order. Output channels come in blocks of [`BLOCK`]; a block
/// holds, for each group of [`GROUP`] inputs, each channel's four codes in turn (64 bytes).
/// Inputs and channels past the matrix's edge are zero codes, so they add nothing.
struct PackedCodes {
    bytes: Vec<i8>,
    /// Input groups: `ceil(k / GROUP)`.
    groups: usize,
}

impl PackedCodes {
    /// Packs row-major `n × k` codes.
    fn pack(codes: &[i8], n: usize, k: usize) -> Self {
        let groups = k.div_ceil(GROUP);
        let mut bytes = vec![0i8; n.div_ceil(BLOCK) * groups * BLOCK * GROUP];
        for (j, row) in codes.chunks_exact(k.max(1)).take(n).enumerate() {
            for (t, &q) in row.iter().enumerate() {
                let group = (j / BLOCK) * groups + t / GROUP;
                bytes[group * BLOCK * GROUP + (j % BLOCK) * GROUP + t % GROUP] = q;
            }
        }
        PackedCodes { bytes, groups }
    }

    /// Activation codes per row the kernel reads: `k` rounded up to whole groups.
    fn stride(&self) -> usize {
        self.groups * GROUP
    }

    /// The codes of output block `b`: `groups` runs of 64 bytes.
    fn block(&self, b: usize) -> &[i8] {
        let len = self.groups * BLOCK * GROUP;
        &self.bytes[b * len..(b + 1) * len]
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
#[derive(Default)]
struct Activations {
    /// `m` rows of `stride` codes; the codes past `k` are 0.
    codes: Vec<u8>,
    scales: Vec<f32>,
    zeros: Vec<i32>,
}

impl Activations {
    /// Codes `m` rows of `k` values into rows of `stride ≥ k` codes.
    #[cfg(test)]
    fn quantize(x: &[f32], m: usize, k: usize, stride: usize) -> Self {
        Self::quantize_reusing(x, m, k, stride, Activations::default())
    }

    /// `m` rows of `k` values coded into rows of `stride ≥ k` codes, in the buffers of `reuse`
    /// (the codes past `m` rows are left as they were; [`Activations::quantize_portable`] is
    /// the rule).
    fn quantize_reusing(x: &[f32], m: usize, k: usize, stride: usize, reuse: Self) -> Self {
        assert!(stride >= k);
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU has AVX2.
                return unsafe { avx2::quantize_activations(x, m, k, stride, reuse) };
            }
        }
        Self::quantize_portable(x, m, k, stride, reuse)
    }

    /// `reuse`'s buffers emptied and sized for `m` rows of `stride` codes, each row's codes
    /// past `k` zero.
    fn recycle(mut reuse: Self, m: usize, k: usize, stride: usize) -> Self {
        if reuse.codes.len() < m * stride {
            reuse.codes.resize(m * stride, 0);
        }
        if stride > k {
            reuse.codes[..m * stride]
                .chunks_exact_mut(stride)
                .for_each(|row| row[k..].fill(0));
        }
        reuse.scales.clear();
        reuse.zeros.clear();
        reuse
    }

    fn quantize_portable(x: &[f32], m: usize, k: usize, stride: usize, reuse: Self) -> Self {
        let Activations {
            mut codes,
            mut scales,
            mut zeros,
        } = Self::recycle(reuse, m, k, stride);
        // Row by row, as the vector path: `m` scales even when the rows are empty.
        for i in 0..m {
            let row = &x[i * k..(i + 1) * k];
            let row_codes = &mut codes[i * stride..i * stride + k];
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

/// Turns an exact integer dot product back into f32 and adds the bias:
/// `s_i · s_j · (Σ a·q − z_i · Σ q) + b_j`.
struct Scaling<'a> {
    row_scales: &'a [f32],
    row_zeros: &'a [i32],
    column_scales: &'a [f32],
    code_sums: &'a [i32],
    biases: &'a [f32],
}

impl Scaling<'_> {
    #[inline(always)]
    fn apply(&self, i: usize, j: usize, dot: i32) -> f32 {
        let exact = dot - self.row_zeros[i] * self.code_sums[j];
        self.row_scales[i] * self.column_scales[j] * exact as f32 + self.biases[j]
    }
}

/// `out[i][j] = scaling(Σ_t a[i][t] · q[j][t])` for `a`: `m` rows of `w.stride()` codes and
/// `out`: `m × n`. The sum is exact in `i32` (`k` up to 2^16 cannot overflow), so every path
/// gives the same bits.
fn integer_matmul(
    a: &[u8],
    w: &PackedCodes,
    scaling: &Scaling,
    out: &mut [f32],
    m: usize,
    n: usize,
) {
    assert_shapes(a, w, scaling, out, m, n);
    #[cfg(target_arch = "x86_64")]
    {
        if avx512vnni::available() {
            // SAFETY: the CPU has AVX-512 F and VNNI; the slices hold the shapes (asserted
            // above).
            return unsafe { avx512vnni::integer_matmul(a, w, scaling, out, m, n) };
        }
        if is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2; the slices hold the shapes (asserted above).
            return unsafe { avx2::integer_matmul(a, w, scaling, out, m, n) };
        }
    }
    integer_matmul_scalar(a, w, scaling, out, m, n)
}

/// [`integer_matmul`]'s contract on the shapes: what every kernel reads, the vector ones
/// through raw pointers (they check it again, being callable on their own).
fn assert_shapes(a: &[u8], w: &PackedCodes, scaling: &Scaling, out: &[f32], m: usize, n: usize) {
    assert!(a.len() >= m * w.stride() && out.len() >= m * n);
    assert!(w.bytes.len() >= n.div_ceil(BLOCK) * w.groups * BLOCK * GROUP);
    assert!(scaling.row_scales.len() >= m && scaling.row_zeros.len() >= m);
    assert!(scaling.column_scales.len() >= n && scaling.code_sums.len() >= n);
    assert!(scaling.biases.len() >= n);
}

/// Activation bytes per pass over the weights in the vector kernels: a tile of rows stays in
/// L2 while each block of weights (16 channels, 6 KB at 384 inputs) stays in L1 across its
/// rows.
#[cfg(target_arch = "x86_64")]
const TILE_BYTES: usize = 128 * 1024;

/// The vector kernels' loop order over an `m × n` product of activation rows `stride` codes
/// long: tiles of rows ([`TILE_BYTES`]), in each tile every block of [`BLOCK`] channels
/// against register blocks of `rows` rows, the tile's last rows as one shorter block.
/// `block(i, r, b)` computes rows `i..i + r` (`1 <= r <= rows`) against channel block `b`.
#[cfg(target_arch = "x86_64")]
fn for_each_register_block(
    (m, n, stride): (usize, usize, usize),
    rows: usize,
    mut block: impl FnMut(usize, usize, usize),
) {
    let tile_rows = (TILE_BYTES / stride.max(1)).max(rows);
    for tile in (0..m).step_by(tile_rows) {
        let end = (tile + tile_rows).min(m);
        for b in 0..n.div_ceil(BLOCK) {
            let mut i = tile;
            while i < end {
                let r = (end - i).min(rows);
                block(i, r, b);
                i += r;
            }
        }
    }
}

/// The kernel's loops without vectors: one row against one block of channels at a time.
fn integer_matmul_scalar(
    a: &[u8],
    w: &PackedCodes,
    scaling: &Scaling,
    out: &mut [f32],
    m: usize,
    n: usize,
) {
    let stride = w.stride();
    for b in 0..n.div_ceil(BLOCK) {
        let codes = w.block(b);
        for i in 0..m {
            let row = &a[i * stride..(i + 1) * stride];
            let mut dots = [0i32; BLOCK];
            for (four, group) in row
                .chunks_exact(GROUP)
                .zip(codes.chunks_exact(BLOCK * GROUP))
            {
                for (dot, q) in dots.iter_mut().zip(group.chunks_exact(GROUP)) {
                    *dot += four
                        .iter()
                        .zip(q)
                        .map(|(&x, &q)| x as i32 * q as i32)
                        .sum::<i32>();
                }
            }
            for (c, &dot) in dots.iter().enumerate().take(n - b * BLOCK) {
                let j = b * BLOCK + c;
                out[i * n + j] = scaling.apply(i, j, dot);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{BLOCK, GROUP};

    /// Activation rows per register block: with two vectors of channels each, 8
    /// accumulators, the two weight vectors, the broadcast and the constant fit AVX2's 16
    /// registers.
    const ROWS: usize = 4;

    /// [`super::Activations::quantize_portable`] eight lanes at a time, with the same codes.
    #[target_feature(enable = "avx2")]
    pub unsafe fn quantize_activations(
        x: &[f32],
        m: usize,
        k: usize,
        stride: usize,
        reuse: super::Activations,
    ) -> super::Activations {
        assert!(x.len() >= m * k && stride >= k);
        let super::Activations {
            mut codes,
            mut scales,
            mut zeros,
        } = super::Activations::recycle(reuse, m, k, stride);
        let (lanes, blocks) = (k / 8 * 8, k / 32 * 32);
        for i in 0..m {
            let row = &x[i * k..(i + 1) * k];
            let (rp, out) = (row.as_ptr(), codes[i * stride..i * stride + k].as_mut_ptr());
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

    /// [`super::integer_matmul`]'s contract, checked again here because the kernel reads
    /// through raw pointers.
    ///
    /// # Safety
    /// The CPU must have AVX2.
    #[target_feature(enable = "avx2")]
    pub unsafe fn integer_matmul(
        a: &[u8],
        w: &super::PackedCodes,
        scaling: &super::Scaling,
        out: &mut [f32],
        m: usize,
        n: usize,
    ) {
        super::assert_shapes(a, w, scaling, out, m, n);
        let stride = w.stride();
        super::for_each_register_block((m, n, stride), ROWS, |i, rows, b| {
            let (codes, j) = (w.block(b).as_ptr(), b * BLOCK);
            // SAFETY: the CPU has AVX2 (this function's contract); the shapes are asserted.
            unsafe {
                match rows {
                    ROWS => block::<ROWS>(a, stride, codes, w.groups, scaling, out, i, j, n),
                    3 => block::<3>(a, stride, codes, w.groups, scaling, out, i, j, n),
                    2 => block::<2>(a, stride, codes, w.groups, scaling, out, i, j, n),
                    _ => block::<1>(a, stride, codes, w.groups, scaling, out, i, j, n),
                }
            }
        });
    }

    /// Dots `R` activation rows from `i` with the 16 channels from `j` whose packed codes
    /// start at `codes`, four inputs per step, and stores the rescaled outputs.
    #[inline]
    #[target_feature(enable = "avx2")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn block<const R: usize>(
        a: &[u8],
        stride: usize,
        codes: *const i8,
        groups: usize,
        scaling: &super::Scaling,
        out: &mut [f32],
        i: usize,
        j: usize,
        n: usize,
    ) {
        let ap = a.as_ptr();
        let ones = _mm256_set1_epi16(1);
        let mut acc = [[_mm256_setzero_si256(); 2]; R];
        for g in 0..groups {
            // SAFETY: the block holds `groups` runs of 64 codes; rows i..i+R hold `stride`
            // codes each and g * GROUP + 4 <= stride.
            let low = _mm256_loadu_si256(codes.add(g * BLOCK * GROUP) as *const __m256i);
            let high = _mm256_loadu_si256(codes.add(g * BLOCK * GROUP + 32) as *const __m256i);
            for (r, acc_r) in acc.iter_mut().enumerate() {
                let four = (ap.add((i + r) * stride + g * GROUP) as *const i32).read_unaligned();
                let x = _mm256_set1_epi32(four);
                // u7 · i8 pairs summed into i16 (cannot saturate), then pairs of those into
                // i32: lane c gains channel c's four products.
                let ones_low = _mm256_madd_epi16(_mm256_maddubs_epi16(x, low), ones);
                let ones_high = _mm256_madd_epi16(_mm256_maddubs_epi16(x, high), ones);
                acc_r[0] = _mm256_add_epi32(acc_r[0], ones_low);
                acc_r[1] = _mm256_add_epi32(acc_r[1], ones_high);
            }
        }
        for (r, acc_r) in acc.iter().enumerate() {
            let row = i + r;
            let zero = _mm256_set1_epi32(scaling.row_zeros[row]);
            let row_scale = _mm256_set1_ps(scaling.row_scales[row]);
            for (half, &dots) in acc_r.iter().enumerate() {
                let col = j + half * 8;
                if col + 8 <= n {
                    // Scaling::apply's operations in its order, eight lanes at a time.
                    // SAFETY: the tables hold n entries and `out` m × n (asserted by the
                    // caller).
                    let sums =
                        _mm256_loadu_si256(scaling.code_sums.as_ptr().add(col) as *const __m256i);
                    let exact = _mm256_sub_epi32(dots, _mm256_mullo_epi32(zero, sums));
                    let scale = _mm256_mul_ps(
                        row_scale,
                        _mm256_loadu_ps(scaling.column_scales.as_ptr().add(col)),
                    );
                    let values = _mm256_add_ps(
                        _mm256_mul_ps(scale, _mm256_cvtepi32_ps(exact)),
                        _mm256_loadu_ps(scaling.biases.as_ptr().add(col)),
                    );
                    _mm256_storeu_ps(out.as_mut_ptr().add(row * n + col), values);
                } else if col < n {
                    let mut lanes = [0i32; 8];
                    _mm256_storeu_si256(lanes.as_mut_ptr() as *mut __m256i, dots);
                    for (c, &dot) in lanes.iter().enumerate().take(n - col) {
                        out[row * n + col + c] = scaling.apply(row, col + c, dot);
                    }
                }
            }
        }
    }
}

/// The kernel for AVX-512 VNNI (AMD since Zen 4, Intel since Cascade Lake): `vpdpbusd` multiplies
/// four `u8 · i8` pairs per lane and adds them into the lane's `i32` in one instruction, where
/// AVX2 needs three (`vpmaddubsw`, `vpmaddwd`, `vpaddd`) for half the lanes. The packed layout
/// is the one the AVX2 kernel reads: one group of a block (16 channels × 4 inputs, 64 bytes) is
/// exactly one 512-bit vector, lane `c` holding channel `c`'s four codes. The integer sums are
/// the same, so the outputs are the same bits.
#[cfg(target_arch = "x86_64")]
mod avx512vnni {
    use std::arch::x86_64::*;

    use super::{BLOCK, GROUP};

    /// Activation rows per register block: eight accumulators of the 32 registers, each
    /// weight vector loaded once for eight rows.
    const ROWS: usize = 8;

    pub fn available() -> bool {
        is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512vnni")
    }

    /// [`super::integer_matmul`]'s contract, checked again here because the kernel reads
    /// through raw pointers.
    ///
    /// # Safety
    /// The CPU must have AVX-512 F and VNNI ([`available`]).
    #[target_feature(enable = "avx512f,avx512vnni")]
    pub unsafe fn integer_matmul(
        a: &[u8],
        w: &super::PackedCodes,
        scaling: &super::Scaling,
        out: &mut [f32],
        m: usize,
        n: usize,
    ) {
        super::assert_shapes(a, w, scaling, out, m, n);
        let stride = w.stride();
        super::for_each_register_block((m, n, stride), ROWS, |i, rows, b| {
            let (codes, j) = (w.block(b).as_ptr(), b * BLOCK);
            // SAFETY: the CPU has AVX-512 F and VNNI (this function's contract); the shapes
            // are asserted.
            unsafe {
                match rows {
                    ROWS => block::<ROWS>(a, stride, codes, w.groups, scaling, out, i, j, n),
                    7 => block::<7>(a, stride, codes, w.groups, scaling, out, i, j, n),
                    6 => block::<6>(a, stride, codes, w.groups, scaling, out, i, j, n),
                    5 => block::<5>(a, stride, codes, w.groups, scaling, out, i, j, n),
                    4 => block::<4>(a, stride, codes, w.groups, scaling, out, i, j, n),
                    3 => block::<3>(a, stride, codes, w.groups, scaling, out, i, j, n),
                    2 => block::<2>(a, stride, codes, w.groups, scaling, out, i, j, n),
                    _ => block::<1>(a, stride, codes, w.groups, scaling, out, i, j, n),
                }
            }
        });
    }

    /// Dots `R` activation rows from `i` with the 16 channels from `j` whose packed codes
    /// start at `codes`, four inputs per instruction, and stores the rescaled outputs.
    #[inline]
    #[target_feature(enable = "avx512f,avx512vnni")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn block<const R: usize>(
        a: &[u8],
        stride: usize,
        codes: *const i8,
        groups: usize,
        scaling: &super::Scaling,
        out: &mut [f32],
        i: usize,
        j: usize,
        n: usize,
    ) {
        let ap = a.as_ptr();
        let mut acc = [_mm512_setzero_si512(); R];
        for g in 0..groups {
            // SAFETY: the block holds `groups` runs of 64 codes; rows i..i+R hold `stride`
            // codes each and g * GROUP + 4 <= stride.
            let q = _mm512_loadu_si512(codes.add(g * BLOCK * GROUP) as *const __m512i);
            for (r, acc_r) in acc.iter_mut().enumerate() {
                let four = (ap.add((i + r) * stride + g * GROUP) as *const i32).read_unaligned();
                // Lane c gains channel c's four u7 · i8 products.
                *acc_r = _mm512_dpbusd_epi32(*acc_r, _mm512_set1_epi32(four), q);
            }
        }
        let live = (n - j).min(BLOCK);
        let mask: __mmask16 = if live == BLOCK {
            !0
        } else {
            (1u16 << live) - 1
        };
        // SAFETY (the masked loads and stores): lanes past `live` are neither read nor
        // written; the tables hold n entries and `out` m × n (asserted by the caller).
        let sums = _mm512_maskz_loadu_epi32(mask, scaling.code_sums.as_ptr().add(j));
        let column_scales = _mm512_maskz_loadu_ps(mask, scaling.column_scales.as_ptr().add(j));
        let biases = _mm512_maskz_loadu_ps(mask, scaling.biases.as_ptr().add(j));
        for (r, &dots) in acc.iter().enumerate() {
            let row = i + r;
            // Scaling::apply's operations in its order, sixteen lanes at a time.
            let zero = _mm512_set1_epi32(scaling.row_zeros[row]);
            let exact = _mm512_sub_epi32(dots, _mm512_mullo_epi32(zero, sums));
            let scale = _mm512_mul_ps(_mm512_set1_ps(scaling.row_scales[row]), column_scales);
            let values = _mm512_add_ps(_mm512_mul_ps(scale, _mm512_cvtepi32_ps(exact)), biases);
            _mm512_mask_storeu_ps(out.as_mut_ptr().add(row * n + j), mask, values);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn random(rng: &mut crate::rng::SplitMix64, len: usize) -> Vec<f32> {
        (0..len).map(|_| rng.next_f32() - 0.5).collect()
    }

    /// The rescaling's five tables, owned, for tests to lend out as a [`Scaling`].
    struct ScalingTables(Vec<f32>, Vec<i32>, Vec<f32>, Vec<i32>, Vec<f32>);

    impl ScalingTables {
        /// Scale 1, zero point 0, no bias: the output is the integer dot product itself.
        fn unit(m: usize, n: usize) -> Self {
            ScalingTables(
                vec![1.0; m],
                vec![0; m],
                vec![1.0; n],
                vec![0; n],
                vec![0.0; n],
            )
        }

        fn scaling(&self) -> Scaling<'_> {
            Scaling {
                row_scales: &self.0,
                row_zeros: &self.1,
                column_scales: &self.2,
                code_sums: &self.3,
                biases: &self.4,
            }
        }
    }

    fn bits(values: &[f32]) -> Vec<u32> {
        values.iter().map(|v| v.to_bits()).collect()
    }

    /// `a` (`m × k`, row-major) padded to the packed weights' stride.
    fn padded_rows(a: &[u8], m: usize, k: usize, stride: usize) -> Vec<u8> {
        let mut rows = vec![0u8; m * stride];
        for i in 0..m {
            rows[i * stride..i * stride + k].copy_from_slice(&a[i * k..(i + 1) * k]);
        }
        rows
    }

    #[test]
    fn packed_kernels_match_the_plain_product_bit_for_bit() {
        let mut rng = crate::rng::SplitMix64::new(11);
        // Row counts off the register block and past one tile, channel counts off the
        // blocks, and inputs that are not whole groups.
        for (m, k, n) in [
            (1, 384, 384),
            (5, 37, 7),
            (70, 64, 5),
            (3, 1, 2),
            (9, 96, 1),
            (6, 1536, 24),
            (400, 384, 17),
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
                (0..n).map(|_| rng.next_f32() - 0.5).collect(),
            );
            let scaling = tables.scaling();
            let want: Vec<f32> = (0..m * n)
                .map(|o| {
                    let (i, j) = (o / n, o % n);
                    let dot = (0..k)
                        .map(|t| a[i * k + t] as i32 * q[j * k + t] as i32)
                        .sum();
                    scaling.apply(i, j, dot)
                })
                .collect();
            let packed = PackedCodes::pack(&q, n, k);
            let rows = padded_rows(&a, m, k, packed.stride());
            let mut vector = vec![f32::NAN; m * n];
            integer_matmul(&rows, &packed, &scaling, &mut vector, m, n);
            assert_eq!(bits(&vector), bits(&want), "kernel {m}x{k}x{n}");
            // Each vector kernel this CPU has, not only the one dispatch picks.
            #[cfg(target_arch = "x86_64")]
            {
                if is_x86_feature_detected!("avx2") {
                    let mut avx2 = vec![f32::NAN; m * n];
                    // SAFETY: the CPU has AVX2.
                    unsafe { avx2::integer_matmul(&rows, &packed, &scaling, &mut avx2, m, n) };
                    assert_eq!(bits(&avx2), bits(&want), "AVX2 {m}x{k}x{n}");
                }
                if avx512vnni::available() {
                    let mut vnni = vec![f32::NAN; m * n];
                    // SAFETY: the CPU has AVX-512 F and VNNI.
                    unsafe {
                        avx512vnni::integer_matmul(&rows, &packed, &scaling, &mut vnni, m, n)
                    };
                    assert_eq!(bits(&vnni), bits(&want), "AVX-512 VNNI {m}x{k}x{n}");
                }
            }
            let mut scalar = vec![f32::NAN; m * n];
            integer_matmul_scalar(&rows, &packed, &scaling, &mut scalar, m, n);
            assert_eq!(bits(&scalar), bits(&want), "scalar {m}x{k}x{n}");
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
            let stride = k.div_ceil(GROUP) * GROUP;
            let want = Activations::quantize_portable(&x, m, k, stride, Activations::default());
            let got = Activations::quantize(&x, m, k, stride);
            assert_eq!(got.codes, want.codes, "{m}x{k} codes");
            assert_eq!(got.zeros, want.zeros, "{m}x{k} zero points");
            assert_eq!(bits(&got.scales), bits(&want.scales), "{m}x{k} scales");
            assert!(want.codes.iter().all(|&c| c <= 127));
            assert!((0..m).all(|i| want.codes[i * stride + k..(i + 1) * stride]
                .iter()
                .all(|&c| c == 0)));
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
        let packed = PackedCodes::pack(&q, n, k);
        integer_matmul(&a, &packed, &tables.scaling(), &mut out, m, n);
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
        let layer = QuantizedLinear::quantize(&weight, None).unwrap();
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
        let layer = QuantizedLinear::quantize(&weight, None).unwrap();
        let mut out = vec![f32::NAN; 2 * 3];
        layer.matmul(&[0.0; 80], 2, &mut out);
        assert_eq!(out, vec![0.0; 6]);
    }

    #[test]
    fn forward_adds_the_bias_and_checks_the_width() {
        let weight = Tensor::new(&[[1f32, 0.0], [0.0, -2.0]], &Device::Cpu).unwrap();
        let bias = Tensor::new(&[0.5f32, 1.0], &Device::Cpu).unwrap();
        let layer = QuantizedLinear::quantize(&weight, Some(&bias)).unwrap();
        let xs = Tensor::new(&[[1f32, 1.0]], &Device::Cpu).unwrap();
        let out: Vec<Vec<f32>> = layer.forward(&xs).unwrap().to_vec2().unwrap();
        assert!(
            (out[0][0] - 1.5).abs() < 0.02 && (out[0][1] + 1.0).abs() < 0.03,
            "{out:?}"
        );
        let wrong = Tensor::new(&[[1f32, 1.0, 1.0]], &Device::Cpu).unwrap();
        let error = layer.forward(&wrong).unwrap_err().to_string();
        assert!(error.contains("3 columns"), "{error}");
        let short = Tensor::new(&[0.5f32], &Device::Cpu).unwrap();
        let error = QuantizedLinear::quantize(&weight, Some(&short))
            .err()
            .expect("a bias of the wrong length is refused")
            .to_string();
        assert!(error.contains("1 biases for 2 outputs"), "{error}");
    }
}
