//! Benchmarks of the full training step (forward, error terms, updates) on each backend:
//! sizes, FLOP counts, known peaks, and a timing loop that keeps the weights resident.

use std::time::{Duration, Instant};

use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::comm::{Communicator, Local, Traffic};

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::model::{Activation, Network};

/// A benchmark problem: `records` per batch through `layer_sizes` (inputs, hidden..., outputs).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct BenchSize {
    pub label: String,
    pub records: usize,
    pub layer_sizes: Vec<usize>,
}

/// The sizes of GPU.md, with PyTorch eager's step on the H100 for comparison.
pub const NAMED_SIZES: [(&str, usize, [usize; 3], f64); 4] = [
    ("S", 1024, [784, 256, 10], 0.294),
    ("M", 1024, [784, 4096, 10], 0.478),
    ("L", 4096, [1024, 8192, 16], 3.52),
    ("XL", 8192, [4096, 16384, 64], 45.8),
];

impl BenchSize {
    /// FLOPs of one step: per layer 2·B·in·out for the forward product and again for the
    /// update, plus 2·B·in·out for the error term it sends back (every layer but the first).
    /// For one hidden layer that is GPU.md's 4·B·I·H + 6·B·H·O.
    pub fn flops_per_step(&self) -> f64 {
        self.layer_sizes
            .windows(2)
            .enumerate()
            .map(|(l, w)| {
                let products = if l == 0 { 4.0 } else { 6.0 };
                products * self.records as f64 * w[0] as f64 * w[1] as f64
            })
            .sum()
    }

    /// PyTorch eager fp32's median step on the H100 (GPU.md), for the named sizes.
    pub fn pytorch_h100_ms(&self) -> Option<f64> {
        NAMED_SIZES
            .iter()
            .find(|(name, ..)| *name == self.label)
            .map(|(.., ms)| *ms)
    }
}

/// Parses `S,M` or `1024x784x256x10` (records x inputs x hidden... x outputs), comma-separated.
pub fn parse_sizes(spec: &str) -> Result<Vec<BenchSize>> {
    if spec.trim().is_empty() {
        return Err(Error::argument(
            "--sizes",
            "name at least one size, e.g. S or 64x784x256x10",
        ));
    }
    spec.split(',')
        .map(str::trim)
        .map(|s| {
            if let Some((name, records, layers, _)) =
                NAMED_SIZES.iter().find(|(n, ..)| n.eq_ignore_ascii_case(s))
            {
                return Ok(BenchSize {
                    label: name.to_string(),
                    records: *records,
                    layer_sizes: layers.to_vec(),
                });
            }
            let numbers: Option<Vec<usize>> = s.split('x').map(|v| v.parse().ok().filter(|&n| n > 0)).collect();
            match numbers {
                Some(n) if n.len() >= 4 => Ok(BenchSize {
                    label: s.to_string(),
                    records: n[0],
                    layer_sizes: n[1..].to_vec(),
                }),
                _ => Err(Error::Argument {
                    flag: "--sizes".into(),
                    message: format!(
                        "`{s}` is neither S, M, L, XL nor BxIxHxO (records x inputs x hidden... x outputs, each >= 1)"
                    ),
                }),
            }
        })
        .collect()
}

/// Datasheet fp32 peaks (no tensor cores) of adapters we know, in FLOP/s.
pub fn fp32_peak(adapter_name: &str) -> Option<f64> {
    let name = adapter_name.to_ascii_uppercase();
    // The SXM H100 (HBM3) and H200 share GH100's 132 SMs at 1.98 GHz: ~67 TFLOP/s.
    if name.contains("H100") && name.contains("HBM3") || name.contains("H200") {
        Some(67e12)
    } else if name.contains("H100") {
        Some(51e12) // PCIe
    } else {
        None
    }
}

/// A random network and batch for `size`, the same every run.
pub fn problem(size: &BenchSize) -> Result<(Network<f64>, Array2<f64>, Array2<f64>)> {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let network = Network::random(&size.layer_sizes, Activation::Sigmoid, &mut rng)?;
    let x = Array2::from_shape_simple_fn((size.records, size.layer_sizes[0]), || {
        rng.random_range(-1.0..1.0)
    });
    let n_out = size.layer_sizes[size.layer_sizes.len() - 1];
    let target = Array2::from_shape_simple_fn((size.records, n_out), || rng.random_range(0.0..1.0));
    Ok((network, x, target))
}

