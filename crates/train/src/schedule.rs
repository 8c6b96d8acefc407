//! The learning-rate schedule.

/// Linear warm-up from 0 to the peak rate, then linear decay to 0 at the last step: Hugging
/// Face's `get_linear_schedule_with_warmup`, which sentence-transformers uses (`WarmupLinear`).
///
/// For step `s` (from 0) of `T` steps with `W` warm-up steps:
/// `lr(s) = peak * s / W` while `s < W`, then `peak * (T - s) / (T - W)`.
/// As in Hugging Face, the first step of a run with warm-up has rate 0.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinearSchedule {
    /// The rate at the end of the warm-up.
    pub peak: f64,
    /// Warm-up steps.
    pub warmup_steps: usize,
    /// Steps in the whole run.
    pub total_steps: usize,
}

impl LinearSchedule {
    /// A schedule over `total_steps` whose warm-up is `ceil(warmup_ratio * total_steps)` steps
    /// (as `transformers`' `TrainingArguments::get_warmup_steps` counts them).
    pub fn new(peak: f64, warmup_ratio: f64, total_steps: usize) -> Self {
        let warmup_steps =
            ((warmup_ratio.clamp(0.0, 1.0) * total_steps as f64).ceil() as usize).min(total_steps);
        Self {
            peak,
            warmup_steps,
            total_steps,
        }
    }

    /// The rate for step `step` (from 0).
    pub fn lr(&self, step: usize) -> f64 {
        let (s, w, t) = (
            step as f64,
            self.warmup_steps as f64,
            self.total_steps as f64,
        );
        if step < self.warmup_steps {
            self.peak * s / w
        } else if self.total_steps > self.warmup_steps {
            self.peak * ((t - s) / (t - w)).max(0.0)
        } else {
            0.0
        }
    }
}
