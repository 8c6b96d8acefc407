//! AdamW with sentence-transformers' parameter groups and gradient clipping.

use candle_core::{Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};

/// Two `candle_nn::AdamW`s (decoupled weight decay, Loshchilov & Hutter 2019): one with weight
/// decay for the matrices and embeddings, one without for biases and LayerNorm weights
/// (sentence-transformers' `no_decay = ["bias", "LayerNorm.bias", "LayerNorm.weight"]`).
/// Gradients are clipped to a global L2 norm first (`torch.nn.utils.clip_grad_norm_`).
pub(crate) struct Optim {
    decay: AdamW,
    no_decay: AdamW,
    vars: Vec<Var>,
    max_grad_norm: Option<f64>,
}

/// Whether a parameter is exempt from weight decay.
fn no_decay(name: &str) -> bool {
    name.contains("bias") || name.contains("LayerNorm")
}

impl Optim {
    pub(crate) fn new(
        named: Vec<(String, Var)>,
        weight_decay: f64,
        max_grad_norm: Option<f64>,
    ) -> candle_core::Result<Self> {
        let vars: Vec<Var> = named.iter().map(|(_, v)| v.clone()).collect();
        let (exempt, decayed): (Vec<_>, Vec<_>) =
            named.into_iter().partition(|(name, _)| no_decay(name));
        let params = |weight_decay| ParamsAdamW {
            lr: 0.0,
            weight_decay,
            ..ParamsAdamW::default()
        };
        Ok(Self {
            decay: AdamW::new(
                decayed.into_iter().map(|(_, v)| v).collect(),
                params(weight_decay),
            )?,
            no_decay: AdamW::new(exempt.into_iter().map(|(_, v)| v).collect(), params(0.0))?,
            vars,
            max_grad_norm,
        })
    }

    /// Back-propagates `loss`, clips and applies the gradient at rate `lr`; returns the global
    /// gradient norm before clipping.
    pub(crate) fn step(&mut self, loss: &Tensor, lr: f64) -> candle_core::Result<f32> {
        let mut grads = loss.backward()?;
        let mut squares = 0f64;
        for var in &self.vars {
            if let Some(g) = grads.get(var.as_tensor()) {
                squares += f64::from(g.sqr()?.sum_all()?.to_scalar::<f32>()?);
            }
        }
        let norm = squares.sqrt();
        if let Some(max) = self.max_grad_norm
            && norm > max
        {
            let factor = max / (norm + 1e-6);
            for var in &self.vars {
                if let Some(g) = grads.remove(var.as_tensor()) {
                    grads.insert(var.as_tensor(), (g * factor)?);
                }
            }
        }
        self.decay.set_learning_rate(lr);
        self.no_decay.set_learning_rate(lr);
        self.decay.step(&grads)?;
        self.no_decay.step(&grads)?;
        Ok(norm as f32)
    }
}
