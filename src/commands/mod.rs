//! One module per subcommand; each turns parsed flags into library calls and prints the result.

pub mod bench;
pub mod info;
pub mod predict;
pub mod step;
pub mod train;
pub mod tune;
pub mod validate;

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Result;

use backprop::comm::{Communicator, Local};
use backprop::device::{BackendChoice, CpuPrecision};
use backprop::{Backend, Network};

/// Set once standard output's reader has gone away.
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Whether `e` says the reader of a pipe has gone (`backprop train | head -1`).
pub fn is_broken_pipe(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::BrokenPipe
}

/// Writes to standard output with `write`. A closed pipe ends the output: this and every later
/// write is dropped, and the command goes on to finish its work (its files are saved) and exits
/// 0, as a filter's reader asked for no more. Any other failure (a full disk) is an error.
pub fn to_stdout(write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> Result<()> {
    if STDOUT_CLOSED.load(Ordering::SeqCst) {
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    match write(&mut out).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if is_broken_pipe(&e) => {
            STDOUT_CLOSED.store(true, Ordering::SeqCst);
            Ok(())
        }
        Err(e) => Err(anyhow::anyhow!("writing to standard output: {e}")),
    }
}

/// `println!` through [`to_stdout`]: `outln!(...)?`.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::commands::to_stdout(|out| writeln!(out, $($arg)*))
    };
}
pub(crate) use outln;

/// `eprintln!` that never panics: with standard error closed there is nobody to tell. The line
/// goes out in one write, so that the ranks of a distributed run sharing a terminal or a pipe
/// do not interleave their lines mid-line.
macro_rules! errln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let mut line = format!($($arg)*);
        line.push('\n');
        let _ = std::io::stderr().write_all(line.as_bytes());
    }};
}
pub(crate) use errln;

/// The backend flags every computing subcommand shares.
#[derive(clap::Args)]
pub struct BackendArgs {
    /// Where to compute: a hardware GPU when present (auto), the GPU, or the CPU.
    #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
    backend: BackendChoice,
    /// The GPU adapter to use: a case-insensitive part of its name, e.g. `llvmpipe`
    /// (`backprop info` lists them).
    #[arg(long, value_name = "NAME", env = "BACKPROP_ADAPTER")]
    adapter: Option<String>,
    /// Use the heuristic GEMM variants instead of timing each on this GPU (see `backprop tune`).
    #[arg(long)]
    no_tune: bool,
}

/// The tuning a command's GPU does: on unless `--no-tune`, cached in the user's cache
/// directory, each newly tuned shape said in one line on stderr.
pub fn tuning(no_tune: bool, retune: bool) -> backprop::gpu::tuning::TuningOptions {
    backprop::gpu::tuning::TuningOptions {
        enabled: !no_tune,
        retune,
        force: None,
        cache_dir: backprop::tune::cache::default_dir(),
        notify: Some(Box::new(|line: &str| errln!("{line}"))),
    }
}

impl BackendArgs {
    /// Whether the computing may happen in host memory (the CPU backend, or `auto` falling
    /// back to it): the memory planner then counts the backend's copies on the host.
    pub fn may_compute_on_host(&self) -> bool {
        self.backend != BackendChoice::Gpu
    }

    /// Whether `--backend cpu` was asked for.
    pub fn is_cpu(&self) -> bool {
        self.backend == BackendChoice::Cpu
    }

    /// Creates the backend, to step with batches of up to `batch` records, and says on stderr
    /// which one computes (and why, for `auto`).
    pub fn create(
        &self,
        network: &Network<f64>,
        precision: CpuPrecision,
        batch: usize,
    ) -> Result<Box<dyn Backend>> {
        self.create_for_rank(network, precision, batch, &Local)
    }

    /// [`BackendArgs::create`] for a rank of a distributed run: without `--adapter`, the
    /// host's GPUs are shared out by local rank; the stderr line names the rank.
    pub fn create_for_rank(
        &self,
        network: &Network<f64>,
        precision: CpuPrecision,
        batch: usize,
        comm: &dyn Communicator,
    ) -> Result<Box<dyn Backend>> {
        if self.adapter.as_deref().is_some_and(|a| a.trim().is_empty()) {
            return Err(backprop::Error::Argument {
                flag: "--adapter".into(),
                message:
                    "an empty name matches every adapter; name one (`backprop info` lists them)"
                        .into(),
            }
            .into());
        }
        let selected = backprop::device::create(
            self.backend,
            (self.adapter.as_deref(), comm.local_rank()),
            network,
            precision,
            batch,
            tuning(self.no_tune, false),
        )?;
        if let Some(note) = selected.note {
            errln!("{note}");
        }
        match comm.size() {
            1 => errln!("backend: {}", selected.backend.description()),
            n => errln!(
                "rank {} of {n}: backend: {}",
                comm.rank(),
                selected.backend.description()
            ),
        }
        Ok(selected.backend)
    }
}
