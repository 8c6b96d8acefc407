//! The CPU forward pass of the transformer layers on plain row-major buffers.
//!
//! candle's path allocates a tensor for every step (the matrix product, the bias, the residual
//! sum, the normalisation, the activation), each tens of megabytes for a batch, and glibc hands
//! most of them back to the kernel, so every layer pays for fresh zeroed pages. Here one layer
//! is five passes over buffers allocated once per group of sequences:
//!
//! 1. `qkv = x Wqkv^T + b` (one GEMM for query, key and value);
//! 2. attention per sequence and head on strided views of `qkv` (no copies): scores
//!    `q k^T / sqrt(d)` by a GEMM, softmax in place, context `p v` by a GEMM;
//! 3. `x += context Wo^T + b` (the GEMM adds into the residual), then LayerNorm in place;
//! 4. `inner = x Wi^T + b`, GELU in place;
//! 5. `x += inner Wf^T + b`, then LayerNorm in place.
//!
//! The matrices are products of `rten-gemm` (f32, or int8 through [`crate::int8`]), which
//! picks AVX-512, AVX2+FMA or portable kernels at run time; the element-wise steps are
//! `crate::ops`' dispatched loops. Batches are split into groups of at most [`GROUP_TOKENS`]
//! tokens (whole sequences), which bounds the buffers (about 25 MB for a BERT-base-sized
//! intermediate layer) and keeps them in glibc's reused heap instead of fresh mappings.

use rayon::prelude::*;
use rten_gemm::{BiasVector, GemmExecutor, GemmInputA, GemmInputB, GemmOptions, PackedBMatrix};
use rten_tensor::NdTensorView;

use crate::int8::Int8Matrix;
use crate::ops::LayerNorm;

thread_local! {
    /// The f32 executor (not `Send`: one per thread; all pick the same kernel, so a matrix
    /// packed by one is read by all).
    static GEMM: GemmExecutor<f32, f32, f32> = GemmExecutor::default();
}

/// Tokens per group of sequences run through the layers together (a longer sequence is a
/// group of its own).
pub(crate) const GROUP_TOKENS: usize = 2048;

/// The f32 kernel `rten-gemm` chose on this CPU (`x86_64-f32-avx512`, `x86_64-f32-fma`, ...).
pub fn f32_kernel_name() -> String {
    GEMM.with(|g| g.kernel_name().to_string())
}

/// A linear layer's matrix, packed for the CPU kernels.
pub(crate) enum CpuMatrix {
    /// f32, packed as `rten-gemm`'s B input (`W^T`, `(in, out)`).
    F32 {
        packed: PackedBMatrix<f32>,
        inputs: usize,
        outputs: usize,
    },
    /// Int8 per output channel.
    Int8(Int8Matrix),
}

/// A linear layer on the CPU: its matrix and bias.
pub(crate) struct CpuLinear {
    matrix: CpuMatrix,
    bias: Vec<f32>,
}

impl CpuLinear {
    /// `weight` as `(out, in)` f32 values (row-major, as PyTorch's `Linear.weight`), packed.
    pub(crate) fn f32(weight: &[f32], outputs: usize, bias: Vec<f32>) -> Self {
        let inputs = weight.len() / outputs.max(1);
        let w = NdTensorView::from_data([outputs, inputs], weight);
        let packed = GEMM.with(|g| g.prepack_b(w.transposed()));
        Self {
            matrix: CpuMatrix::F32 {
                packed,
                inputs,
                outputs,
            },
            bias,
        }
    }

    /// An int8 matrix with its bias.
    pub(crate) fn int8(matrix: Int8Matrix, bias: Vec<f32>) -> Self {
        Self {
            matrix: CpuMatrix::Int8(matrix),
            bias,
        }
    }

    fn widths(&self) -> (usize, usize) {
        match &self.matrix {
            CpuMatrix::F32 {
                inputs, outputs, ..
            } => (*inputs, *outputs),
            CpuMatrix::Int8(m) => (m.inputs(), m.outputs()),
        }
    }

