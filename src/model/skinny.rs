//! `x · Wᵀ + b` for the few-row activations of interactive linking, without packing.
//!
//! A service linking one mention at a time multiplies a handful of token rows (a 6-token
//! mention is a 6 × 384 matrix) by each 384 × 384 or 1536 × 384 weight. candle hands that to
//! the `gemm` crate, which repacks the whole weight matrix on every call before its
//! microkernel runs: at batch size 1 the packing was 59% of all CPU time and one mention took
//! ~10 ms to encode. Here each output is a dot product of an activation row with a weight row,
//! both contiguous as stored (PyTorch's `Linear` layout), so the weights are streamed once and
//! nothing is copied. On a 1536 × 384 layer (AMD EPYC, AVX-512; `cargo bench --bench linking --
//! dense_layer`) 1 row takes 33 µs against candle's 51, 8 rows 76 against 164, 24 rows 217
//! against 213. On an AVX2-only EPYC (2026-12-06, same bench) the two meet at 16 rows (405
//! against 398 µs) and `gemm` wins at 24 (603 against 505): beyond [`MAX_ROWS`] rows `gemm`'s
//! cache blocking wins and candle's matmul is used.
//!
//! Inference only: the op has no backward pass, and the training path never calls it.

use candle_core::{CpuStorage, CustomOp2, Layout, Shape, Tensor};

/// Most activation rows (tokens in the batch) sent to this kernel.
pub const MAX_ROWS: usize = 16;

/// `xs (m × k) · weightᵀ (k × n) + bias`, with `weight` stored `n × k` as in a checkpoint.
pub fn linear(xs: &Tensor, weight: &Tensor, bias: &Tensor) -> candle_core::Result<Tensor> {
    let out = xs
        .contiguous()?
        .apply_op2(&weight.contiguous()?, SkinnyMatmul)?;
    out.broadcast_add(bias)
}

struct SkinnyMatmul;

impl CustomOp2 for SkinnyMatmul {
    fn name(&self) -> &'static str {
        "medlink-skinny-matmul"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xs_layout: &Layout,
        weight: &CpuStorage,
        weight_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (CpuStorage::F32(xs_all), CpuStorage::F32(w_all)) = (xs, weight) else {
            candle_core::bail!("the skinny matmul takes f32 tensors")
        };
        let (Some((xs_start, xs_end)), Some((w_start, w_end))) = (
            xs_layout.contiguous_offsets(),
            weight_layout.contiguous_offsets(),
        ) else {
            candle_core::bail!("the skinny matmul takes contiguous tensors")
        };
        let (m, k) = xs_layout.shape().dims2()?;
        let (n, wk) = weight_layout.shape().dims2()?;
        if k != wk {
            candle_core::bail!("skinny matmul: activations have {k} columns, weights {wk}")
        }
        let mut out = vec![0f32; m * n];
        matmul_rows(
            &xs_all[xs_start..xs_end],
            &w_all[w_start..w_end],
            &mut out,
            m,
            k,
            n,
        );
        Ok((CpuStorage::F32(out), Shape::from((m, n))))
    }
}

/// `out[i][j] = x[i] · w[j]` for `x: m × k`, `w: n × k`, `out: m × n` (row-major).
pub fn matmul_rows(x: &[f32], w: &[f32], out: &mut [f32], m: usize, k: usize, n: usize) {
    assert!(x.len() >= m * k && w.len() >= n * k && out.len() >= m * n);
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F; the slices hold the shapes (asserted above).
            return unsafe { avx512::matmul_rows(x, w, out, m, k, n) };
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has AVX2 and FMA; shapes as above.
            return unsafe { avx2::matmul_rows(x, w, out, m, k, n) };
        }
    }
    matmul_rows_scalar(x, w, out, m, k, n)
}

/// The reference loop, for CPUs without AVX2 (and the tail of `k` past the last full vector).
fn matmul_rows_scalar(x: &[f32], w: &[f32], out: &mut [f32], m: usize, k: usize, n: usize) {
    for i in 0..m {
        for j in 0..n {
            out[i * n + j] = dot_scalar(&x[i * k..(i + 1) * k], &w[j * k..(j + 1) * k]);
        }
    }
}

