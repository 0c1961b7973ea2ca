//! `GpuBackend`: the training step on the device. Pipelines are built once per device, buffers
//! and bind groups once per network shape and batch size; a step is one compute pass with one
//! dispatch per kernel, and an epoch is recorded into few submissions with no read-back.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use ndarray::{Array1, Array2, ArrayView2, Axis};

use super::buffers::{split, BlockMatrix, Region};
use super::context::GpuContext;
use super::device::GpuDevice;
use super::epoch::{BatchRows, StreamedData, Submissions};
use super::kernels::{self, Dispatch};
use super::layout::plan_layout;
use super::pacer::BATCHES_PER_SUBMISSION;
use super::plan::{BatchPlan, StepPart};
use super::timing;
use crate::backend::{
    check_epoch, check_gradient_shapes, check_output_error_term, records_per_pass, unknown,
    Backend, DataId, KernelTime, KernelTimes, OutputErrorTerm, RECORDS_PER_PASS,
};
use crate::cpu;
use crate::error::{Error, Result};
use crate::guard::interrupt::CancelToken;
use crate::guard::numeric::{check_network, check_representable, Precision};
use crate::matrix::Matrix;
use crate::model::{bias_names, weight_names, Activation, Deltas, Network, Spec};
use crate::ops::optimizer::{Optimizer, OptimizerState, Rule, STEP_VALUES};

/// How the GPU backend allocates its memory.
#[derive(Clone, Copy, Debug)]
pub struct GpuOptions {
    /// Fence every region with sentinel bands that [`GpuBackend::check_guards`] verifies.
    pub guard_regions: bool,
    /// The most records one pass computes (a batch, or a slice of a prediction). Hidden layers
    /// are split so that this many records' activations of one block fit a binding.
    pub max_records: usize,
}

impl Default for GpuOptions {
    fn default() -> Self {
        GpuOptions {
            guard_regions: false,
            max_records: RECORDS_PER_PASS,
        }
    }
}

impl GpuOptions {
    /// The options for training on batches of `batch` records: passes of up to
    /// `RECORDS_PER_PASS` records (predictions go faster in large slices), fewer where that many
    /// records' activations would crowd the device's memory budget or where a pass's inputs or
    /// outputs would not fit one storage binding, and never fewer than `batch`.
    pub fn for_batch(ctx: &GpuContext, layer_sizes: &[usize], batch: usize) -> Result<Self> {
        let widest_edge = layer_sizes[0]
            .max(layer_sizes[layer_sizes.len() - 1])
            .max(1);
        let fit_binding =
            usize::try_from(ctx.max_binding_bytes / 4).unwrap_or(usize::MAX) / widest_edge;
        let fit_memory = records_per_pass(
            layer_sizes,
            4,
            RECORDS_PER_PASS,
            Some(ctx.memory_budget.bytes),
        )?;
        Ok(GpuOptions {
            guard_regions: false,
            max_records: fit_memory.min(fit_binding).max(batch).max(1),
        })
    }
}

/// A data set loaded into the backend: on the device, or on the host to stream.
pub(super) enum LoadedData {
    Resident(Box<ResidentData>),
    Streamed(Box<StreamedData>),
}

/// A data set resident on the device.
pub(super) struct ResidentData {
    records: usize,
    x: Region,
    target: Region,
    /// Allocated by the first epoch over this data: the order, and the rows gathered in it.
    shuffled: Option<Shuffled>,
    /// Allocated by the first prediction over this data.
    predictions: Option<Region>,
}

impl ResidentData {
    pub(super) fn new(records: usize, x: Region, target: Region) -> Self {
        ResidentData {
            records,
            x,
            target,
            shuffled: None,
            predictions: None,
        }
    }
}

struct Shuffled {
    /// `0, 1, 2, …` as u32: batch `i` copies its number from here into the status watch.
    batch_numbers: Region,
    order: Region,
    x: Region,
    target: Region,
    gather_x: Dispatch,
    gather_target: Dispatch,
}

/// One moment of an optimizer on the device, laid out like the weights and biases.
pub(super) struct Moment {
    pub(super) weights: Vec<BlockMatrix>,
    pub(super) biases: Option<Vec<BlockMatrix>>,
}

