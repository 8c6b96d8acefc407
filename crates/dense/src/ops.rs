//! CPU kernels for the two element-wise steps that dominate a BERT forward pass after the
//! matrix products: the erf GELU and the attention softmax.
//!
//! candle computes both one element at a time through libm's `erff` and `expf` (about 20% of
//! an all-MiniLM-L6-v2 forward on this machine, measured with `perf`). Here they are
//! branch-free polynomials that the compiler vectorises, split across rayon's threads:
//! - erf: the rational approximation used by Eigen and XLA (odd degree-13 numerator, degree-8
//!   denominator in x, input clamped to [-4, 4]); max |error| 6.5e-8 against `erf` in f64;
//! - exp: Cody-Waite range reduction to `r` in [-ln2/2, ln2/2], a degree-6 Taylor polynomial
//!   for `e^r`, and `2^n` built from the exponent bits; relative error below 2e-7.
//!
//! The loops run under `pulp::Arch::dispatch`, which compiles them a second time with AVX2 and
//! FMA enabled (and AVX-512 where pulp has it) and picks the version at run time, so the same
//! binary uses 8-wide vectors where the CPU has them without a `target-cpu` flag (baseline
//! x86-64 code would be SSE2, 4 lanes). Helpers called inside are `#[inline(always)]` so they are
//! compiled with the dispatched features too.
//!
//! Other devices (CUDA) use candle's own operations.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Elements per rayon task: large enough to amortise scheduling.
const CHUNK: usize = 1 << 14;

/// `x` limited to `[lo, hi]` with `max` and `min`, which vectorise; `f32::clamp` keeps NaN and
/// checks its bounds, and its comparisons stopped the loops here from vectorising.
#[inline(always)]
#[allow(clippy::manual_clamp)]
pub(crate) fn clamp(x: f32, lo: f32, hi: f32) -> f32 {
    x.max(lo).min(hi)
}

#[inline(always)]
fn erf(x: f32) -> f32 {
    let x = clamp(x, -4.0, 4.0);
    let x2 = x * x;
    let mut p = -2.726_142_3e-10_f32;
    for c in [
        2.770_681_4e-8,
        -2.101_024e-6,
        -5.692_506_4e-5,
        -7.349_906_3e-4,
        -2.954_6e-3,
        -1.609_603_3e-2,
    ] {
        p = p * x2 + c;
    }
    let mut q = -1.456_607_2e-5_f32;
    for c in [-2.133_740_6e-4, -1.682_827e-3, -7.373_329e-3, -1.426_474e-2] {
        q = q * x2 + c;
    }
    x * p / q
}

#[inline(always)]
fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// `e^x` for the softmax's `x <= 0` (valid for all x in [-87, 88]).
#[inline(always)]
fn exp(x: f32) -> f32 {
    // Round to nearest by adding and subtracting 1.5 * 2^23 (`f32::round` is a libm call on
    // baseline x86-64 and would stop the loop from vectorising); the sum's bits then hold
    // `n` in the low mantissa bits, from which `2^n` is built without a float-to-int cast
    // (whose saturation checks also stop vectorisation). [`clamp`], not `f32::clamp`, for the
    // same reason.
    const ROUND: f32 = 12_582_912.0;
    const ROUND_BITS: u32 = 0x4B40_0000;
    let x = clamp(x, -87.0, 88.0);
    let t = x * std::f32::consts::LOG2_E + ROUND;
    let n = t - ROUND;
    // ln 2 split in a part exact in f32 and a correction (Cody-Waite).
    let r = x - n * 0.693_359_4 + n * 2.121_944_4e-4;
    let mut p = 1.0 / 720.0;
    for c in [1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
        p = p * r + c;
    }
    let two_n = t.to_bits().wrapping_sub(ROUND_BITS).wrapping_add(127) << 23;
    p * f32::from_bits(two_n)
}

