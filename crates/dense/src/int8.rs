//! Int8 linear layers: weights quantised per output channel at load, activations per token at
//! each call, products accumulated in i32 by `rten-gemm`, which picks its kernel at run time
//! (AVX-512 with VNNI, AVX-512, AVX2, or portable code), so one binary serves every x86-64 CPU
//! without a `target-cpu` flag.
//!
//! Shapes: a layer maps `(tokens, in)` f32 to `(tokens, out)` f32.
//!
//! Quantisation (the dynamic scheme of ONNX Runtime's `MatMulInteger` path):
//! - weights, per output channel `n`: `q = round(w / s_n)`, `s_n = max |w_n| / R`, with
//!   `R = 63` when the kernel may saturate its 16-bit intermediate sums (AVX2 and AVX-512
//!   without VNNI: `vpmaddubsw` adds two u8 x i8 products in an i16; 255 x 64 x 2 fits) and
//!   `R = 127` otherwise;
//! - activations, per token `m` (so a passage's vector never depends on the rest of its
//!   batch): asymmetric u8, `a = round(x / t_m) + z_m` with `t_m = (max(x_m, 0) - min(x_m, 0))
//!   / 255` and zero point `z_m = round(-min(x_m, 0) / t_m)`, the range taken over the
//!   features with `|x| <= 6`; the few larger ones (BERT's outlier features, up to |x| 28 in
//!   all-MiniLM-L6-v2, which would leave the others a step as large as their median) are set
//!   to 0 there and multiplied in f32 (the decomposition of Dettmers et al. 2022, LLM.int8(),
//!   with its threshold 6);
//! - output: `y[m][n] = t_m * s_n * (sum_k a[m][k] q[k][n] - z_m sum_k q[k][n]) + bias[n]
//!   + sum_{k outlier} x[m][k] w[n][k]`; the zero-point term is applied here from the column
//!   sums, not by `rten-gemm`'s own `a_quant` option, whose sums came out wrong for some row
//!   tiles (the `zero_points` test below found it).
//!
//! Measured (`docs/benchmarks.md`): vectors within cosine 0.993 (all-MiniLM-L6-v2) and 0.9995
//! (multilingual-e5-small) of PyTorch's f32 ones; on an AVX2-only CPU, inside the fused forward
//! (`crate::fused`), 1.3-1.4x the f32 path on batches and 1.3-1.5x on one query.

use std::cell::RefCell;

use candle_core::Tensor;
use rayon::prelude::*;
use rten_gemm::{GemmExecutor, GemmInputA, GemmInputB, GemmOptions, PackedBMatrix};
use rten_tensor::NdTensorView;

use crate::ops::{clamp, simd};

type Executor = GemmExecutor<u8, i8, i32>;

thread_local! {
    /// The executor is not `Send`; each thread keeps its own (they pick the same kernel, so a
    /// matrix packed by one is read by all).
    static GEMM: Executor = Executor::default();
    /// Per-thread buffers, reused from call to call.
    static BUFFERS: RefCell<Buffers> = RefCell::default();
}

/// The quantised activations, their zero points and scales, and the i32 products.
#[derive(Default)]
struct Buffers {
    a: Vec<u8>,
    zero_points: Vec<u8>,
    row_scales: Vec<f32>,
    acc: Vec<i32>,
}

/// The largest stored weight: 63 when the kernel may saturate, else 127.
fn weight_range() -> f32 {
    GEMM.with(|g| if g.may_saturate() { 63.0 } else { 127.0 })
}

/// The kernel `rten-gemm` chose on this CPU (`x86_64-u8i8i32-avx512`, `...-avx2`, ...).
pub fn int8_kernel_name() -> String {
    GEMM.with(|g| g.kernel_name().to_string())
}

/// A linear layer's weight, `(out, in)`, quantised to i8 per output channel and packed for
/// the kernel.
pub(crate) struct Int8Matrix {
    packed: PackedBMatrix<i8>,
    /// `s_n`, one per output channel.
    scales: Vec<f32>,
    inputs: usize,
    outputs: usize,
    /// `W^T` in f32, `(in, out)`: the rows that outlier features multiply.
    columns: Vec<f32>,
    /// `sum_k q[k][n]`, per output channel: the zero-point correction.
    column_sums: Vec<i32>,
}

/// Activation features with |x| above this are multiplied in f32 (LLM.int8's threshold).
const OUTLIER: f32 = 6.0;