fn dot_scalar(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Activation rows per pass over the weights: 24 rows of 384 floats (36 KB) stay in L1
/// while every weight row streams past them.
const ROW_TILE: usize = 24;

/// One register-blocked kernel per instruction set. Each step dots `R` activation rows with
/// four weight rows: `4R` independent accumulators hide the FMA latency, and each loaded
/// vector is used four or `R` times. The four weight rows (6 KB) stay in L1 while every
/// block of activation rows passes over them, so the weights are read from memory once.
macro_rules! skinny_kernel {
    ($name:ident, $feature:literal, $lanes:expr, $vec:ty, $zero:ident, $load:ident, $fma:ident, $sum:path) => {
        #[cfg(target_arch = "x86_64")]
        mod $name {
            use std::arch::x86_64::*;

            const LANES: usize = $lanes;
            /// Weight rows per block: with 4 activation rows, 16 accumulators (of 32 AVX-512
            /// registers; AVX2's 16 are spilled a little, still faster than 2 rows).
            const WROWS: usize = 4;

            #[target_feature(enable = $feature)]
            pub unsafe fn matmul_rows(
                x: &[f32],
                w: &[f32],
                out: &mut [f32],
                m: usize,
                k: usize,
                n: usize,
            ) {
                for tile in (0..m).step_by(super::ROW_TILE) {
                    let rows = (m - tile).min(super::ROW_TILE);
                    let mut j = 0;
                    while j + WROWS <= n {
                        let mut i = tile;
                        while i + 4 <= tile + rows {
                            block::<4>(x, w, out, i, j, k, n);
                            i += 4;
                        }
                        match tile + rows - i {
                            3 => block::<3>(x, w, out, i, j, k, n),
                            2 => block::<2>(x, w, out, i, j, k, n),
                            1 => block::<1>(x, w, out, i, j, k, n),
                            _ => {}
                        }
                        j += WROWS;
                    }
                    // The last weight rows when n is not a multiple of WROWS: one by one.
                    for j in j..n {
                        for i in tile..tile + rows {
                            out[i * n + j] = dot(&x[i * k..(i + 1) * k], &w[j * k..(j + 1) * k]);
                        }
                    }
                }
            }

            #[inline]
            #[target_feature(enable = $feature)]
            unsafe fn block<const R: usize>(
                x: &[f32],
                w: &[f32],
                out: &mut [f32],
                i: usize,
                j: usize,
                k: usize,
                n: usize,
            ) {
                let (xp, wp) = (x.as_ptr(), w.as_ptr());
                let mut acc: [[$vec; WROWS]; R] = [[$zero(); WROWS]; R];
                let full = k / LANES * LANES;
                let mut t = 0;
                while t < full {
                    // SAFETY: rows i..i+R of x and j..j+WROWS of w exist, and t + LANES <= k.
                    let mut wv = [$zero(); WROWS];
                    for (c, v) in wv.iter_mut().enumerate() {
                        *v = $load(wp.add((j + c) * k + t));
                    }
                    for (r, acc_r) in acc.iter_mut().enumerate() {
                        let xv = $load(xp.add((i + r) * k + t));
                        for c in 0..WROWS {
                            acc_r[c] = $fma(xv, wv[c], acc_r[c]);
                        }
                    }
                    t += LANES;
                }
                for (r, acc_r) in acc.iter().enumerate() {
                    let row = (i + r) * k;
                    for (c, &v) in acc_r.iter().enumerate() {
                        let w_row = (j + c) * k;
                        let tail =
                            super::dot_scalar(&x[row + full..row + k], &w[w_row + full..w_row + k]);
                        out[(i + r) * n + j + c] = $sum(v) + tail;
                    }
                }
            }

            #[target_feature(enable = $feature)]
            unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
                let full = a.len() / LANES * LANES;
                let mut acc = $zero();
                let mut t = 0;
                while t < full {
                    acc = $fma($load(a.as_ptr().add(t)), $load(b.as_ptr().add(t)), acc);
                    t += LANES;
                }
                $sum(acc) + super::dot_scalar(&a[full..], &b[full..])
            }
        }
    };
}

skinny_kernel!(
    avx512,
    "avx512f",
    16,
    __m512,
    _mm512_setzero_ps,
    _mm512_loadu_ps,
    _mm512_fmadd_ps,
    _mm512_reduce_add_ps
);
skinny_kernel!(
    avx2,
    "avx2,fma",
    8,
    __m256,
    _mm256_setzero_ps,
    _mm256_loadu_ps,
    _mm256_fmadd_ps,
    super::hsum256
);

/// Horizontal sum of eight lanes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn hsum256(v: std::arch::x86_64::__m256) -> f32 {
    use std::arch::x86_64::*;
    let halves = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let pairs = _mm_add_ps(halves, _mm_movehl_ps(halves, halves));
    let one = _mm_add_ss(pairs, _mm_shuffle_ps(pairs, pairs, 1));
    _mm_cvtss_f32(one)
}

#[cfg(test)]
mod tests {
    use super::*;

    type KernelFn = fn(&[f32], &[f32], &mut [f32], usize, usize, usize);

    fn naive(x: &[f32], w: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        let mut out = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k).map(|t| x[i * k + t] * w[j * k + t]).sum();
            }
        }
        out
    }

    #[test]
    fn matches_the_naive_product_for_odd_shapes() {
        let mut rng = crate::rng::SplitMix64::new(3);
        // Odd row counts, odd weight rows, and a k that is not a multiple of the lanes.
        for (m, k, n) in [
            (1, 384, 384),
            (3, 37, 5),
            (7, 16, 9),
            (2, 100, 4),
            (5, 1, 3),
            (9, 64, 1),
        ] {
            let x: Vec<f32> = (0..m * k).map(|_| rng.next_f32() - 0.5).collect();
            let w: Vec<f32> = (0..n * k).map(|_| rng.next_f32() - 0.5).collect();
            let want = naive(&x, &w, m, k, n);
            let mut paths: Vec<(&str, KernelFn)> = vec![("scalar", matmul_rows_scalar)];
            #[cfg(target_arch = "x86_64")]
            {
                if is_x86_feature_detected!("avx512f") {
                    paths.push(("avx512", |x, w, o, m, k, n| unsafe {
                        avx512::matmul_rows(x, w, o, m, k, n)
                    }));
                }
                if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                    paths.push(("avx2", |x, w, o, m, k, n| unsafe {
                        avx2::matmul_rows(x, w, o, m, k, n)
                    }));
                }
            }
            for (path, kernel) in paths {
                let mut out = vec![f32::NAN; m * n];
                kernel(&x, &w, &mut out, m, k, n);
                for (got, want) in out.iter().zip(&want) {
                    assert!(
                        (got - want).abs() < 1e-4,
                        "{path} {m}x{k}x{n}: {got} vs {want}"
                    );
                }
            }
        }
    }
}
