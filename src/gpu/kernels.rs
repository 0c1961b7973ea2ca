//! The compute pipelines, built once per device from the WGSL in `shaders/`, and the checked
//! construction of each dispatch: every region's length is compared with the shape the kernel
//! will index before a bind group is made, which is what makes the unchecked shader modules
//! safe (the kernels guard the tile edges themselves).

use bytemuck::{Pod, Zeroable};
use wgpu::util::DeviceExt;

use crate::error::{Error, Result};
use crate::gpu::buffers::Region;
use crate::gpu::context::GpuContext;
use crate::model::Activation;

const COMMON: &str = include_str!("../../shaders/common.wgsl");
const MATMUL_TILE: &str = include_str!("../../shaders/matmul_tile.wgsl");
const FORWARD: &str = include_str!("../../shaders/forward.wgsl");
const ERROR_TERMS: &str = include_str!("../../shaders/error_terms.wgsl");
const WEIGHT_UPDATE: &str = include_str!("../../shaders/weight_update.wgsl");
const GATHER: &str = include_str!("../../shaders/gather.wgsl");

/// The values of the non-finite watch (`status` in `error_terms.wgsl`): the batch being
/// computed, and the first batch whose output was not finite.
pub const STATUS_LEN: usize = 2;
/// `status[1]` while no output was NaN or infinite.
pub const NO_NON_FINITE_BATCH: u32 = u32::MAX;

/// The output tile of `matmul_tile.wgsl` (64 x 64) and the element-wise workgroup size.
const TILE: u32 = 64;
const ELEMENTWISE_GROUP: u32 = 256;

/// The uniform every kernel reads (`Dims` in `shaders/common.wgsl`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct Dims {
    pub m: u32,
    pub n: u32,
    pub k: u32,
    pub flag: u32,
    pub scale: f32,
    pad: [u32; 3],
}

// Bits of `Dims::flag`, as in `shaders/common.wgsl`.
const FLAG_IDENTITY: u32 = 1;
const FLAG_ACCUMULATE: u32 = 2;
const FLAG_PARTIAL: u32 = 4;
const FLAG_APPLY: u32 = 8;

fn activation_flag(a: Activation) -> u32 {
    match a {
        Activation::Sigmoid => 0,
        Activation::Identity => FLAG_IDENTITY,
    }
}

/// Which part of a reduction split across bindings a dispatch computes: the sum over one block
/// of the inputs, added to the blocks before it (`accumulate`), with the epilogue (activation,
/// sigmoid slope) applied only by the `last`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Part {
    pub accumulate: bool,
    pub last: bool,
}

impl Part {
    /// An unsplit reduction.
    pub const WHOLE: Part = Part {
        accumulate: false,
        last: true,
    };

    /// Block `index` of `count`.
    pub fn of(index: usize, count: usize) -> Part {
        Part {
            accumulate: index > 0,
            last: index + 1 == count,
        }
    }

    fn flags(self) -> u32 {
        (if self.accumulate { FLAG_ACCUMULATE } else { 0 })
            | (if self.last { 0 } else { FLAG_PARTIAL })
    }
}

/// Refuses a product whose sum of `k` terms is longer than the adapter computes correctly in
/// one dispatch (see `GpuContext::max_reduction`): a silently truncated sum is never run.
fn check_reduction(ctx: &GpuContext, k: usize) -> Result<()> {
    if k > ctx.max_reduction {
        return Err(Error::Gpu(format!(
            "a sum of {k} terms is more than the {} {} computes correctly in one dispatch",
            ctx.max_reduction, ctx.info.name
        )));
    }
    Ok(())
}

/// Converts a size to the u32 the kernels index with, naming what overflowed.
fn dim(what: &str, value: usize) -> Result<u32> {
    u32::try_from(value).map_err(|_| Error::Shape(format!("{what} = {value} exceeds 2^32")))
}

/// One recorded kernel launch: pipeline, bind group (with its own uniform) and grid.
pub struct Dispatch {
    /// The kernel's name, for per-kernel timings.
    pub kernel: &'static str,
    pipeline: wgpu::ComputePipeline,
    bind_group: wgpu::BindGroup,
    uniform: wgpu::Buffer,
    dims: Dims,
    workgroups: (u32, u32),
}

impl Dispatch {
    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        pass.dispatch_workgroups(self.workgroups.0, self.workgroups.1, 1);
    }

    /// Changes the uniform's `scale` (the learning rate of an update) before the next submission.
    pub fn set_scale(&mut self, ctx: &GpuContext, scale: f32) {
        self.dims.scale = scale;
        ctx.queue
            .write_buffer(&self.uniform, 0, bytemuck::bytes_of(&self.dims));
    }
}

/// The four pipelines of a training step.
pub struct Kernels {
    forward: wgpu::ComputePipeline,
    output_error_term: wgpu::ComputePipeline,
    hidden_error_term: wgpu::ComputePipeline,
    weight_update: wgpu::ComputePipeline,
    gather: wgpu::ComputePipeline,
}

