//! Each kernel run on its own, with the signature of its CPU twin in `cpu.rs`, on regions
//! fenced by sentinel guards that are checked after the kernel. The parity tests and
//! `backprop validate` compare these with the reference one kernel at a time.

use ndarray::{Array2, ArrayView1, ArrayView2, Axis};

use crate::error::{Error, Result};
use crate::gpu::buffers::{read_all, Region};
use crate::gpu::context::GpuContext;
use crate::gpu::gemm::GemmConfig;
use crate::gpu::kernels::{
    gather_indices, Dispatch, Kernels, Part, Update, NO_NON_FINITE_BATCH, STATUS_LEN,
};
use crate::model::{Activation, Loss};

/// Runs single kernels on one device.
pub struct KernelTwins<'a> {
    pub ctx: &'a GpuContext,
    pub kernels: &'a Kernels,
}

/// An input array uploaded into a guarded region.
fn upload(ctx: &GpuContext, label: &str, a: ArrayView2<f32>) -> Result<Region> {
    let region = Region::new(ctx, label, a.len(), true)?;
    region.upload(ctx, a.as_standard_layout().as_slice().unwrap_or_default())?;
    Ok(region)
}

/// A bias vector uploaded into a guarded region.
fn upload_bias(ctx: &GpuContext, bias: Option<ArrayView1<f32>>) -> Result<Option<Region>> {
    bias.map(|b| upload(ctx, "bias", b.insert_axis(Axis(0))))
        .transpose()
}

