//! The compute pipelines, built once per device from the WGSL in `shaders/`, and the checked
//! construction of each dispatch: every region's length is compared with the shape the kernel
//! will index before a bind group is made, which is what makes the unchecked shader modules
//! safe (the kernels guard the tile edges themselves).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytemuck::{Pod, Zeroable};
use wgpu::util::DeviceExt;

use crate::error::{Error, Result};
use crate::gpu::buffers::Region;
use crate::gpu::context::GpuContext;
use crate::gpu::gemm::generate::{module_source, PARTIAL_SUMS_BINDING};
use crate::gpu::gemm::{GemmConfig, Product, COMMON, ERROR_TERMS};
use crate::model::{Activation, Loss};
use crate::ops::optimizer::{Rule, STEP_VALUES};

const GATHER: &str = include_str!("../../shaders/gather.wgsl");
const SOFTMAX: &str = include_str!("../../shaders/softmax.wgsl");
const BIAS_UPDATE: &str = include_str!("../../shaders/bias_update.wgsl");
const OPTIMIZER: &str = include_str!("../../shaders/optimizer.wgsl");
/// The bindings of an optimizer's moments and step values (`shaders/optimizer.wgsl`; 10 is
/// the partial sums of a split product).
const MOMENT1_BINDING: u32 = 11;
const MOMENT2_BINDING: u32 = 12;
const STEP_VALUES_BINDING: u32 = 13;
/// The binding of a layer's bias in the forward products.
const BIAS_BINDING: u32 = 9;

/// The values of the non-finite watch (`status` in `common.wgsl`): the batch being computed,
/// and the first batch whose output was not finite.
pub const STATUS_LEN: usize = 2;
/// `status[1]` while no output was NaN or infinite.
pub const NO_NON_FINITE_BATCH: u32 = u32::MAX;
/// The binding of the non-finite watch.
const STATUS_BINDING: u32 = 8;

/// The element-wise workgroup size.
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
    /// The K slice of a split product (`k_slice` in common.wgsl).
    pub k_slice: u32,
    pad: [u32; 2],
}

// Bits of `Dims::flag`, as in `shaders/common.wgsl`.
const FLAG_ACCUMULATE: u32 = 16;
const FLAG_PARTIAL: u32 = 32;
const FLAG_APPLY: u32 = 64;
const FLAG_BIAS: u32 = 128;
const FLAG_CROSS_ENTROPY: u32 = 256;
/// The optimizer rule's shift in the flag (`OPT_SHIFT` in common.wgsl).
const OPT_SHIFT: u32 = 9;
const FLAG_OF_WEIGHTS: u32 = 4096;

/// How a weight or bias update changes the parameters.
#[derive(Clone, Copy)]
pub enum Update<'a> {
    /// `learnrate / records · Σ`, written to the delta region (`backprop step`).
    Deltas { learnrate: f32 },
    /// The same, added in place: the seeds' step.
    Apply { learnrate: f32 },
    /// The optimizer's rule from the gradient `−1 / records · Σ`, with its moments (`None` for
    /// a rule that keeps fewer) and the step values of the batch.
    Optimizer {
        rule: Rule,
        moments: [Option<&'a Region>; 2],
        step_values: &'a Region,
        /// The values stepped are weights (their L2 term applies, not the biases'): what
        /// `bias_update` needs to know when it steps weights from a gradient.
        of_weights: bool,
    },
}

impl Update<'_> {
    /// The flag bits and the scale of the update's dispatch over `records` records.
    fn flag_and_scale(&self, records: usize) -> (u32, f32) {
        let per_record = 1.0 / records as f32;
        match *self {
            Update::Deltas { learnrate } => (0, learnrate * per_record),
            Update::Apply { learnrate } => (FLAG_APPLY, learnrate * per_record),
            Update::Optimizer {
                rule, of_weights, ..
            } => (
                ((rule as u32) << OPT_SHIFT) | if of_weights { FLAG_OF_WEIGHTS } else { 0 },
                -per_record,
            ),
        }
    }
}
/// The activation's code in the flag's low bits (softmax: its row kernel follows).
fn activation_flag(a: Activation) -> u32 {
    a.wgsl_code()
}