impl Kernels {
    pub fn new(ctx: &GpuContext) -> Self {
        let module = |label: &str, step: &str, tiled: bool| {
            let source = if tiled {
                [COMMON, step, MATMUL_TILE].join("\n")
            } else {
                [COMMON, step].join("\n")
            };
            let desc = wgpu::ShaderModuleDescriptor {
                label: Some(label),
                source: wgpu::ShaderSource::Wgsl(source.into()),
            };
            // SAFETY: naga's bounds checks cost up to 50x on real GPUs (GPU.md). Without them, an
            // out-of-range index is undefined behaviour, so every index is guarded instead: each
            // kernel checks its element or tile position against `dims` before touching memory,
            // and the constructors below refuse a dispatch unless every bound region holds
            // exactly the values `dims` implies. Tests run every kernel on shapes that are not
            // tile multiples, with sentinel bands around each output region.
            unsafe {
                ctx.device
                    .create_shader_module_trusted(desc, wgpu::ShaderRuntimeChecks::unchecked())
            }
        };
        let pipeline = |module: &wgpu::ShaderModule, entry: &str| {
            ctx.device
                .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(entry),
                    layout: None,
                    module,
                    entry_point: Some(entry),
                    compilation_options: Default::default(),
                    cache: None,
                })
        };
        let forward = module("forward.wgsl", FORWARD, true);
        let error_terms = module("error_terms.wgsl", ERROR_TERMS, true);
        let weight_update = module("weight_update.wgsl", WEIGHT_UPDATE, true);
        let gather = module("gather.wgsl", GATHER, false);
        Kernels {
            forward: pipeline(&forward, "matmul"),
            output_error_term: pipeline(&error_terms, "output_error_term"),
            hidden_error_term: pipeline(&error_terms, "matmul"),
            weight_update: pipeline(&weight_update, "matmul"),
            gather: pipeline(&gather, "gather"),
        }
    }

    fn dispatch(
        &self,
        ctx: &GpuContext,
        (kernel, pipeline): (&'static str, &wgpu::ComputePipeline),
        dims: Dims,
        workgroups: (u32, u32),
        bindings: &[(u32, &Region)],
    ) -> Result<Dispatch> {
        let max = ctx.limits.max_compute_workgroups_per_dimension;
        if workgroups.0 > max || workgroups.1 > max {
            return Err(Error::Gpu(format!(
                "{workgroups:?} workgroups exceed the adapter's {max} per dimension (dims {dims:?})"
            )));
        }
        let uniform = ctx
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("dims"),
                contents: bytemuck::bytes_of(&dims),
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            });
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: uniform.as_entire_binding(),
        }];
        entries.extend(
            bindings
                .iter()
                .map(|(binding, region)| wgpu::BindGroupEntry {
                    binding: *binding,
                    resource: region.binding(),
                }),
        );
        let bind_group = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        Ok(Dispatch {
            kernel,
            pipeline: pipeline.clone(),
            bind_group,
            uniform,
            dims,
            workgroups,
        })
    }

    fn matmul_grid(m: u32, n: u32) -> (u32, u32) {
        (n.div_ceil(TILE), m.div_ceil(TILE))
    }

    /// A 2-D grid of 256-wide workgroups covering `len` elements (one grid dimension holds at
    /// most `max_compute_workgroups_per_dimension` groups).
    fn elementwise_grid(ctx: &GpuContext, len: usize) -> Result<(u32, u32)> {
        let groups = dim("elements", len)?.div_ceil(ELEMENTWISE_GROUP);
        let x = groups.min(ctx.limits.max_compute_workgroups_per_dimension);
        Ok((x, groups.div_ceil(x)))
    }

    /// `gathered[r] = source[order[r]]`, row by row. The caller guarantees every entry of
    /// `order` is below `records` (see `backend::check_epoch`): the kernel trusts it.
    pub fn gather(
        &self,
        ctx: &GpuContext,
        source: &Region,
        order: &Region,
        gathered: &Region,
        (records, columns): (usize, usize),
    ) -> Result<Dispatch> {
        expect_len(source, records * columns)?;
        expect_len(order, records)?;
        expect_len(gathered, records * columns)?;
        let (m, n) = (dim("records", records)?, dim("columns", columns)?);
        let dims = Dims {
            m,
            n,
            k: 0,
            flag: 0,
            scale: 0.0,
            pad: [0; 3],
        };
        self.dispatch(
            ctx,
            ("gather", &self.gather),
            dims,
            Self::elementwise_grid(ctx, records * columns)?,
            &[(1, source), (2, order), (3, gathered)],
        )
    }

    /// `layer_out = activation(layer_input · weights)`: (records x inputs) · (inputs x units),
    /// or one `part` of that sum when the inputs are split across bindings.
    #[allow(clippy::too_many_arguments)]
    pub fn layer_forward(
        &self,
        ctx: &GpuContext,
        layer_input: &Region,
        weights: &Region,
        layer_out: &Region,
        (records, inputs, units): (usize, usize, usize),
        activation: Activation,
        part: Part,
    ) -> Result<Dispatch> {
        expect_len(layer_input, records * inputs)?;
        expect_len(weights, inputs * units)?;
        expect_len(layer_out, records * units)?;
        check_reduction(ctx, inputs)?;
        let (m, k, n) = (
            dim("records", records)?,
            dim("inputs", inputs)?,
            dim("units", units)?,
        );
        let dims = Dims {
            m,
            n,
            k,
            flag: activation_flag(activation) | part.flags(),
            scale: 0.0,
            pad: [0; 3],
        };
        self.dispatch(
            ctx,
            ("layer_forward", &self.forward),
            dims,
            Self::matmul_grid(m, n),
            &[(1, layer_input), (2, weights), (3, layer_out)],
        )
    }

    /// `output_error_term = (target - y) * f'(y)` element-wise over records x outputs; a
    /// non-finite `y` is recorded in `status` (see `error_terms.wgsl`).
    #[allow(clippy::too_many_arguments)]
    pub fn output_error_term(
        &self,
        ctx: &GpuContext,
        target: &Region,
        output_layer_out: &Region,
        output_error_term: &Region,
        status: &Region,
        (records, outputs): (usize, usize),
        activation: Activation,
    ) -> Result<Dispatch> {
        let len = records * outputs;
        expect_len(target, len)?;
        expect_len(output_layer_out, len)?;
        expect_len(output_error_term, len)?;
        expect_len(status, STATUS_LEN)?;
        let (m, n) = (dim("records", records)?, dim("outputs", outputs)?);
        let dims = Dims {
            m,
            n,
            k: 0,
            flag: activation_flag(activation),
            scale: 0.0,
            pad: [0; 3],
        };
        self.dispatch(
            ctx,
            ("output_error_term", &self.output_error_term),
            dims,
            Self::elementwise_grid(ctx, len)?,
            &[
                (1, target),
                (2, output_layer_out),
                (3, output_error_term),
                (8, status),
            ],
        )
    }

    /// `hidden_error_term = (next_error_term · weights_to_nextᵀ) * h * (1 - h)`, or one `part`
    /// of the sum when the next layer is split across bindings.
    #[allow(clippy::too_many_arguments)]
    pub fn hidden_error_term(
        &self,
        ctx: &GpuContext,
        next_error_term: &Region,
        weights_to_next: &Region,
        hidden_layer_out: &Region,
        hidden_error_term: &Region,
        (records, hidden, next): (usize, usize, usize),
        part: Part,
    ) -> Result<Dispatch> {
        expect_len(next_error_term, records * next)?;
        expect_len(weights_to_next, hidden * next)?;
        expect_len(hidden_layer_out, records * hidden)?;
        expect_len(hidden_error_term, records * hidden)?;
        check_reduction(ctx, next)?;
        let (m, n, k) = (
            dim("records", records)?,
            dim("hidden", hidden)?,
            dim("next", next)?,
        );
        let dims = Dims {
            m,
            n,
            k,
            flag: part.flags(),
            scale: 0.0,
            pad: [0; 3],
        };
        self.dispatch(
            ctx,
            ("hidden_error_term", &self.hidden_error_term),
            dims,
            Self::matmul_grid(m, n),
            &[
                (4, next_error_term),
                (5, weights_to_next),
                (6, hidden_layer_out),
                (7, hidden_error_term),
            ],
        )
    }

    /// `learnrate / records * layer_inputᵀ · error_term`, added to `weights` when `apply`,
    /// otherwise written to `deltas`.
    #[allow(clippy::too_many_arguments)]
    pub fn weight_update(
        &self,
        ctx: &GpuContext,
        layer_input: &Region,
        error_term: &Region,
        weights: &Region,
        deltas: &Region,
        (records, inputs, units): (usize, usize, usize),
        learnrate: f32,
        apply: bool,
    ) -> Result<Dispatch> {
        expect_len(layer_input, records * inputs)?;
        expect_len(error_term, records * units)?;
        expect_len(weights, inputs * units)?;
        if !apply {
            expect_len(deltas, inputs * units)?;
        }
        check_reduction(ctx, records)?;
        let (m, n, k) = (
            dim("inputs", inputs)?,
            dim("units", units)?,
            dim("records", records)?,
        );
        let dims = Dims {
            m,
            n,
            k,
            flag: if apply { FLAG_APPLY } else { 0 },
            scale: learnrate / records as f32,
            pad: [0; 3],
        };
        self.dispatch(
            ctx,
            ("delta_weights", &self.weight_update),
            dims,
            Self::matmul_grid(m, n),
            &[(1, layer_input), (2, error_term), (3, weights), (4, deltas)],
        )
    }
}

/// An epoch's order as the `u32` row indices `gather` reads.
pub fn gather_indices(order: &[usize]) -> Result<Vec<u32>> {
    order
        .iter()
        .map(|&r| u32::try_from(r).map_err(|_| Error::Shape(format!("record {r} exceeds 2^32"))))
        .collect()
}

fn expect_len(region: &Region, len: usize) -> Result<()> {
    if region.len() == len {
        Ok(())
    } else {
        Err(Error::Shape(format!(
            "`{}` holds {} values but the kernel would index {len}",
            region.label(),
            region.len()
        )))
    }
}