pub struct GpuBackend {
    pub(super) device: Arc<GpuDevice>,
    pub(super) options: GpuOptions,
    pub(super) layer_sizes: Vec<usize>,
    pub(super) spec: Spec,
    /// The unit blocks of each layer (inputs, hidden layers, outputs): a hidden layer too
    /// wide for one storage binding is split, and every matrix touching it with it.
    pub(super) layout: Vec<Vec<Range<usize>>>,
    pub(super) weights: Vec<BlockMatrix>,
    /// Each layer's biases as one row split like its units, when the network has biases.
    pub(super) biases: Option<Vec<BlockMatrix>>,
    pub(super) deltas: Option<Vec<BlockMatrix>>,
    pub(super) bias_deltas: Option<Vec<BlockMatrix>>,
    /// Bound as `deltas` by in-place updates, which never touch it.
    pub(super) unused_deltas: Region,
    /// The non-finite watch of the output error term kernel (see `error_terms.wgsl`).
    pub(super) status: Region,
    /// One plan per batch size in use (an epoch needs its batch size and the remainder).
    pub(super) plans: HashMap<usize, BatchPlan>,
    /// Batches per submission the last epoch settled on (see `Pacer`).
    pub(super) batches_per_submission: usize,
    pub(super) data: Vec<LoadedData>,
    /// How a step changes the weights (`Backend::set_optimizer`), the moments it keeps beside
    /// them, and the steps taken.
    pub(super) optimizer: Optimizer,
    pub(super) moments: Vec<Moment>,
    pub(super) step: u64,
    /// The step values of the batch being computed (see `shaders/optimizer.wgsl`), copied in
    /// before each batch from `planned_step_values`, one entry per batch of the submission.
    pub(super) step_values: Region,
    planned_step_values: Option<Region>,
    /// The element-wise steps `apply_gradient` runs, built on its first call (and after
    /// `set_optimizer`), with the learning rate their scale holds.
    gradient_updates: Option<(f32, Vec<Dispatch>)>,
}

impl GpuBackend {
    /// Uploads `network` to `device`, split into blocks where it exceeds a storage binding.
    pub fn new(
        device: Arc<GpuDevice>,
        network: &Network<f64>,
        options: GpuOptions,
    ) -> Result<Self> {
        let ctx = &device.ctx;
        check_network(network, Precision::F32)?;
        let layer_sizes = network.layer_sizes();
        let layout = plan_layout(
            &layer_sizes,
            ctx.max_binding_bytes / 4,
            options.max_records,
            ctx.max_reduction,
        )?;
        let names = weight_names(network.weights().len());
        let weights = network
            .weights()
            .iter()
            .enumerate()
            .map(|(l, w)| {
                let matrix = BlockMatrix::new(
                    ctx,
                    &names[l],
                    layout[l].clone(),
                    layout[l + 1].clone(),
                    options.guard_regions,
                )?;
                matrix.upload(ctx, w.view())?;
                Ok(matrix)
            })
            .collect::<Result<Vec<_>>>()?;
        let unused_deltas = Region::new(ctx, "unused deltas", 1, options.guard_regions)?;
        let status = Region::new(ctx, "status", kernels::STATUS_LEN, options.guard_regions)?;
        status.upload(ctx, &[0, kernels::NO_NON_FINITE_BATCH])?;
        let step_values = Region::new(ctx, "step values", STEP_VALUES, options.guard_regions)?;
        let mut backend = GpuBackend {
            optimizer: Optimizer::default(),
            moments: Vec::new(),
            step: 0,
            step_values,
            planned_step_values: None,
            gradient_updates: None,
            status,
            options,
            layer_sizes,
            spec: network.spec(),
            layout,
            weights,
            biases: None,
            deltas: None,
            bias_deltas: None,
            unused_deltas,
            plans: HashMap::new(),
            batches_per_submission: 1,
            data: Vec::new(),
            device,
        };
        if let Some(biases) = network.biases() {
            let names = bias_names(biases.len());
            let uploaded = biases
                .iter()
                .enumerate()
                .map(|(l, b)| {
                    let matrix = backend.bias_matrix(&names[l], l)?;
                    matrix.upload(&backend.device.ctx, b.view().insert_axis(Axis(0)))?;
                    Ok(matrix)
                })
                .collect::<Result<Vec<_>>>()?;
            backend.biases = Some(uploaded);
        }
        Ok(backend)
    }

