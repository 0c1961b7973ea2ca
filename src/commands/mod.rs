//! One module per subcommand; each turns parsed flags into library calls and prints the result.

pub mod bench;
pub mod info;
pub mod predict;
pub mod step;
pub mod train;
pub mod validate;

use anyhow::Result;

use backprop::backend::{BackendChoice, CpuPrecision};
use backprop::{Backend, Network};

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
}

impl BackendArgs {
    /// Creates the backend and says on stderr which one computes (and why, for `auto`).
    pub fn create(
        &self,
        network: &Network<f64>,
        precision: CpuPrecision,
    ) -> Result<Box<dyn Backend>> {
        let selected =
            backprop::backend::create(self.backend, self.adapter.as_deref(), network, precision)?;
        if let Some(note) = selected.note {
            eprintln!("{note}");
        }
        eprintln!("backend: {}", selected.backend.description());
        Ok(selected.backend)
    }
}
