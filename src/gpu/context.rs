//! Adapter discovery and device setup: which GPUs wgpu reaches, which one we take, and a device
//! created with the adapter's own limits (wgpu's defaults are far lower, see GPU.md).

use std::sync::{Arc, Mutex};

use wgpu::{Adapter, AdapterInfo, Backends, DeviceType, Limits};

use crate::error::{Error, Result};

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
}

impl GpuContext {
    /// Opens an adapter: the one whose name contains `name` (case-insensitive) if given, else the
    /// best hardware GPU (discrete, then integrated, then virtual). Software rasterizers are
    /// taken only by name: they run our kernels slower than the CPU backend does.
    pub fn open(name: Option<&str>) -> Result<Self> {
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
                all.into_iter()
                    .filter_map(|a| rank(a.get_info().device_type).map(|r| (r, a)))
                    .min_by_key(|(r, _)| *r)
                    .map(|(_, a)| a)
                    .ok_or(Error::NoAdapter(message))?
            }
        };
        Self::from_adapter(chosen)
    }

    /// Creates the device with every limit the adapter offers.
    pub fn from_adapter(adapter: Adapter) -> Result<Self> {
        let info = adapter.get_info();
        let limits = adapter.limits();
        // Timestamps give `backprop bench` its per-kernel times where the adapter has them.
        let features = adapter.features() & wgpu::Features::TIMESTAMP_QUERY;
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
        let cap = std::env::var("BACKPROP_MAX_BINDING_BYTES")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|&v| v >= 4);
        Ok(GpuContext {
            device,
            queue,
            errors,
            max_binding_bytes: cap.map_or(limits.max_storage_buffer_binding_size, |c| {
                c.min(limits.max_storage_buffer_binding_size)
            }),
            info,
            limits,
        })
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