impl Int8Matrix {
    /// Quantises `weight`, `(out, in)` f32.
    pub(crate) fn quantize(weight: &Tensor) -> candle_core::Result<Self> {
        let (outputs, inputs) = weight.dims2()?;
        let rows = weight.to_vec2::<f32>()?;
        let range = weight_range();
        let mut scales = Vec::with_capacity(outputs);
        // B is (in, out): column n holds output channel n.
        let mut b = vec![0i8; inputs * outputs];
        let mut columns = vec![0f32; inputs * outputs];
        for (n, row) in rows.iter().enumerate() {
            for (k, w) in row.iter().enumerate() {
                columns[k * outputs + n] = *w;
            }
            let max = row.iter().fold(0f32, |m, w| m.max(w.abs()));
            let scale = if max > 0.0 { max / range } else { 1.0 };
            scales.push(scale);
            for (k, w) in row.iter().enumerate() {
                b[k * outputs + n] = (w / scale).round().clamp(-range, range) as i8;
            }
        }
        let mut column_sums = vec![0i32; outputs];
        for row in b.chunks_exact(outputs) {
            for (sum, &q) in column_sums.iter_mut().zip(row) {
                *sum += i32::from(q);
            }
        }
        let packed = GEMM.with(|g| g.prepack_b(NdTensorView::from_data([inputs, outputs], &b[..])));
        Ok(Self {
            packed,
            scales,
            inputs,
            outputs,
            columns,
            column_sums,
        })
    }

    /// `x W^T + bias` for `x` of shape `(tokens, in)`, as f32 `(tokens, out)` on `device`.
    #[cfg(test)]
    pub(crate) fn forward(
        &self,
        x: &Tensor,
        bias: &[f32],
        device: &candle_core::Device,
    ) -> candle_core::Result<Tensor> {
        let (tokens, _) = x.dims2()?;
        let x = x.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let mut out = vec![0f32; tokens * self.outputs];
        self.forward_into(&x, bias, &mut out, false)?;
        Tensor::from_vec(out, (tokens, self.outputs), device)
    }

    /// The layer's input width.
    pub(crate) fn inputs(&self) -> usize {
        self.inputs
    }

    /// The layer's output width.
    pub(crate) fn outputs(&self) -> usize {
        self.outputs
    }

    /// `out = x W^T + bias` (plus `out`'s previous values when `accumulate`, as a residual
    /// connection needs) for `x` of `(tokens, in)` and `out` of `(tokens, out)`, row-major.
    /// Quantisation, the GEMM and the rescaling run in parallel blocks of rows.
    pub(crate) fn forward_into(
        &self,
        x: &[f32],
        bias: &[f32],
        out: &mut [f32],
        accumulate: bool,
    ) -> candle_core::Result<()> {
        let (inputs, n) = (self.inputs, self.outputs);
        let tokens = x.len() / inputs.max(1);
        if x.len() != tokens * inputs || out.len() != tokens * n || bias.len() != n {
            candle_core::bail!(
                "int8 linear ({inputs} -> {n}): {} inputs, {} outputs, {} biases",
                x.len(),
                out.len(),
                bias.len()
            );
        }
        // Taken out of the thread's cell for the call (and put back after), so a call that
        // rayon starts on this thread while it waits (work stealing) finds the cell free.
        let mut buffers = BUFFERS.with(|b| std::mem::take(&mut *b.borrow_mut()));
        let result = self.run(x, bias, out, accumulate, &mut buffers);
        BUFFERS.with(|b| *b.borrow_mut() = buffers);
        result
    }

    fn run(
        &self,
        x: &[f32],
        bias: &[f32],
        out: &mut [f32],
        accumulate: bool,
        buffers: &mut Buffers,
    ) -> candle_core::Result<()> {
        let (inputs, n) = (self.inputs, self.outputs);
        let tokens = x.len() / inputs;
        let Buffers {
            a,
            zero_points,
            row_scales,
            acc,
        } = buffers;
        a.resize(tokens * inputs, 0);
        zero_points.resize(tokens, 0);
        row_scales.resize(tokens, 0.0);
        a.par_chunks_mut(ROWS * inputs)
            .zip(x.par_chunks(ROWS * inputs))
            .zip(zero_points.par_chunks_mut(ROWS))
            .zip(row_scales.par_chunks_mut(ROWS))
            .for_each(|(((a, x), zero_points), row_scales)| {
                simd(
                    #[inline(always)]
                    || quantize_rows(x, a, zero_points, row_scales, inputs),
                );
            });
        acc.resize(tokens * n, 0);
        GEMM.with(|g| {
            g.gemm(
                acc,
                GemmInputA::Unpacked(NdTensorView::from_data([tokens, inputs], &a[..])),
                GemmInputB::Packed(&self.packed),
                // Zero points are applied below (rten-gemm 0.25's own a_quant path gave
                // wrong sums for some row tiles: see the `zero_points` test).
                GemmOptions::default(),
            )
        })
        .map_err(|e| candle_core::Error::Msg(format!("int8 GEMM: {e}")))?;
        out.par_chunks_mut(ROWS * n)
            .zip(acc.par_chunks(ROWS * n))
            .zip(x.par_chunks(ROWS * inputs))
            .zip(zero_points.par_chunks(ROWS))
            .zip(row_scales.par_chunks(ROWS))
            .for_each(|((((out, acc), x), zero_points), row_scales)| {
                simd(
                    #[inline(always)]
                    || {
                        let rows = out
                            .chunks_exact_mut(n)
                            .zip(acc.chunks_exact(n))
                            .zip(x.chunks_exact(inputs))
                            .zip(zero_points.iter().zip(row_scales));
                        for (((out, acc), x), (&z, &t)) in rows {
                            self.rescale_row(out, acc, x, bias, z, t, accumulate);
                        }
                    },
                );
            });
        Ok(())
    }

