//! Dot products of an f32 query with a stored row, f32, f16 (IEEE half, as `u16` bits) or i8
//! (times the row's scale): the inner loop of HNSW search and of exact scoring.
//!
//! On x86-64 with AVX2 + FMA (+ F16C for half rows) eight lanes run at a time with four
//! independent accumulators; other CPUs take the scalar loops. Half and i8 rows are widened to
//! f32 in registers, so compact storage cuts the memory read per distance without a
//! conversion pass.

/// `a · b` for f32 rows of equal length.
pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has AVX2 and FMA.
            return unsafe { x86::dot_f32(a, b) };
        }
    }
    dot_f32_scalar(a, b)
}

/// `a · b` where `b` holds IEEE half-precision bits.
pub fn dot_f16(a: &[f32], b: &[u16]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c")
        {
            // SAFETY: the CPU has AVX2, FMA and F16C.
            return unsafe { x86::dot_f16(a, b) };
        }
    }
    dot_f16_scalar(a, b)
}

/// `a · b` where `b` holds i8 components (the caller multiplies by the row's scale).
pub fn dot_i8(a: &[f32], b: &[i8]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has AVX2 and FMA.
            return unsafe { x86::dot_i8(a, b) };
        }
    }
    dot_i8_scalar(a, b)
}

pub fn dot_i8_scalar(a: &[f32], b: &[i8]) -> f32 {
    a.iter().zip(b).map(|(x, &y)| x * f32::from(y)).sum()
}

/// Symmetric per-row quantisation: `row ≈ scale * q` with `q` in -127..=127.
pub fn quantize_i8(row: &[f32], out: &mut [i8]) -> f32 {
    let max = row.iter().fold(0f32, |m, x| m.max(x.abs()));
    if max == 0.0 {
        out.iter_mut().for_each(|q| *q = 0);
        return 0.0;
    }
    let scale = max / 127.0;
    for (q, &x) in out.iter_mut().zip(row) {
        *q = (x / scale).round().clamp(-127.0, 127.0) as i8;
    }
    scale
}

pub fn dot_f32_scalar(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

pub fn dot_f16_scalar(a: &[f32], b: &[u16]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, &y)| x * half::f16::from_bits(y).to_f32())
        .sum()
}

/// Half-precision bits of `x`, rounded to nearest.
pub fn f32_to_f16_bits(x: f32) -> u16 {
    half::f16::from_f32(x).to_bits()
}

