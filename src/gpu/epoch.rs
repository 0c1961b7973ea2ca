//! An epoch on the device: batches recorded into paced submissions, reading their records
//! from a data set resident on the device (gathered there in the epoch's order), or streamed
//! from the host a window at a time when the data set does not fit the device. While the
//! device computes one window, the host gathers the next (for a mapped file: reads and
//! standardises it) into the other of two window buffers, so upload and compute overlap.
//! Both visit the records in the epoch's order in the same batches: the same model.

use ndarray::{Array2, Axis};

use super::backend::{GpuBackend, LoadedData};
use super::buffers::Region;
use super::context::GpuContext;
use super::kernels;
use super::pacer::Pacer;
use super::plan::StepPart;
use crate::backend::{check_epoch, unknown, DataId};
use crate::error::{Error, Result};
use crate::guard::interrupt::CancelToken;
use crate::matrix::{HostRecords, Matrix};

/// The most input bytes one window holds: large enough that a window's steps outlast its
/// upload, small enough that the host's gathered copy stays small.
const WINDOW_INPUT_BYTES: u64 = 64 << 20;

/// Records uploaded to a resident data set per write (the host's converted copy of them is
/// all it holds at once).
const UPLOAD_RECORDS: usize = 1 << 16;

/// A data set kept on the host and streamed to the device a window at a time.
pub(super) struct StreamedData {
    x: HostRecords<f32>,
    target: Array2<f32>,
    /// Allocated by the first epoch or prediction, for its batch size.
    windows: Option<Windows>,
}

/// Two windows of records on the device: one computed while the other is filled.
struct Windows {
    /// Records each window holds: an epoch fills a multiple of its batch size, a prediction a
    /// multiple of its chunk.
    capacity: usize,
    buffers: [WindowBuffers; 2],
}

struct WindowBuffers {
    x: Region,
    target: Region,
    /// Each batch's number in the epoch, for the non-finite watch.
    numbers: Region,
    predictions: Region,
}

/// Where batches read their records: rows in visiting order from row 0, and each batch's
/// number in the epoch (batch `k` of the rows reads `numbers[k]`).
pub(super) struct BatchRows<'r> {
    pub x: &'r Region,
    pub target: &'r Region,
    pub numbers: &'r Region,
}

/// The command encoder being filled and the pace of its submissions.
pub(super) struct Submissions {
    pub encoder: wgpu::CommandEncoder,
    pacer: Pacer,
    recorded: usize,
}

impl StreamedData {
    pub(super) fn new(x: Matrix<'_>, target: Matrix<'_>) -> Result<Self> {
        Ok(StreamedData {
            x: HostRecords::load(x, "input")?,
            target: target.to_precision("target")?,
            windows: None,
        })
    }

    pub(super) fn records(&self) -> usize {
        self.x.nrows()
    }

    pub(super) fn regions(&self) -> impl Iterator<Item = &Region> {
        self.windows
            .iter()
            .flat_map(|w| &w.buffers)
            .flat_map(|b| [&b.x, &b.target, &b.numbers, &b.predictions])
    }
}

/// Whether `records` records of `n_inputs` inputs and `n_outputs` targets stay on the device:
/// each in one binding, and with their gathered copy, order and batch numbers within half of
/// the memory not booked yet (the rest is for the batches' activations).
pub(super) fn fits_resident(
    ctx: &GpuContext,
    records: usize,
    (n_inputs, n_outputs): (usize, usize),
) -> bool {
    let records = records as u64;
    let widest = n_inputs.max(n_outputs) as u64;
    let values = (n_inputs + n_outputs) as u64;
    let one_binding = records.saturating_mul(widest).saturating_mul(4) <= ctx.max_binding_bytes;
    // The records, their gathered copy, the order, the batch numbers and the predictions.
    let bytes = records
        .saturating_mul(values)
        .saturating_mul(8)
        .saturating_add(records.saturating_mul(8 + 4 * n_outputs as u64));
    one_binding && bytes <= ctx.unreserved() / 2
}

