//! The `backprop` command line: parses flags and hands them to one module per subcommand.

use clap::{Parser, Subcommand};

mod commands;

#[derive(Parser)]
#[command(
    name = "backprop",
    version,
    about = "Backpropagation for sigmoid-hidden-layer networks: a CPU reference and WGSL GPU kernels"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// One backward pass: the delta weights of a batch (the seed exercise when given no files).
    Step(commands::step::StepArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Step(args) => commands::step::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