/// Sum of `f(x)` with eight independent accumulators, so the loop vectorises (a single
/// running sum is a serial chain of scalar additions: the compiler may not reorder float
/// additions).
#[inline(always)]
fn lane_sum(xs: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0f32; 8];
    let chunks = xs.chunks_exact(8);
    let mut tail = 0f32;
    for &x in chunks.remainder() {
        tail += f(x);
    }
    for c in chunks {
        for i in 0..8 {
            acc[i] += f(c[i]);
        }
    }
    let mut total = tail;
    for a in acc {
        total += a;
    }
    total
}

#[inline(always)]
fn sum(xs: &[f32]) -> f32 {
    lane_sum(xs, |x| x)
}

#[inline(always)]
fn sum_of_squares(xs: &[f32]) -> f32 {
    lane_sum(xs, |x| x * x)
}

/// Runs `f` with the best instruction set pulp finds on this CPU.
#[inline(always)]
pub(crate) fn simd<R>(f: impl FnOnce() -> R) -> R {
    pulp::Arch::new().dispatch(f)
}

/// `f(row)` over the rows of `width` in `data`, in parallel blocks of rows (`f` should be an
/// `#[inline(always)]` closure, so it is compiled inside the dispatched code).
#[inline(always)]
fn for_rows(data: &mut [f32], width: usize, f: impl Fn(&mut [f32]) + Sync) {
    let rows = (CHUNK / width).max(1) * width;
    data.par_chunks_mut(rows).for_each(|block| {
        simd(
            #[inline(always)]
            || {
                for row in block.chunks_exact_mut(width) {
                    f(row);
                }
            },
        );
    });
}

/// `x = f(x)` for every element of `data`, in parallel blocks (`f` should be an
/// `#[inline(always)]` closure, as for [`for_rows`]).
#[inline(always)]
fn for_elements(data: &mut [f32], f: impl Fn(f32) -> f32 + Sync) {
    data.par_chunks_mut(CHUNK).for_each(|block| {
        simd(
            #[inline(always)]
            || {
                for x in block.iter_mut() {
                    *x = f(*x);
                }
            },
        );
    });
}

/// The erf GELU of every element, in place.
// The closure is not redundant: a function item passed here went through a `Fn::call` shim
// compiled outside the dispatched code (SSE, 4 lanes), found with `perf`.
#[allow(clippy::redundant_closure)]
pub(crate) fn gelu_in_place(data: &mut [f32]) {
    for_elements(
        data,
        #[inline(always)]
        |x| gelu(x),
    );
}

/// The tanh approximation of GELU (`gelu_new`), `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715
/// x^3)))` (Hendrycks and Gimpel 2016), of every element, in place; `tanh(y)` as
/// `1 - 2 / (e^(2y) + 1)`.
pub(crate) fn gelu_tanh_in_place(data: &mut [f32]) {
    for_elements(
        data,
        #[inline(always)]
        |x| {
            let y = 0.797_884_6 * (x + 0.044_715 * x * x * x);
            let tanh = 1.0 - 2.0 / (exp((2.0 * y).min(80.0)) + 1.0);
            0.5 * x * (1.0 + tanh)
        },
    );
}

/// Softmax of every row of `width`, in place.
pub(crate) fn softmax_rows(data: &mut [f32], width: usize) {
    for_rows(
        data,
        width,
        #[inline(always)]
        |row: &mut [f32]| softmax_row(row),
    );
}

#[inline(always)]
fn softmax_row(row: &mut [f32]) {
    let max = max(row);
    for x in row.iter_mut() {
        *x = exp(*x - max);
    }
    let inv = 1.0 / sum(row);
    for x in row.iter_mut() {
        *x *= inv;
    }
}

