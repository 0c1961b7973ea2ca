//! `backprop bench`: the full training step timed on the CPU and the GPU, size by size.

use std::sync::Arc;
use std::time::Duration;

use super::outln;
use anyhow::Result;
use serde::Serialize;

use backprop::backend::{KernelTime, KernelTimes};
use backprop::bench::{fp32_peak, parse_sizes, problem, time_steps, BenchSize, Timing};
use backprop::gpu::context::GpuContext;
use backprop::gpu::{GpuBackend, GpuDevice, GpuOptions};
use backprop::guard::memory::{host_available, MemoryPlan};
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
    #[arg(long, default_value_t = 30.0, allow_hyphen_values = true)]
    budget: f64,
    /// Use the heuristic GEMM variants instead of tuning them on this GPU.
    #[arg(long)]
    no_tune: bool,
    /// Print the rows as JSON.
    #[arg(long)]
    json: bool,
}

/// One kernel of a step, as `bench` reports it.
#[derive(Serialize)]
struct KernelRow {
    kernel: String,
    variant: Option<String>,
    ms: f64,
    gflop_per_s: Option<f64>,
    percent_of_fp32_peak: Option<f64>,
}

impl KernelRow {
    fn new(k: KernelTime, peak: Option<f64>) -> Self {
        let per_s = (k.flops > 0.0 && k.ms > 0.0).then(|| k.flops / (k.ms * 1e-3));
        KernelRow {
            kernel: k.kernel,
            variant: k.variant,
            ms: k.ms,
            gflop_per_s: per_s.map(|f| f / 1e9),
            percent_of_fp32_peak: per_s.zip(peak).map(|(f, p)| 100.0 * f / p),
        }
    }
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
    /// Each kernel of one step (timestamp queries): its GEMM variant, time and speed.
    kernels: Option<Vec<KernelRow>>,
    error: Option<String>,
}

fn measure(
    backend: &mut dyn Backend,
    args: &BenchArgs,
    x: &ndarray::Array2<f64>,
    target: &ndarray::Array2<f64>,
) -> Result<(Timing, Option<KernelTimes>)> {
    let budget = Duration::try_from_secs_f64(args.budget).unwrap_or(Duration::MAX);
    let timing = time_steps(backend, x, target, args.steps as usize, budget)?;
    let kernels = backend.kernel_times(x.view(), target.view(), 0.01)?;
    Ok((timing, kernels))
}

/// The host memory one size needs: the random problem (network and batch in f64) and, when the
/// CPU is benchmarked, its backend's copies and activations.
fn problem_plan(size: &BenchSize, cpu: bool) -> backprop::Result<MemoryPlan> {
    let mut plan = backprop::backend::memory_plan(&size.layer_sizes, size.records, 4, cpu)?;
    let (inputs, outputs) = (
        size.layer_sizes[0],
        size.layer_sizes[size.layer_sizes.len() - 1],
    );
    plan.add(
        "the batch (f64)",
        &[size.records, inputs.saturating_add(outputs)],
        8,
    )?;
    Ok(plan)
}

pub fn run(args: BenchArgs) -> Result<()> {
    if !(args.budget.is_finite() && args.budget >= 0.0)
        || Duration::try_from_secs_f64(args.budget).is_err()
    {
        return Err(backprop::Error::Argument {
            flag: "--budget".into(),
            message: format!(
                "{:e} is not a number of seconds from 0 to 1e19",
                args.budget
            ),
        }
        .into());
    }
    let sizes = parse_sizes(&args.sizes)?;
    let device: Option<std::result::Result<Arc<GpuDevice>, String>> =
        args.backend.contains(&BenchBackend::Gpu).then(|| {
            GpuContext::open(args.adapter.as_deref())
                .and_then(|ctx| GpuDevice::with_tuning(ctx, super::tuning(args.no_tune, false)))
                .map_err(|e| e.to_string())
        });
    let mut rows: Vec<Row> = Vec::new();
    for size in &sizes {
        // The problem's arrays and, for the CPU, the backend's copies: refused as a row of the
        // table (the run goes on) before anything is allocated.
        let fits = problem_plan(size, args.backend.contains(&BenchBackend::Cpu))
            .and_then(|plan| plan.check("host memory", host_available()?.as_ref()));
        let problem = fits.and_then(|()| problem(size));
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
                kernels: None,
                error: None,
            };
            let mut peak = None;
            let (network, x, target) = match &problem {
                Ok(p) => p,
                Err(e) => {
                    row.error = Some(format!("does not fit: {e}"));
                    if !args.json {
                        print_row(&row, rows.is_empty())?;
                    }
                    rows.push(row);
                    continue;
                }
            };
            let created: std::result::Result<Box<dyn Backend>, String> = match which {
                BenchBackend::Cpu => {
                    row.device = "cpu (f32)".into();
                    Ok(Box::new(CpuBackend::<f32>::new(network)))
                }
                BenchBackend::Gpu => match &device {
                    Some(Ok(device)) => {
                        row.device = device.ctx.describe();
                        peak = fp32_peak(&device.ctx.info.name);
                        let options = GpuOptions {
                            max_records: size.records,
                            ..GpuOptions::default()
                        };
                        GpuBackend::new(device.clone(), network, options)
                            .map(|b| Box::new(b) as Box<dyn Backend>)
                            .map_err(|e| format!("does not fit: {e}"))
                    }
                    Some(Err(e)) => Err(e.clone()),
                    None => Err("no GPU opened".into()),
                },
            };
            match created
                .and_then(|mut b| measure(b.as_mut(), &args, x, target).map_err(|e| e.to_string()))
            {
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
                    row.kernels =
                        kernels.map(|k| k.into_iter().map(|k| KernelRow::new(k, peak)).collect());
                    row.timing = Some(timing);
                }
                Err(e) => row.error = Some(e),
            }
            if !args.json {
                print_row(&row, rows.is_empty())?;
            }
            rows.push(row);
        }
    }
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&rows)?)?;
    }
    Ok(())
}

fn print_row(row: &Row, header: bool) -> Result<()> {
    if header {
        outln!(
            "{:<18} {:<7} {:>11} {:>21} {:>9} {:>7} {:>8}  device",
            "size",
            "backend",
            "median ms",
            "min - max ms",
            "GFLOP/s",
            "% peak",
            "GPU/CPU"
        )?;
    }
    let opt =
        |v: Option<f64>, digits: usize| v.map_or("-".to_string(), |v| format!("{v:.digits$}"));
    let line = match &row.timing {
        Some(t) => outln!(
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
        None => outln!(
            "{:<18} {:<7} {}",
            row.size,
            row.backend,
            row.error.as_deref().unwrap_or("not measured")
        ),
    };
    line?;
    for k in row.kernels.iter().flatten() {
        let opt =
            |v: Option<f64>, digits: usize| v.map_or("-".to_string(), |v| format!("{v:.digits$}"));
        outln!(
            "{:<18} {:<7}   {:<20} {:<24} {:>9.4} ms {:>9} GFLOP/s {:>6} % peak",
            "",
            "",
            k.kernel,
            k.variant.as_deref().unwrap_or("element-wise"),
            k.ms,
            opt(k.gflop_per_s, 1),
            opt(k.percent_of_fp32_peak, 1)
        )?;
    }
    Ok(())
}
