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
    /// Train on a CSV (the built-in bike-sharing data by default): summary, metrics, plots, model.
    Train(Box<commands::train::TrainArgs>),
    /// Apply a saved model to a CSV.
    Predict(commands::predict::PredictArgs),
    /// One backward pass: the delta weights of a batch (the seed exercise when given no files).
    Step(commands::step::StepArgs),
    /// Compare a backend with the f64 CPU reference on random problems of awkward shapes.
    Validate(commands::validate::ValidateArgs),
    /// Time the training step on the CPU and the GPU.
    Bench(commands::bench::BenchArgs),
    /// List the GPU adapters wgpu reaches and their limits.
    Info(commands::info::InfoArgs),
    /// Time every GEMM variant of a step's products on this GPU, check each against the f64
    /// reference, and cache the winners.
    Tune(commands::tune::TuneArgs),
}

fn main() -> std::process::ExitCode {
    // Mesa's Vulkan drivers ask libwayland for a display while wgpu enumerates adapters; with
    // no desktop session that prints "error: XDG_RUNTIME_DIR is invalid or not set" on every
    // run. Any absolute directory quiets it (no display lives there, the lookup just fails).
    // This runs before any other thread exists.
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        std::env::set_var("XDG_RUNTIME_DIR", std::env::temp_dir());
    }
    let cli = Cli::parse();
    if let Err(e) = backprop::guard::interrupt::install() {
        commands::errln!("warning: SIGINT/SIGTERM will stop the run abruptly: {e}");
    }
    let result = match cli.command {
        Command::Train(args) => commands::train::run(*args),
        Command::Predict(args) => commands::predict::run(args),
        Command::Step(args) => commands::step::run(args),
        Command::Validate(args) => commands::validate::run(args),
        Command::Info(args) => commands::info::run(args),
        Command::Bench(args) => commands::bench::run(args),
        Command::Tune(args) => commands::tune::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            commands::errln!("error: {e:#}");
            let code = e
                .chain()
                .find_map(|cause| cause.downcast_ref::<backprop::Error>())
                .map_or(1, backprop::Error::exit_code);
            std::process::ExitCode::from(code)
        }
    }
}