fn loss_flag(loss: Loss) -> u32 {
    match loss {
        Loss::Mse => 0,
        Loss::CrossEntropy => FLAG_CROSS_ENTROPY,
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
    /// The GEMM variant of a product's kernel (see `gemm::config`).
    pub variant: Option<GemmConfig>,
    /// The floating-point operations it performs (2 per multiply-add of a product).
    pub flops: f64,
    pipeline: wgpu::ComputePipeline,
    bind_group: wgpu::BindGroup,
    uniform: wgpu::Buffer,
    dims: Dims,
    workgroups: (u32, u32, u32),
    /// The slices' partial sums of a split product, owned by its first dispatch.
    _partial_sums: Option<Region>,
}

impl Dispatch {
    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        let (x, y, z) = self.workgroups;
        pass.dispatch_workgroups(x, y, z);
    }

    /// Changes the uniform's `scale` (the learning rate of an update) before the next submission.
    pub fn set_scale(&mut self, ctx: &GpuContext, scale: f32) {
        self.dims.scale = scale;
        ctx.queue
            .write_buffer(&self.uniform, 0, bytemuck::bytes_of(&self.dims));
    }

    /// `name [variant]` for timings and tables.
    pub fn label(&self) -> String {
        match &self.variant {
            Some(v) => format!("{} [{}]", self.kernel, v.name()),
            None => self.kernel.to_string(),
        }
    }
}

/// The pipelines of one product computed by one variant.
struct ProductPipelines {
    layout: wgpu::BindGroupLayout,
    matmul: wgpu::ComputePipeline,
    reduce: Option<wgpu::ComputePipeline>,
}

/// The bindings of each product's module (0 is the uniform): (binding, read-only).
fn product_bindings(product: Product) -> &'static [(u32, bool)] {
    match product {
        Product::LayerForward => &[(1, true), (2, true), (3, false), (BIAS_BINDING, true)],
        Product::OutputLayer => &[
            (1, true),
            (2, true),
            (3, false),
            (BIAS_BINDING, true),
            (4, true),
            (5, false),
            (STATUS_BINDING, false),
        ],
        Product::HiddenErrorTerm => &[(4, true), (5, true), (6, true), (7, false)],
        Product::WeightUpdate => &[
            (1, true),
            (2, true),
            (3, false),
            (4, false),
            (MOMENT1_BINDING, false),
            (MOMENT2_BINDING, false),
            (STEP_VALUES_BINDING, true),
        ],
    }
}

/// The pipelines of a training step: the element-wise kernels, built when the device opens,
/// and the products, generated and compiled the first time a variant is asked for.
pub struct Kernels {
    output_error_term: wgpu::ComputePipeline,
    gather: wgpu::ComputePipeline,
    softmax_rows: wgpu::ComputePipeline,
    bias_update: wgpu::ComputePipeline,
    /// Bound as the bias of a layer that has none (the kernel reads it only with FLAG_BIAS).
    no_bias: Region,
    /// Bound as the optimizer's moments and its step values by the updates that have none
    /// (two buffers: a dispatch may not read a buffer it also writes).
    no_moments: Region,
    no_step_values: Region,
    products: Mutex<HashMap<(Product, GemmConfig), Arc<ProductPipelines>>>,
}

/// A shader module without naga's runtime checks.
fn trusted_module(ctx: &GpuContext, label: &str, source: String) -> wgpu::ShaderModule {
    let desc = wgpu::ShaderModuleDescriptor {
        label: Some(label),
        source: wgpu::ShaderSource::Wgsl(source.into()),
    };
    // SAFETY: naga's bounds checks cost up to 50x on real GPUs (GPU.md). Without them, an
    // out-of-range index is undefined behaviour, so every index is guarded instead: each
    // kernel checks its element or tile position against `dims` before touching memory, and
    // the constructors below refuse a dispatch unless every bound region holds exactly the
    // values `dims` implies. Tests run every kernel and every variant on shapes that are not
    // tile multiples, with sentinel bands around each output region.
    unsafe {
        ctx.device
            .create_shader_module_trusted(desc, wgpu::ShaderRuntimeChecks::unchecked())
    }
}

/// Every tile is written before it is read, so wgpu need not zero workgroup memory first.
fn compilation_options() -> wgpu::PipelineCompilationOptions<'static> {
    wgpu::PipelineCompilationOptions {
        zero_initialize_workgroup_memory: false,
        ..Default::default()
    }
}