    /// A row of layer `l`'s units, split like them (a bias vector or its delta).
    pub(super) fn bias_matrix(&self, label: &str, l: usize) -> Result<BlockMatrix> {
        BlockMatrix::new(
            &self.device.ctx,
            label,
            split(1, 1),
            self.layout[l + 1].clone(),
            self.options.guard_regions,
        )
    }

    /// Zeroed weight matrices and bias rows laid out like the network's, labelled with
    /// `prefix` and their names (an optimizer's moment).
    fn allocate_parameters(&self, prefix: &str) -> Result<Moment> {
        let n_layers = self.n_layers();
        let weights = weight_names(n_layers)
            .iter()
            .enumerate()
            .map(|(l, name)| {
                BlockMatrix::new(
                    &self.device.ctx,
                    &format!("{prefix}{name}"),
                    self.layout[l].clone(),
                    self.layout[l + 1].clone(),
                    self.options.guard_regions,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let biases = self
            .biases
            .as_ref()
            .map(|_| {
                bias_names(n_layers)
                    .iter()
                    .enumerate()
                    .map(|(l, name)| self.bias_matrix(&format!("{prefix}{name}"), l))
                    .collect::<Result<Vec<_>>>()
            })
            .transpose()?;
        Ok(Moment { weights, biases })
    }

    /// Block `j` of layer `l`'s biases, when the network has biases.
    pub(super) fn bias_block(&self, l: usize, j: usize) -> Option<&Region> {
        self.biases.as_ref().map(|b| b[l].block(0, j))
    }

    /// Uploads the step values of the next `steps` steps at `learnrate` (when the optimizer
    /// has a rule of its own), for `copy_step_values` to hand to each batch in turn.
    pub(super) fn plan_step_values(&mut self, learnrate: f64, steps: usize) -> Result<()> {
        if self.optimizer.rule() == Rule::Plain {
            return Ok(());
        }
        let values: Vec<f32> = (1..=steps as u64)
            .flat_map(|i| {
                self.optimizer
                    .step_values(learnrate, self.step + i)
                    .to_f32()
            })
            .collect();
        let ctx = &self.device.ctx;
        let fits = self
            .planned_step_values
            .as_ref()
            .is_some_and(|r| r.len() == values.len());
        if !fits {
            self.planned_step_values = Some(Region::new(
                ctx,
                "planned step values",
                values.len(),
                self.options.guard_regions,
            )?);
        }
        if let Some(region) = &self.planned_step_values {
            region.upload(ctx, &values)?;
        }
        Ok(())
    }

    /// Records the copy of step `i`'s values (of those planned) into `step_values`.
    pub(super) fn copy_step_values(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        i: usize,
    ) -> Result<()> {
        match &self.planned_step_values {
            Some(planned) if self.optimizer.rule() != Rule::Plain => {
                self.step_values
                    .copy_from(encoder, planned, i * STEP_VALUES, 0, STEP_VALUES)
            }
            _ => Ok(()),
        }
    }

    /// How many blocks each layer's units are split into (1 everywhere for a network whose
    /// matrices fit the adapter's bindings).
    pub fn blocks_per_layer(&self) -> Vec<usize> {
        self.layout.iter().map(Vec::len).collect()
    }

    pub(super) fn n_layers(&self) -> usize {
        self.weights.len()
    }

    pub(super) fn activation(&self, l: usize) -> Activation {
        if l + 1 == self.n_layers() {
            self.spec.output
        } else {
            self.spec.hidden
        }
    }

    /// Uploads one batch into the plan for its size.
    fn upload_batch(
        &mut self,
        x: ArrayView2<f64>,
        target: Option<ArrayView2<f64>>,
        learnrate: f32,
    ) -> Result<usize> {
        let records = x.nrows();
        check_representable("input", x, Precision::F32)?;
        if let Some(target) = target {
            check_representable("target", target, Precision::F32)?;
        }
        self.plan_for(records, learnrate)?;
        let plan = self.plan(records)?;
        plan.x.upload(&self.device.ctx, x)?;
        if let Some(target) = target {
            plan.target.upload(&self.device.ctx, target)?;
        }
        Ok(records)
    }

    pub(super) fn encoder(&self, label: &str) -> wgpu::CommandEncoder {
        self.device
            .ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(label) })
    }

    pub(super) fn submit(&self, encoder: wgpu::CommandEncoder) {
        self.device.ctx.queue.submit([encoder.finish()]);
    }

    pub(super) fn n_outputs(&self) -> usize {
        self.layer_sizes[self.layer_sizes.len() - 1]
    }

    /// Allocates the order and the gathered rows of data set `id`.
    fn ensure_shuffled(&mut self, id: usize) -> Result<()> {
        let (ctx, guarded) = (&self.device.ctx, self.options.guard_regions);
        let kernels = &self.device.kernels;
        let Some(LoadedData::Resident(data)) = self.data.get_mut(id) else {
            return Err(unknown(DataId(id)));
        };
        if data.shuffled.is_some() {
            return Ok(());
        }
        let records = data.records;
        let (n_inputs, n_outputs) = (
            self.layer_sizes[0],
            self.layer_sizes[self.layer_sizes.len() - 1],
        );
        let order = Region::new(ctx, &format!("data {id} order"), records, guarded)?;
        let batch_numbers =
            Region::new(ctx, &format!("data {id} batch numbers"), records, guarded)?;
        batch_numbers.upload(
            ctx,
            &kernels::gather_indices(&(0..records).collect::<Vec<_>>())?,
        )?;
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
            batch_numbers,
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
        let mut regions: Vec<&Region> =
            self.weights.iter().flat_map(BlockMatrix::regions).collect();
        regions.extend([&self.unused_deltas, &self.status]);
        let vectors = [&self.deltas, &self.biases, &self.bias_deltas];
        regions.extend(
            vectors
                .into_iter()
                .flatten()
                .flatten()
                .flat_map(BlockMatrix::regions),
        );
        for plan in self.plans.values() {
            let matrices = [&plan.x, &plan.target].into_iter();
            let matrices = matrices
                .chain(plan.layer_outputs.iter())
                .chain(&plan.error_terms);
            regions.extend(matrices.flat_map(BlockMatrix::regions));
        }
        for data in &self.data {
            match data {
                LoadedData::Resident(data) => {
                    regions.extend([&data.x, &data.target]);
                    regions.extend(data.predictions.iter());
                    if let Some(s) = &data.shuffled {
                        regions.extend([&s.batch_numbers, &s.order, &s.x, &s.target]);
                    }
                }
                LoadedData::Streamed(data) => regions.extend(data.regions()),
            }
        }
        regions
            .iter()
            .try_for_each(|r| r.check_guards(&self.device.ctx))
    }
}

/// A one-row block matrix (a bias vector) read back as a vector.
fn read_row(ctx: &GpuContext, row: &BlockMatrix) -> Result<Array1<f64>> {
    Ok(row.read(ctx)?.row(0).to_owned())
}

/// Weight matrices and bias rows on the device read back: the network's, its deltas', or an
/// optimizer's moment.
pub(super) fn read_parameters(
    ctx: &GpuContext,
    weights: &[BlockMatrix],
    biases: Option<&[BlockMatrix]>,
) -> Result<Deltas<f64>> {
    Ok(Deltas {
        weights: weights.iter().map(|w| w.read(ctx)).collect::<Result<_>>()?,
        biases: biases
            .map(|bs| bs.iter().map(|b| read_row(ctx, b)).collect::<Result<_>>())
            .transpose()?,
    })
}

/// Uploads `values` into weight matrices and bias rows of the same shapes.
fn upload_parameters(
    ctx: &GpuContext,
    (weights, biases): (&[BlockMatrix], Option<&[BlockMatrix]>),
    (weight_values, bias_values): (&[ndarray::Array2<f64>], Option<&[Array1<f64>]>),
) -> Result<()> {
    for (matrix, w) in weights.iter().zip(weight_values) {
        matrix.upload(ctx, w.view())?;
    }
    if let (Some(matrices), Some(values)) = (biases, bias_values) {
        for (matrix, b) in matrices.iter().zip(values) {
            matrix.upload(ctx, b.view().insert_axis(Axis(0)))?;
        }
    }
    Ok(())
}

fn to_f64(values: Vec<f32>, shape: (usize, usize)) -> Result<Array2<f64>> {
    Array2::from_shape_vec(shape, values.into_iter().map(f64::from).collect())
        .map_err(|e| Error::Shape(e.to_string()))
}

impl Backend for GpuBackend {
    fn precision(&self) -> Precision {
        Precision::F32
    }

