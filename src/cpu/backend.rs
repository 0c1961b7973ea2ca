//! The CPU backend: the reference formulas of `cpu/mod.rs` run in precision `T` (f64 as the
//! oracle, f32 to train), with loaded data sets kept as arrays.

use ndarray::{Array2, ArrayView2, Axis};

use crate::backend::{
    check_epoch, check_gradient, check_output_error_term, records_per_pass, unknown, Backend,
    DataId, OutputErrorTerm, RECORDS_PER_PASS,
};
use crate::cpu;
use crate::error::Result;
use crate::float::Float;
use crate::guard::interrupt::CancelToken;
use crate::guard::memory::host_available;
use crate::guard::numeric::{check_network, check_representable, first_non_finite, Precision};
use crate::matrix::{HostRecords, Matrix};
use crate::model::{Deltas, Network};
use crate::ops::optimizer::{self, Optimizer, OptimizerState, Rule};

/// The CPU backend: the reference of `cpu.rs` run in precision `T`.
pub struct CpuBackend<T> {
    network: Network<T>,
    optimizer: Optimizer,
    optimizer_state: OptimizerState<T>,
    data: Vec<(HostRecords<T>, Array2<T>)>,
    /// Records one forward pass of a prediction computes at a time (see [`records_per_pass`]).
    predict_chunk: usize,
}

impl<T: Float> CpuBackend<T> {
    /// The backend holding `network` in precision `T`; `backend::create` checks first that
    /// every weight fits `T` (`guard::numeric`).
    pub fn new(network: &Network<f64>) -> Self {
        let layer_sizes = network.layer_sizes();
        let budget = host_available().ok().flatten().map(|a| a.bytes);
        let value_bytes = std::mem::size_of::<T>() as u64;
        let network = network.cast();
        let optimizer = Optimizer::default();
        CpuBackend {
            optimizer_state: OptimizerState::zeros(&optimizer, &network),
            optimizer,
            network,
            data: Vec::new(),
            predict_chunk: records_per_pass(&layer_sizes, value_bytes, RECORDS_PER_PASS, budget)
                .unwrap_or(1),
        }
    }

    /// `x` and `target` in `T`, after checking that every value fits it.
    fn convert(x: ArrayView2<f64>, target: ArrayView2<f64>) -> Result<(Array2<T>, Array2<T>)> {
        Ok((
            Matrix::F64(x).to_precision("input")?,
            Matrix::F64(target).to_precision("target")?,
        ))
    }

    fn backward(
        &self,
        x: ArrayView2<f64>,
        target: ArrayView2<f64>,
        learnrate: f64,
    ) -> Result<Deltas<T>> {
        let (x, target) = Self::convert(x, target)?;
        cpu::backward(
            &self.network,
            x.view(),
            target.view(),
            T::from_f64(learnrate).unwrap_or_else(T::nan),
        )
    }

    /// The network's output for `x`, computed `predict_chunk` records at a time.
    fn forward_in_chunks(&self, x: ArrayView2<T>) -> Array2<f64> {
        let mut out = Array2::zeros((x.nrows(), self.network.n_outputs()));
        for start in (0..x.nrows()).step_by(self.predict_chunk) {
            let end = (start + self.predict_chunk).min(x.nrows());
            let outputs = cpu::forward(&self.network, x.slice(ndarray::s![start..end, ..]));
            out.slice_mut(ndarray::s![start..end, ..])
                .assign(&cast::<T, f64>(outputs[outputs.len() - 1].view()));
        }
        out
    }
}

/// One step of `network` from a batch's forward pass: the seeds' deltas added in place, or
/// the optimizer's rule from the mean gradient (the deltas at learning rate −1).
fn step_from_outputs<T: Float>(
    (network, optimizer, state): (&mut Network<T>, &Optimizer, &mut OptimizerState<T>),
    x: ArrayView2<T>,
    layer_outputs: &[Array2<T>],
    target: ArrayView2<T>,
    learnrate: f64,
) -> Result<()> {
    if optimizer.rule() == Rule::Plain {
        state.step += 1;
        let learnrate = T::from_f64(learnrate).unwrap_or_else(T::nan);
        let deltas = cpu::deltas_from_outputs(network, x, layer_outputs, target, learnrate);
        return network.apply_deltas(&deltas);
    }
    let gradient = cpu::deltas_from_outputs(network, x, layer_outputs, target, -T::one());
    optimizer::step(optimizer, learnrate, network, &gradient, state);
    Ok(())
}