impl Kernels {
    pub fn new(ctx: &GpuContext) -> Result<Self> {
        let pipeline = |module: &wgpu::ShaderModule, entry: &str| {
            ctx.device
                .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(entry),
                    layout: None,
                    module,
                    entry_point: Some(entry),
                    compilation_options: Default::default(),
                    cache: ctx.pipeline_cache(),
                })
        };
        let error_terms = trusted_module(ctx, "error_terms.wgsl", [COMMON, ERROR_TERMS].join("\n"));
        let gather = trusted_module(ctx, "gather.wgsl", [COMMON, GATHER].join("\n"));
        let softmax = trusted_module(ctx, "softmax.wgsl", [COMMON, SOFTMAX].join("\n"));
        let bias_update = trusted_module(
            ctx,
            "bias_update.wgsl",
            [COMMON, OPTIMIZER, BIAS_UPDATE].join("\n"),
        );
        Ok(Kernels {
            output_error_term: pipeline(&error_terms, "output_error_term"),
            gather: pipeline(&gather, "gather"),
            softmax_rows: pipeline(&softmax, "softmax_rows"),
            bias_update: pipeline(&bias_update, "bias_update"),
            no_bias: Region::new(ctx, "no bias", 1, false)?,
            no_moments: Region::new(ctx, "no moments", 1, false)?,
            no_step_values: Region::new(ctx, "no step values", STEP_VALUES, false)?,
            products: Mutex::new(HashMap::new()),
        })
    }

    /// The pipelines of `product` computed by `config`, generated and compiled on first use.
    fn product_pipelines(
        &self,
        ctx: &GpuContext,
        product: Product,
        config: &GemmConfig,
    ) -> Result<Arc<ProductPipelines>> {
        config.check(&ctx.limits).map_err(Error::Gpu)?;
        let mut products = self
            .products
            .lock()
            .map_err(|_| Error::Gpu("the pipeline table was poisoned".into()))?;
        if let Some(found) = products.get(&(product, *config)) {
            return Ok(found.clone());
        }
        let split = config.split_k > 1;
        let storage = |binding: u32, read_only: bool| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Storage { read_only },
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        };
        let mut entries = vec![wgpu::BindGroupLayoutEntry {
            binding: 0,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Uniform,
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        }];
        entries.extend(
            product_bindings(product)
                .iter()
                .map(|&(b, ro)| storage(b, ro)),
        );
        if split {
            entries.push(storage(PARTIAL_SUMS_BINDING, false));
        }
        let layout = ctx
            .device
            .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some(product.name()),
                entries: &entries,
            });
        let pipeline_layout = ctx
            .device
            .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(product.name()),
                bind_group_layouts: &[Some(&layout)],
                immediate_size: 0,
            });
        let label = format!("{} {}", product.name(), config.name());
        let module = trusted_module(ctx, &label, module_source(product, config));
        let pipeline = |entry: &str| {
            ctx.device
                .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(&label),
                    layout: Some(&pipeline_layout),
                    module: &module,
                    entry_point: Some(entry),
                    compilation_options: compilation_options(),
                    cache: ctx.pipeline_cache(),
                })
        };
        let built = Arc::new(ProductPipelines {
            matmul: pipeline("matmul"),
            reduce: split.then(|| pipeline("reduce_partial_sums")),
            layout,
        });
        products.insert((product, *config), built.clone());
        Ok(built)
    }

    fn dispatch(
        &self,
        ctx: &GpuContext,
        (kernel, pipeline): (&'static str, &wgpu::ComputePipeline),
        layout: &wgpu::BindGroupLayout,
        dims: Dims,
        workgroups: (u32, u32, u32),
        bindings: &[(u32, &Region)],
    ) -> Result<Dispatch> {
        let max = ctx.limits.max_compute_workgroups_per_dimension;
        if workgroups.0 > max || workgroups.1 > max || workgroups.2 > max {
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
            layout,
            entries: &entries,
        });
        Ok(Dispatch {
            kernel,
            variant: None,
            flops: 0.0,
            pipeline: pipeline.clone(),
            bind_group,
            uniform,
            dims,
            workgroups,
            _partial_sums: None,
        })
    }

    /// An element-wise kernel's dispatch (layout from the shader).
    fn elementwise(
        &self,
        ctx: &GpuContext,
        (kernel, pipeline): (&'static str, &wgpu::ComputePipeline),
        dims: Dims,
        len: usize,
        bindings: &[(u32, &Region)],
    ) -> Result<Dispatch> {
        let (x, y) = Self::elementwise_grid(ctx, len)?;
        let layout = pipeline.get_bind_group_layout(0);
        self.dispatch(ctx, (kernel, pipeline), &layout, dims, (x, y, 1), bindings)
    }

    /// A product's dispatches: the tiled kernel of `config` over (m x n) = (m x k)·(k x n),
    /// and for a split product the reduction of its slices, which owns the partial sums.
    fn product(
        &self,
        ctx: &GpuContext,
        product: Product,
        config: &GemmConfig,
        mut dims: Dims,
        bindings: &[(u32, &Region)],
    ) -> Result<Vec<Dispatch>> {
        check_reduction(ctx, dims.k as usize)?;
        let pipelines = self.product_pipelines(ctx, product, config)?;
        dims.k_slice = config.k_slice(dims.k);
        let grid = config.grid(dims.m, dims.n, dims.k);
        let name = product.name();
        let flops = 2.0 * f64::from(dims.m) * f64::from(dims.n) * f64::from(dims.k);
        let Some(reduce) = &pipelines.reduce else {
            let mut d = self.dispatch(
                ctx,
                (name, &pipelines.matmul),
                &pipelines.layout,
                dims,
                grid,
                bindings,
            )?;
            d.variant = Some(*config);
            d.flops = flops;
            return Ok(vec![d]);
        };
        let sums = (grid.2 as usize)
            .checked_mul(dims.m as usize)
            .and_then(|v| v.checked_mul(dims.n as usize))
            .ok_or_else(|| Error::Memory(format!("the partial sums of {name} overflow")))?;
        let partial = Region::new(ctx, &format!("{name} partial sums"), sums, false)?;
        let mut all: Vec<(u32, &Region)> = bindings.to_vec();
        all.push((PARTIAL_SUMS_BINDING, &partial));
        let mut main = self.dispatch(
            ctx,
            (name, &pipelines.matmul),
            &pipelines.layout,
            dims,
            grid,
            &all,
        )?;
        let (x, y) = Self::elementwise_grid(ctx, dims.m as usize * dims.n as usize)?;
        // The reduction is timed as part of its product.
        let mut sum = self.dispatch(
            ctx,
            (name, reduce),
            &pipelines.layout,
            dims,
            (x, y, 1),
            &all,
        )?;
        main.variant = Some(*config);
        main.flops = flops;
        sum.variant = Some(*config);
        main._partial_sums = Some(partial);
        Ok(vec![main, sum])
    }

    /// A 2-D grid of 256-wide workgroups covering `len` elements (one grid dimension holds at
    /// most `max_compute_workgroups_per_dimension` groups).
    fn elementwise_grid(ctx: &GpuContext, len: usize) -> Result<(u32, u32)> {
        let groups = dim("elements", len)?.div_ceil(ELEMENTWISE_GROUP);
        let x = groups
            .min(ctx.limits.max_compute_workgroups_per_dimension)
            .max(1);
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
        self.elementwise(
            ctx,
            ("gather", &self.gather),
            dims(m, n, 0, 0, 0.0),
            records * columns,
            &[(1, source), (2, order), (3, gathered)],
        )
    }

    /// `layer_out = activation(layer_input · weights)`: (records x inputs) · (inputs x units),
    /// or one `part` of that sum when the inputs are split across bindings.
    #[allow(clippy::too_many_arguments)]
    pub fn layer_forward(
        &self,
        ctx: &GpuContext,
        config: &GemmConfig,
        layer_input: &Region,
        weights: &Region,
        bias: Option<&Region>,
        layer_out: &Region,
        (records, inputs, units): (usize, usize, usize),
        activation: Activation,
        part: Part,
    ) -> Result<Vec<Dispatch>> {
        expect_len(layer_input, records * inputs)?;
        expect_len(weights, inputs * units)?;
        expect_len(layer_out, records * units)?;
        let (bias, bias_flag) = self.bias(bias, units)?;
        let (m, k, n) = (
            dim("records", records)?,
            dim("inputs", inputs)?,
            dim("units", units)?,
        );
        self.product(
            ctx,
            Product::LayerForward,
            config,
            dims(
                m,
                n,
                k,
                activation_flag(activation) | part.flags() | bias_flag,
                0.0,
            ),
            &[
                (1, layer_input),
                (2, weights),
                (3, layer_out),
                (BIAS_BINDING, bias),
            ],
        )
    }

    /// The region bound as a layer's bias, and the flag that makes the kernel add it.
    fn bias<'a>(&'a self, bias: Option<&'a Region>, units: usize) -> Result<(&'a Region, u32)> {
        match bias {
            Some(b) => {
                expect_len(b, units)?;
                Ok((b, FLAG_BIAS))
            }
            None => Ok((&self.no_bias, 0)),
        }
    }

    /// The output layer's forward pass and its output error term in one product (the fused
    /// path; the layer must be one block): `output_layer_out = activation(hidden · weights)`,
    /// `output_error_term = (target - y) * f'(y)`, with the non-finite watch.
    #[allow(clippy::too_many_arguments)]
    pub fn output_layer(
        &self,
        ctx: &GpuContext,
        config: &GemmConfig,
        layer_input: &Region,
        weights: &Region,
        bias: Option<&Region>,
        output_layer_out: &Region,
        target: &Region,
        output_error_term: &Region,
        status: &Region,
        (records, inputs, outputs): (usize, usize, usize),
        (activation, loss): (Activation, Loss),
    ) -> Result<Vec<Dispatch>> {
        if !activation.is_elementwise() {
            return Err(Error::Gpu(format!(
                "the fused output layer computes element-wise outputs, not {activation}"
            )));
        }
        expect_len(layer_input, records * inputs)?;
        expect_len(weights, inputs * outputs)?;
        let (bias, bias_flag) = self.bias(bias, outputs)?;
        for region in [output_layer_out, target, output_error_term] {
            expect_len(region, records * outputs)?;
        }
        expect_len(status, STATUS_LEN)?;
        let (m, k, n) = (
            dim("records", records)?,
            dim("inputs", inputs)?,
            dim("outputs", outputs)?,
        );
        self.product(
            ctx,
            Product::OutputLayer,
            config,
            dims(
                m,
                n,
                k,
                activation_flag(activation) | bias_flag | loss_flag(loss),
                0.0,
            ),
            &[
                (1, layer_input),
                (2, weights),
                (3, output_layer_out),
                (BIAS_BINDING, bias),
                (4, target),
                (5, output_error_term),
                (STATUS_BINDING, status),
            ],
        )
    }

    /// `output_error_term = (target - y) * f'(y)` element-wise over records x outputs; a
    /// non-finite `y` is recorded in `status` (see `common.wgsl`).
    #[allow(clippy::too_many_arguments)]
    pub fn output_error_term(
        &self,
        ctx: &GpuContext,
        target: &Region,
        output_layer_out: &Region,
        output_error_term: &Region,
        status: &Region,
        (records, outputs): (usize, usize),
        (activation, loss): (Activation, Loss),
    ) -> Result<Dispatch> {
        let len = records * outputs;
        expect_len(target, len)?;
        expect_len(output_layer_out, len)?;
        expect_len(output_error_term, len)?;
        expect_len(status, STATUS_LEN)?;
        let (m, n) = (dim("records", records)?, dim("outputs", outputs)?);
        self.elementwise(
            ctx,
            ("output_error_term", &self.output_error_term),
            dims(m, n, 0, activation_flag(activation) | loss_flag(loss), 0.0),
            len,
            &[
                (1, target),
                (2, output_layer_out),
                (3, output_error_term),
                (STATUS_BINDING, status),
            ],
        )
    }

    /// `hidden_error_term = (next_error_term · weights_to_nextᵀ) * h * (1 - h)`, or one `part`
    /// of the sum when the next layer is split across bindings.
    #[allow(clippy::too_many_arguments)]
    pub fn hidden_error_term(
        &self,
        ctx: &GpuContext,
        config: &GemmConfig,
        next_error_term: &Region,
        weights_to_next: &Region,
        hidden_layer_out: &Region,
        hidden_error_term: &Region,
        (records, hidden, next): (usize, usize, usize),
        activation: Activation,
        part: Part,
    ) -> Result<Vec<Dispatch>> {
        expect_len(next_error_term, records * next)?;
        expect_len(weights_to_next, hidden * next)?;
        expect_len(hidden_layer_out, records * hidden)?;
        expect_len(hidden_error_term, records * hidden)?;
        let (m, n, k) = (
            dim("records", records)?,
            dim("hidden", hidden)?,
            dim("next", next)?,
        );
        self.product(
            ctx,
            Product::HiddenErrorTerm,
            config,
            dims(m, n, k, activation_flag(activation) | part.flags(), 0.0),
            &[
                (4, next_error_term),
                (5, weights_to_next),
                (6, hidden_layer_out),
                (7, hidden_error_term),
            ],
        )
    }

    /// Softmax over each record's outputs, in place (after an identity forward pass). One
    /// invocation loops over a row three times, so on an adapter with a bounded loop count
    /// (llvmpipe) the outputs are limited to a third of `max_reduction`.
    pub fn softmax_rows(
        &self,
        ctx: &GpuContext,
        values: &Region,
        (records, outputs): (usize, usize),
    ) -> Result<Dispatch> {
        expect_len(values, records * outputs)?;
        check_reduction(ctx, outputs.saturating_mul(3))?;
        let (m, n) = (dim("records", records)?, dim("outputs", outputs)?);
        self.elementwise(
            ctx,
            ("softmax_rows", &self.softmax_rows),
            dims(m, n, 0, 0, 0.0),
            records,
            &[(1, values)],
        )
    }

    /// The bindings of `update`'s target: the delta region, or the optimizer's state.
    fn update_bindings<'a>(
        &'a self,
        update: &Update<'a>,
        deltas: &'a Region,
        len: usize,
    ) -> Result<[(u32, &'a Region); 4]> {
        let unused = &self.no_moments;
        match *update {
            Update::Deltas { .. } => expect_len(deltas, len)?,
            Update::Apply { .. } => {}
            Update::Optimizer {
                moments,
                step_values,
                ..
            } => {
                expect_len(step_values, STEP_VALUES)?;
                for m in moments.iter().flatten() {
                    expect_len(m, len)?;
                }
                return Ok([
                    (4, deltas),
                    (MOMENT1_BINDING, moments[0].unwrap_or(unused)),
                    (MOMENT2_BINDING, moments[1].unwrap_or(unused)),
                    (STEP_VALUES_BINDING, step_values),
                ]);
            }
        }
        Ok([
            (4, deltas),
            (MOMENT1_BINDING, unused),
            (MOMENT2_BINDING, unused),
            (STEP_VALUES_BINDING, &self.no_step_values),
        ])
    }

    /// The bias step from `Σ_records error_term` (a bias is a weight whose input is always 1),
    /// as `update` says.
    pub fn bias_update(
        &self,
        ctx: &GpuContext,
        error_term: &Region,
        bias: &Region,
        bias_deltas: &Region,
        (records, units): (usize, usize),
        update: Update,
    ) -> Result<Dispatch> {
        expect_len(error_term, records * units)?;
        expect_len(bias, units)?;
        let [_, m1, m2, values] = self.update_bindings(&update, bias_deltas, units)?;
        check_reduction(ctx, records)?;
        let (n, k) = (dim("units", units)?, dim("records", records)?);
        let (flag, scale) = update.flag_and_scale(records);
        self.elementwise(
            ctx,
            ("bias_update", &self.bias_update),
            dims(1, n, k, flag, scale),
            units,
            &[(1, error_term), (2, bias), (3, bias_deltas), m1, m2, values],
        )
    }

    /// The weight step from `layer_inputᵀ · error_term`, as `update` says.
    #[allow(clippy::too_many_arguments)]
    pub fn weight_update(
        &self,
        ctx: &GpuContext,
        config: &GemmConfig,
        layer_input: &Region,
        error_term: &Region,
        weights: &Region,
        deltas: &Region,
        (records, inputs, units): (usize, usize, usize),
        update: Update,
    ) -> Result<Vec<Dispatch>> {
        expect_len(layer_input, records * inputs)?;
        expect_len(error_term, records * units)?;
        expect_len(weights, inputs * units)?;
        let [d, m1, m2, values] = self.update_bindings(&update, deltas, inputs * units)?;
        let (m, n, k) = (
            dim("inputs", inputs)?,
            dim("units", units)?,
            dim("records", records)?,
        );
        let (flag, scale) = update.flag_and_scale(records);
        self.product(
            ctx,
            Product::WeightUpdate,
            config,
            dims(m, n, k, flag, scale),
            &[
                (1, layer_input),
                (2, error_term),
                (3, weights),
                d,
                m1,
                m2,
                values,
            ],
        )
    }
}

/// The uniform of a dispatch (`k_slice` is set by `Kernels::product`).
fn dims(m: u32, n: u32, k: u32, flag: u32, scale: f32) -> Dims {
    Dims {
        m,
        n,
        k,
        flag,
        scale,
        k_slice: 0,
        pad: [0; 2],
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
