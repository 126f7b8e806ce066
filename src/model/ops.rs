//! Fused CPU kernels for BERT's GELU, LayerNorm and softmax, each with its backward pass.
//!
//! candle composes the differentiable versions of these from 5–11 elementwise tensor ops, and
//! its backward pass allocates a zeroed buffer and an extra addition for every one of them:
//! on a 2-core CPU that bookkeeping, not the matrix products, dominated a training step. Here
//! each is one pass over memory forward and one backward. GELU's erf is a rational
//! approximation that the compiler vectorises (libm's scalar `erff` was a fifth of embedding
//! time). Other devices (the `cuda` feature) use candle's own ops.
//!
//! The kernels take contiguous f32 rows; callers pass `.contiguous()` tensors.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Shape, Tensor, D};

/// `erf(x)` to within 1e-6 (Eigen's rational approximation for f32; inputs clamped to
/// [-4, 4], where erf is already ±1 in single precision).
#[inline]
pub fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = x2 * -2.726_142_3e-10 + 2.770_681_4e-8;
    p = x2 * p + -2.101_024e-6;
    p = x2 * p + -5.692_506_4e-5;
    p = x2 * p + -7.349_906_3e-4;
    p = x2 * p + -2.954_600_1e-3;
    p = x2 * p + -1.609_603_3e-2;
    let mut q = x2 * -1.456_607_2e-5 + -2.133_740_6e-4;
    q = x2 * q + -1.682_827e-3;
    q = x2 * q + -7.373_329e-3;
    q = x2 * q + -1.426_473_9e-2;
    x * p / q
}

const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
/// 1 / sqrt(2 pi)
const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;

fn contiguous<'a>(storage: &'a CpuStorage, layout: &Layout) -> candle_core::Result<&'a [f32]> {
    let CpuStorage::F32(all) = storage else {
        candle_core::bail!("fused BERT ops take f32 tensors")
    };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&all[start..end]),
        None => candle_core::bail!("fused BERT ops take contiguous tensors"),
    }
}

/// GELU with the exact (erf) form, as BERT's `hidden_act = "gelu"`.
pub fn gelu(xs: &Tensor) -> candle_core::Result<Tensor> {
    if xs.device().is_cpu() {
        xs.contiguous()?.apply_op1(Gelu)
    } else {
        xs.gelu_erf()
    }
}

struct Gelu;

impl CustomOp1 for Gelu {
    fn name(&self) -> &'static str {
        "medlink-gelu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = contiguous(s, l)?;
        let out: Vec<f32> = x
            .iter()
            .map(|&v| 0.5 * v * (1.0 + erf(v * FRAC_1_SQRT_2)))
            .collect();
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(arg.apply_op2_no_bwd(&grad.contiguous()?, &GeluGrad)?))
    }
}

/// `grad * d/dx gelu(x) = grad * (Phi(x) + x phi(x))`.
struct GeluGrad;

