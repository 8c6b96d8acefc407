//! The attention softmax of training as one differentiable CPU operation.
//!
//! Written with candle's element-wise operations, padding mask + softmax + dropout on the
//! `(batch, heads, queries, keys)` scores keep about seven tensors of that size alive for the
//! backward pass (the masked scores, the max-shifted scores, their exponentials, the
//! probabilities, the dropout mask and the dropped-out probabilities); for all-MiniLM-L6-v2
//! with 32 passages of 256 tokens, each is 100 MB, in every layer. Here the forward pass keeps
//! its input and output and a byte per element for the dropout mask, and the backward pass
//! recomputes the probabilities from the input:
//!
//! - forward: `y = softmax(x + bias)` over the keys (padding keys get probability 0), then
//!   `out = y * k / (1 - p)` with `k` the keep mask;
//! - backward: with `g_y = g_out * k / (1 - p)`, `g_x = y * (g_y - sum_j g_y_j y_j)`.
//!
//! Other devices take the same steps as separate candle operations.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, CustomOp2, D, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::Rng;

/// What forward and backward share.
struct Spec {
    /// 1 for a key that is a token, 0 for padding, per (batch element, key).
    keys: Vec<u8>,
    /// Rows (heads x queries) per batch element.
    rows_per_item: usize,
    /// Keys per row.
    width: usize,
    /// Per element, 1 to keep and 0 to drop; empty without dropout.
    keep: Vec<u8>,
    /// `1 / (1 - p)`.
    keep_scale: f32,
}

impl Spec {
    fn key_mask(&self, row: usize) -> &[u8] {
        let item = row / self.rows_per_item;
        &self.keys[item * self.width..(item + 1) * self.width]
    }

    /// The softmax of row `row` of `x` over its non-padding keys, into `y`.
    fn softmax(&self, row: usize, x: &[f32], y: &mut [f32]) {
        let keys = self.key_mask(row);
        let max = x
            .iter()
            .zip(keys)
            .filter(|&(_, &k)| k != 0)
            .map(|(&v, _)| v)
            .fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0f32;
        for ((o, &v), &k) in y.iter_mut().zip(x).zip(keys) {
            *o = if k != 0 { (v - max).exp() } else { 0.0 };
            sum += *o;
        }
        let inv = if sum > 0.0 { 1.0 / sum } else { 0.0 };
        y.iter_mut().for_each(|o| *o *= inv);
    }

    /// The dropout factors of row `row`, if dropout is on.
    fn keep_row(&self, row: usize) -> Option<&[u8]> {
        (!self.keep.is_empty()).then(|| &self.keep[row * self.width..(row + 1) * self.width])
    }
}

fn slice<'a>(storage: &'a CpuStorage, layout: &Layout, op: &str) -> candle_core::Result<&'a [f32]> {
    let CpuStorage::F32(values) = storage else {
        candle_core::bail!("{op}: f32 input expected");
    };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&values[start..end]),
        None => candle_core::bail!("{op}: contiguous input expected"),
    }
}

struct MaskedSoftmax(Arc<Spec>);

impl CustomOp1 for MaskedSoftmax {
    fn name(&self) -> &'static str {
        "train-masked-softmax"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let spec = &self.0;
        let x = slice(storage, layout, self.name())?;
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(spec.width)
            .zip(x.par_chunks(spec.width))
            .enumerate()
            .for_each(|(row, (y, x))| {
                spec.softmax(row, x, y);
                if let Some(keep) = spec.keep_row(row) {
                    for (o, &k) in y.iter_mut().zip(keep) {
                        *o *= f32::from(k) * spec.keep_scale;
                    }
                }
            });
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let grad = arg
            .contiguous()?
            .apply_op2_no_bwd(&grad_res.contiguous()?, &MaskedSoftmaxGrad(self.0.clone()))?;
        Ok(Some(grad))
    }
}

struct MaskedSoftmaxGrad(Arc<Spec>);

impl CustomOp2 for MaskedSoftmaxGrad {
    fn name(&self) -> &'static str {
        "train-masked-softmax-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let spec = &self.0;
        let x = slice(s1, l1, self.name())?;
        let g = slice(s2, l2, self.name())?;
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(spec.width)
            .zip(x.par_chunks(spec.width).zip(g.par_chunks(spec.width)))
            .enumerate()
            .for_each(|(row, (gx, (x, g)))| {
                // gx first holds y, the probabilities before dropout.
                spec.softmax(row, x, gx);
                let keep = spec.keep_row(row);
                let gy = |j: usize| match keep {
                    Some(k) => g[j] * f32::from(k[j]) * spec.keep_scale,
                    None => g[j],
                };
                let dot: f32 = (0..gx.len()).map(|j| gy(j) * gx[j]).sum();
                for (j, v) in gx.iter_mut().enumerate() {
                    *v *= gy(j) - dot;
                }
            });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// Attention probabilities from raw scores `(batch, heads, queries, keys)` and the attention
/// mask `(batch, keys)` (1 for tokens, 0 for padding): softmax over the tokens, then, with a
/// generator, dropout at rate `p`.
pub(crate) fn attention_probs(
    scores: &Tensor,
    mask: &Tensor,
    p: f32,
    rng: Option<&mut Rng>,
) -> candle_core::Result<Tensor> {
    let (b, heads, queries, keys) = scores.dims4()?;
    let drop = rng.filter(|_| p > 0.0);
    if !scores.device().is_cpu() {
        // 0 where the mask is 1, -1e9 on padding: exp() of it is exactly 0 in the softmax.
        let bias = mask.affine(1e9, -1e9)?.reshape((b, 1, 1, keys))?;
        let probs = candle_nn::ops::softmax(&scores.broadcast_add(&bias)?, D::Minus1)?;
        return super::bert::dropout(&probs, p, drop);
    }
    let keys_mask: Vec<u8> = mask
        .flatten_all()?
        .to_vec1::<f32>()?
        .iter()
        .map(|&m| u8::from(m > 0.5))
        .collect();
    let (keep, keep_scale) = match drop {
        Some(rng) => (
            (0..scores.elem_count())
                .map(|_| u8::from(rng.uniform_f32() >= p))
                .collect(),
            1.0 / (1.0 - p),
        ),
        None => (Vec::new(), 1.0),
    };
    let spec = Spec {
        keys: keys_mask,
        rows_per_item: heads * queries,
        width: keys,
        keep,
        keep_scale,
    };
    scores
        .contiguous()?
        .apply_op1(MaskedSoftmax(Arc::new(spec)))
}
