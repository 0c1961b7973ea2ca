//! `backprop tune`: every GEMM variant of a training step's products, timed on this GPU and
//! checked against the f64 reference, for the sizes asked; the winners go to the tuning cache
//! that `train` and `bench` read.

use anyhow::Result;
use serde::Serialize;

use backprop::bench::{parse_sizes, problem};
use backprop::gpu::context::GpuContext;
use backprop::gpu::tuning::Choice;
use backprop::gpu::{GpuBackend, GpuDevice, GpuOptions};
use backprop::Backend;

use super::{errln, outln};

#[derive(clap::Args)]
pub struct TuneArgs {
    /// Sizes: S, M, L, XL (GPU.md's) or BxIxHxO (records x inputs x hidden... x outputs).
    #[arg(long, default_value = "S,M")]
    sizes: String,
    /// The GPU adapter: a case-insensitive part of its name (`backprop info` lists them).
    #[arg(long, value_name = "NAME", env = "BACKPROP_ADAPTER")]
    adapter: Option<String>,
    /// Measure again even where the cache has a winner.
    #[arg(long)]
    retune: bool,
    /// Print the decisions as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Row {
    size: String,
    #[serde(flatten)]
    choice: Choice,
}

pub fn run(args: TuneArgs) -> Result<()> {
    let sizes = parse_sizes(&args.sizes)?;
    let ctx = GpuContext::open(args.adapter.as_deref())?;
    errln!("tuning on {}", ctx.describe());
    let device = GpuDevice::with_tuning(ctx, super::tuning(false, args.retune))?;
    let mut rows = Vec::new();
    for size in &sizes {
        let (network, x, target) = problem(size)?;
        let options = GpuOptions::for_batch(&device.ctx, &size.layer_sizes, size.records)?;
        let mut backend = GpuBackend::new(device.clone(), &network, options)?;
        let before = device.choices().len();
        // One step builds the step's plan, and with it every product's choice.
        backend.train_steps(x.view(), target.view(), 0.01, 1)?;
        backend.synchronize()?;
        rows.extend(device.choices().into_iter().skip(before).map(|choice| Row {
            size: size.label.clone(),
            choice,
        }));
    }
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&rows)?)?;
        return Ok(());
    }
    outln!(
        "{:<18} {:<18} {:<20} {:<26} {:>11} {:>10}  result",
        "size",
        "product",
        "M x N x K",
        "candidate",
        "median ms",
        "GFLOP/s"
    )?;
    for row in &rows {
        let c = &row.choice;
        let flops = 2.0 * c.m as f64 * c.n as f64 * c.k as f64;
        for m in &c.measurements {
            let verdict = match (&m.rejected, m.candidate == c.winner) {
                (Some(why), _) => format!("rejected: {why}"),
                (None, true) if c.cached => "winner (cached)".into(),
                (None, true) => "winner".into(),
                (None, false) => String::new(),
            };
            let gflops = match (c.what.as_str(), m.median_ms) {
                ("output_path", _) | (_, None) => "-".to_string(),
                (_, Some(ms)) => format!("{:.1}", flops / (ms * 1e-3) / 1e9),
            };
            outln!(
                "{:<18} {:<18} {:<20} {:<26} {:>11} {:>10}  {verdict}",
                row.size,
                c.what,
                format!("{}x{}x{}", c.m, c.n, c.k),
                m.candidate,
                m.median_ms.map_or("-".into(), |ms| format!("{ms:.4}")),
                gflops
            )?;
        }
    }
    Ok(())
}
