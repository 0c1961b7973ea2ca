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

use backprop::comm::Local;
use backprop::device::{BackendChoice, CpuPrecision};
use backprop::mlp::{Device, Env, Notice, Notify, Parallel};
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

/// The tuning `backprop tune` and `validate` do: on unless `--no-tune` (whatever
/// `BACKPROP_TUNE` says: tuning is what they are asked for), cached in the user's cache
/// directory, each newly tuned shape said in one line on stderr.
pub fn tuning(no_tune: bool, retune: bool) -> backprop::gpu::tuning::TuningOptions {
    backprop::gpu::tuning::TuningOptions {
        enabled: !no_tune,
        retune,
        ..backprop::device::tuning(true)
    }
}

/// A run's notices on standard error: which backend computes as it is, the others marked.
pub fn notify() -> Notify {
    std::sync::Arc::new(|notice| match notice {
        Notice::Backend(line) => errln!("{line}"),
        Notice::Note(line) => errln!("notice: {line}"),
        Notice::Warning(line) => errln!("warning: {line}"),
    })
}

impl BackendArgs {
    /// Where `--backend` and `--adapter` say to compute.
    pub fn device(&self) -> Device {
        Device {
            choice: self.backend,
            adapter: self.adapter.clone(),
        }
    }

    /// Whether the GPU tunes its kernels (not with `--no-tune`).
    pub fn tunes(&self) -> bool {
        !self.no_tune
    }

    /// Creates the backend, to step with batches of up to `batch` records, and says on stderr
    /// which one computes (and why, for `auto`).
    pub fn create(
        &self,
        network: &Network<f64>,
        precision: CpuPrecision,
        batch: usize,
    ) -> Result<Box<dyn Backend>> {
        let env = Env {
            comm: &Local,
            cancel: backprop::guard::interrupt::process(),
            notify: notify(),
        };
        Ok(backprop::mlp::create_backend(
            (&self.device(), self.tunes()),
            network,
            (precision, batch),
            Parallel::Data,
            &env,
        )?)
    }
}
