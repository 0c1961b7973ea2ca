//! Adapter discovery and device setup: which GPUs wgpu reaches, which one we take, and a device
//! created with the adapter's own limits (wgpu's defaults are far lower, see GPU.md).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use wgpu::{Adapter, AdapterInfo, Backends, DeviceType, Limits};

use crate::error::{Error, Result};
use crate::guard::memory::{env_bytes, host_available, human, Available};

/// Caps the binding size the kernels use (to exercise split layers on small networks).
pub const MAX_BINDING_VAR: &str = "BACKPROP_MAX_BINDING_BYTES";
/// Sets the GPU memory a run may allocate, where the driver's figure is wrong or missing.
pub const GPU_MEMORY_VAR: &str = "BACKPROP_GPU_MEMORY";
/// The longest sum a dispatch computes on llvmpipe. Its 65,535 loop iterations per invocation
/// hold about 3,600 slices of 16 in the tiled product (18 iterations a slice: the slice, its four
/// loads, its sixteen multiply-adds): 58,000 terms; a power of two well below that.
pub const LLVMPIPE_MAX_REDUCTION: usize = 32_768;

/// The budget of an adapter that reports no memory size (Metal, DX12, GL): documented in
/// README; `BACKPROP_GPU_MEMORY` overrides it.
pub const DEFAULT_GPU_MEMORY: u64 = 8 << 30;

/// One adapter as `backprop info` lists it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AdapterSummary {
    pub name: String,
    pub device_type: String,
    pub backend: String,
    pub driver: String,
    pub driver_info: String,
    /// A software rasterizer (llvmpipe, SwiftShader, WARP): slower than the CPU backend.
    pub software: bool,
    pub max_storage_buffer_binding_size: u64,
    pub max_buffer_size: u64,
    pub max_compute_workgroup_storage_size: u32,
    pub max_compute_invocations_per_workgroup: u32,
    pub max_compute_workgroups_per_dimension: u32,
    pub timestamp_query: bool,
    pub subgroups: bool,
    pub shader_f16: bool,
}

impl AdapterSummary {
    fn new(adapter: &Adapter) -> Self {
        let info = adapter.get_info();
        let limits = adapter.limits();
        let features = adapter.features();
        AdapterSummary {
            software: is_software(&info),
            device_type: format!("{:?}", info.device_type),
            backend: info.backend.to_string(),
            name: info.name,
            driver: info.driver,
            driver_info: info.driver_info,
            max_storage_buffer_binding_size: limits.max_storage_buffer_binding_size,
            max_buffer_size: limits.max_buffer_size,
            max_compute_workgroup_storage_size: limits.max_compute_workgroup_storage_size,
            max_compute_invocations_per_workgroup: limits.max_compute_invocations_per_workgroup,
            max_compute_workgroups_per_dimension: limits.max_compute_workgroups_per_dimension,
            timestamp_query: features.contains(wgpu::Features::TIMESTAMP_QUERY),
            subgroups: features.contains(wgpu::Features::SUBGROUP),
            shader_f16: features.contains(wgpu::Features::SHADER_F16),
        }
    }
}

fn is_software(info: &AdapterInfo) -> bool {
    info.device_type == DeviceType::Cpu
}

/// The pipeline cache of this adapter and driver, from the user's cache directory (a file
/// named by wgpu's key for the adapter); `None` where the device has no pipeline cache.
fn open_pipeline_cache(
    device: &wgpu::Device,
    info: &AdapterInfo,
) -> Option<(wgpu::PipelineCache, PathBuf)> {
    if !device.features().contains(wgpu::Features::PIPELINE_CACHE) {
        return None;
    }
    let path = crate::tune::cache::default_dir()?
        .join("pipelines")
        .join(wgpu::util::pipeline_cache_key(info)?);
    let data = std::fs::read(&path).ok();
    // SAFETY: the data comes only from `PipelineCache::get_data` of an adapter with the same
    // `pipeline_cache_key` (the file is named by it, written whole by `save_pipeline_cache`).
    // wgpu checks its header (format, adapter key, validation key, length) and with `fallback`
    // starts an empty cache when the data does not match.
    let cache = unsafe {
        device.create_pipeline_cache(&wgpu::PipelineCacheDescriptor {
            label: Some("backprop pipelines"),
            data: data.as_deref(),
            fallback: true,
        })
    };
    Some((cache, path))
}