    fn description(&self) -> String {
        self.device.ctx.describe()
    }

    fn delta_weights(
        &mut self,
        x: ArrayView2<f64>,
        target: ArrayView2<f64>,
        learnrate: f64,
    ) -> Result<Deltas<f64>> {
        self.check_batch(x.dim(), target.dim())?;
        let records = self.upload_batch(x, Some(target), learnrate as f32)?;
        self.ensure_delta_updates(records)?;
        let mut encoder = self.encoder("delta weights");
        self.record_step(&mut encoder, records, false, StepPart::Whole)?;
        self.submit(encoder);
        read_parameters(
            &self.device.ctx,
            self.deltas.as_deref().unwrap_or_default(),
            self.bias_deltas.as_deref(),
        )
    }

    fn delta_weights_from_output(
        &mut self,
        x: ArrayView2<f64>,
        learnrate: f64,
        output_error_term: &mut OutputErrorTerm<'_>,
    ) -> Result<Deltas<f64>> {
        let n_outputs = self.n_outputs();
        self.check_batch(x.dim(), (x.nrows(), n_outputs))?;
        let records = self.upload_batch(x, None, learnrate as f32)?;
        self.ensure_delta_updates(records)?;
        let mut encoder = self.encoder("forward pass");
        self.record_step(&mut encoder, records, false, StepPart::Forward)?;
        self.submit(encoder);
        let ctx = &self.device.ctx;
        let plan = self.plan(records)?;
        let last = plan.layer_outputs.len() - 1;
        let term = output_error_term(plan.layer_outputs[last].read(ctx)?)?;
        check_output_error_term(records, n_outputs, term.dim())?;
        check_representable("output error term", term.view(), Precision::F32)?;
        // Written before the next submission's commands run: over the term the fused output
        // layer wrote during the forward pass, if it did.
        plan.error_terms[last].upload(ctx, term.view())?;
        let mut encoder = self.encoder("deltas from an output error term");
        self.record_step(&mut encoder, records, false, StepPart::Backward)?;
        self.submit(encoder);
        read_parameters(
            &self.device.ctx,
            self.deltas.as_deref().unwrap_or_default(),
            self.bias_deltas.as_deref(),
        )
    }

