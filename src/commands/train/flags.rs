//! `train`'s flags: turned into the facade's settings and the data options, and checked before
//! any file is read or any memory allocated, each refusal naming its flag.

use anyhow::Result;

use backprop::data::read::Format;
use backprop::data::{
    Classify, Missing, PipelineOptions, SeparateSets, Source, SplitKind, SplitOptions,
};
use backprop::device::CpuPrecision;
use backprop::guard::numeric::Precision;
use backprop::guard::paths::FilePlan;
use backprop::mlp::{standardizes_targets, Batch, Convergence, EarlyStopping, Schedule, Settings};
use backprop::ops::optimizer::{Method, Optimizer};
use backprop::report::plot;
use backprop::{Error, Loss};

use super::TrainArgs;

fn argument(flag: &str, message: String) -> anyhow::Error {
    Error::Argument {
        flag: flag.into(),
        message,
    }
    .into()
}

/// The training options the flags give.
pub fn settings(args: &TrainArgs) -> Settings {
    Settings {
        hidden: args.hidden.clone(),
        activation: args.activation,
        output: args.output,
        loss: args.loss.unwrap_or(Loss::Mse),
        bias: !args.no_bias,
        init: args.init,
        optimizer: Optimizer {
            method: args.optimizer,
            momentum: args.momentum,
            nesterov: args.nesterov,
            beta1: args.beta1,
            beta2: args.beta2,
            epsilon: args.epsilon,
            // PyTorch's default for AdamW.
            weight_decay: args.weight_decay.unwrap_or(match args.optimizer {
                Method::Adamw => 0.01,
                _ => 0.0,
            }),
            l2_weights: 0.0,
        },
        alpha: args.alpha,
        learnrate: args.lr,
        schedule: Schedule {
            kind: args.lr_schedule,
            warmup: args.warmup,
            step: args.lr_step,
            gamma: args.lr_gamma,
        },
        epochs: args.epochs,
        batch: Batch::Records(args.batch),
        drop_last: args.drop_last,
        shuffle: !args.no_shuffle,
        seed: args.seed,
        split_seed: args.split_seed,
        shuffle_seed: args.shuffle_seed,
        early_stopping: args.patience.map(|patience| EarlyStopping {
            patience,
            min_delta: args.min_delta,
        }),
        convergence: args.tol.map(|tol| Convergence {
            tol,
            n_iter_no_change: args.n_iter_no_change,
        }),
        validation_fraction: args.val_fraction,
        device: args.backend.device(),
        compute: args.precision.into(),
        parallel: args.parallel,
        standardize: true,
        tune: args.backend.tunes(),
    }
}

/// Where the records come from and how they are encoded and split.
pub struct DataPlan {
    pub source: Source,
    pub options: PipelineOptions,
    pub split: SplitOptions,
    pub separate: SeparateSets,
    /// The built-in data's unit, for the summary.
    pub unit: Option<String>,
}

/// Checks every flag and every file the run reads and writes (`guard::paths`), and returns
/// the data options.
pub fn check(args: &TrainArgs, settings: &Settings) -> Result<DataPlan> {
    settings.check()?;
    if args.checkpoint_every == Some(0) {
        return Err(argument("--checkpoint-every", "must be at least 1".into()));
    }
    if let (Some(data), true) = (&args.data, args.target.is_empty()) {
        match Format::of(data) {
            // An archive's `y` is its target.
            Format::Npz => {}
            Format::Npy => {
                return Err(argument(
                    "--target",
                    format!("{} holds the inputs only: give the targets as --target y.npy (the same records), or put `x` and `y` in one .npz", data.display()),
                ))
            }
            _ => {
                return Err(argument(
                    "--target",
                    "name the target column(s) of --data".into(),
                ))
            }
        }
    }
    if args.max_categories == 0 {
        return Err(argument("--max-categories", "must be at least 1".into()));
    }
    if args.loss == Some(Loss::CrossEntropy) {
        check_classifier(args)?;
    }
    for (flag, path) in [
        ("--plot", &args.plot),
        ("--plot-predictions", &args.plot_predictions),
    ] {
        if let Some(path) = path {
            plot::Format::of(path).map_err(|e| argument(flag, e.to_string()))?;
        }
    }
    files(args).check()?;
    let plan = data(args, settings);
    plan.split.check()?;
    check_held_out(args, &plan)?;
    Ok(plan)
}

