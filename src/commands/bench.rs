//! `backprop bench`: the full training step timed on the CPU and the GPU, size by size.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use serde::Serialize;

use backprop::backend::KernelTimes;
use backprop::bench::{fp32_peak, parse_sizes, problem, time_steps, Timing};
use backprop::gpu::context::GpuContext;
use backprop::gpu::{GpuBackend, GpuDevice, GpuOptions};
use backprop::{Backend, CpuBackend};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchBackend {
    Cpu,
    Gpu,
}

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Sizes: S, M, L, XL (GPU.md's) or BxIxHxO (records x inputs x hidden... x outputs).
    #[arg(long, default_value = "S,M")]
    sizes: String,
    /// Backends to time, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "cpu,gpu")]
    backend: Vec<BenchBackend>,
    /// The GPU adapter: a case-insensitive part of its name (`backprop info` lists them).
    #[arg(long, value_name = "NAME", env = "BACKPROP_ADAPTER")]
    adapter: Option<String>,
    /// Timed samples per size and backend (each of one or more steps; see BENCHMARKS.md).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    steps: u32,
    /// Seconds one size may spend on one backend before sampling stops (after three samples).
    #[arg(long, default_value_t = 30.0)]
    budget: f64,
    /// Print the rows as JSON.
    #[arg(long)]
    json: bool,
}

/// One line of the table (and of `--json`): every unit in its key.
#[derive(Serialize)]
struct Row {
    size: String,
    records: usize,
    layer_sizes: Vec<usize>,
    backend: &'static str,
    device: String,
    flops_per_step: f64,
    #[serde(flatten)]
    timing: Option<Timing>,
    gflop_per_s: Option<f64>,
    percent_of_fp32_peak: Option<f64>,
    gpu_speedup_over_cpu: Option<f64>,
    pytorch_h100_median_ms: Option<f64>,
    kernel_ms: Option<serde_json::Map<String, serde_json::Value>>,
    error: Option<String>,
}

/// MemAvailable from /proc/meminfo, where there is one.
fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn measure(
    backend: &mut dyn Backend,
    args: &BenchArgs,
    x: &ndarray::Array2<f64>,
    target: &ndarray::Array2<f64>,
) -> Result<(Timing, Option<KernelTimes>)> {
    let budget = Duration::from_secs_f64(args.budget);
    let timing = time_steps(backend, x, target, args.steps as usize, budget)?;
    let kernels = backend.kernel_times(x.view(), target.view(), 0.01)?;
    Ok((timing, kernels))
}

pub fn run(args: BenchArgs) -> Result<()> {
    if !(args.budget.is_finite() && args.budget >= 0.0) {
        return Err(backprop::Error::Argument {
            flag: "--budget".into(),
            message: format!("{} is not a number of seconds >= 0", args.budget),
        }
        .into());
    }
    let sizes = parse_sizes(&args.sizes)?;
    let device: Option<std::result::Result<Arc<GpuDevice>, String>> =
        args.backend.contains(&BenchBackend::Gpu).then(|| {
            GpuContext::open(args.adapter.as_deref())
                .map(GpuDevice::new)
                .map_err(|e| e.to_string())
        });
    let mut rows: Vec<Row> = Vec::new();
    for size in &sizes {
        let (network, x, target) = problem(size)?;
        let mut cpu_ms = None;
        for &which in &args.backend {
            let mut row = Row {
                size: size.label.clone(),
                records: size.records,
                layer_sizes: size.layer_sizes.clone(),
                backend: match which {
                    BenchBackend::Cpu => "cpu",
                    BenchBackend::Gpu => "gpu",
                },
                device: String::new(),
                flops_per_step: size.flops_per_step(),
                timing: None,
                gflop_per_s: None,
                percent_of_fp32_peak: None,
                gpu_speedup_over_cpu: None,
                pytorch_h100_median_ms: size.pytorch_h100_ms(),
                kernel_ms: None,
                error: None,
            };
            let mut peak = None;
            let created: std::result::Result<Box<dyn Backend>, String> = match which {
                BenchBackend::Cpu => {
                    row.device = "cpu (f32)".into();
                    match available_memory() {
                        Some(free) if size.cpu_bytes() > free => Err(format!(
                            "does not fit: needs {:.1} GiB, {:.1} GiB available",
                            size.cpu_bytes() as f64 / (1u64 << 30) as f64,
                            free as f64 / (1u64 << 30) as f64
                        )),
                        _ => Ok(Box::new(CpuBackend::<f32>::new(&network))),
                    }
                }
                BenchBackend::Gpu => match &device {
                    Some(Ok(device)) => {
                        row.device = device.ctx.describe();
                        peak = fp32_peak(&device.ctx.info.name);
                        let options = GpuOptions {
                            max_records: size.records,
                            ..GpuOptions::default()
                        };
                        GpuBackend::new(device.clone(), &network, options)
                            .map(|b| Box::new(b) as Box<dyn Backend>)
                            .map_err(|e| format!("does not fit: {e}"))
                    }
                    Some(Err(e)) => Err(e.clone()),
                    None => Err("no GPU opened".into()),
                },
            };
            match created.and_then(|mut b| {
                measure(b.as_mut(), &args, &x, &target).map_err(|e| e.to_string())
            }) {
                Ok((timing, kernels)) => {
                    let seconds = timing.median_ms * 1e-3;
                    row.gflop_per_s = Some(size.flops_per_step() / seconds / 1e9);
                    row.percent_of_fp32_peak =
                        peak.map(|p| 100.0 * size.flops_per_step() / seconds / p);
                    match which {
                        BenchBackend::Cpu => cpu_ms = Some(timing.median_ms),
                        BenchBackend::Gpu => {
                            row.gpu_speedup_over_cpu = cpu_ms.map(|c| c / timing.median_ms)
                        }
                    }
                    row.kernel_ms = kernels.map(|k| {
                        k.into_iter()
                            .map(|(name, ms)| (name, serde_json::json!(ms)))
                            .collect()
                    });
                    row.timing = Some(timing);
                }
                Err(e) => row.error = Some(e),
            }
            if !args.json {
                print_row(&row, rows.is_empty());
            }
            rows.push(row);
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    }
    Ok(())
}

fn print_row(row: &Row, header: bool) {
    if header {
        println!(
            "{:<18} {:<7} {:>11} {:>21} {:>9} {:>7} {:>8}  device",
            "size", "backend", "median ms", "min - max ms", "GFLOP/s", "% peak", "GPU/CPU"
        );
    }
    let opt =
        |v: Option<f64>, digits: usize| v.map_or("-".to_string(), |v| format!("{v:.digits$}"));
    match &row.timing {
        Some(t) => println!(
            "{:<18} {:<7} {:>11.4} {:>21} {:>9} {:>7} {:>8}  {}",
            row.size,
            row.backend,
            t.median_ms,
            format!("{:.4} - {:.4}", t.min_ms, t.max_ms),
            opt(row.gflop_per_s, 1),
            opt(row.percent_of_fp32_peak, 1),
            opt(row.gpu_speedup_over_cpu, 2),
            row.device
        ),
        None => println!(
            "{:<18} {:<7} {}",
            row.size,
            row.backend,
            row.error.as_deref().unwrap_or("not measured")
        ),
    }
    if let Some(kernels) = &row.kernel_ms {
        let parts: Vec<String> = kernels
            .iter()
            .map(|(k, v)| format!("{k} {:.4}", v.as_f64().unwrap_or(f64::NAN)))
            .collect();
        println!(
            "{:<18} {:<7} kernels (ms, one step): {}",
            "",
            "",
            parts.join(", ")
        );
    }
}