    /// One output row from its i32 sums: `t s_n (acc - z c_n) + bias_n`, the outlier features'
    /// f32 products added.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn rescale_row(
        &self,
        out: &mut [f32],
        acc: &[i32],
        x: &[f32],
        bias: &[f32],
        zero: u8,
        scale: f32,
        accumulate: bool,
    ) {
        let z = i32::from(zero);
        let values = acc
            .iter()
            .zip(&self.scales)
            .zip(bias)
            .zip(&self.column_sums);
        if accumulate {
            for (o, (((&v, &s), &b), &c)) in out.iter_mut().zip(values) {
                *o += (v - z * c) as f32 * scale * s + b;
            }
        } else {
            for (o, (((&v, &s), &b), &c)) in out.iter_mut().zip(values) {
                *o = (v - z * c) as f32 * scale * s + b;
            }
        }
        let n = self.outputs;
        for (k, &v) in x.iter().enumerate() {
            if v.abs() > OUTLIER {
                let column = &self.columns[k * n..(k + 1) * n];
                for (o, w) in out.iter_mut().zip(column) {
                    *o += v * w;
                }
            }
        }
    }
}

/// Rows per parallel block of quantisation and rescaling.
const ROWS: usize = 16;

/// Quantises rows of `inputs` features to asymmetric u8 (see the module's documentation),
/// writing each row's zero point and scale.
#[inline(always)]
fn quantize_rows(
    x: &[f32],
    a: &mut [u8],
    zero_points: &mut [u8],
    row_scales: &mut [f32],
    inputs: usize,
) {
    let rows = x
        .chunks_exact(inputs)
        .zip(a.chunks_exact_mut(inputs))
        .zip(zero_points.iter_mut().zip(row_scales.iter_mut()));
    for ((row, q), (zero_point, row_scale)) in rows {
        // Outliers are left out of the scale (and quantised as 0): added in f32 afterwards.
        let (mut lo, mut hi) = ([0f32; 8], [0f32; 8]);
        let chunks = row.chunks_exact(8);
        for &v in chunks.remainder() {
            let v = if v.abs() > OUTLIER { 0.0 } else { v };
            lo[0] = lo[0].min(v);
            hi[0] = hi[0].max(v);
        }
        for c in chunks {
            for i in 0..8 {
                let v = if c[i].abs() > OUTLIER { 0.0 } else { c[i] };
                lo[i] = lo[i].min(v);
                hi[i] = hi[i].max(v);
            }
        }
        let lo = lo.iter().fold(0f32, |m, &v| m.min(v));
        let hi = hi.iter().fold(0f32, |m, &v| m.max(v));
        let scale = if hi > lo { (hi - lo) / 255.0 } else { 1.0 };
        let zero = clamp((-lo / scale).round_ties_even(), 0.0, 255.0);
        let inv = 1.0 / scale;
        for (q, &v) in q.iter_mut().zip(row) {
            let v = if v.abs() > OUTLIER { 0.0 } else { v };
            // Adding 1.5 * 2^23 rounds to the nearest integer (ties to even) and leaves it in
            // the low mantissa bits: no float-to-int cast, whose checks stop vectorisation.
            let clamped = clamp(v * inv + zero, 0.0, 255.0);
            *q = (clamped + 12_582_912.0).to_bits() as u8;
        }
        *zero_point = zero as u8;
        *row_scale = scale;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// A deterministic pseudo-random matrix in [-1, 1).
    fn matrix(rows: usize, cols: usize, seed: u64) -> Vec<f32> {
        let mut state = seed;
        (0..rows * cols)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn int8_linear_matches_the_f32_product_within_quantisation_error() {
        for shape in [
            (7, 384, 96),
            (300, 384, 1152),
            (300, 1536, 384),
            (1, 384, 384),
        ] {
            check_shape(shape);
        }
    }

    fn check_shape((tokens, inputs, outputs): (usize, usize, usize)) {
        let device = Device::Cpu;
        let w = Tensor::from_vec(matrix(outputs, inputs, 1), (outputs, inputs), &device).unwrap();
        // Activations with a shifted range (as after GELU), so the zero point matters.
        let x: Vec<f32> = matrix(tokens, inputs, 2)
            .iter()
            .map(|v| v * 3.0 + 0.5)
            .collect();
        let x = Tensor::from_vec(x, (tokens, inputs), &device).unwrap();
        let bias: Vec<f32> = matrix(1, outputs, 3);
        let reference = x
            .matmul(&w.t().unwrap())
            .unwrap()
            .broadcast_add(&Tensor::from_vec(bias.clone(), outputs, &device).unwrap())
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        let int8 = Int8Matrix::quantize(&w).unwrap();
        let got = int8
            .forward(&x, &bias, &device)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        for (r, g) in reference.iter().zip(&got) {
            let dot: f32 = r.iter().zip(g).map(|(a, b)| a * b).sum();
            let norms = r.iter().map(|a| a * a).sum::<f32>().sqrt()
                * g.iter().map(|b| b * b).sum::<f32>().sqrt();
            // 7-bit weights and 8-bit activations: a row's cosine with the f32 product.
            assert!(
                dot / norms > 0.999,
                "{tokens}x{inputs}x{outputs}: cosine {}",
                dot / norms
            );
            let worst = r
                .iter()
                .zip(g)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            let scale = r.iter().map(|a| a.abs()).fold(0f32, f32::max);
            assert!(
                worst < 0.05 * scale,
                "{tokens}x{inputs}x{outputs}: worst error {worst} against max {scale}"
            );
        }
    }

    #[test]
    fn a_row_does_not_depend_on_the_others() {
        let device = Device::Cpu;
        let w = Tensor::from_vec(matrix(32, 64, 4), (32, 64), &device).unwrap();
        let int8 = Int8Matrix::quantize(&w).unwrap();
        let bias = vec![0.0; 32];
        let both = Tensor::from_vec(matrix(2, 64, 5), (2, 64), &device).unwrap();
        let alone = both.narrow(0, 1, 1).unwrap();
        let a = int8
            .forward(&both, &bias, &device)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        let b = int8
            .forward(&alone, &bias, &device)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        assert_eq!(a[1], b[0]);
    }
}

#[cfg(test)]
mod zero_points {
    use super::*;
    use candle_core::Device;

    #[test]
    fn rows_with_different_zero_points() {
        let device = Device::Cpu;
        for (m, k, n) in [
            (16, 384, 1536),
            (16, 384, 1152),
            (16, 384, 384),
            (16, 1536, 384),
        ] {
            let w: Vec<f32> = (0..n * k)
                .map(|i| ((i * 7919 % 200) as f32 / 100.0) - 1.0)
                .collect();
            let w = Tensor::from_vec(w, (n, k), &device).unwrap();
            let x: Vec<f32> = (0..m * k)
                .map(|i| {
                    let (r, c) = (i / k, i % k);
                    let v = ((c * 31 % 50) as f32) / 50.0 - 0.5;
                    v * (1.0 + r as f32) + (r as f32 - 8.0) * 0.1
                })
                .collect();
            let x = Tensor::from_vec(x, (m, k), &device).unwrap();
            let r = x.matmul(&w.t().unwrap()).unwrap().to_vec2::<f32>().unwrap();
            let q = Int8Matrix::quantize(&w).unwrap();
            let g = q
                .forward(&x, &vec![0.0; n], &device)
                .unwrap()
                .to_vec2::<f32>()
                .unwrap();
            let cos: Vec<String> = (0..m)
                .map(|i| {
                    let dot: f32 = r[i].iter().zip(&g[i]).map(|(a, b)| a * b).sum();
                    let na = r[i].iter().map(|a| a * a).sum::<f32>().sqrt();
                    let nb = g[i].iter().map(|a| a * a).sum::<f32>().sqrt();
                    format!("{:.3}", dot / (na * nb))
                })
                .collect();
            eprintln!("{m}x{k}x{n}: {}", cos.join(" "));
        }
    }
}