/// Records per window: each window's inputs within one binding and [`WINDOW_INPUT_BYTES`],
/// both windows within a quarter of the memory not booked yet, and no more than the data set;
/// one at least.
fn window_records(
    ctx: &GpuContext,
    records: usize,
    (n_inputs, n_outputs): (usize, usize),
) -> usize {
    let per_record = (n_inputs.max(n_outputs) as u64 * 4).max(1);
    let both = (2 * (n_inputs + 3 * n_outputs + 1) as u64 * 4).max(1);
    let fit = (ctx.max_binding_bytes / per_record)
        .min(WINDOW_INPUT_BYTES / per_record)
        .min(ctx.unreserved() / 4 / both);
    usize::try_from(fit)
        .unwrap_or(usize::MAX)
        .min(records)
        .max(1)
}

impl Submissions {
    pub(super) fn new(backend: &GpuBackend, label: &str) -> Self {
        Submissions {
            encoder: backend.encoder(label),
            pacer: Pacer::new(backend.batches_per_submission),
            recorded: 0,
        }
    }

    /// Submits what is recorded (the pacer waits for the submission before it).
    fn flush(&mut self, backend: &GpuBackend, cancel: &CancelToken) -> Result<()> {
        let full = std::mem::replace(&mut self.encoder, backend.encoder("epoch"));
        self.recorded = 0;
        self.pacer.submit(&backend.device.ctx, full, cancel)
    }
}

