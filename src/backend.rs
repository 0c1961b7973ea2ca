//! The seam between the trainer and the hardware: one `Backend` trait, a CPU and a GPU side,
//! and the rule that picks one (`--backend auto|gpu|cpu`).
//!
//! Arrays cross this seam in f64 (what NumPy users hand us); each backend computes in its own
//! precision and keeps the weights where it computes.

use ndarray::{Array2, ArrayView2};

use crate::cpu;
use crate::error::Result;
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
        cpu::check_batch(
            &self.network,
            x.dim(),
            (x.nrows(), self.network.n_outputs()),
        )?;
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
    /// The CPU reference in f64.
    Cpu,
}

/// Creates the chosen backend holding `network`.
pub fn create(choice: BackendChoice, network: &Network<f64>) -> Result<Box<dyn Backend>> {
    match choice {
        BackendChoice::Cpu => Ok(Box::new(CpuBackend::<f64>::new(network))),
    }
}