fn cast<T: Float, U: Float>(a: ArrayView2<T>) -> Array2<U> {
    a.mapv(|v| U::from(v).unwrap_or_else(U::nan))
}

impl<T: Float> Backend for CpuBackend<T> {
    fn precision(&self) -> Precision {
        Precision::of::<T>()
    }

    fn description(&self) -> String {
        format!("cpu ({})", std::any::type_name::<T>())
    }

    fn delta_weights(
        &mut self,
        x: ArrayView2<f64>,
        target: ArrayView2<f64>,
        learnrate: f64,
    ) -> Result<Deltas<f64>> {
        Ok(self.backward(x, target, learnrate)?.cast())
    }

    fn delta_weights_from_output(
        &mut self,
        x: ArrayView2<f64>,
        learnrate: f64,
        output_error_term: &mut OutputErrorTerm<'_>,
    ) -> Result<Deltas<f64>> {
        let (n_inputs, n_outputs) = (self.network.n_inputs(), self.network.n_outputs());
        cpu::check_batch(n_inputs, n_outputs, x.dim(), (x.nrows(), n_outputs))?;
        let precision = Precision::of::<T>();
        check_representable("input", x, precision)?;
        let x = cast::<f64, T>(x);
        let layer_outputs = cpu::forward(&self.network, x.view());
        let term = output_error_term(cast(layer_outputs[layer_outputs.len() - 1].view()))?;
        check_output_error_term(x.nrows(), n_outputs, term.dim())?;
        check_representable("output error term", term.view(), precision)?;
        let terms = cpu::error_terms_from_output(&self.network, &layer_outputs, cast(term.view()));
        let learnrate = T::from_f64(learnrate).unwrap_or_else(T::nan);
        Ok(
            cpu::deltas_from_error_terms(
                &self.network,
                x.view(),
                &layer_outputs,
                &terms,
                learnrate,
            )
            .cast(),
        )
    }

    fn apply_gradient(&mut self, gradient: &Deltas<f64>, learnrate: f64) -> Result<()> {
        check_gradient(&self.network, gradient)?;
        if self.optimizer.rule() == Rule::Plain {
            // `w += −lr·g` in one pass over each tensor (no copy of a wide layer's gradient).
            self.optimizer_state.step += 1;
            let step =
                |w: &mut T, &g: &f64| *w = *w + T::from_f64(-learnrate * g).unwrap_or_else(T::nan);
            let (weights, biases) = self.network.parameters_mut();
            for (w, g) in weights.iter_mut().zip(&gradient.weights) {
                w.zip_mut_with(g, step);
            }
            for (b, g) in biases
                .into_iter()
                .flatten()
                .zip(gradient.biases.iter().flatten())
            {
                b.zip_mut_with(g, step);
            }
            return Ok(());
        }
        optimizer::step(
            &self.optimizer,
            learnrate,
            &mut self.network,
            &gradient.cast::<T>(),
            &mut self.optimizer_state,
        );
        Ok(())
    }

    fn train_step(
        &mut self,
        x: ArrayView2<f64>,
        target: ArrayView2<f64>,
        learnrate: f64,
    ) -> Result<()> {
        self.train_steps(x, target, learnrate, 1)
    }

    fn predict(&mut self, x: Matrix<'_>) -> Result<Array2<f64>> {
        let (n_inputs, n_outputs) = (self.network.n_inputs(), self.network.n_outputs());
        cpu::check_batch(n_inputs, n_outputs, x.dim(), (x.nrows(), n_outputs))?;
        // A slice of records at a time: the converted copy of a large input stays small.
        let mut out = Array2::zeros((x.nrows(), n_outputs));
        for start in (0..x.nrows()).step_by(self.predict_chunk) {
            let end = (start + self.predict_chunk).min(x.nrows());
            let part = x
                .rows(start, end)
                .to_precision::<T>("input")
                .map_err(|e| e.with_record(|r| r + start))?;
            out.slice_mut(ndarray::s![start..end, ..])
                .assign(&self.forward_in_chunks(part.view()));
        }
        Ok(out)
    }