impl CustomOp2 for GeluGrad {
    fn name(&self) -> &'static str {
        "medlink-gelu-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (x, g) = (contiguous(s1, l1)?, contiguous(s2, l2)?);
        let out: Vec<f32> = x
            .iter()
            .zip(g)
            .map(|(&v, &g)| {
                let cdf = 0.5 * (1.0 + erf(v * FRAC_1_SQRT_2));
                let pdf = FRAC_1_SQRT_2PI * (-0.5 * v * v).exp();
                g * (cdf + v * pdf)
            })
            .collect();
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// LayerNorm over the last dimension with weight and bias.
pub fn layer_norm(
    xs: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f32,
) -> candle_core::Result<Tensor> {
    if xs.device().is_cpu() {
        xs.contiguous()?.apply_op3(weight, bias, LayerNorm { eps })
    } else {
        candle_nn::ops::layer_norm_slow(xs, weight, bias, eps)
    }
}

struct LayerNorm {
    eps: f32,
}

/// Mean and 1/std of one row.
#[inline]
fn row_stats(row: &[f32], eps: f32) -> (f32, f32) {
    let n = row.len() as f32;
    let mean = row.iter().sum::<f32>() / n;
    let var = row.iter().map(|&v| (v - mean) * (v - mean)).sum::<f32>() / n;
    (mean, 1.0 / (var + eps).sqrt())
}

impl CustomOp3 for LayerNorm {
    fn name(&self) -> &'static str {
        "medlink-layer-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (x, w, b) = (
            contiguous(s1, l1)?,
            contiguous(s2, l2)?,
            contiguous(s3, l3)?,
        );
        let h = w.len();
        if h == 0 || x.len() % h != 0 || b.len() != h {
            candle_core::bail!("layer norm: rows of {} do not match weight {h}", x.len())
        }
        let mut out = vec![0f32; x.len()];
        for (row, o) in x.chunks_exact(h).zip(out.chunks_exact_mut(h)) {
            let (mean, rstd) = row_stats(row, self.eps);
            for i in 0..h {
                o[i] = (row[i] - mean) * rstd * w[i] + b[i];
            }
        }
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        _bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let h = weight.elem_count();
        // One kernel returns dx stacked on top of the dweight and dbias rows.
        let packed = x.apply_op3_no_bwd(
            weight,
            &grad.contiguous()?,
            &LayerNormGrad { eps: self.eps },
        )?;
        let rows = x.elem_count() / h;
        let packed = packed.reshape((rows + 2, h))?;
        let dx = packed.narrow(0, 0, rows)?.reshape(x.shape())?;
        let dweight = packed.narrow(0, rows, 1)?.reshape(h)?;
        let dbias = packed.narrow(0, rows + 1, 1)?.reshape(h)?;
        Ok((Some(dx), Some(dweight), Some(dbias)))
    }
}

/// Backward of [`LayerNorm`]: `dx = rstd (dxhat - mean(dxhat) - xhat mean(dxhat xhat))` with
/// `dxhat = grad * weight`; `dweight = sum grad xhat`, `dbias = sum grad` over rows.
struct LayerNormGrad {
    eps: f32,
}

impl CustomOp3 for LayerNormGrad {
    fn name(&self) -> &'static str {
        "medlink-layer-norm-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (x, w, g) = (
            contiguous(s1, l1)?,
            contiguous(s2, l2)?,
            contiguous(s3, l3)?,
        );
        let h = w.len();
        let rows = x.len() / h;
        let mut out = vec![0f32; (rows + 2) * h];
        let (dx_all, tail) = out.split_at_mut(rows * h);
        let (dweight, dbias) = tail.split_at_mut(h);
        let mut xhat = vec![0f32; h];
        let mut dxhat = vec![0f32; h];
        for ((row, grow), dx) in x
            .chunks_exact(h)
            .zip(g.chunks_exact(h))
            .zip(dx_all.chunks_exact_mut(h))
        {
            let (mean, rstd) = row_stats(row, self.eps);
            let (mut sum_dxhat, mut sum_dxhat_xhat) = (0f32, 0f32);
            for i in 0..h {
                xhat[i] = (row[i] - mean) * rstd;
                dxhat[i] = grow[i] * w[i];
                sum_dxhat += dxhat[i];
                sum_dxhat_xhat += dxhat[i] * xhat[i];
                dweight[i] += grow[i] * xhat[i];
                dbias[i] += grow[i];
            }
            let (m1, m2) = (sum_dxhat / h as f32, sum_dxhat_xhat / h as f32);
            for i in 0..h {
                dx[i] = rstd * (dxhat[i] - m1 - xhat[i] * m2);
            }
        }
        Ok((CpuStorage::F32(out), Shape::from((rows + 2) * h)))
    }
}

/// Softmax over the last dimension.
pub fn softmax_last_dim(xs: &Tensor) -> candle_core::Result<Tensor> {
    if xs.device().is_cpu() {
        xs.contiguous()?.apply_op1(Softmax)
    } else {
        candle_nn::ops::softmax(xs, D::Minus1)
    }
}

struct Softmax;

impl CustomOp1 for Softmax {
    fn name(&self) -> &'static str {
        "medlink-softmax"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = contiguous(s, l)?;
        let h = l.dims().last().copied().unwrap_or(1).max(1);
        let mut out = vec![0f32; x.len()];
        for (row, o) in x.chunks_exact(h).zip(out.chunks_exact_mut(h)) {
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0f32;
            for (oi, &v) in o.iter_mut().zip(row) {
                *oi = (v - max).exp();
                sum += *oi;
            }
            let inv = 1.0 / sum;
            o.iter_mut().for_each(|v| *v *= inv);
        }
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(
        &self,
        _arg: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(
            res.apply_op2_no_bwd(&grad.contiguous()?, &SoftmaxGrad)?,
        ))
    }
}

