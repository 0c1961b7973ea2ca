//! `backprop bench`: the full training step timed on the CPU and the GPU, size by size.

use std::time::Duration;

use super::outln;
use anyhow::Result;
use serde::Serialize;

use backprop::backend::{KernelTime, KernelTimes};
use backprop::bench::{
    fp32_peak, parse_sizes, problem, time_steps, time_steps_together, BenchSize, Timing,
};
use backprop::comm::{Communicator, Local};
use backprop::device::CpuPrecision;
use backprop::guard::memory::{host_available, MemoryPlan};
use backprop::mlp::{create_backend, Device, Env};
use backprop::parallel::Parallel;
use backprop::Backend;

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
    /// Under mpirun/srun (built with `--features mpi`): the ways of sharing a step to time.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "data,hidden")]
    parallel: Vec<Parallel>,
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

pub fn run(args: BenchArgs, comm: &dyn Communicator) -> Result<()> {
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
    if comm.size() > 1 {
        return distributed(&args, &sizes, comm);
    }
    // The GPU is opened once (and shared by every size's backend) before any size is timed.
    let device = args.backend.contains(&BenchBackend::Gpu).then(|| {
        backprop::device::shared_gpu(args.adapter.as_deref(), 0, !args.no_tune)
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
            if let (BenchBackend::Gpu, Some(Ok(device))) = (which, &device) {
                peak = fp32_peak(&device.ctx.info.name);
            }
            let created = match (which, &device) {
                (BenchBackend::Gpu, Some(Err(e))) => Err(e.clone()),
                _ => parallel_backend(
                    &args,
                    network,
                    (which, Parallel::Data),
                    size.records,
                    &Local,
                )
                .map_err(|e| format!("does not fit: {e}")),
            };
            if let Ok(backend) = &created {
                row.device = backend.description();
            }
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

/// One line of the distributed table: a size, a backend and a way of sharing the step.
#[derive(Serialize)]
struct DistributedRow {
    size: String,
    layer_sizes: Vec<usize>,
    parallel: &'static str,
    backend: &'static str,
    ranks: usize,
    /// Rank 0's device.
    device: String,
    #[serde(flatten)]
    timing: Option<Timing>,
    /// The same step in one process (rank 0 alone, the others waiting).
    one_process_ms: Option<f64>,
    /// `one_process_ms / (ranks · median_ms)`: 1 is perfect strong scaling.
    scaling_efficiency: Option<f64>,
    /// Rank 0's time in collectives per timed step (waiting for slower ranks included).
    communication_ms: Option<f64>,
    communication_percent: Option<f64>,
    /// What rank 0 hands to the collectives per step.
    bytes_per_step: Option<f64>,
    error: Option<String>,
}

/// `bench` under mpirun: for each size, backend and `--parallel` mode, the step in one process
/// (rank 0 alone), then over every rank; rank 0 prints.
fn distributed(args: &BenchArgs, sizes: &[BenchSize], comm: &dyn Communicator) -> Result<()> {
    let budget = Duration::try_from_secs_f64(args.budget).unwrap_or(Duration::MAX);
    let mut rows = Vec::new();
    for size in sizes {
        let plan = problem_plan(size, args.backend.contains(&BenchBackend::Cpu))?;
        plan.check("host memory", host_available()?.as_ref())?;
        let (network, x, target) = problem(size)?;
        for &which in &args.backend {
            for &mode in &args.parallel {
                let mut row = DistributedRow {
                    size: size.label.clone(),
                    layer_sizes: size.layer_sizes.clone(),
                    parallel: mode.name(),
                    backend: match which {
                        BenchBackend::Cpu => "cpu",
                        BenchBackend::Gpu => "gpu",
                    },
                    ranks: comm.size(),
                    device: String::new(),
                    timing: None,
                    one_process_ms: None,
                    scaling_efficiency: None,
                    communication_ms: None,
                    communication_percent: None,
                    bytes_per_step: None,
                    error: None,
                };
                // Every rank meets the same refusals (sizes, hidden units per rank), so all
                // skip the same rows; a failure of one rank's device ends the run.
                if let Err(e) = time_distributed(
                    args,
                    &network,
                    (&x, &target),
                    which,
                    mode,
                    comm,
                    budget,
                    &mut row,
                ) {
                    match e.downcast_ref::<backprop::Error>() {
                        Some(backprop::Error::Argument { .. }) => {
                            row.error = Some(format!("{e:#}"))
                        }
                        _ => return Err(e),
                    }
                }
                if comm.writes_outputs() && !args.json {
                    print_distributed_row(&row, rows.is_empty())?;
                }
                rows.push(row);
            }
        }
    }
    if comm.writes_outputs() && args.json {
        outln!("{}", serde_json::to_string_pretty(&rows)?)?;
    }
    Ok(())
}

/// The facade's backend `which` (f32 on the CPU; on the GPU the host's `local_rank`-th, or
/// `--adapter`), for steps of `records`, wrapped for `mode` when `comm` has several ranks.
fn parallel_backend<'a>(
    args: &BenchArgs,
    network: &backprop::Network<f64>,
    (which, mode): (BenchBackend, Parallel),
    records: usize,
    comm: &'a dyn Communicator,
) -> backprop::Result<Box<dyn Backend + 'a>> {
    let device = match which {
        BenchBackend::Cpu => Device::cpu(),
        BenchBackend::Gpu => Device::gpu(args.adapter.as_deref()),
    };
    let env = Env {
        comm,
        ..Env::quiet()
    };
    create_backend(
        (&device, !args.no_tune),
        network,
        (CpuPrecision::F32, records),
        mode,
        &env,
    )
}

#[allow(clippy::too_many_arguments)]
fn time_distributed(
    args: &BenchArgs,
    network: &backprop::Network<f64>,
    (x, target): (&ndarray::Array2<f64>, &ndarray::Array2<f64>),
    which: BenchBackend,
    mode: Parallel,
    comm: &dyn Communicator,
    budget: Duration,
    row: &mut DistributedRow,
) -> Result<()> {
    let records = x.nrows();
    // One process first: rank 0 alone, the others waiting at the barrier.
    let mut one = [0.0];
    if comm.rank() == 0 {
        // Rank 0 is its host's first process: the GPU it takes alone is the one it takes below.
        let mut single = parallel_backend(args, network, (which, Parallel::Data), records, &Local)?;
        one[0] = time_steps(single.as_mut(), x, target, args.steps as usize, budget)?.median_ms;
    }
    comm.barrier();
    comm.broadcast_f64(&mut one)?;
    let mut backend = parallel_backend(args, network, (which, mode), records, comm)?;
    row.device = backend.description();
    let (timing, traffic) = time_steps_together(
        backend.as_mut(),
        x,
        target,
        args.steps as usize,
        budget,
        comm,
    )?;
    let steps = timing.steps as f64;
    let communication_ms = traffic.seconds * 1e3 / steps;
    row.one_process_ms = Some(one[0]);
    row.scaling_efficiency = Some(one[0] / (comm.size() as f64 * timing.median_ms));
    row.communication_ms = Some(communication_ms);
    row.communication_percent = Some(100.0 * communication_ms / timing.median_ms);
    row.bytes_per_step = Some(traffic.bytes as f64 / steps);
    row.timing = Some(timing);
    Ok(())
}

fn print_distributed_row(row: &DistributedRow, header: bool) -> Result<()> {
    if header {
        outln!(
            "{:<18} {:<8} {:<7} {:>5} {:>11} {:>11} {:>10} {:>10} {:>7} {:>12}  device (rank 0)",
            "size",
            "parallel",
            "backend",
            "ranks",
            "median ms",
            "1 proc ms",
            "efficiency",
            "comm ms",
            "comm %",
            "bytes/step"
        )?;
    }
    let opt =
        |v: Option<f64>, digits: usize| v.map_or("-".to_string(), |v| format!("{v:.digits$}"));
    match &row.timing {
        Some(t) => outln!(
            "{:<18} {:<8} {:<7} {:>5} {:>11.4} {:>11} {:>10} {:>10} {:>7} {:>12}  {}",
            row.size,
            row.parallel,
            row.backend,
            row.ranks,
            t.median_ms,
            opt(row.one_process_ms, 4),
            opt(row.scaling_efficiency.map(|e| 100.0 * e), 1).to_string() + " %",
            opt(row.communication_ms, 4),
            opt(row.communication_percent, 1),
            opt(row.bytes_per_step, 0),
            row.device
        ),
        None => outln!(
            "{:<18} {:<8} {:<7} {:>5} {}",
            row.size,
            row.parallel,
            row.backend,
            row.ranks,
            row.error.as_deref().unwrap_or("not measured")
        ),
    }
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
