//! AdamW with sentence-transformers' parameter groups and gradient clipping.

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};

/// `candle_nn::AdamW`s (decoupled weight decay, Loshchilov & Hutter 2019), one per group of
/// parameters: weight decay for the matrices and embeddings, none for biases and LayerNorm
/// weights (sentence-transformers' `no_decay = ["bias", "LayerNorm.bias",
/// "LayerNorm.weight"]`), and each group at its own multiple of the scheduled learning rate
/// (a new head learns faster than the pretrained body). Gradients are clipped to a global L2
/// norm first (`torch.nn.utils.clip_grad_norm_`).
pub(crate) struct Optim {
    /// Each group's optimiser and learning-rate multiple.
    groups: Vec<(AdamW, f64)>,
    vars: Vec<Var>,
    max_grad_norm: Option<f64>,
}

/// Whether a parameter is exempt from weight decay.
fn no_decay(name: &str) -> bool {
    name.contains("bias") || name.contains("LayerNorm")
}

impl Optim {
    /// An optimiser of `named` parameters; `lr_scale(name)` is the multiple of the scheduled
    /// learning rate that parameter learns at.
    pub(crate) fn new(
        named: Vec<(String, Var)>,
        weight_decay: f64,
        max_grad_norm: Option<f64>,
        lr_scale: &dyn Fn(&str) -> f64,
    ) -> candle_core::Result<Self> {
        let vars: Vec<Var> = named.iter().map(|(_, v)| v.clone()).collect();
        // (decays, lr multiple) -> parameters, in first-seen order.
        let mut keyed: Vec<((bool, f64), Vec<Var>)> = Vec::new();
        for (name, var) in named {
            let key = (!no_decay(&name), lr_scale(&name));
            match keyed.iter_mut().find(|(k, _)| *k == key) {
                Some((_, group)) => group.push(var),
                None => keyed.push((key, vec![var])),
            }
        }
        let groups = keyed
            .into_iter()
            .map(|((decays, scale), group)| {
                let params = ParamsAdamW {
                    lr: 0.0,
                    weight_decay: if decays { weight_decay } else { 0.0 },
                    ..ParamsAdamW::default()
                };
                Ok((AdamW::new(group, params)?, scale))
            })
            .collect::<candle_core::Result<_>>()?;
        Ok(Self {
            groups,
            vars,
            max_grad_norm,
        })
    }

    /// Back-propagates `loss`, clips and applies the gradient at rate `lr`; returns the global
    /// gradient norm before clipping.
    pub(crate) fn step(&mut self, loss: &Tensor, lr: f64) -> candle_core::Result<f32> {
        self.step_with(loss.backward()?, lr)
    }

    /// [`Optim::step`] with gradients computed elsewhere (GradCache's accumulated ones).
    pub(crate) fn step_with(&mut self, mut grads: GradStore, lr: f64) -> candle_core::Result<f32> {
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
        for (optimizer, scale) in &mut self.groups {
            optimizer.set_learning_rate(lr * *scale);
            optimizer.step(&grads)?;
        }
        Ok(norm as f32)
    }
}