    fn network(&mut self) -> Result<Network<f64>> {
        Ok(self.network.cast())
    }

    fn set_network(&mut self, network: &Network<f64>) -> Result<()> {
        crate::backend::same_shapes(&self.network.cast(), network)?;
        check_network(network, Precision::of::<T>())?;
        self.network = network.cast();
        Ok(())
    }

    fn set_optimizer(&mut self, optimizer: &Optimizer, state: &OptimizerState<f64>) -> Result<()> {
        optimizer.check()?;
        state.check(optimizer, &self.network.cast())?;
        self.optimizer = *optimizer;
        self.optimizer_state = state.cast();
        Ok(())
    }

    fn optimizer_state(&mut self) -> Result<OptimizerState<f64>> {
        Ok(self.optimizer_state.cast())
    }

    fn load_data(&mut self, x: Matrix<'_>, target: Matrix<'_>) -> Result<DataId> {
        let (n_inputs, n_outputs) = (self.network.n_inputs(), self.network.n_outputs());
        cpu::check_batch(n_inputs, n_outputs, x.dim(), target.dim())?;
        self.data.push((
            HostRecords::load(x, "input")?,
            target.to_precision("target")?,
        ));
        Ok(DataId(self.data.len() - 1))
    }

    fn train_epoch(
        &mut self,
        data: DataId,
        order: &[usize],
        batch: usize,
        learnrate: f64,
        cancel: &CancelToken,
    ) -> Result<Option<usize>> {
        let (x, target) = self.data.get(data.0).ok_or_else(|| unknown(data))?;
        check_epoch(x.nrows(), order, batch)?;
        for (b, records) in order.chunks(batch).enumerate() {
            cancel.check()?;
            let x_batch = x.select(records)?;
            let target_batch = target.select(Axis(0), records);
            let layer_outputs = cpu::forward(&self.network, x_batch.view());
            if first_non_finite(layer_outputs[layer_outputs.len() - 1].view()).is_some() {
                return Ok(Some(b));
            }
            step_from_outputs(
                (
                    &mut self.network,
                    &self.optimizer,
                    &mut self.optimizer_state,
                ),
                x_batch.view(),
                &layer_outputs,
                target_batch.view(),
                learnrate,
            )?;
        }
        Ok(None)
    }

    fn train_steps(
        &mut self,
        x: ArrayView2<f64>,
        target: ArrayView2<f64>,
        learnrate: f64,
        count: usize,
    ) -> Result<()> {
        // The batch is converted to the backend's precision once, as the GPU uploads it once.
        let (x, target) = Self::convert(x, target)?;
        cpu::check_batch(
            self.network.n_inputs(),
            self.network.n_outputs(),
            x.dim(),
            target.dim(),
        )?;
        for _ in 0..count {
            let layer_outputs = cpu::forward(&self.network, x.view());
            step_from_outputs(
                (
                    &mut self.network,
                    &self.optimizer,
                    &mut self.optimizer_state,
                ),
                x.view(),
                &layer_outputs,
                target.view(),
                learnrate,
            )?;
        }
        Ok(())
    }

    fn predict_data(&mut self, data: DataId) -> Result<Array2<f64>> {
        let (x, _) = self.data.get(data.0).ok_or_else(|| unknown(data))?;
        let mut out = Array2::zeros((x.nrows(), self.network.n_outputs()));
        for start in (0..x.nrows()).step_by(self.predict_chunk) {
            let end = (start + self.predict_chunk).min(x.nrows());
            out.slice_mut(ndarray::s![start..end, ..])
                .assign(&self.forward_in_chunks(x.rows(start, end)?.view()));
        }
        Ok(out)
    }
}