    fn apply_gradient(&mut self, gradient: &Deltas<f64>, learnrate: f64) -> Result<()> {
        check_gradient_shapes(&self.layer_sizes, self.biases.is_some(), gradient)?;
        let n_layers = self.n_layers();
        for (name, g) in weight_names(n_layers).iter().zip(&gradient.weights) {
            check_representable(&format!("gradient of `{name}`"), g.view(), Precision::F32)?;
        }
        for (name, g) in bias_names(n_layers)
            .iter()
            .zip(gradient.biases.iter().flatten())
        {
            check_representable(&format!("gradient of `{name}`"), g.view(), Precision::F32)?;
        }
        self.ensure_delta_regions()?;
        // Negated (exactly, in f64 before the f32 cast): see `build_gradient_updates`.
        let weights: Vec<Array2<f64>> = gradient.weights.iter().map(|g| -g).collect();
        let biases: Option<Vec<Array1<f64>>> = gradient
            .biases
            .as_ref()
            .map(|bs| bs.iter().map(|g| -g).collect());
        upload_parameters(
            &self.device.ctx,
            (
                self.deltas.as_deref().unwrap_or_default(),
                self.bias_deltas.as_deref(),
            ),
            (&weights, biases.as_deref()),
        )?;
        let learnrate_f32 = learnrate as f32;
        match &mut self.gradient_updates {
            Some((built_for, updates)) => {
                // Only the seeds' step holds the learning rate in its scale; an optimizer reads
                // it from the step values.
                if *built_for != learnrate_f32 && self.optimizer.rule() == Rule::Plain {
                    let ctx = &self.device.ctx;
                    updates
                        .iter_mut()
                        .for_each(|d| d.set_scale(ctx, learnrate_f32));
                }
                *built_for = learnrate_f32;
            }
            None => {
                let updates = self.build_gradient_updates(learnrate_f32)?;
                self.gradient_updates = Some((learnrate_f32, updates));
            }
        }
        self.plan_step_values(learnrate, 1)?;
        let mut encoder = self.encoder("apply gradient");
        self.copy_step_values(&mut encoder, 0)?;
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("apply gradient"),
                timestamp_writes: None,
            });
            self.gradient_updates
                .iter()
                .flat_map(|(_, updates)| updates)
                .for_each(|d| d.record(&mut pass));
        }
        self.submit(encoder);
        self.step += 1;
        Ok(())
    }

    fn train_step(
        &mut self,
        x: ArrayView2<f64>,
        target: ArrayView2<f64>,
        learnrate: f64,
    ) -> Result<()> {
        self.check_batch(x.dim(), target.dim())?;
        self.train_steps(x, target, learnrate, 1)
    }

    fn predict(&mut self, x: Matrix<'_>) -> Result<Array2<f64>> {
        let n_outputs = self.n_outputs();
        self.check_batch(x.dim(), (x.nrows(), n_outputs))?;
        let no_targets = Array2::<f32>::zeros((x.nrows(), n_outputs));
        let data = self.load_data(x, Matrix::from(&no_targets))?;
        let predictions = self.predict_data(data);
        self.data.pop();
        predictions
    }

    fn network(&mut self) -> Result<Network<f64>> {
        let Deltas { weights, biases } =
            read_parameters(&self.device.ctx, &self.weights, self.biases.as_deref())?;
        Network::with_spec(weights, biases, self.spec)
    }

    fn set_network(&mut self, network: &Network<f64>) -> Result<()> {
        crate::backend::same_shapes(&self.network()?, network)?;
        check_network(network, Precision::F32)?;
        upload_parameters(
            &self.device.ctx,
            (&self.weights, self.biases.as_deref()),
            (network.weights(), network.biases()),
        )
    }

    fn set_optimizer(&mut self, optimizer: &Optimizer, state: &OptimizerState<f64>) -> Result<()> {
        optimizer.check()?;
        state.check(optimizer, &self.network()?)?;
        let moments = state
            .moments
            .iter()
            .enumerate()
            .map(|(k, m)| {
                let moment = self.allocate_parameters(&format!("moment {} of ", k + 1))?;
                upload_parameters(
                    &self.device.ctx,
                    (&moment.weights, moment.biases.as_deref()),
                    (&m.weights, m.biases.as_deref()),
                )?;
                Ok(moment)
            })
            .collect::<Result<Vec<_>>>()?;
        self.optimizer = *optimizer;
        self.moments = moments;
        self.step = state.step;
        // The plans' updates are bound to the old rule and moments.
        self.plans.clear();
        self.gradient_updates = None;
        Ok(())
    }

    fn optimizer_state(&mut self) -> Result<OptimizerState<f64>> {
        let moments = self
            .moments
            .iter()
            .map(|m| read_parameters(&self.device.ctx, &m.weights, m.biases.as_deref()))
            .collect::<Result<_>>()?;
        Ok(OptimizerState {
            step: self.step,
            moments,
        })
    }

    fn train_steps(
        &mut self,
        x: ArrayView2<f64>,
        target: ArrayView2<f64>,
        learnrate: f64,
        count: usize,
    ) -> Result<()> {
        self.check_batch(x.dim(), target.dim())?;
        let records = self.upload_batch(x, Some(target), learnrate as f32)?;
        for steps in (0..count)
            .collect::<Vec<_>>()
            .chunks(BATCHES_PER_SUBMISSION)
        {
            self.plan_step_values(learnrate, steps.len())?;
            let mut encoder = self.encoder("train steps");
            for i in 0..steps.len() {
                self.copy_step_values(&mut encoder, i)?;
                self.record_step(&mut encoder, records, true, StepPart::Whole)?;
            }
            self.submit(encoder);
            self.step += steps.len() as u64;
        }
        Ok(())
    }

    fn synchronize(&mut self) -> Result<()> {
        let ctx = &self.device.ctx;
        ctx.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu(format!("waiting for the GPU: {e}")))?;
        ctx.check_errors()
    }

    fn kernel_times(
        &mut self,
        x: ArrayView2<f64>,
        target: ArrayView2<f64>,
        learnrate: f64,
    ) -> Result<Option<KernelTimes>> {
        if !self.device.ctx.has_timestamps() {
            return Ok(None);
        }
        self.check_batch(x.dim(), target.dim())?;
        let records = self.upload_batch(x, Some(target), learnrate as f32)?;
        let plan = self.plan(records)?;
        let dispatches: Vec<&Dispatch> = plan
            .forward
            .iter()
            .chain(&plan.output_error_term)
            .chain(&plan.hidden_error_terms)
            .chain(&plan.apply_updates)
            .collect();
        let ticks = timing::timestamps(&self.device.ctx, &dispatches)?;
        let period_ns = f64::from(self.device.ctx.queue.get_timestamp_period());
        let mut totals: KernelTimes = Vec::new();
        for (d, t) in dispatches.iter().zip(ticks) {
            let ms = t as f64 * period_ns * 1e-6;
            let variant = d.variant.map(|v| v.name());
            match totals
                .iter_mut()
                .find(|k| k.kernel == d.kernel && k.variant == variant)
            {
                Some(total) => {
                    total.ms += ms;
                    total.flops += d.flops;
                }
                None => totals.push(KernelTime {
                    kernel: d.kernel.to_string(),
                    variant,
                    ms,
                    flops: d.flops,
                }),
            }
        }
        Ok(Some(totals))
    }

    fn load_data(&mut self, x: Matrix<'_>, target: Matrix<'_>) -> Result<DataId> {
        self.check_batch(x.dim(), target.dim())?;
        let loaded = self.load(x, target)?;
        self.data.push(loaded);
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
        let records = match self.data.get(data.0) {
            Some(LoadedData::Resident(resident)) => resident.records,
            Some(LoadedData::Streamed(_)) => {
                return self.streamed_epoch(data, order, batch, learnrate, cancel)
            }
            None => return Err(unknown(data)),
        };
        // The gather kernel trusts the order: this check is what keeps it in bounds.
        check_epoch(records, order, batch)?;
        self.ensure_shuffled(data.0)?;
        let n_batches = self.prepare_epoch(order.len(), batch, learnrate)?;
        let Some(LoadedData::Resident(resident)) = self.data.get(data.0) else {
            return Err(unknown(data));
        };
        let shuffled = resident
            .shuffled
            .as_ref()
            .ok_or_else(|| Error::Gpu("no shuffle buffers".into()))?;
        // The gather kernel reads an index for every record: an epoch that leaves records out
        // (`--drop-last`) pads its order with record 0, which no batch reads.
        let mut indices = kernels::gather_indices(order)?;
        indices.resize(records, 0);
        shuffled.order.upload(&self.device.ctx, &indices)?;
        let mut submissions = Submissions::new(self, "epoch");
        {
            let mut pass = submissions
                .encoder
                .begin_compute_pass(&wgpu::ComputePassDescriptor::default());
            shuffled.gather_x.record(&mut pass);
            shuffled.gather_target.record(&mut pass);
        }
        let rows = BatchRows {
            x: &shuffled.x,
            target: &shuffled.target,
            numbers: &shuffled.batch_numbers,
        };
        let sizes = order.chunks(batch).map(<[usize]>::len);
        self.record_batches(&rows, 0, sizes, &mut submissions, cancel)?;
        self.finish_epoch(submissions, n_batches, cancel)
    }

    fn predict_data(&mut self, data: DataId) -> Result<Array2<f64>> {
        let (records, streamed) = match self.data.get(data.0) {
            Some(LoadedData::Resident(resident)) => (resident.records, false),
            Some(LoadedData::Streamed(streamed)) => (streamed.records(), true),
            None => return Err(unknown(data)),
        };
        let n_outputs = self.n_outputs();
        let mut chunk = records
            .min(self.options.max_records)
            .min(self.device.ctx.max_reduction);
        if streamed {
            // A chunk is computed from one window: no larger than the windows can be.
            chunk = chunk.min(self.ensure_windows(data, 1)?);
        }
        let learnrate = self.plans.get(&chunk).map_or(0.0, |p| p.learnrate);
        self.plan_for(chunk, learnrate)?;
        if records % chunk != 0 {
            self.plan_for(records % chunk, learnrate)?;
        }
        if streamed {
            return self.streamed_predictions(data, chunk);
        }
        let Some(LoadedData::Resident(resident)) = self.data.get_mut(data.0) else {
            return Err(unknown(data));
        };
        if resident.predictions.is_none() {
            let region = Region::new(
                &self.device.ctx,
                &format!("data {} predictions", data.0),
                records * n_outputs,
                self.options.guard_regions,
            )?;
            resident.predictions = Some(region);
        }
        let Some(LoadedData::Resident(resident)) = self.data.get(data.0) else {
            return Err(unknown(data));
        };
        let predictions = resident.predictions.as_ref().ok_or_else(|| unknown(data))?;
        let mut encoder = self.encoder("predict");
        self.record_predictions(&mut encoder, (&resident.x, predictions), records, chunk)?;
        self.submit(encoder);
        to_f64(predictions.read(&self.device.ctx)?, (records, n_outputs))
    }
}
