//! The seam between the trainer and the hardware: one `Backend` trait, a CPU and a GPU side,
//! and the rule that picks one (`--backend auto|gpu|cpu`).
//!
//! Arrays cross this seam in f64 (what NumPy users hand us); each backend computes in its own
//! precision and keeps the weights where it computes.

use ndarray::{Array2, ArrayView2};

use crate::cpu;
use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::{GpuBackend, GpuDevice, GpuOptions};
use crate::model::{Float, Network};

/// One training step, forward pass and weight read-back, on some device.
pub trait Backend {
    /// What computes: `cpu (f64)` or the GPU adapter's name and API.
    fn description(&self) -> String;

    /// The mean delta weights of one batch (`delta_w_i_h`, …, `delta_w_h_o`), leaving the
    /// weights unchanged.
    fn delta_weights(
        &mut self,
        x: ArrayView2<f64>,
        target: ArrayView2<f64>,
        learnrate: f64,
    ) -> Result<Vec<Array2<f64>>>;

    /// One step: the same deltas, added to the weights where the backend keeps them.
    fn train_step(
        &mut self,
        x: ArrayView2<f64>,
        target: ArrayView2<f64>,
        learnrate: f64,
    ) -> Result<()>;

    /// The network's output for a batch of records.
    fn predict(&mut self, x: ArrayView2<f64>) -> Result<Array2<f64>>;

    /// The current weights, read back from wherever they live.
    fn network(&mut self) -> Result<Network<f64>>;
}

/// The CPU backend: the reference of `cpu.rs` run in precision `T`.
pub struct CpuBackend<T> {
    network: Network<T>,
}

impl<T: Float> CpuBackend<T> {
    pub fn new(network: &Network<f64>) -> Self {
        CpuBackend {
            network: network.cast(),
        }
    }

    fn backward(
        &self,
        x: ArrayView2<f64>,
        target: ArrayView2<f64>,
        learnrate: f64,
    ) -> Result<Vec<Array2<T>>> {
        cpu::backward(
            &self.network,
            cast::<f64, T>(x).view(),
            cast::<f64, T>(target).view(),
            T::from_f64(learnrate).unwrap_or_else(T::nan),
        )
    }
}

fn cast<T: Float, U: Float>(a: ArrayView2<T>) -> Array2<U> {
    a.mapv(|v| U::from(v).unwrap_or_else(U::nan))
}

impl<T: Float> Backend for CpuBackend<T> {
    fn description(&self) -> String {
        format!("cpu ({})", std::any::type_name::<T>())
    }

    fn delta_weights(
        &mut self,
        x: ArrayView2<f64>,
        target: ArrayView2<f64>,
        learnrate: f64,
    ) -> Result<Vec<Array2<f64>>> {
        let deltas = self.backward(x, target, learnrate)?;
        Ok(deltas.iter().map(|d| cast(d.view())).collect())
    }

    fn train_step(
        &mut self,
        x: ArrayView2<f64>,
        target: ArrayView2<f64>,
        learnrate: f64,
    ) -> Result<()> {
        let deltas = self.backward(x, target, learnrate)?;
        self.network.apply_deltas(&deltas)
    }

    fn predict(&mut self, x: ArrayView2<f64>) -> Result<Array2<f64>> {
        let (n_inputs, n_outputs) = (self.network.n_inputs(), self.network.n_outputs());
        cpu::check_batch(n_inputs, n_outputs, x.dim(), (x.nrows(), n_outputs))?;
        let outputs = cpu::forward(&self.network, cast::<f64, T>(x).view());
        Ok(cast(outputs[outputs.len() - 1].view()))
    }

    fn network(&mut self) -> Result<Network<f64>> {
        Ok(self.network.cast())
    }
}

/// Which backend a command computes on (`--backend`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendChoice {
    /// A hardware GPU when there is one (or the adapter named), otherwise the CPU.
    Auto,
    /// The GPU: a hardware adapter, or the one named; fails when there is none.
    Gpu,
    /// The CPU reference in f64.
    Cpu,
}

/// A created backend, with a note saying why `auto` chose what it chose.
pub struct Selected {
    pub backend: Box<dyn Backend>,
    pub note: Option<String>,
}

/// Creates the chosen backend holding `network`. `adapter` is a case-insensitive substring of
/// an adapter name; `auto` falls back to the CPU when no GPU can be opened.
pub fn create(
    choice: BackendChoice,
    adapter: Option<&str>,
    network: &Network<f64>,
) -> Result<Selected> {
    let gpu = || -> Result<Box<dyn Backend>> {
        let device = GpuDevice::new(GpuContext::open(adapter)?);
        Ok(Box::new(GpuBackend::new(
            device,
            network,
            GpuOptions::default(),
        )?))
    };
    let cpu = || Box::new(CpuBackend::<f64>::new(network)) as Box<dyn Backend>;
    Ok(match choice {
        BackendChoice::Cpu => Selected {
            backend: cpu(),
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
                backend: cpu(),
                note: Some(format!("using the CPU backend: {why}")),
            },
            Err(e) => return Err(e),
        },
    })
}