    /// `out = x W^T + bias`, or `out += x W^T + bias` when `accumulate`; `x` is `(tokens, in)`
    /// and `out` `(tokens, out)`, row-major.
    ///
    /// # Errors
    ///
    /// When the slices do not have those shapes.
    pub(crate) fn forward_into(
        &self,
        x: &[f32],
        out: &mut [f32],
        accumulate: bool,
    ) -> candle_core::Result<()> {
        match &self.matrix {
            CpuMatrix::Int8(m) => m.forward_into(x, &self.bias, out, accumulate),
            CpuMatrix::F32 {
                packed,
                inputs,
                outputs,
            } => {
                let tokens = x.len() / inputs;
                if x.len() != tokens * inputs || out.len() != tokens * outputs {
                    candle_core::bail!(
                        "linear ({inputs} -> {outputs}): {} inputs, {} outputs",
                        x.len(),
                        out.len()
                    );
                }
                let options = GemmOptions {
                    beta: if accumulate { 1.0 } else { 0.0 },
                    bias: Some(BiasVector::Row(&self.bias)),
                    ..GemmOptions::default()
                };
                GEMM.with(|g| {
                    g.gemm(
                        out,
                        GemmInputA::Unpacked(NdTensorView::from_data([tokens, *inputs], x)),
                        GemmInputB::Packed(packed),
                        options,
                    )
                })
                .map_err(|e| candle_core::Error::Msg(format!("f32 GEMM: {e}")))
            }
        }
    }

    /// [`CpuLinear::forward_into`] on a tensor, for candle's path.
    pub(crate) fn forward(
        &self,
        x: &candle_core::Tensor,
    ) -> candle_core::Result<candle_core::Tensor> {
        let (tokens, _) = x.dims2()?;
        let (_, outputs) = self.widths();
        let input = x.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let mut out = vec![0f32; tokens * outputs];
        self.forward_into(&input, &mut out, false)?;
        candle_core::Tensor::from_vec(out, (tokens, outputs), x.device())
    }
}

/// One transformer layer on the CPU.
pub(crate) struct CpuLayer<'a> {
    pub(crate) qkv: &'a CpuLinear,
    pub(crate) attention_out: &'a CpuLinear,
    pub(crate) attention_norm: &'a LayerNorm,
    pub(crate) intermediate: &'a CpuLinear,
    pub(crate) output: &'a CpuLinear,
    pub(crate) output_norm: &'a LayerNorm,
}

/// The activation after the intermediate matrix.
pub(crate) type Activate<'a> = &'a (dyn Fn(&mut [f32]) + Sync);