/// `dx = y (g - sum(g y))` per row.
struct SoftmaxGrad;

impl CustomOp2 for SoftmaxGrad {
    fn name(&self) -> &'static str {
        "medlink-softmax-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (y, g) = (contiguous(s1, l1)?, contiguous(s2, l2)?);
        let h = l1.dims().last().copied().unwrap_or(1).max(1);
        let mut out = vec![0f32; y.len()];
        for ((yr, gr), o) in y
            .chunks_exact(h)
            .zip(g.chunks_exact(h))
            .zip(out.chunks_exact_mut(h))
        {
            let dot: f32 = yr.iter().zip(gr).map(|(a, b)| a * b).sum();
            for i in 0..h {
                o[i] = yr[i] * (gr[i] - dot);
            }
        }
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn close(a: &Tensor, b: &Tensor, tol: f32) {
        let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(a.len(), b.len());
        let worst = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(worst < tol, "max difference {worst}");
    }

    fn input(shape: (usize, usize, usize), seed: u64) -> Var {
        let mut rng = crate::rng::SplitMix64::new(seed);
        let n = shape.0 * shape.1 * shape.2;
        let v: Vec<f32> = (0..n).map(|_| rng.next_f32() * 6.0 - 3.0).collect();
        Var::from_tensor(&Tensor::from_vec(v, shape, &Device::Cpu).unwrap()).unwrap()
    }

    #[test]
    fn erf_matches_libm() {
        let worst = (-6000..=6000)
            .map(|i| i as f32 / 1000.0)
            .map(|x| (erf(x) - libm_erf(x)).abs())
            .fold(0f32, f32::max);
        assert!(worst < 2e-6, "max |erf error| {worst}");
    }

    fn libm_erf(x: f32) -> f32 {
        // candle's erf (libm) through a tensor op.
        Tensor::new(&[x], &Device::Cpu)
            .unwrap()
            .erf()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()[0]
    }

    /// Forward values and input gradients of each fused op equal candle's composite ops.
    #[test]
    fn fused_ops_match_candle_forward_and_backward() {
        let x = input((2, 3, 8), 1);
        let upstream = input((2, 3, 8), 2).as_tensor().detach();
        let weight = input((1, 1, 8), 3);
        let bias = input((1, 1, 8), 4);
        let (w, b) = (
            weight.as_tensor().reshape(8).unwrap(),
            bias.as_tensor().reshape(8).unwrap(),
        );
        type Op<'a> = Box<dyn Fn(&Tensor) -> Tensor + 'a>;
        let cases: Vec<(&str, Op, Op)> = vec![
            (
                "gelu",
                Box::new(|t| gelu(t).unwrap()),
                Box::new(|t| t.gelu_erf().unwrap()),
            ),
            (
                "softmax",
                Box::new(|t| softmax_last_dim(t).unwrap()),
                Box::new(|t| candle_nn::ops::softmax(t, D::Minus1).unwrap()),
            ),
            (
                "layer_norm",
                Box::new(|t| layer_norm(t, &w, &b, 1e-12).unwrap()),
                Box::new(|t| candle_nn::ops::layer_norm_slow(t, &w, &b, 1e-12).unwrap()),
            ),
        ];
        for (name, fused, reference) in cases {
            let (yf, yr) = (fused(x.as_tensor()), reference(x.as_tensor()));
            close(&yf, &yr, 1e-5);
            let gf = (yf * &upstream)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let gr = (yr * &upstream)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            close(
                gf.get(x.as_tensor()).unwrap(),
                gr.get(x.as_tensor()).unwrap(),
                1e-4,
            );
            if name == "layer_norm" {
                for p in [&weight, &bias] {
                    let (a, b) = (gf.get(p.as_tensor()), gr.get(p.as_tensor()));
                    close(a.expect(name), b.expect(name), 1e-4);
                }
            }
        }
    }
}