impl KernelTwins<'_> {
    /// Submits `dispatches` in one pass, reads `output` back as rows x cols, and checks every
    /// region's guards.
    fn run(
        &self,
        dispatches: Vec<Dispatch>,
        output: &Region,
        shape: (usize, usize),
        all: &[&Region],
    ) -> Result<Array2<f32>> {
        let mut encoder = self
            .ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
            dispatches.iter().for_each(|d| d.record(&mut pass));
        }
        self.ctx.queue.submit([encoder.finish()]);
        let values = read_all(self.ctx, &[output], false)?.remove(0);
        for region in all {
            region.check_guards(self.ctx)?;
        }
        Array2::from_shape_vec(shape, values).map_err(|e| Error::Shape(e.to_string()))
    }

    /// GPU twin of [`crate::cpu::layer_forward`], computed by the product variant `config`.
    pub fn layer_forward(
        &self,
        config: &GemmConfig,
        layer_input: ArrayView2<f32>,
        weights: ArrayView2<f32>,
        bias: Option<ArrayView1<f32>>,
        activation: Activation,
    ) -> Result<Array2<f32>> {
        let (records, inputs) = layer_input.dim();
        let units = weights.ncols();
        let input = upload(self.ctx, "layer_input", layer_input)?;
        let w = upload(self.ctx, "weights", weights)?;
        let b = upload_bias(self.ctx, bias)?;
        let out = Region::new(self.ctx, "layer_out", records * units, true)?;
        let mut d = self.kernels.layer_forward(
            self.ctx,
            config,
            &input,
            &w,
            b.as_ref(),
            &out,
            (records, inputs, units),
            activation,
            Part::WHOLE,
        )?;
        if activation == Activation::Softmax {
            d.push(
                self.kernels
                    .softmax_rows(self.ctx, &out, (records, units))?,
            );
        }
        let mut all = vec![&input, &w, &out];
        all.extend(b.iter());
        self.run(d, &out, (records, units), &all)
    }

    /// GPU twin of [`crate::cpu::output_error_term`].
    pub fn output_error_term(
        &self,
        target: ArrayView2<f32>,
        output_layer_out: ArrayView2<f32>,
        activation: Activation,
        loss: Loss,
    ) -> Result<Array2<f32>> {
        let shape = target.dim();
        let t = upload(self.ctx, "target", target)?;
        let y = upload(self.ctx, "output_layer_out", output_layer_out)?;
        let term = Region::new(self.ctx, "output_error_term", target.len(), true)?;
        let status = Region::new(self.ctx, "status", STATUS_LEN, true)?;
        status.upload(self.ctx, &[0, NO_NON_FINITE_BATCH])?;
        let d = self.kernels.output_error_term(
            self.ctx,
            &t,
            &y,
            &term,
            &status,
            shape,
            (activation, loss),
        )?;
        self.run(vec![d], &term, shape, &[&t, &y, &term, &status])
    }

    /// GPU twin of [`crate::cpu::layer_forward`] then [`crate::cpu::output_error_term`]: the
    /// fused output layer. Returns `(output_layer_out, output_error_term)`.
    pub fn output_layer(
        &self,
        config: &GemmConfig,
        layer_input: ArrayView2<f32>,
        weights: ArrayView2<f32>,
        bias: Option<ArrayView1<f32>>,
        target: ArrayView2<f32>,
        (activation, loss): (Activation, Loss),
    ) -> Result<(Array2<f32>, Array2<f32>)> {
        let (records, inputs) = layer_input.dim();
        let outputs = weights.ncols();
        let input = upload(self.ctx, "layer_input", layer_input)?;
        let w = upload(self.ctx, "weights", weights)?;
        let t = upload(self.ctx, "target", target)?;
        let b = upload_bias(self.ctx, bias)?;
        let y = Region::new(self.ctx, "output_layer_out", records * outputs, true)?;
        let term = Region::new(self.ctx, "output_error_term", records * outputs, true)?;
        let status = Region::new(self.ctx, "status", STATUS_LEN, true)?;
        status.upload(self.ctx, &[0, NO_NON_FINITE_BATCH])?;
        let d = self.kernels.output_layer(
            self.ctx,
            config,
            &input,
            &w,
            b.as_ref(),
            &y,
            &t,
            &term,
            &status,
            (records, inputs, outputs),
            (activation, loss),
        )?;
        let shape = (records, outputs);
        let term_values = self.run(d, &term, shape, &[&input, &w, &t, &y, &term, &status])?;
        let y_values = Array2::from_shape_vec(shape, y.read(self.ctx)?)
            .map_err(|e| Error::Shape(e.to_string()))?;
        Ok((y_values, term_values))
    }

    /// GPU twin of [`crate::cpu::hidden_error_term`], computed by the product variant `config`.
    pub fn hidden_error_term(
        &self,
        config: &GemmConfig,
        next_error_term: ArrayView2<f32>,
        weights_to_next: ArrayView2<f32>,
        hidden_layer_out: ArrayView2<f32>,
        activation: Activation,
    ) -> Result<Array2<f32>> {
        let (records, next) = next_error_term.dim();
        let hidden = weights_to_next.nrows();
        let e = upload(self.ctx, "next_error_term", next_error_term)?;
        let w = upload(self.ctx, "weights_to_next", weights_to_next)?;
        let h = upload(self.ctx, "hidden_layer_out", hidden_layer_out)?;
        let term = Region::new(self.ctx, "hidden_error_term", records * hidden, true)?;
        let d = self.kernels.hidden_error_term(
            self.ctx,
            config,
            &e,
            &w,
            &h,
            &term,
            (records, hidden, next),
            activation,
            Part::WHOLE,
        )?;
        self.run(d, &term, (records, hidden), &[&e, &w, &h, &term])
    }

    /// GPU twin of [`crate::cpu::delta_weights`], writing the deltas (weights untouched; the
    /// weights' region is checked to be unchanged).
    pub fn delta_weights(
        &self,
        config: &GemmConfig,
        learnrate: f32,
        error_term: ArrayView2<f32>,
        layer_input: ArrayView2<f32>,
    ) -> Result<Array2<f32>> {
        let (records, inputs) = layer_input.dim();
        let units = error_term.ncols();
        let x = upload(self.ctx, "layer_input", layer_input)?;
        let e = upload(self.ctx, "error_term", error_term)?;
        let weights = Region::new(self.ctx, "weights", inputs * units, true)?;
        let deltas = Region::new(self.ctx, "deltas", inputs * units, true)?;
        let d = self.kernels.weight_update(
            self.ctx,
            config,
            &x,
            &e,
            &weights,
            &deltas,
            (records, inputs, units),
            Update::Deltas { learnrate },
        )?;
        let out = self.run(d, &deltas, (inputs, units), &[&x, &e, &weights, &deltas])?;
        if weights.read(self.ctx)?.iter().any(|&w| w != 0.0) {
            return Err(Error::Gpu(
                "weight_update changed the weights while only computing deltas".into(),
            ));
        }
        Ok(out)
    }

    /// The in-place form: `weights + delta_weights(..)`, as a training step applies it.
    pub fn apply_delta_weights(
        &self,
        config: &GemmConfig,
        learnrate: f32,
        error_term: ArrayView2<f32>,
        layer_input: ArrayView2<f32>,
        weights: ArrayView2<f32>,
    ) -> Result<Array2<f32>> {
        let (records, inputs) = layer_input.dim();
        let units = error_term.ncols();
        let x = upload(self.ctx, "layer_input", layer_input)?;
        let e = upload(self.ctx, "error_term", error_term)?;
        let w = upload(self.ctx, "weights", weights)?;
        let unused = Region::new(self.ctx, "deltas (unused when applying)", 1, true)?;
        let d = self.kernels.weight_update(
            self.ctx,
            config,
            &x,
            &e,
            &w,
            &unused,
            (records, inputs, units),
            Update::Apply { learnrate },
        )?;
        self.run(d, &w, (inputs, units), &[&x, &e, &w, &unused])
    }

    /// GPU twin of [`crate::cpu::delta_bias`] (written out), or with `bias` given, the bias
    /// plus it (applied in place, as a training step does).
    pub fn delta_bias(
        &self,
        learnrate: f32,
        error_term: ArrayView2<f32>,
        bias: Option<ArrayView1<f32>>,
    ) -> Result<Array2<f32>> {
        let (records, units) = error_term.dim();
        let e = upload(self.ctx, "error_term", error_term)?;
        let apply = bias.is_some();
        let b = match upload_bias(self.ctx, bias)? {
            Some(b) => b,
            None => Region::new(self.ctx, "bias (unused)", units, true)?,
        };
        let deltas = Region::new(self.ctx, "bias deltas", units, true)?;
        let d = self.kernels.bias_update(
            self.ctx,
            &e,
            &b,
            &deltas,
            (records, units),
            if apply {
                Update::Apply { learnrate }
            } else {
                Update::Deltas { learnrate }
            },
        )?;
        let out = if apply { &b } else { &deltas };
        self.run(vec![d], out, (1, units), &[&e, &b, &deltas])
    }

    /// GPU twin of `source.select(Axis(0), order)`: the rows of an epoch in shuffled order.
    /// `order` must index rows of `source` (checked here, as `backend::check_epoch` does).
    pub fn gather(&self, source: ArrayView2<f32>, order: &[usize]) -> Result<Array2<f32>> {
        let (records, columns) = source.dim();
        crate::backend::check_epoch(records, order, 1)?;
        let indices = gather_indices(order)?;
        let src = upload(self.ctx, "source", source)?;
        let idx = Region::new(self.ctx, "order", records, true)?;
        idx.upload(self.ctx, &indices)?;
        let out = Region::new(self.ctx, "gathered", records * columns, true)?;
        let d = self
            .kernels
            .gather(self.ctx, &src, &idx, &out, (records, columns))?;
        self.run(vec![d], &out, (records, columns), &[&src, &idx, &out])
    }
}