/// The device memory a run may use: `BACKPROP_GPU_MEMORY` when set; for a software rasterizer,
/// the host's available memory (its "device" memory is host memory); else the largest
/// device-local heap the Vulkan driver reports; else [`DEFAULT_GPU_MEMORY`].
fn memory_budget(adapter: &Adapter, info: &AdapterInfo) -> Result<Available> {
    if let Some(bytes) = env_bytes(GPU_MEMORY_VAR)? {
        return Ok(Available {
            bytes,
            source: GPU_MEMORY_VAR.into(),
        });
    }
    let host = host_available()?;
    let heap = vulkan_device_local_bytes(adapter).map(|bytes| Available {
        bytes,
        source: "the driver's largest device-local heap".into(),
    });
    let budget = match (is_software(info), host, heap) {
        (true, Some(host), Some(heap)) if heap.bytes < host.bytes => heap,
        (true, Some(host), _) => host,
        (_, _, Some(heap)) => heap,
        _ => Available {
            bytes: DEFAULT_GPU_MEMORY,
            source: format!(
                "no size reported; the default is {}",
                human(DEFAULT_GPU_MEMORY)
            ),
        },
    };
    Ok(budget)
}

#[cfg(any(target_os = "linux", windows))]
fn vulkan_device_local_bytes(adapter: &Adapter) -> Option<u64> {
    // SAFETY: the hal adapter is only borrowed for two read-only queries of its physical
    // device, through the instance that created it, while `adapter` keeps both alive.
    let hal = unsafe { adapter.as_hal::<wgpu::hal::api::Vulkan>() }?;
    let instance = hal.shared_instance().raw_instance();
    let properties =
        unsafe { instance.get_physical_device_memory_properties(hal.raw_physical_device()) };
    let count = (properties.memory_heap_count as usize).min(properties.memory_heaps.len());
    properties.memory_heaps[..count]
        .iter()
        .filter(|h| h.flags.contains(ash::vk::MemoryHeapFlags::DEVICE_LOCAL))
        .map(|h| h.size)
        .max()
}

#[cfg(not(any(target_os = "linux", windows)))]
fn vulkan_device_local_bytes(_adapter: &Adapter) -> Option<u64> {
    None
}

fn instance() -> wgpu::Instance {
    // Vulkan, Metal and DX12 (and WebGPU in a browser); WGPU_BACKEND overrides, e.g. `gl`.
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = Backends::from_env().unwrap_or(Backends::PRIMARY);
    wgpu::Instance::new(desc)
}

fn adapters() -> Vec<Adapter> {
    pollster::block_on(instance().enumerate_adapters(Backends::all()))
}

/// Every adapter wgpu reaches on this machine.
pub fn list_adapters() -> Vec<AdapterSummary> {
    adapters().iter().map(AdapterSummary::new).collect()
}

/// A device and queue on one adapter, created once and shared by every kernel.
pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: AdapterInfo,
    pub limits: Limits,
    errors: Arc<Mutex<Option<String>>>,
    /// The largest storage binding the kernels may use: the adapter's limit unless capped (by
    /// `BACKPROP_MAX_BINDING_BYTES`, or by setting this field before building a backend).
    pub max_binding_bytes: u64,
    /// The longest sum (the K of a product) one dispatch computes correctly. Unbounded on real
    /// GPUs; Mesa's llvmpipe stops every loop of an invocation after 65,535 iterations in all
    /// (gallivm's guard against hangs), which silently truncates a long sum, so there longer
    /// sums are split across dispatches or refused.
    pub max_reduction: usize,
    /// The device memory all buffers together may take, and who said so.
    pub memory_budget: Available,
    /// Bytes of buffers alive (see `Region::new`, which refuses beyond the budget).
    allocated: Arc<AtomicU64>,
    /// The driver's compiled pipelines, kept on disk between runs where the backend can
    /// (Vulkan): a run's second start skips compiling the generated kernels.
    pipeline_cache: Option<(wgpu::PipelineCache, PathBuf)>,
}

