//! The GPU backend: the training step as WGSL compute kernels through wgpu, with the weights
//! resident on the device. Pipelines are built once per device, buffers and bind groups once
//! per network shape and batch size; a step is one compute pass with one dispatch per kernel.

pub mod buffers;
pub mod context;
pub mod kernels;
pub mod ops;

use std::sync::Arc;

use ndarray::{Array2, ArrayView2};

use crate::backend::Backend;
use crate::cpu;
use crate::error::{Error, Result};
use crate::model::{weight_names, Activation, Network};
use buffers::{read_all, Region};
use context::GpuContext;
use kernels::{Dispatch, Kernels};
use ops::KernelTwins;

/// How the GPU backend allocates its memory.
#[derive(Clone, Copy, Debug, Default)]
pub struct GpuOptions {
    /// Fence every region with sentinel bands that [`GpuBackend::check_guards`] verifies.
    pub guard_regions: bool,
}

/// The buffers and recorded dispatches for one batch size.
struct BatchPlan {
    records: usize,
    x: Region,
    target: Region,
    layer_outputs: Vec<Region>,
    error_terms: Vec<Region>,
    forward: Vec<Dispatch>,
    output_error_term: Dispatch,
    /// Back to front: the term of the last hidden layer first.
    hidden_error_terms: Vec<Dispatch>,
    apply_updates: Vec<Dispatch>,
    /// Built the first time deltas are asked for (`backprop step`, validation).
    delta_updates: Option<Vec<Dispatch>>,
    learnrate: f32,
}

/// A device with its pipelines compiled: opened once, shared by every backend on it.
pub struct GpuDevice {
    pub ctx: GpuContext,
    pub kernels: Kernels,
}

impl GpuDevice {
    pub fn new(ctx: GpuContext) -> Arc<Self> {
        let kernels = Kernels::new(&ctx);
        Arc::new(GpuDevice { ctx, kernels })
    }

    /// The single-kernel twins of `cpu.rs` on this device.
    pub fn twins(&self) -> KernelTwins<'_> {
        KernelTwins {
            ctx: &self.ctx,
            kernels: &self.kernels,
        }
    }
}

pub struct GpuBackend {
    device: Arc<GpuDevice>,
    options: GpuOptions,
    layer_sizes: Vec<usize>,
    output_activation: Activation,
    weights: Vec<Region>,
    deltas: Option<Vec<Region>>,
    /// Bound as `deltas` by in-place updates, which never touch it.
    unused_deltas: Region,
    plan: Option<BatchPlan>,
}

impl GpuBackend {
    /// Uploads `network` to `device`.
    pub fn new(
        device: Arc<GpuDevice>,
        network: &Network<f64>,
        options: GpuOptions,
    ) -> Result<Self> {
        let ctx = &device.ctx;
        let names = weight_names(network.weights().len());
        let weights = network
            .weights()
            .iter()
            .zip(&names)
            .map(|(w, name)| {
                let region = Region::new(ctx, name, w.len(), options.guard_regions)?;
                region.upload(ctx, &to_f32(w.view()))?;
                Ok(region)
            })
            .collect::<Result<Vec<_>>>()?;
        let unused_deltas = Region::new(ctx, "unused deltas", 1, options.guard_regions)?;
        Ok(GpuBackend {
            options,
            layer_sizes: network.layer_sizes(),
            output_activation: network.output_activation(),
            weights,
            deltas: None,
            unused_deltas,
            plan: None,
            device,
        })
    }

    pub fn device(&self) -> &Arc<GpuDevice> {
        &self.device
    }

    fn n_layers(&self) -> usize {
        self.weights.len()
    }

    /// `(records, inputs, units)` of layer `l`.
    fn layer_shape(&self, records: usize, l: usize) -> (usize, usize, usize) {
        (records, self.layer_sizes[l], self.layer_sizes[l + 1])
    }

    fn activation(&self, l: usize) -> Activation {
        if l + 1 == self.n_layers() {
            self.output_activation
        } else {
            Activation::Sigmoid
        }
    }