/// Per-step times of one backend on one size.
#[derive(Clone, Debug, Serialize)]
pub struct Timing {
    pub median_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
    /// Steps timed in all, and per timed submission (steps recorded back to back).
    pub steps: usize,
    pub steps_per_sample: usize,
}

/// Times training steps on one batch: one warm-up, then samples of `group` steps back to back
/// (enough that a sample lasts ~20 ms, so the batch's upload and the submission overhead are
/// amortised as in training) until `samples` are taken or `budget` is spent (at least three).
pub fn time_steps(
    backend: &mut dyn Backend,
    x: &Array2<f64>,
    target: &Array2<f64>,
    samples: usize,
    budget: Duration,
) -> Result<Timing> {
    Ok(time_steps_together(backend, x, target, samples, budget, &Local)?.0)
}

/// [`time_steps`] on every rank of `comm` at once: rank 0's clock decides the group size and
/// when the budget is spent, so that every rank takes the same steps (a rank that stopped
/// sampling early would leave the others waiting in their next sum). Also returns what the
/// collectives cost during the timed steps.
pub fn time_steps_together(
    backend: &mut dyn Backend,
    x: &Array2<f64>,
    target: &Array2<f64>,
    samples: usize,
    budget: Duration,
    comm: &dyn Communicator,
) -> Result<(Timing, Traffic)> {
    let learnrate = 0.01;
    let run = |backend: &mut dyn Backend, count: usize| -> Result<f64> {
        let start = Instant::now();
        backend.train_steps(x.view(), target.view(), learnrate, count)?;
        backend.synchronize()?;
        Ok(start.elapsed().as_secs_f64())
    };
    let rank_0s = |value: f64| -> Result<f64> {
        let mut value = [value];
        comm.broadcast_f64(&mut value)?;
        Ok(value[0])
    };
    run(backend, 1)?;
    let one = run(backend, 1)?;
    let group = rank_0s(((20e-3 / one.max(1e-9)).ceil()).clamp(1.0, 1000.0))? as usize;
    let started = Instant::now();
    let before = comm.traffic();
    let mut per_step: Vec<f64> = Vec::new();
    let more = |taken: usize| -> Result<bool> {
        let wanted = taken < samples.max(1) && (taken < 3 || started.elapsed() < budget);
        Ok(rank_0s(f64::from(u8::from(wanted)))? > 0.0)
    };
    while more(per_step.len())? {
        per_step.push(run(backend, group)? / group as f64);
    }
    let after = comm.traffic();
    per_step.sort_by(f64::total_cmp);
    let timing = Timing {
        median_ms: per_step[per_step.len() / 2] * 1e3,
        min_ms: per_step[0] * 1e3,
        max_ms: per_step[per_step.len() - 1] * 1e3,
        steps: per_step.len() * group,
        steps_per_sample: group,
    };
    let traffic = Traffic {
        seconds: after.seconds - before.seconds,
        bytes: after.bytes - before.bytes,
        calls: after.calls - before.calls,
    };
    Ok((timing, traffic))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_and_explicit_sizes_parse() {
        let sizes = parse_sizes("S,xl,64x7x5x3x2").unwrap();
        assert_eq!(sizes[0].layer_sizes, [784, 256, 10]);
        assert_eq!(sizes[1].records, 8192);
        assert_eq!(sizes[2].records, 64);
        assert_eq!(sizes[2].layer_sizes, [7, 5, 3, 2]);
        for bad in ["Q", "10x5x3", "4x0x2x1", "axbxcxd", "S,,M"] {
            let err = parse_sizes(bad).unwrap_err().to_string();
            assert!(err.contains("--sizes"), "{err}");
        }
        assert!(parse_sizes(" ")
            .unwrap_err()
            .to_string()
            .contains("at least one"));
    }

    #[test]
    fn flops_follow_gpu_md() {
        let s = &parse_sizes("S").unwrap()[0];
        assert_eq!(
            s.flops_per_step(),
            4.0 * 1024.0 * 784.0 * 256.0 + 6.0 * 1024.0 * 256.0 * 10.0
        );
        let deep = &parse_sizes("2x3x4x5x6").unwrap()[0];
        assert_eq!(
            deep.flops_per_step(),
            2.0 * (4.0 * 12.0 + 6.0 * 20.0 + 6.0 * 30.0)
        );
    }

    #[test]
    fn known_peaks() {
        assert_eq!(fp32_peak("NVIDIA H100 80GB HBM3"), Some(67e12));
        assert_eq!(fp32_peak("llvmpipe (LLVM 15.0.6, 256 bits)"), None);
    }
}
