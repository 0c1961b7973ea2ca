//! One module per subcommand; each turns parsed flags into library calls and prints the result.

pub mod step;

use anyhow::Result;

use backprop::backend::BackendChoice;
use backprop::{Backend, Network};

/// The backend flags every computing subcommand shares.
#[derive(clap::Args)]
pub struct BackendArgs {
    /// Where to compute.
    #[arg(long, value_enum, default_value_t = BackendChoice::Cpu)]
    backend: BackendChoice,
}

impl BackendArgs {
    pub fn create(&self, network: &Network<f64>) -> Result<Box<dyn Backend>> {
        Ok(backprop::backend::create(self.backend, network)?)
    }
}