    fn build_plan(&self, records: usize, learnrate: f32) -> Result<BatchPlan> {
        let (ctx, guarded) = (&self.device.ctx, self.options.guard_regions);
        let n_layers = self.n_layers();
        let sizes = &self.layer_sizes;
        let x = Region::new(ctx, "x", records * sizes[0], guarded)?;
        let target = Region::new(ctx, "target", records * sizes[n_layers], guarded)?;
        let per_layer = |what: &str| {
            (0..n_layers)
                .map(|l| Region::new(ctx, &format!("{what} {l}"), records * sizes[l + 1], guarded))
                .collect::<Result<Vec<_>>>()
        };
        let layer_outputs = per_layer("layer_out")?;
        let error_terms = per_layer("error_term")?;
        let layer_input = |l: usize| if l == 0 { &x } else { &layer_outputs[l - 1] };

        let forward = (0..n_layers)
            .map(|l| {
                self.device.kernels.layer_forward(
                    ctx,
                    layer_input(l),
                    &self.weights[l],
                    &layer_outputs[l],
                    self.layer_shape(records, l),
                    self.activation(l),
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let last = n_layers - 1;
        let output_error_term = self.device.kernels.output_error_term(
            ctx,
            &target,
            &layer_outputs[last],
            &error_terms[last],
            (records, sizes[n_layers]),
            self.output_activation,
        )?;
        let hidden_error_terms = (0..last)
            .rev()
            .map(|l| {
                self.device.kernels.hidden_error_term(
                    ctx,
                    &error_terms[l + 1],
                    &self.weights[l + 1],
                    &layer_outputs[l],
                    &error_terms[l],
                    (records, sizes[l + 1], sizes[l + 2]),
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let apply_updates = (0..n_layers)
            .map(|l| {
                self.device.kernels.weight_update(
                    ctx,
                    layer_input(l),
                    &error_terms[l],
                    &self.weights[l],
                    &self.unused_deltas,
                    self.layer_shape(records, l),
                    learnrate,
                    true,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(BatchPlan {
            records,
            x,
            target,
            layer_outputs,
            error_terms,
            forward,
            output_error_term,
            hidden_error_terms,
            apply_updates,
            delta_updates: None,
            learnrate,
        })
    }

    /// Makes the plan fit `records` and `learnrate` and uploads the batch.
    fn prepare(
        &mut self,
        x: ArrayView2<f64>,
        target: Option<ArrayView2<f64>>,
        learnrate: f32,
    ) -> Result<()> {
        let records = x.nrows();
        if self.plan.as_ref().is_none_or(|p| p.records != records) {
            self.plan = None;
            self.plan = Some(self.build_plan(records, learnrate)?);
        }
        let Some(plan) = self.plan.as_mut() else {
            return Err(Error::Gpu("no batch plan".into()));
        };
        if plan.learnrate != learnrate {
            let scale = learnrate / records as f32;
            for d in plan
                .apply_updates
                .iter_mut()
                .chain(plan.delta_updates.iter_mut().flatten())
            {
                d.set_scale(&self.device.ctx, scale);
            }
            plan.learnrate = learnrate;
        }
        plan.x.upload(&self.device.ctx, &to_f32(x))?;
        if let Some(target) = target {
            plan.target.upload(&self.device.ctx, &to_f32(target))?;
        }
        Ok(())
    }

    fn ensure_delta_updates(&mut self) -> Result<()> {
        if self.deltas.is_none() {
            let names = crate::model::delta_names(self.n_layers());
            let deltas = (0..self.n_layers())
                .map(|l| {
                    Region::new(
                        &self.device.ctx,
                        &names[l],
                        self.layer_sizes[l] * self.layer_sizes[l + 1],
                        self.options.guard_regions,
                    )
                })
                .collect::<Result<Vec<_>>>()?;
            self.deltas = Some(deltas);
        }
        let (Some(plan), Some(deltas)) = (&self.plan, &self.deltas) else {
            return Err(Error::Gpu("no batch plan".into()));
        };
        if plan.delta_updates.is_none() {
            let updates = (0..self.n_layers())
                .map(|l| {
                    self.device.kernels.weight_update(
                        &self.device.ctx,
                        if l == 0 {
                            &plan.x
                        } else {
                            &plan.layer_outputs[l - 1]
                        },
                        &plan.error_terms[l],
                        &self.weights[l],
                        &deltas[l],
                        self.layer_shape(plan.records, l),
                        plan.learnrate,
                        false,
                    )
                })
                .collect::<Result<Vec<_>>>()?;
            if let Some(plan) = self.plan.as_mut() {
                plan.delta_updates = Some(updates);
            }
        }
        Ok(())
    }

    /// Records forward, error terms and updates (in place, or into the delta regions) in one
    /// compute pass; the passes' dispatch order carries the dependencies.
    fn submit_step(&self, apply: bool) -> Result<()> {
        let plan = self
            .plan
            .as_ref()
            .ok_or_else(|| Error::Gpu("no batch plan".into()))?;
        let updates = if apply {
            &plan.apply_updates
        } else {
            plan.delta_updates
                .as_ref()
                .ok_or_else(|| Error::Gpu("delta updates not built".into()))?
        };
        let mut encoder =
            self.device
                .ctx
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("step"),
                });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("training step"),
                timestamp_writes: None,
            });
            plan.forward.iter().for_each(|d| d.record(&mut pass));
            plan.output_error_term.record(&mut pass);
            plan.hidden_error_terms
                .iter()
                .for_each(|d| d.record(&mut pass));
            updates.iter().for_each(|d| d.record(&mut pass));
        }
        self.device.ctx.queue.submit([encoder.finish()]);
        Ok(())
    }

    fn check_batch(&self, x: (usize, usize), target: (usize, usize)) -> Result<()> {
        let n = self.layer_sizes.len();
        cpu::check_batch(self.layer_sizes[0], self.layer_sizes[n - 1], x, target)
    }

    /// Reads every region back with its guard bands and fails if any sentinel changed.
    pub fn check_guards(&self) -> Result<()> {
        let mut regions: Vec<&Region> = self.weights.iter().collect();
        regions.push(&self.unused_deltas);
        regions.extend(self.deltas.iter().flatten());
        if let Some(plan) = &self.plan {
            regions.extend([&plan.x, &plan.target]);
            regions.extend(plan.layer_outputs.iter().chain(&plan.error_terms));
        }
        regions
            .iter()
            .try_for_each(|r| r.check_guards(&self.device.ctx))
    }
}

fn to_f32(a: ArrayView2<f64>) -> Vec<f32> {
    a.iter().map(|&v| v as f32).collect()
}

fn to_f64(values: Vec<f32>, shape: (usize, usize)) -> Result<Array2<f64>> {
    Array2::from_shape_vec(shape, values.into_iter().map(f64::from).collect())
        .map_err(|e| Error::Shape(e.to_string()))
}

impl Backend for GpuBackend {
    fn description(&self) -> String {
        self.device.ctx.describe()
    }

    fn delta_weights(
        &mut self,
        x: ArrayView2<f64>,
        target: ArrayView2<f64>,
        learnrate: f64,
    ) -> Result<Vec<Array2<f64>>> {
        self.check_batch(x.dim(), target.dim())?;
        self.prepare(x, Some(target), learnrate as f32)?;
        self.ensure_delta_updates()?;
        self.submit_step(false)?;
        let deltas: Vec<&Region> = self.deltas.iter().flatten().collect();
        read_all(&self.device.ctx, &deltas, false)?
            .into_iter()
            .enumerate()
            .map(|(l, values)| to_f64(values, (self.layer_sizes[l], self.layer_sizes[l + 1])))
            .collect()
    }

    fn train_step(
        &mut self,
        x: ArrayView2<f64>,
        target: ArrayView2<f64>,
        learnrate: f64,
    ) -> Result<()> {
        self.check_batch(x.dim(), target.dim())?;
        self.prepare(x, Some(target), learnrate as f32)?;
        self.submit_step(true)
    }

    fn predict(&mut self, x: ArrayView2<f64>) -> Result<Array2<f64>> {
        let n_outputs = self.layer_sizes[self.layer_sizes.len() - 1];
        self.check_batch(x.dim(), (x.nrows(), n_outputs))?;
        let learnrate = self.plan.as_ref().map_or(0.0, |p| p.learnrate);
        self.prepare(x, None, learnrate)?;
        let plan = self
            .plan
            .as_ref()
            .ok_or_else(|| Error::Gpu("no batch plan".into()))?;
        let mut encoder =
            self.device
                .ctx
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("predict"),
                });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
            plan.forward.iter().for_each(|d| d.record(&mut pass));
        }
        self.device.ctx.queue.submit([encoder.finish()]);
        let output = &plan.layer_outputs[plan.layer_outputs.len() - 1];
        to_f64(output.read(&self.device.ctx)?, (x.nrows(), n_outputs))
    }

    fn network(&mut self) -> Result<Network<f64>> {
        let regions: Vec<&Region> = self.weights.iter().collect();
        let weights = read_all(&self.device.ctx, &regions, false)?
            .into_iter()
            .enumerate()
            .map(|(l, values)| to_f64(values, (self.layer_sizes[l], self.layer_sizes[l + 1])))
            .collect::<Result<Vec<_>>>()?;
        Network::new(weights, self.output_activation)
    }
}