/// Half-precision bits to f32, a row at a time: `half` converts eight lanes per F16C
/// instruction and checks the CPU once per row (its one-value conversion checks per value,
/// which cost an HNSW build more than its dot products).
pub fn f16_bits_to_f32_slice(bits: &[u16], out: &mut [f32]) {
    use half::slice::{HalfBitsSliceExt, HalfFloatSliceExt};
    bits.reinterpret_cast::<half::f16>()
        .convert_to_f32_slice(out)
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// Floats per step: four 8-lane accumulators hide the FMA latency.
    const STEP: usize = 32;

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        // SAFETY (all loads): i + 8 <= n within each loop.
        while i + STEP <= n {
            for (lane, acc) in acc.iter_mut().enumerate() {
                let at = i + lane * 8;
                *acc = _mm256_fmadd_ps(
                    _mm256_loadu_ps(pa.add(at)),
                    _mm256_loadu_ps(pb.add(at)),
                    *acc,
                );
            }
            i += STEP;
        }
        while i + 8 <= n {
            acc[0] = _mm256_fmadd_ps(
                _mm256_loadu_ps(pa.add(i)),
                _mm256_loadu_ps(pb.add(i)),
                acc[0],
            );
            i += 8;
        }
        let sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
        hsum(sum) + super::dot_f32_scalar(&a[i..n], &b[i..n])
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_f16(a: &[f32], b: &[u16]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        // SAFETY (all loads): i + 8 <= n within each loop; 8 halves are 16 bytes.
        while i + STEP <= n {
            for (lane, acc) in acc.iter_mut().enumerate() {
                let at = i + lane * 8;
                let wide = _mm256_cvtph_ps(_mm_loadu_si128(pb.add(at) as *const __m128i));
                *acc = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(at)), wide, *acc);
            }
            i += STEP;
        }
        while i + 8 <= n {
            let wide = _mm256_cvtph_ps(_mm_loadu_si128(pb.add(i) as *const __m128i));
            acc[0] = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), wide, acc[0]);
            i += 8;
        }
        let sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
        hsum(sum) + super::dot_f16_scalar(&a[i..n], &b[i..n])
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_i8(a: &[f32], b: &[i8]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        // SAFETY (all loads): i + 8 <= n within each loop; 8 i8s are 8 bytes.
        while i + STEP <= n {
            for (lane, acc) in acc.iter_mut().enumerate() {
                let at = i + lane * 8;
                *acc = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(at)), widen(pb.add(at)), *acc);
            }
            i += STEP;
        }
        while i + 8 <= n {
            acc[0] = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), widen(pb.add(i)), acc[0]);
            i += 8;
        }
        let sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
        hsum(sum) + super::dot_i8_scalar(&a[i..n], &b[i..n])
    }

    /// Eight i8s at `p` as eight f32 lanes; `p` must have 8 readable bytes.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn widen(p: *const i8) -> __m256 {
        _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(p as *const __m128i)))
    }

    #[target_feature(enable = "avx2")]
    unsafe fn hsum(v: __m256) -> f32 {
        let halves = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let pairs = _mm_add_ps(halves, _mm_movehl_ps(halves, halves));
        let one = _mm_add_ss(pairs, _mm_shuffle_ps(pairs, pairs, 1));
        _mm_cvtss_f32(one)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vector_kernels_match_the_scalar_loops_for_every_length() {
        let mut rng = crate::rng::SplitMix64::new(11);
        for n in [0usize, 1, 7, 8, 9, 31, 32, 33, 100, 384, 385] {
            let a: Vec<f32> = (0..n).map(|_| rng.next_f32() - 0.5).collect();
            let b: Vec<f32> = (0..n).map(|_| rng.next_f32() - 0.5).collect();
            let b16: Vec<u16> = b.iter().map(|&x| f32_to_f16_bits(x)).collect();
            let mut b8 = vec![0i8; n];
            let scale = quantize_i8(&b, &mut b8);
            let want8 = dot_i8_scalar(&a, &b8) * scale;
            assert!((dot_i8(&a, &b8) * scale - want8).abs() < 1e-4, "i8 n={n}");
            // A step of max|b| / 127 per component.
            assert!(
                (want8 - dot_f32_scalar(&a, &b)).abs() < 2e-2,
                "i8 vs f32 n={n}"
            );
            let want32 = dot_f32_scalar(&a, &b);
            let want16 = dot_f16_scalar(&a, &b16);
            assert!((dot_f32(&a, &b) - want32).abs() < 1e-4, "f32 n={n}");
            assert!((dot_f16(&a, &b16) - want16).abs() < 1e-4, "f16 n={n}");
            // Half precision keeps about three decimal digits per component.
            assert!((want16 - want32).abs() < 1e-2, "f16 vs f32 n={n}");
            let mut row = vec![f32::NAN; n];
            f16_bits_to_f32_slice(&b16, &mut row);
            let one_by_one: Vec<f32> = b16
                .iter()
                .map(|&bits| half::f16::from_bits(bits).to_f32())
                .collect();
            assert_eq!(row, one_by_one, "f16 row n={n}");
        }
    }

    #[test]
    fn f16_rows_convert_special_values_exactly() {
        let values = [
            0.0f32,
            -0.0,
            1.0,
            -2.5,
            6.1e-5,
            5.96e-8,
            65504.0,
            f32::INFINITY,
        ];
        let bits: Vec<u16> = values.iter().map(|&x| f32_to_f16_bits(x)).collect();
        let mut row = vec![f32::NAN; bits.len()];
        f16_bits_to_f32_slice(&bits, &mut row);
        for ((&got, &bits), &x) in row.iter().zip(&bits).zip(&values) {
            assert_eq!(
                got.to_bits(),
                half::f16::from_bits(bits).to_f32().to_bits(),
                "{x}"
            );
        }
    }
}