/// LayerNorm of every row (`weight.len()` wide) with its affine `weight` and `bias`, in place:
/// `(x - mean) / sqrt(var + eps) * weight + bias` (Ba et al. 2016), the variance biased (over
/// the row's `n` values), as PyTorch's `LayerNorm`.
pub(crate) fn layer_norm_rows(data: &mut [f32], weight: &[f32], bias: &[f32], eps: f32) {
    let width = weight.len();
    for_rows(
        data,
        width,
        #[inline(always)]
        |row: &mut [f32]| {
            let mean = sum(row) / width as f32;
            for x in row.iter_mut() {
                *x -= mean;
            }
            let var = sum_of_squares(row) / width as f32;
            let inv = 1.0 / (var + eps).sqrt();
            for ((x, w), b) in row.iter_mut().zip(weight).zip(bias) {
                *x = *x * inv * w + b;
            }
        },
    );
}

/// Maximum with eight lanes (NaN-free input).
#[inline(always)]
fn max(xs: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 8];
    let chunks = xs.chunks_exact(8);
    let mut tail = f32::NEG_INFINITY;
    for &x in chunks.remainder() {
        tail = if x > tail { x } else { tail };
    }
    for c in chunks {
        for i in 0..8 {
            acc[i] = if c[i] > acc[i] { c[i] } else { acc[i] };
        }
    }
    acc.iter().fold(tail, |m, &x| if x > m { x } else { m })
}

fn contiguous<'a>(storage: &'a CpuStorage, layout: &Layout, op: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        candle_core::bail!("{op} takes f32");
    };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("{op} takes a contiguous tensor"),
    }
}

struct GeluErf;

impl CustomOp1 for GeluErf {
    fn name(&self) -> &'static str {
        "hs-gelu-erf"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let mut out = contiguous(storage, layout, self.name())?.to_vec();
        gelu_in_place(&mut out);
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }
}

struct SoftmaxLastDim;

impl CustomOp1 for SoftmaxLastDim {
    fn name(&self) -> &'static str {
        "hs-softmax-last-dim"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let mut out = contiguous(storage, layout, self.name())?.to_vec();
        let width = layout.shape().dims().last().copied().unwrap_or(1).max(1);
        softmax_rows(&mut out, width);
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }
}

/// LayerNorm over the last dimension with its affine weight and bias.
struct LayerNormOp<'a> {
    weight: &'a [f32],
    bias: &'a [f32],
    eps: f32,
}

impl CustomOp1 for LayerNormOp<'_> {
    fn name(&self) -> &'static str {
        "hs-layer-norm"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let width = self.weight.len();
        if layout.shape().dims().last() != Some(&width) || width == 0 {
            candle_core::bail!("layer norm of width {width} over {:?}", layout.shape());
        }
        let mut out = contiguous(storage, layout, self.name())?.to_vec();
        layer_norm_rows(&mut out, self.weight, self.bias, self.eps);
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }
}

/// LayerNorm with a kept copy of its parameters for the CPU kernel.
pub(crate) struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    weight_host: Vec<f32>,
    bias_host: Vec<f32>,
    eps: f64,
}

impl LayerNorm {
    /// A LayerNorm over the last dimension.
    pub(crate) fn new(weight: Tensor, bias: Tensor, eps: f64) -> Result<Self> {
        Ok(Self {
            weight_host: weight.to_vec1()?,
            bias_host: bias.to_vec1()?,
            weight,
            bias,
            eps,
        })
    }

    /// Normalises every row of `data` (rows as wide as the weight) in place, on the CPU.
    pub(crate) fn apply_in_place(&self, data: &mut [f32]) {
        layer_norm_rows(data, &self.weight_host, &self.bias_host, self.eps as f32);
    }

    /// Normalises `x` over its last dimension.
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if x.device().is_cpu() && x.dtype() == candle_core::DType::F32 {
            x.contiguous()?.apply_op1_no_bwd(&LayerNormOp {
                weight: &self.weight_host,
                bias: &self.bias_host,
                eps: self.eps as f32,
            })
        } else {
            candle_nn::ops::layer_norm(x, &self.weight, &self.bias, self.eps as f32)
        }
    }
}

