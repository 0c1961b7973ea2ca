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
    // This runs before any other thread exists.
    backprop::device::quiet_mesa();
    let cli = Cli::parse();
    if let Err(e) = backprop::guard::interrupt::install() {
        commands::errln!("warning: SIGINT/SIGTERM will stop the run abruptly: {e}");
    }
    // Under mpirun/srun (with the `mpi` feature) this is MPI's world; otherwise one process.
    let comm = match backprop::comm::init() {
        Ok(comm) => comm,
        Err(e) => {
            commands::errln!("error: {e}");
            return std::process::ExitCode::from(e.exit_code());
        }
    };
    let comm = comm.as_ref();
    let one_process = |command: &str| backprop::comm::single_process(comm, command);
    let result = match cli.command {
        Command::Train(args) => commands::train::run(*args, comm),
        Command::Bench(args) => commands::bench::run(args, comm),
        Command::Predict(args) => one_process("predict")
            .map_err(Into::into)
            .and_then(|()| commands::predict::run(args)),
        Command::Step(args) => one_process("step")
            .map_err(Into::into)
            .and_then(|()| commands::step::run(args)),
        Command::Validate(args) => one_process("validate")
            .map_err(Into::into)
            .and_then(|()| commands::validate::run(args)),
        Command::Info(args) => one_process("info")
            .map_err(Into::into)
            .and_then(|()| commands::info::run(args)),
        Command::Tune(args) => one_process("tune")
            .map_err(Into::into)
            .and_then(|()| commands::tune::run(args)),
    };
    // The GPUs the run opened close now: their compiled pipelines go to the disk cache.
    backprop::device::release_shared();
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            let code = e
                .chain()
                .find_map(|cause| cause.downcast_ref::<backprop::Error>())
                .map_or(1, backprop::Error::exit_code);
            if comm.size() > 1 {
                // The other ranks may be waiting for this one in a collective: end them all.
                commands::errln!("error: rank {} of {}: {e:#}", comm.rank(), comm.size());
                comm.abort(i32::from(code));
            }
            commands::errln!("error: {e:#}");
            std::process::ExitCode::from(code)
        }
    }
}
