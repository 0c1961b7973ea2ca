//! Choosing where to compute (`--backend auto|gpu|cpu`): the only module that names both
//! backends, above them both.

use crate::backend::Backend;
use crate::cpu::CpuBackend;
use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::tuning::TuningOptions;
use crate::gpu::{GpuBackend, GpuDevice, GpuOptions};
use crate::guard::numeric::{check_network, Precision};
use crate::model::Network;

/// Which backend a command computes on (`--backend`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendChoice {
    /// A hardware GPU when there is one (or the adapter named), otherwise the CPU.
    Auto,
    /// The GPU: a hardware adapter, or the one named; fails when there is none.
    Gpu,
    /// The CPU backend (f64 for `step`, f32 for training).
    Cpu,
}

/// A created backend, with a note saying why `auto` chose what it chose.
pub struct Selected {
    pub backend: Box<dyn Backend>,
    pub note: Option<String>,
}

/// The precision the CPU backend computes in: f64 for the reference (`step`, `validate`), f32
/// for training and benchmarks (twice the SIMD width, and what the GPU computes in).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum CpuPrecision {
    F32,
    F64,
}

/// Creates the chosen backend holding `network`, to step with batches of up to `batch`
/// records; a GPU tunes its kernels as `tuning` says. `adapter` is a case-insensitive substring
/// of an adapter name; `auto` falls back to the CPU when no GPU can be opened. Without a name,
/// the `local_rank`-th process of a distributed run on a host takes the host's
/// `local_rank`-th GPU.
pub fn create(
    choice: BackendChoice,
    (adapter, local_rank): (Option<&str>, usize),
    network: &Network<f64>,
    precision: CpuPrecision,
    batch: usize,
    tuning: TuningOptions,
) -> Result<Selected> {
    let gpu = move || -> Result<Box<dyn Backend>> {
        let ctx = GpuContext::open_for_rank(adapter, local_rank)?;
        let options = GpuOptions::for_batch(&ctx, &network.layer_sizes(), batch)?;
        Ok(Box::new(GpuBackend::new(
            GpuDevice::with_tuning(ctx, tuning)?,
            network,
            options,
        )?))
    };
    let cpu = || -> Result<Box<dyn Backend>> {
        Ok(match precision {
            CpuPrecision::F32 => {
                check_network(network, Precision::F32)?;
                Box::new(CpuBackend::<f32>::new(network))
            }
            CpuPrecision::F64 => Box::new(CpuBackend::<f64>::new(network)),
        })
    };
    Ok(match choice {
        BackendChoice::Cpu => Selected {
            backend: cpu()?,
            note: None,
        },
        BackendChoice::Gpu => Selected {
            backend: gpu()?,
            note: None,
        },
        BackendChoice::Auto => match gpu() {
            Ok(backend) => Selected {
                backend,
                note: None,
            },
            Err(Error::NoAdapter(why)) => Selected {
                backend: cpu()?,
                note: Some(format!("using the CPU backend: {why}")),
            },
            Err(e) => return Err(e),
        },
    })
}