impl GpuBackend {
    /// Keeps a data set on the device, uploaded a slice of records at a time (a mapped file is
    /// never held whole on the host), or on the host to stream when it does not fit.
    pub(super) fn load(&mut self, x: Matrix<'_>, target: Matrix<'_>) -> Result<LoadedData> {
        let (records, n_inputs) = x.dim();
        let ctx = &self.device.ctx;
        if !fits_resident(ctx, records, (n_inputs, target.ncols())) {
            return Ok(LoadedData::Streamed(Box::new(StreamedData::new(
                x, target,
            )?)));
        }
        let id = self.data.len();
        let guarded = self.options.guard_regions;
        let upload = |what: String, values: Matrix<'_>, array: &str| -> Result<Region> {
            let width = values.ncols();
            let region = Region::new(ctx, &what, records * width, guarded)?;
            for start in (0..records).step_by(UPLOAD_RECORDS) {
                let end = (start + UPLOAD_RECORDS).min(records);
                let part = values
                    .rows(start, end)
                    .to_precision::<f32>(array)
                    .map_err(|e| e.with_record(|r| r + start))?;
                region.upload_at(ctx, start * width, as_slice(&part)?)?;
            }
            Ok(region)
        };
        let x_region = upload(
            format!("data set {id}: {records} records x {n_inputs} inputs"),
            x,
            "input",
        )?;
        let target_region = upload(
            format!("data set {id}: {records} targets"),
            target,
            "target",
        )?;
        Ok(LoadedData::Resident(Box::new(
            super::backend::ResidentData::new(records, x_region, target_region),
        )))
    }

    /// Plans an epoch of `visited` records in batches of `batch`: the plans for both batch
    /// sizes, the non-finite watch cleared, the optimizer's step values. Returns the batches.
    pub(super) fn prepare_epoch(
        &mut self,
        visited: usize,
        batch: usize,
        learnrate: f64,
    ) -> Result<usize> {
        self.plan_for(batch.min(visited), learnrate as f32)?;
        if visited % batch != 0 && visited > batch {
            self.plan_for(visited % batch, learnrate as f32)?;
        }
        self.status
            .upload(&self.device.ctx, &[0, kernels::NO_NON_FINITE_BATCH])?;
        let n_batches = visited.div_ceil(batch);
        self.plan_step_values(learnrate, n_batches)?;
        Ok(n_batches)
    }

    /// Records the steps of consecutive batches of `sizes` records, the first of them batch
    /// `first` of the epoch, reading their records from `rows` in order.
    pub(super) fn record_batches(
        &self,
        rows: &BatchRows,
        first: usize,
        sizes: impl Iterator<Item = usize>,
        submissions: &mut Submissions,
        cancel: &CancelToken,
    ) -> Result<()> {
        let (n_inputs, n_outputs) = (self.layer_sizes[0], self.n_outputs());
        let mut start = 0;
        for (k, len) in sizes.enumerate() {
            let plan = self.plan(len)?;
            let encoder = &mut submissions.encoder;
            self.status.copy_from(encoder, rows.numbers, k, 0, 1)?;
            self.copy_step_values(encoder, first + k)?;
            plan.x
                .block(0, 0)
                .copy_from(encoder, rows.x, start * n_inputs, 0, len * n_inputs)?;
            plan.target.block(0, 0).copy_from(
                encoder,
                rows.target,
                start * n_outputs,
                0,
                len * n_outputs,
            )?;
            self.record_step(encoder, len, true, StepPart::Whole)?;
            start += len;
            submissions.recorded += 1;
            if submissions.recorded == submissions.pacer.per_submission {
                submissions.flush(self, cancel)?;
            }
        }
        Ok(())
    }

    /// Records the forward passes of `records` records, `chunk` at a time, from `rows.0` (from
    /// row 0) into their outputs in `rows.1`.
    pub(super) fn record_predictions(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        (x, outputs): (&Region, &Region),
        records: usize,
        chunk: usize,
    ) -> Result<()> {
        let (n_inputs, n_outputs) = (self.layer_sizes[0], self.n_outputs());
        for start in (0..records).step_by(chunk) {
            let len = chunk.min(records - start);
            let plan = self.plan(len)?;
            plan.x
                .block(0, 0)
                .copy_from(encoder, x, start * n_inputs, 0, len * n_inputs)?;
            {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
                plan.forward.iter().for_each(|d| d.record(&mut pass));
            }
            let output = plan.layer_outputs[plan.layer_outputs.len() - 1].block(0, 0);
            outputs.copy_from(encoder, output, 0, start * n_outputs, len * n_outputs)?;
        }
        Ok(())
    }

    /// Submits the epoch's last commands, waits for them, and returns the first batch whose
    /// output was not finite.
    pub(super) fn finish_epoch(
        &mut self,
        submissions: Submissions,
        n_batches: usize,
        cancel: &CancelToken,
    ) -> Result<Option<usize>> {
        let Submissions {
            encoder, mut pacer, ..
        } = submissions;
        let ctx = &self.device.ctx;
        pacer.submit(ctx, encoder, cancel)?;
        let first_bad = self.status.read_u32(ctx)?[1];
        self.batches_per_submission = pacer.per_submission;
        self.step += n_batches as u64;
        Ok((first_bad != kernels::NO_NON_FINITE_BATCH).then_some(first_bad as usize))
    }

    /// Allocates (or keeps) the windows of streamed data set `id`, each holding `unit` records
    /// at least (a batch must fit one), and returns the records a window takes in units of
    /// `unit`.
    pub(super) fn ensure_windows(&mut self, id: DataId, unit: usize) -> Result<usize> {
        let (n_inputs, n_outputs) = (self.layer_sizes[0], self.n_outputs());
        let (ctx, guarded) = (&self.device.ctx, self.options.guard_regions);
        let Some(LoadedData::Streamed(data)) = self.data.get_mut(id.0) else {
            return Err(unknown(id));
        };
        if let Some(w) = data.windows.as_ref().filter(|w| w.capacity >= unit) {
            return Ok(w.capacity / unit * unit);
        }
        // The old windows go first: their memory counts against the new ones' size.
        data.windows = None;
        let capacity = window_records(ctx, data.records(), (n_inputs, n_outputs)).max(unit);
        let buffers = |k: usize| -> Result<WindowBuffers> {
            let region = |what: &str, len: usize| {
                Region::new(
                    ctx,
                    &format!("data {} window {k} {what}", id.0),
                    len,
                    guarded,
                )
            };
            Ok(WindowBuffers {
                x: region("x", capacity * n_inputs)?,
                target: region("target", capacity * n_outputs)?,
                numbers: region("batch numbers", capacity)?,
                predictions: region("predictions", capacity * n_outputs)?,
            })
        };
        data.windows = Some(Windows {
            capacity,
            buffers: [buffers(0)?, buffers(1)?],
        });
        Ok(capacity / unit * unit)
    }

    /// One epoch over streamed data set `id` (see `Backend::train_epoch`).
    pub(super) fn streamed_epoch(
        &mut self,
        id: DataId,
        order: &[usize],
        batch: usize,
        learnrate: f64,
        cancel: &CancelToken,
    ) -> Result<Option<usize>> {
        let records = match self.data.get(id.0) {
            Some(LoadedData::Streamed(data)) => data.records(),
            _ => return Err(unknown(id)),
        };
        check_epoch(records, order, batch)?;
        let n_batches = self.prepare_epoch(order.len(), batch, learnrate)?;
        let window = self.ensure_windows(id, batch)?;
        let mut submissions = Submissions::new(self, "epoch");
        for (w, visited) in order.chunks(window).enumerate() {
            let Some(LoadedData::Streamed(data)) = self.data.get(id.0) else {
                return Err(unknown(id));
            };
            let Some(windows) = &data.windows else {
                return Err(Error::Gpu("no stream windows".into()));
            };
            let buffers = &windows.buffers[w % 2];
            // Gathered while the device computes the window before (submitted, not awaited).
            let x = data.x.select(visited)?;
            let target = data.target.select(Axis(0), visited);
            let first = w * (window / batch);
            let numbers: Vec<usize> = (first..first + visited.len().div_ceil(batch)).collect();
            let ctx = &self.device.ctx;
            buffers.x.upload_at(ctx, 0, as_slice(&x)?)?;
            buffers.target.upload_at(ctx, 0, as_slice(&target)?)?;
            buffers
                .numbers
                .upload_at(ctx, 0, &kernels::gather_indices(&numbers)?)?;
            let rows = BatchRows {
                x: &buffers.x,
                target: &buffers.target,
                numbers: &buffers.numbers,
            };
            let sizes = visited.chunks(batch).map(<[usize]>::len);
            self.record_batches(&rows, first, sizes, &mut submissions, cancel)?;
            // The next window's upload must follow these steps on the queue.
            submissions.flush(self, cancel)?;
        }
        self.finish_epoch(submissions, n_batches, cancel)
    }

    /// The network's output for every record of streamed data set `id`, a window at a time.
    pub(super) fn streamed_predictions(&mut self, id: DataId, chunk: usize) -> Result<Array2<f64>> {
        let records = match self.data.get(id.0) {
            Some(LoadedData::Streamed(data)) => data.records(),
            _ => return Err(unknown(id)),
        };
        let n_outputs = self.n_outputs();
        let window = self.ensure_windows(id, chunk)?;
        let mut out = Array2::zeros((records, n_outputs));
        for start in (0..records).step_by(window) {
            let end = (start + window).min(records);
            let Some(LoadedData::Streamed(data)) = self.data.get(id.0) else {
                return Err(unknown(id));
            };
            let Some(windows) = &data.windows else {
                return Err(Error::Gpu("no stream windows".into()));
            };
            let buffers = &windows.buffers[0];
            let ctx = &self.device.ctx;
            let x = data.x.rows(start, end)?;
            buffers.x.upload_at(ctx, 0, as_slice(&x)?)?;
            let mut encoder = self.encoder("predict");
            let rows = (&buffers.x, &buffers.predictions);
            self.record_predictions(&mut encoder, rows, end - start, chunk)?;
            self.submit(encoder);
            let values = buffers.predictions.read(ctx)?;
            let part = &values[..(end - start) * n_outputs];
            out.slice_mut(ndarray::s![start..end, ..]).assign(
                &ndarray::ArrayView2::from_shape((end - start, n_outputs), part)
                    .map_err(|e| Error::Shape(e.to_string()))?
                    .mapv(f64::from),
            );
        }
        Ok(out)
    }
}

/// The values of a standard-layout array, in order.
fn as_slice<S: ndarray::Data<Elem = f32>>(
    a: &ndarray::ArrayBase<S, ndarray::Ix2>,
) -> Result<&[f32]> {
    a.as_slice()
        .ok_or_else(|| Error::Shape("records to upload are not in row order".into()))
}
