//! The GPU backend: the training step as WGSL compute kernels through wgpu, with the weights
//! and loaded data sets resident on the device. Pipelines are built once per device, buffers
//! and bind groups once per network shape and batch size; a step is one compute pass with one
//! dispatch per kernel, and an epoch is recorded into few submissions with no read-back.

pub mod buffers;
pub mod context;
pub mod kernels;
pub mod ops;

use std::collections::HashMap;
use std::sync::Arc;

use ndarray::{Array2, ArrayView2};

use crate::backend::{check_epoch, Backend, DataId};
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

/// A data set resident on the device.
struct ResidentData {
    records: usize,
    x: Region,
    target: Region,
    /// Allocated by the first epoch over this data: the order, and the rows gathered in it.
    shuffled: Option<Shuffled>,
    /// Allocated by the first prediction over this data.
    predictions: Option<Region>,
}

struct Shuffled {
    order: Region,
    x: Region,
    target: Region,
    gather_x: Dispatch,
    gather_target: Dispatch,
}

/// Records a prediction evaluates per forward pass, bounding the activations' memory.
const PREDICT_CHUNK: usize = 4096;
/// Batches recorded per submission in an epoch: few submissions, bounded command buffers.
const BATCHES_PER_SUBMISSION: usize = 512;

pub struct GpuBackend {
    device: Arc<GpuDevice>,
    options: GpuOptions,
    layer_sizes: Vec<usize>,
    output_activation: Activation,
    weights: Vec<Region>,
    deltas: Option<Vec<Region>>,
    /// Bound as `deltas` by in-place updates, which never touch it.
    unused_deltas: Region,
    /// One plan per batch size in use (an epoch needs its batch size and the remainder).
    plans: HashMap<usize, BatchPlan>,
    data: Vec<ResidentData>,
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
            plans: HashMap::new(),
            data: Vec::new(),
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

    /// Makes sure a plan for `records` exists and steps with `learnrate`.
    fn plan_for(&mut self, records: usize, learnrate: f32) -> Result<&mut BatchPlan> {
        if !self.plans.contains_key(&records) {
            let plan = self.build_plan(records, learnrate)?;
            self.plans.insert(records, plan);
        }
        let ctx = &self.device.ctx;
        let plan = self
            .plans
            .get_mut(&records)
            .ok_or_else(|| Error::Gpu("no batch plan".into()))?;
        if plan.learnrate != learnrate {
            let scale = learnrate / records as f32;
            for d in plan
                .apply_updates
                .iter_mut()
                .chain(plan.delta_updates.iter_mut().flatten())
            {
                d.set_scale(ctx, scale);
            }
            plan.learnrate = learnrate;
        }
        Ok(plan)
    }

    /// Uploads one batch into the plan for its size.
    fn upload_batch(
        &mut self,
        x: ArrayView2<f64>,
        target: Option<ArrayView2<f64>>,
        learnrate: f32,
    ) -> Result<usize> {
        let records = x.nrows();
        self.plan_for(records, learnrate)?;
        let plan = self.plan(records)?;
        plan.x.upload(&self.device.ctx, &to_f32(x))?;
        if let Some(target) = target {
            plan.target.upload(&self.device.ctx, &to_f32(target))?;
        }
        Ok(records)
    }

    fn ensure_delta_updates(&mut self, records: usize) -> Result<()> {
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
        let (Some(plan), Some(deltas)) = (self.plans.get(&records), &self.deltas) else {
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
            if let Some(plan) = self.plans.get_mut(&records) {
                plan.delta_updates = Some(updates);
            }
        }
        Ok(())
    }

    /// Records forward, error terms and updates (in place, or into the delta regions) as one
    /// compute pass; the dispatch order carries the dependencies.
    fn plan(&self, records: usize) -> Result<&BatchPlan> {
        self.plans
            .get(&records)
            .ok_or_else(|| Error::Gpu(format!("no plan for batches of {records}")))
    }

