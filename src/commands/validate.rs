//! `backprop validate`: random problems of awkward shapes on a backend against the f64 CPU
//! reference, as a table; exits non-zero on any failure.

use super::{errln, outln};
use anyhow::{bail, Result};

use backprop::gpu::context::GpuContext;
use backprop::gpu::gemm::select::candidates;
use backprop::gpu::tuning::TuningOptions;
use backprop::gpu::{GpuBackend, GpuDevice, GpuOptions};
use backprop::validate::{cases, check_case, problem, Row};
use backprop::{Backend, CpuBackend};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ValidateBackend {
    /// The GPU kernels (with sentinel guards around every buffer).
    Gpu,
    /// The CPU backend in f32, against the same f64 reference.
    Cpu,
}

#[derive(clap::Args)]
pub struct ValidateArgs {
    #[arg(long, value_enum, default_value_t = ValidateBackend::Gpu)]
    backend: ValidateBackend,
    /// The GPU adapter: a case-insensitive part of its name (`backprop info` lists them).
    #[arg(long, value_name = "NAME", env = "BACKPROP_ADAPTER")]
    adapter: Option<String>,
    /// How many problems: the first eight are fixed awkward shapes, the rest random.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    cases: u32,
    /// Seed of the random problems.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Run every case once per GEMM variant the adapter can run, alternating the fused and
    /// the separate output layer, instead of once with the heuristic choice.
    #[arg(long)]
    all_variants: bool,
    /// Print the rows as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: ValidateArgs) -> Result<()> {
    let gpu = args.backend == ValidateBackend::Gpu;
    let open = |force| -> Result<std::sync::Arc<GpuDevice>> {
        let ctx = GpuContext::open(args.adapter.as_deref())?;
        let options = TuningOptions {
            force,
            ..TuningOptions::default()
        };
        Ok(GpuDevice::with_tuning(ctx, options)?)
    };
    // One device per forced variant (or one with the heuristic choice); none for the CPU.
    let devices: Vec<(String, Option<std::sync::Arc<GpuDevice>>)> = match (gpu, args.all_variants) {
        (false, _) => vec![(String::new(), None)],
        (true, false) => vec![(String::new(), Some(open(None)?))],
        (true, true) => {
            let limits = open(None)?.ctx.limits.clone();
            candidates(&limits)
                .into_iter()
                .enumerate()
                .map(|(i, config)| {
                    let fused = i % 2 == 0;
                    let label = format!(
                        " [{}, {} output layer]",
                        config.name(),
                        if fused { "fused" } else { "separate" }
                    );
                    Ok((label, Some(open(Some((config, fused)))?)))
                })
                .collect::<Result<_>>()?
        }
    };
    let description = devices[0]
        .1
        .as_ref()
        .map_or_else(|| "cpu (f32)".to_string(), |d| d.ctx.describe());
    errln!("backend: {description}");
    let mut rows: Vec<Row> = Vec::new();
    for (label, device) in &devices {
        for (i, case) in cases(args.cases as usize, args.seed).iter().enumerate() {
            let (network, x, target) = problem(case, args.seed.wrapping_add(i as u64))?;
            let check = |backend: &mut dyn Backend| {
                check_case(backend, case, &network, x.view(), target.view(), 0.5)
            };
            let checked = match device {
                Some(device) => {
                    let options = GpuOptions {
                        guard_regions: true,
                        max_records: case.records,
                    };
                    let mut gpu = GpuBackend::new(device.clone(), &network, options)?;
                    let checked = check(&mut gpu)?;
                    // No kernel of any variant wrote outside its regions.
                    gpu.check_guards()?;
                    checked
                }
                None => check(&mut CpuBackend::<f32>::new(&network))?,
            };
            rows.extend(checked.into_iter().map(|mut row| {
                row.case.push_str(label);
                row
            }));
        }
    }
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&rows)?)?;
    } else {
        print_table(&rows)?;
    }
    let failed = rows.iter().filter(|r| !r.pass).count();
    if failed > 0 {
        bail!(
            "{failed} of {} comparisons exceed their tolerance",
            rows.len()
        );
    }
    errln!("all {} comparisons within tolerance", rows.len());
    Ok(())
}

fn print_table(rows: &[Row]) -> Result<()> {
    let case_width = rows.iter().map(|r| r.case.len()).max().unwrap_or(4).max(4);
    outln!(
        "{:<case_width$}  {:<16}  {:>12}  {:>12}  {:>10}  result",
        "case",
        "tensor",
        "max abs err",
        "max rel err",
        "tolerance"
    )?;
    for r in rows {
        outln!(
            "{:<case_width$}  {:<16}  {:>12.3e}  {:>12.3e}  {:>10.2e}  {}",
            r.case,
            r.tensor,
            r.max_abs_error,
            r.max_rel_error,
            r.tolerance,
            if r.pass { "pass" } else { "FAIL" }
        )?;
    }
    Ok(())
}