impl GpuContext {
    /// Opens an adapter: the one whose name contains `name` (case-insensitive) if given, else the
    /// best hardware GPU (discrete, then integrated, then virtual). Software rasterizers are
    /// taken only by name: they run our kernels slower than the CPU backend does.
    pub fn open(name: Option<&str>) -> Result<Self> {
        Self::open_for_rank(name, 0)
    }

    /// [`GpuContext::open`] for the `local_rank`-th process on a host: without a name it takes
    /// the `local_rank`-th (modulo their number) of the host's GPUs of the best kind, so that
    /// the ranks of a distributed run on one node share its GPUs out.
    pub fn open_for_rank(name: Option<&str>, local_rank: usize) -> Result<Self> {
        let all = adapters();
        let listing = {
            if all.is_empty() {
                "wgpu found no adapter (is a Vulkan, Metal or DX12 driver installed?)".to_string()
            } else {
                let names: Vec<String> = all
                    .iter()
                    .map(|a| {
                        let i = a.get_info();
                        format!("{} ({:?}, {})", i.name, i.device_type, i.backend)
                    })
                    .collect();
                format!("adapters found: {}", names.join("; "))
            }
        };
        let chosen = match name {
            Some(wanted) => {
                let wanted = wanted.to_lowercase();
                all.into_iter()
                    .find(|a| a.get_info().name.to_lowercase().contains(&wanted))
                    .ok_or_else(|| {
                        Error::NoAdapter(format!("none is named like `{wanted}`; {listing}"))
                    })?
            }
            None => {
                let rank = |t: DeviceType| match t {
                    DeviceType::DiscreteGpu => Some(0),
                    DeviceType::IntegratedGpu => Some(1),
                    DeviceType::VirtualGpu => Some(2),
                    DeviceType::Cpu | DeviceType::Other => None,
                };
                let message = format!(
                    "no hardware GPU; {listing} (a software rasterizer is used only when named with --adapter)"
                );
                let mut hardware: Vec<(usize, Adapter)> = all
                    .into_iter()
                    .filter_map(|a| rank(a.get_info().device_type).map(|r| (r, a)))
                    .collect();
                let best = hardware
                    .iter()
                    .map(|(r, _)| *r)
                    .min()
                    .ok_or(Error::NoAdapter(message))?;
                hardware.retain(|(r, _)| *r == best);
                let nth = local_rank % hardware.len();
                hardware.swap_remove(nth).1
            }
        };
        Self::from_adapter(chosen)
    }