    fn record_step(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        records: usize,
        apply: bool,
    ) -> Result<()> {
        let plan = self.plan(records)?;
        let updates = if apply {
            &plan.apply_updates
        } else {
            plan.delta_updates
                .as_ref()
                .ok_or_else(|| Error::Gpu("delta updates not built".into()))?
        };
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
        Ok(())
    }

    fn encoder(&self, label: &str) -> wgpu::CommandEncoder {
        self.device
            .ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(label) })
    }

    fn submit(&self, encoder: wgpu::CommandEncoder) {
        self.device.ctx.queue.submit([encoder.finish()]);
    }

    fn n_outputs(&self) -> usize {
        self.layer_sizes[self.layer_sizes.len() - 1]
    }

    /// Allocates the order and the gathered rows of data set `id`.
    fn ensure_shuffled(&mut self, id: usize) -> Result<()> {
        let (ctx, guarded) = (&self.device.ctx, self.options.guard_regions);
        let kernels = &self.device.kernels;
        let data = &mut self.data[id];
        if data.shuffled.is_some() {
            return Ok(());
        }
        let records = data.records;
        let (n_inputs, n_outputs) = (
            self.layer_sizes[0],
            self.layer_sizes[self.layer_sizes.len() - 1],
        );
        let order = Region::new(ctx, &format!("data {id} order"), records, guarded)?;
        let x = Region::new(
            ctx,
            &format!("data {id} shuffled x"),
            records * n_inputs,
            guarded,
        )?;
        let target = Region::new(
            ctx,
            &format!("data {id} shuffled target"),
            records * n_outputs,
            guarded,
        )?;
        let gather_x = kernels.gather(ctx, &data.x, &order, &x, (records, n_inputs))?;
        let gather_target =
            kernels.gather(ctx, &data.target, &order, &target, (records, n_outputs))?;
        data.shuffled = Some(Shuffled {
            order,
            x,
            target,
            gather_x,
            gather_target,
        });
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
        for plan in self.plans.values() {
            regions.extend([&plan.x, &plan.target]);
            regions.extend(plan.layer_outputs.iter().chain(&plan.error_terms));
        }
        for data in &self.data {
            regions.extend([&data.x, &data.target]);
            regions.extend(data.predictions.iter());
            if let Some(s) = &data.shuffled {
                regions.extend([&s.order, &s.x, &s.target]);
            }
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
        let records = self.upload_batch(x, Some(target), learnrate as f32)?;
        self.ensure_delta_updates(records)?;
        let mut encoder = self.encoder("delta weights");
        self.record_step(&mut encoder, records, false)?;
        self.submit(encoder);
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
        let records = self.upload_batch(x, Some(target), learnrate as f32)?;
        let mut encoder = self.encoder("train step");
        self.record_step(&mut encoder, records, true)?;
        self.submit(encoder);
        Ok(())
    }

    fn predict(&mut self, x: ArrayView2<f64>) -> Result<Array2<f64>> {
        let n_outputs = self.n_outputs();
        self.check_batch(x.dim(), (x.nrows(), n_outputs))?;
        let data = self.load_data(x, Array2::zeros((x.nrows(), n_outputs)).view())?;
        let predictions = self.predict_data(data);
        self.data.pop();
        predictions
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

    fn load_data(&mut self, x: ArrayView2<f64>, target: ArrayView2<f64>) -> Result<DataId> {
        self.check_batch(x.dim(), target.dim())?;
        let (ctx, guarded) = (&self.device.ctx, self.options.guard_regions);
        let id = self.data.len();
        let x_region = Region::new(ctx, &format!("data {id} x"), x.len(), guarded)?;
        x_region.upload(ctx, &to_f32(x))?;
        let target_region = Region::new(ctx, &format!("data {id} target"), target.len(), guarded)?;
        target_region.upload(ctx, &to_f32(target))?;
        self.data.push(ResidentData {
            records: x.nrows(),
            x: x_region,
            target: target_region,
            shuffled: None,
            predictions: None,
        });
        Ok(DataId(id))
    }

    fn train_epoch(
        &mut self,
        data: DataId,
        order: &[usize],
        batch: usize,
        learnrate: f64,
    ) -> Result<()> {
        let records = self.data.get(data.0).ok_or_else(|| unknown(data))?.records;
        // The gather kernel trusts the order: this check is what keeps it in bounds.
        check_epoch(records, order, batch)?;
        let (n_inputs, n_outputs) = (self.layer_sizes[0], self.n_outputs());
        self.ensure_shuffled(data.0)?;
        // Every batch is full but perhaps the last: two plans cover the epoch.
        self.plan_for(batch.min(records), learnrate as f32)?;
        if records % batch != 0 && records > batch {
            self.plan_for(records % batch, learnrate as f32)?;
        }
        let ctx = &self.device.ctx;
        let resident = &self.data[data.0];
        let shuffled = resident
            .shuffled
            .as_ref()
            .ok_or_else(|| Error::Gpu("no shuffle buffers".into()))?;
        let indices: Vec<u32> = order
            .iter()
            .map(|&r| {
                u32::try_from(r).map_err(|_| Error::Shape(format!("record {r} exceeds 2^32")))
            })
            .collect::<Result<_>>()?;
        shuffled.order.upload(ctx, &indices)?;

        let mut encoder = self.encoder("epoch");
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
            shuffled.gather_x.record(&mut pass);
            shuffled.gather_target.record(&mut pass);
        }
        for (i, chunk) in order.chunks(batch).enumerate() {
            let start = i * batch;
            let plan = self.plan(chunk.len())?;
            plan.x.copy_from(
                &mut encoder,
                &shuffled.x,
                start * n_inputs,
                0,
                chunk.len() * n_inputs,
            )?;
            plan.target.copy_from(
                &mut encoder,
                &shuffled.target,
                start * n_outputs,
                0,
                chunk.len() * n_outputs,
            )?;
            self.record_step(&mut encoder, chunk.len(), true)?;
            if (i + 1) % BATCHES_PER_SUBMISSION == 0 {
                let full = std::mem::replace(&mut encoder, self.encoder("epoch"));
                self.submit(full);
            }
        }
        self.submit(encoder);
        Ok(())
    }

    fn predict_data(&mut self, data: DataId) -> Result<Array2<f64>> {
        let records = self.data.get(data.0).ok_or_else(|| unknown(data))?.records;
        let (n_inputs, n_outputs) = (self.layer_sizes[0], self.n_outputs());
        let chunk = records.min(PREDICT_CHUNK);
        let learnrate = self.plans.get(&chunk).map_or(0.0, |p| p.learnrate);
        self.plan_for(chunk, learnrate)?;
        if records % chunk != 0 {
            self.plan_for(records % chunk, learnrate)?;
        }
        if self.data[data.0].predictions.is_none() {
            let region = Region::new(
                &self.device.ctx,
                &format!("data {} predictions", data.0),
                records * n_outputs,
                self.options.guard_regions,
            )?;
            self.data[data.0].predictions = Some(region);
        }
        let resident = &self.data[data.0];
        let predictions = resident.predictions.as_ref().ok_or_else(|| unknown(data))?;
        let mut encoder = self.encoder("predict");
        for start in (0..records).step_by(chunk) {
            let len = chunk.min(records - start);
            let plan = self.plan(len)?;
            plan.x.copy_from(
                &mut encoder,
                &resident.x,
                start * n_inputs,
                0,
                len * n_inputs,
            )?;
            {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
                plan.forward.iter().for_each(|d| d.record(&mut pass));
            }
            let output = &plan.layer_outputs[plan.layer_outputs.len() - 1];
            predictions.copy_from(&mut encoder, output, 0, start * n_outputs, len * n_outputs)?;
        }
        self.submit(encoder);
        to_f64(predictions.read(&self.device.ctx)?, (records, n_outputs))
    }
}

fn unknown(data: DataId) -> Error {
    Error::Shape(format!("no data set {} was loaded", data.0))
}