/// Runs `layers` over `x`, the embedded tokens of sequences of `lengths` packed end to end
/// (`(total, hidden)` row-major), in place.
///
/// # Errors
///
/// When a buffer does not have the shape a layer expects.
pub(crate) fn run_layers(
    layers: &[CpuLayer<'_>],
    x: &mut [f32],
    lengths: &[usize],
    hidden: usize,
    heads: usize,
    activate: Activate<'_>,
) -> candle_core::Result<()> {
    let tokens = x.len() / hidden;
    let Some(first) = layers.first() else {
        return Ok(());
    };
    let inner_width = first.intermediate.widths().1;
    let mut qkv = vec![0f32; tokens * 3 * hidden];
    let mut context = vec![0f32; tokens * hidden];
    let mut inner = vec![0f32; tokens * inner_width];
    for layer in layers {
        layer.qkv.forward_into(x, &mut qkv, false)?;
        attention(&qkv, lengths, hidden, heads, &mut context)?;
        layer.attention_out.forward_into(&context, x, true)?;
        layer.attention_norm.apply_in_place(x);
        layer.intermediate.forward_into(x, &mut inner, false)?;
        activate(&mut inner);
        layer.output.forward_into(&inner, x, true)?;
        layer.output_norm.apply_in_place(x);
    }
    Ok(())
}

/// Scaled dot-product attention (Vaswani et al. 2017), each sequence over its own tokens:
/// `context = softmax(q k^T / sqrt(d)) v` per head, `q`, `k`, `v` read in place from the
/// `(tokens, 3 hidden)` projections; `context` is `(tokens, hidden)`.
fn attention(
    qkv: &[f32],
    lengths: &[usize],
    hidden: usize,
    heads: usize,
    context: &mut [f32],
) -> candle_core::Result<()> {
    let d = hidden / heads;
    let scale = 1.0 / (d as f32).sqrt();
    let mut tasks = Vec::with_capacity(lengths.len() * heads);
    let mut offset = 0;
    for &len in lengths {
        for head in 0..heads {
            tasks.push((offset, len, head));
        }
        offset += len;
    }
    let stride = 3 * hidden;
    let view = |row: usize, column: usize, len: usize| {
        NdTensorView::from_data_with_strides([len, d], &qkv[row * stride + column..], [stride, 1])
            .map_err(|e| candle_core::Error::Msg(format!("attention view: {e:?}")))
    };
    let parts: Vec<Vec<f32>> = tasks
        .par_iter()
        .map(|&(offset, len, head)| -> candle_core::Result<Vec<f32>> {
            let q = view(offset, head * d, len)?;
            let k = view(offset, hidden + head * d, len)?;
            let v = view(offset, 2 * hidden + head * d, len)?;
            let mut scores = vec![0f32; len * len];
            let mut out = vec![0f32; len * d];
            GEMM.with(|g| {
                g.gemm(
                    &mut scores,
                    GemmInputA::Unpacked(q),
                    GemmInputB::Unpacked(k.transposed()),
                    GemmOptions {
                        alpha: scale,
                        ..GemmOptions::default()
                    },
                )?;
                crate::ops::softmax_rows(&mut scores, len);
                g.gemm(
                    &mut out,
                    GemmInputA::Unpacked(NdTensorView::from_data([len, len], &scores[..])),
                    GemmInputB::Unpacked(v),
                    GemmOptions::default(),
                )
            })
            .map_err(|e| candle_core::Error::Msg(format!("attention GEMM: {e}")))?;
            Ok(out)
        })
        .collect::<candle_core::Result<_>>()?;
    for (&(offset, _, head), part) in tasks.iter().zip(&parts) {
        for (r, row) in part.chunks_exact(d).enumerate() {
            let start = (offset + r) * hidden + head * d;
            context[start..start + d].copy_from_slice(row);
        }
    }
    Ok(())
}

/// Groups of consecutive sequences of at most [`GROUP_TOKENS`] tokens (a longer sequence
/// alone), as index ranges into `lengths`.
pub(crate) fn groups(lengths: &[usize]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut tokens) = (0, 0);
    for (i, &len) in lengths.iter().enumerate() {
        if i > start && tokens + len > GROUP_TOKENS {
            out.push(start..i);
            start = i;
            tokens = 0;
        }
        tokens += len;
    }
    if start < lengths.len() {
        out.push(start..lengths.len());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_hold_whole_sequences_within_the_budget() {
        assert_eq!(groups(&[]), Vec::<std::ops::Range<usize>>::new());
        assert_eq!(groups(&[5]), vec![0..1]);
        assert_eq!(groups(&[3000, 10]), vec![0..1, 1..2]);
        assert_eq!(groups(&[1000, 1000, 48, 1]), vec![0..3, 3..4]);
        let lengths = [512; 9];
        let g = groups(&lengths);
        assert_eq!(g, vec![0..4, 4..8, 8..9]);
    }

    #[test]
    fn f32_linear_matches_a_plain_product() {
        let (tokens, inputs, outputs) = (5, 7, 3);
        let w: Vec<f32> = (0..outputs * inputs)
            .map(|i| (i as f32 * 0.37).sin())
            .collect();
        let x: Vec<f32> = (0..tokens * inputs)
            .map(|i| (i as f32 * 0.11).cos())
            .collect();
        let bias = vec![0.5, -1.0, 2.0];
        let layer = CpuLinear::f32(&w, outputs, bias.clone());
        let mut out = vec![1f32; tokens * outputs];
        layer.forward_into(&x, &mut out, true).unwrap();
        for t in 0..tokens {
            for o in 0..outputs {
                let dot: f32 = (0..inputs)
                    .map(|k| x[t * inputs + k] * w[o * inputs + k])
                    .sum();
                let expected = 1.0 + dot + bias[o];
                let got = out[t * outputs + o];
                assert!(
                    (got - expected).abs() < 1e-5,
                    "[{t}][{o}] {got} vs {expected}"
                );
            }
        }
    }
}
