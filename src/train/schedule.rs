//! The learning rate of each epoch: constant, stepped down, or cosine-annealed, after an
//! optional linear warm-up. Rates change at epoch boundaries (as PyTorch's schedulers do when
//! stepped once per epoch), so a resumed run recomputes them from the epoch number alone.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ScheduleKind {
    /// The same rate every epoch (the seeds').
    #[default]
    Constant,
    /// Multiplied by `--lr-gamma` every `--lr-step` epochs (PyTorch's StepLR).
    Step,
    /// Annealed from the rate to 0 along half a cosine over the epochs after warm-up
    /// (PyTorch's CosineAnnealingLR with T_max = those epochs).
    Cosine,
}

/// A schedule (saved with checkpoints).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    pub kind: ScheduleKind,
    /// Epochs of linear warm-up: epoch e ≤ warmup trains at lr · e / (warmup + 1).
    pub warmup: usize,
    /// The step schedule's period in epochs and factor.
    pub step: usize,
    pub gamma: f64,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            kind: ScheduleKind::Constant,
            warmup: 0,
            step: 30,
            gamma: 0.1,
        }
    }
}

impl Schedule {
    /// Checks the settings against a run of `epochs` epochs, naming the flag of a bad one.
    pub fn check(&self, epochs: usize) -> Result<()> {
        let bad = |flag: &str, message: String| {
            Err(Error::Argument {
                flag: flag.into(),
                message,
            })
        };
        if self.warmup >= epochs {
            return bad(
                "--warmup",
                format!(
                    "{} warm-up epochs leave none of the {epochs} epochs at the full rate",
                    self.warmup
                ),
            );
        }
        if self.step == 0 {
            return bad("--lr-step", "must be at least 1 epoch".into());
        }
        if !(self.gamma.is_finite() && self.gamma > 0.0 && self.gamma <= 1.0) {
            return bad("--lr-gamma", format!("{} is not in (0, 1]", self.gamma));
        }
        Ok(())
    }

    /// The rate of epoch `epoch` (from 1) of `epochs`, from the base rate `learnrate`.
    pub fn learnrate(&self, learnrate: f64, epoch: usize, epochs: usize) -> f64 {
        if epoch <= self.warmup {
            return learnrate * epoch as f64 / (self.warmup + 1) as f64;
        }
        let after = (epoch - self.warmup - 1) as f64;
        match self.kind {
            ScheduleKind::Constant => learnrate,
            ScheduleKind::Step => {
                learnrate
                    * self
                        .gamma
                        .powi(((epoch - self.warmup - 1) / self.step) as i32)
            }
            ScheduleKind::Cosine => {
                let span = epochs.saturating_sub(self.warmup).max(1) as f64;
                learnrate * 0.5 * (1.0 + (std::f64::consts::PI * after / span).cos())
            }
        }
    }

    pub fn describe(&self) -> String {
        let kind = match self.kind {
            ScheduleKind::Constant => "constant".to_string(),
            ScheduleKind::Step => format!("x{} every {} epochs", self.gamma, self.step),
            ScheduleKind::Cosine => "cosine to 0".to_string(),
        };
        if self.warmup > 0 {
            format!("{kind} after {} warm-up epochs", self.warmup)
        } else {
            kind
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_follow_the_schedules() {
        let constant = Schedule::default();
        assert_eq!(constant.learnrate(0.3, 7, 80), 0.3);
        let step = Schedule {
            kind: ScheduleKind::Step,
            step: 10,
            gamma: 0.5,
            ..constant
        };
        assert_eq!(step.learnrate(1.0, 10, 80), 1.0);
        assert_eq!(step.learnrate(1.0, 11, 80), 0.5);
        assert_eq!(step.learnrate(1.0, 21, 80), 0.25);
        let cosine = Schedule {
            kind: ScheduleKind::Cosine,
            warmup: 4,
            ..constant
        };
        // Warm-up: 1/5, 2/5, … of the rate, then the full rate, then down to near 0.
        assert!((cosine.learnrate(1.0, 1, 24) - 0.2).abs() < 1e-15);
        assert!((cosine.learnrate(1.0, 4, 24) - 0.8).abs() < 1e-15);
        assert_eq!(cosine.learnrate(1.0, 5, 24), 1.0);
        assert!((cosine.learnrate(1.0, 15, 24) - 0.5).abs() < 1e-12);
        let last = cosine.learnrate(1.0, 24, 24);
        assert!(last > 0.0 && last < 0.01, "{last}");
        assert!(cosine.check(4).is_err());
        assert!(Schedule { gamma: 0.0, ..step }.check(10).is_err());
    }
}