/// The exact (erf) GELU, `0.5 x (1 + erf(x / sqrt 2))`.
pub(crate) fn gelu_erf(x: &Tensor) -> Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == candle_core::DType::F32 {
        x.contiguous()?.apply_op1_no_bwd(&GeluErf)
    } else {
        x.gelu_erf()
    }
}

/// Softmax over the last dimension.
pub(crate) fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == candle_core::DType::F32 {
        x.contiguous()?.apply_op1_no_bwd(&SoftmaxLastDim)
    } else {
        candle_nn::ops::softmax_last_dim(x)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use candle_core::Device;

    /// The largest absolute difference between two tensors of one shape.
    pub(crate) fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    #[test]
    fn gelu_matches_candles_erf_gelu() {
        let xs: Vec<f32> = (-12_000..12_000).map(|i| i as f32 / 1000.0).collect();
        let x = Tensor::new(xs.as_slice(), &Device::Cpu).unwrap();
        let d = max_diff(&gelu_erf(&x).unwrap(), &x.gelu_erf().unwrap());
        // A few float ulps where |gelu(x)| reaches 12.
        assert!(d < 3e-6, "max |diff| {d}");
    }

    #[test]
    fn softmax_matches_candles_softmax() {
        let xs: Vec<f32> = (0..7 * 300)
            .map(|i| ((i * 7919) % 2000) as f32 / 50.0 - 20.0)
            .collect();
        let x = Tensor::from_vec(xs, (7, 300), &Device::Cpu).unwrap();
        let ours = softmax_last_dim(&x).unwrap();
        let d = max_diff(&ours, &candle_nn::ops::softmax_last_dim(&x).unwrap());
        assert!(d < 1e-6, "max |diff| {d}");
        let sums = ours.sum(1).unwrap().to_vec1::<f32>().unwrap();
        assert!(sums.iter().all(|s| (s - 1.0).abs() < 1e-5), "{sums:?}");
    }

    #[test]
    fn layer_norm_matches_candles() {
        let xs: Vec<f32> = (0..5 * 37)
            .map(|i| ((i * 7919) % 1000) as f32 / 100.0 - 3.0)
            .collect();
        let x = Tensor::from_vec(xs, (5, 37), &Device::Cpu).unwrap();
        let w: Vec<f32> = (0..37).map(|i| 0.5 + i as f32 / 37.0).collect();
        let b: Vec<f32> = (0..37).map(|i| i as f32 / 100.0 - 0.2).collect();
        let w = Tensor::new(w.as_slice(), &Device::Cpu).unwrap();
        let b = Tensor::new(b.as_slice(), &Device::Cpu).unwrap();
        let ours = LayerNorm::new(w.clone(), b.clone(), 1e-12)
            .unwrap()
            .forward(&x)
            .unwrap();
        let theirs = candle_nn::ops::layer_norm_slow(&x, &w, &b, 1e-12).unwrap();
        let d = max_diff(&ours, &theirs);
        assert!(d < 1e-5, "max |diff| {d}");
    }

    #[test]
    fn lane_reductions_match_sequential_ones() {
        let xs: Vec<f32> = (0..1003).map(|i| ((i * 31) % 97) as f32 - 40.0).collect();
        for n in [0, 1, 7, 8, 9, 1003] {
            let s = &xs[..n];
            assert_eq!(sum(s), s.iter().sum::<f32>(), "sum of {n}");
            assert_eq!(
                max(s),
                s.iter().copied().fold(f32::NEG_INFINITY, f32::max),
                "{n}"
            );
        }
    }

    #[test]
    fn exp_is_accurate_where_softmax_uses_it() {
        for i in 0..=8700 {
            let x = -(i as f32) / 100.0;
            let (ours, exact) = (f64::from(exp(x)), f64::from(x).exp());
            assert!(
                ((ours - exact) / exact).abs() < 1e-6,
                "exp({x}) = {ours}, expected {exact}"
            );
        }
    }
}