/// Early stopping watches validation records and `--plot-predictions` draws test records: a
/// split that holds none out cannot give them.
fn check_held_out(args: &TrainArgs, plan: &DataPlan) -> Result<()> {
    let zero = |part: &str| match plan.split.kind {
        SplitKind::Random => format!("--{part}-fraction 0"),
        SplitKind::Time => format!("--{part}-days 0"),
    };
    if args.patience.is_some() && args.val.is_none() && plan.split.holds_out_no_validation() {
        return Err(argument(
            "--patience",
            format!(
                "early stopping watches the validation loss, and {} holds no validation records out (drop one of the two, or give --val FILE)",
                zero("val")
            ),
        ));
    }
    if args.plot_predictions.is_some() && args.test.is_none() && plan.split.holds_out_no_test() {
        return Err(argument(
            "--plot-predictions",
            format!(
                "draws the test set, and {} holds no test records out",
                zero("test")
            ),
        ));
    }
    Ok(())
}

/// The flags a classifier refuses (checked again when a target of labels makes one).
pub fn check_classifier(args: &TrainArgs) -> Result<()> {
    if args.plot_predictions.is_some() {
        return Err(argument(
            "--plot-predictions",
            "draws a regression target over time; a classifier's summary has the confusion matrix instead".into(),
        ));
    }
    Ok(())
}

/// Every file the run reads and writes, checked before any work (`guard::paths`).
fn files(args: &TrainArgs) -> FilePlan {
    let writes_checkpoints = args.checkpoint_every.is_some();
    let checkpoint = Some(args.checkpoint.as_path());
    let target_array = match Source::from_flags(args.data.as_deref(), &args.target).0 {
        Source::Arrays { targets, .. } => Some(targets),
        _ => None,
    };
    let mut plan = FilePlan::new()
        .input("--data", args.data.as_deref())
        .input("--target", target_array.as_deref())
        .input("--val", args.val.as_deref())
        .input("--test", args.test.as_deref())
        .output("--metrics", args.metrics.as_deref())
        .output("--plot", args.plot.as_deref())
        .output("--plot-predictions", args.plot_predictions.as_deref())
        .output("--save", args.save.as_deref());
    if args.resume {
        plan = plan.input("--checkpoint", checkpoint);
    }
    match (writes_checkpoints, args.resume) {
        (true, true) => plan.updated("--checkpoint", checkpoint),
        (true, false) => plan.output("--checkpoint", checkpoint),
        (false, _) => plan,
    }
}

/// The data options, with the built-in data's defaults filled in.
fn data(args: &TrainArgs, settings: &Settings) -> DataPlan {
    let classify = match args.loss {
        None => Classify::Auto,
        Some(Loss::Mse) => Classify::Never,
        Some(Loss::CrossEntropy) => Classify::Always,
    };
    let standardize_targets = standardizes_targets(settings);
    let built_in = args.data.is_none();
    let or = |given: &Vec<String>, default: &[&str]| {
        if given.is_empty() && built_in {
            default.iter().map(|s| s.to_string()).collect()
        } else {
            given.clone()
        }
    };
    let (source, targets) = Source::from_flags(args.data.as_deref(), &args.target);
    let options = PipelineOptions {
        targets: or(&targets, &["cnt"]),
        categorical: args.categorical.clone(),
        drop: or(&args.drop, &["casual", "registered"]),
        date: args
            .date
            .clone()
            .or_else(|| built_in.then(|| "dteday".into())),
        standardize_targets,
        max_categories: args.max_categories,
        classify,
        output: args.output,
        // The seed project fills the built-in data's empty temperatures with the mean.
        missing: args.missing.unwrap_or(if built_in {
            Missing::Mean
        } else {
            Missing::Error
        }),
        // Encoded straight into the precision the model trains in: no second copy.
        precision: match args.precision {
            CpuPrecision::F32 => Precision::F32,
            CpuPrecision::F64 => Precision::F64,
        },
    };
    let kind = args.split.unwrap_or(if options.date.is_some() {
        SplitKind::Time
    } else {
        SplitKind::Random
    });
    DataPlan {
        source,
        options,
        split: SplitOptions {
            test_fraction: args.test_fraction,
            validation_fraction: args.val_fraction,
            test_days: args.test_days,
            validation_days: args.val_days,
            ..SplitOptions::new(kind, args.split_seed.unwrap_or(args.seed))
        },
        separate: SeparateSets {
            validation: args.val.clone().map(Source::File),
            test: args.test.clone().map(Source::File),
        },
        unit: built_in.then(|| "rides per hour".into()),
    }
}
