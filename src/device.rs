//! Choosing where to compute (`--backend auto|gpu|cpu`): the only module that names both
//! backends, above them both.

use std::sync::{Arc, Mutex};

use crate::backend::Backend;
use crate::cpu::CpuBackend;
use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::tuning::TuningOptions;
use crate::gpu::{GpuBackend, GpuDevice, GpuOptions};
use crate::guard::numeric::{check_network, Precision};
use crate::model::Network;

/// Which backend a command computes on (`--backend`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendChoice {
    /// A hardware GPU when there is one (or the adapter named), otherwise the CPU.
    #[default]
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
/// records, on the GPU that `gpu` opens (or shares); `auto` falls back to the CPU, in
/// `precision`, when no GPU can be opened.
pub fn create(
    choice: BackendChoice,
    gpu: impl FnOnce() -> Result<Arc<GpuDevice>>,
    network: &Network<f64>,
    precision: CpuPrecision,
    batch: usize,
) -> Result<Selected> {
    let gpu = move || -> Result<Box<dyn Backend>> {
        let device = gpu()?;
        let options = GpuOptions::for_batch(&device.ctx, &network.layer_sizes(), batch)?;
        Ok(Box::new(GpuBackend::new(device, network, options)?))
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

/// Mesa's Vulkan drivers ask libwayland for a display while wgpu enumerates adapters; with no
/// desktop session that prints "error: XDG_RUNTIME_DIR is invalid or not set" on every run.
/// Any absolute directory quiets it (no display lives there, the lookup just fails): this
/// points the variable at the temporary directory when it is unset. It changes the process's
/// environment, so a program calls it first thing, before any other thread exists.
pub fn quiet_mesa() {
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        std::env::set_var("XDG_RUNTIME_DIR", std::env::temp_dir());
    }
}

/// Set to 0, this environment variable turns tuning off for every run of the process (the
/// library's and the Python package's too), as `--no-tune` does for one command.
pub const TUNE_VAR: &str = "BACKPROP_TUNE";

/// Tuning as a run does it: on unless `tune` is false (or `BACKPROP_TUNE=0`), cached in the
/// user's cache directory, each newly tuned shape said in one line on standard error.
pub fn tuning(tune: bool) -> TuningOptions {
    TuningOptions {
        enabled: tune && std::env::var(TUNE_VAR).map_or(true, |v| v != "0"),
        retune: false,
        force: None,
        cache_dir: crate::tune::cache::default_dir(),
        notify: Some(Box::new(|line: &str| {
            use std::io::Write as _;
            let _ = std::io::stderr().write_all(format!("{line}\n").as_bytes());
        })),
    }
}

/// Opens a GPU: the adapter whose name contains `adapter`, or without a name the
/// `local_rank`-th of the host's GPUs of the best kind (the ranks of a distributed run on one
/// node share them out), tuning its kernels as `tuning` says.
pub fn open_gpu(
    adapter: Option<&str>,
    local_rank: usize,
    tuning: TuningOptions,
) -> Result<Arc<GpuDevice>> {
    GpuDevice::with_tuning(GpuContext::open_for_rank(adapter, local_rank)?, tuning)
}

/// Devices opened by [`shared_gpu`], by adapter name, local rank and tuning; or why there
/// is none (a machine without a GPU is not searched again for every fit).
type SharedDevices = Vec<(
    (Option<String>, usize, bool),
    std::result::Result<Arc<GpuDevice>, String>,
)>;

static SHARED: Mutex<SharedDevices> = Mutex::new(Vec::new());

/// [`open_gpu`] once per process: later calls with the same adapter, rank and tuning share the
/// device (and its compiled pipelines), as a program that fits many models wants, and an
/// adapter that was not found is not searched for again. Devices stay open until
/// [`release_shared`]. Tuning notices go to standard error.
pub fn shared_gpu(adapter: Option<&str>, local_rank: usize, tune: bool) -> Result<Arc<GpuDevice>> {
    let key = (adapter.map(str::to_lowercase), local_rank, tune);
    let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, known)) = shared.iter().find(|(k, _)| *k == key) {
        return known.clone().map_err(Error::NoAdapter);
    }
    match open_gpu(adapter, local_rank, tuning(tune)) {
        Ok(device) => {
            shared.push((key, Ok(Arc::clone(&device))));
            Ok(device)
        }
        Err(Error::NoAdapter(why)) => {
            shared.push((key, Err(why.clone())));
            Err(Error::NoAdapter(why))
        }
        Err(e) => Err(e),
    }
}

/// Lets go of the devices [`shared_gpu`] opened: each closes (saving its compiled pipelines to
/// the disk cache) once no backend holds it. Call before exiting.
pub fn release_shared() {
    SHARED.lock().unwrap_or_else(|e| e.into_inner()).clear();
}