    /// Creates the device with every limit the adapter offers.
    pub fn from_adapter(adapter: Adapter) -> Result<Self> {
        let info = adapter.get_info();
        let limits = adapter.limits();
        // Timestamps give `backprop bench` and the tuner their times where the adapter has them;
        // a pipeline cache keeps compiled kernels between runs.
        let features =
            adapter.features() & (wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::PIPELINE_CACHE);
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("backprop"),
            required_features: features,
            required_limits: limits.clone(),
            ..Default::default()
        }))
        .map_err(|e| Error::Gpu(format!("{}: cannot create a device: {e}", info.name)))?;
        // wgpu's default for an error nobody scoped is to panic; keep the first one instead and
        // report it at the next read-back (`check_errors`).
        let errors = Arc::new(Mutex::new(None::<String>));
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut first) = sink.lock() {
                first.get_or_insert_with(|| e.to_string());
            }
        }));
        // BACKPROP_MAX_BINDING_BYTES lowers the binding size the kernels use, so the path that
        // splits wide layers across bindings can be exercised on small networks.
        let cap = env_bytes(MAX_BINDING_VAR)?;
        if cap.is_some_and(|c| c < 4) {
            return Err(Error::argument(
                MAX_BINDING_VAR,
                "must be at least 4 bytes (one value)",
            ));
        }
        let memory_budget = memory_budget(&adapter, &info)?;
        let pipeline_cache = open_pipeline_cache(&device, &info);
        let max_reduction = if info.name.to_lowercase().contains("llvmpipe") {
            LLVMPIPE_MAX_REDUCTION
        } else {
            usize::MAX
        };
        Ok(GpuContext {
            max_reduction,
            device,
            queue,
            errors,
            max_binding_bytes: cap.map_or(limits.max_storage_buffer_binding_size, |c| {
                c.min(limits.max_storage_buffer_binding_size)
            }),
            memory_budget,
            allocated: Arc::new(AtomicU64::new(0)),
            pipeline_cache,
            info,
            limits,
        })
    }

    /// The pipeline cache to compile through, where there is one.
    pub fn pipeline_cache(&self) -> Option<&wgpu::PipelineCache> {
        self.pipeline_cache.as_ref().map(|(cache, _)| cache)
    }

    /// Writes the pipeline cache back to disk (atomically), with what this run compiled. A
    /// cache that cannot be written only costs the next run its compile time, so a failure is
    /// returned for the caller to ignore or report.
    pub fn save_pipeline_cache(&self) -> Result<()> {
        let Some((cache, path)) = &self.pipeline_cache else {
            return Ok(());
        };
        let Some(data) = cache.get_data() else {
            return Ok(());
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        crate::io::write_atomic(path, |w| {
            std::io::Write::write_all(w, &data).map_err(|e| Error::io(path, e))
        })
    }

    /// Books `bytes` of device memory for `label`, or refuses (before the buffer is created)
    /// when the budget would be exceeded, naming every number. The booking lasts as long as
    /// the returned [`Reservation`].
    pub fn reserve(&self, label: &str, bytes: u64) -> Result<Reservation> {
        let budget = self.memory_budget.bytes;
        let booked = self
            .allocated
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |used| {
                used.checked_add(bytes).filter(|&total| total <= budget)
            });
        booked
            .map(|_| Reservation {
                tally: self.allocated.clone(),
                bytes,
            })
            .map_err(|used| {
            Error::Memory(format!(
                "`{label}` needs {} more of GPU memory on {}, where {} are in use of {} ({}); use smaller sizes, or set {GPU_MEMORY_VAR} if that figure is wrong",
                human(bytes),
                self.info.name,
                human(used),
                human(budget),
                self.memory_budget.source
            ))
        })
    }

    /// The bytes of the memory budget not booked yet.
    pub fn unreserved(&self) -> u64 {
        self.memory_budget
            .bytes
            .saturating_sub(self.allocated.load(Ordering::SeqCst))
    }

    /// Fails with the first error the device reported outside any error scope.
    pub fn check_errors(&self) -> Result<()> {
        match self.errors.lock().ok().and_then(|e| e.clone()) {
            Some(message) => Err(Error::Gpu(format!("{}: {message}", self.info.name))),
            None => Ok(()),
        }
    }

    /// Whether the device can time kernels with timestamp queries.
    pub fn has_timestamps(&self) -> bool {
        self.device
            .features()
            .contains(wgpu::Features::TIMESTAMP_QUERY)
    }

    /// The adapter tests, benchmarks and `validate` use: the one named by `BACKPROP_ADAPTER`,
    /// else a hardware GPU, else any adapter (a software rasterizer included). `None` when
    /// there is none, unless `BACKPROP_REQUIRE_GPU=1` (set in CI), which makes that a panic so a
    /// GPU test can never pass by skipping.
    pub fn for_tests() -> Option<Self> {
        let named = std::env::var("BACKPROP_ADAPTER").ok();
        let opened = match named.as_deref() {
            Some(name) => Self::open(Some(name)),
            None => Self::open(None).or_else(|_| Self::open(Some(""))),
        };
        match opened {
            Ok(ctx) => Some(ctx),
            Err(e) if std::env::var("BACKPROP_REQUIRE_GPU").is_ok_and(|v| v == "1") => {
                panic!("BACKPROP_REQUIRE_GPU=1 but no GPU adapter opens: {e}")
            }
            Err(e) => {
                eprintln!("skipping GPU work: {e}");
                None
            }
        }
    }

    /// `name (type, API)`, e.g. `llvmpipe (LLVM 15.0.6, 256 bits) (Cpu, vulkan)`.
    pub fn describe(&self) -> String {
        format!(
            "gpu: {} ({:?}, {})",
            self.info.name, self.info.device_type, self.info.backend
        )
    }
}

/// Device memory booked for one buffer; given back when dropped with it.
pub struct Reservation {
    tally: Arc<AtomicU64>,
    bytes: u64,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.tally.fetch_sub(self.bytes, Ordering::SeqCst);
    }
}
