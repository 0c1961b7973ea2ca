//! Checkpoints: `--resume` reads one (made by the same data and flags), `--checkpoint-every`
//! writes them, and a run that stops early (a signal, an error, a divergence) says which one
//! is kept.

use anyhow::{bail, Context, Result};

use backprop::backend::Backend;
use backprop::data::{Dataset, Encoder};
use backprop::mlp::{
    divergence, divergence_cause, layer_sizes, spec_of, Checkpoint, Settings, Start,
};
use backprop::model_file::{self, SavedModel};
use backprop::train::{EpochRecord, Finished, Outcome, Progress};
use backprop::{Error, Matrix};

use super::TrainArgs;

/// Where the run starts: fresh, or with `--resume` from the checkpoint, which must come from
/// the same data, layers and network kind (the facade checks the rest of the flags).
pub fn start(args: &TrainArgs, settings: &Settings, encoder: &Encoder) -> Result<Start> {
    if !args.resume {
        return Ok(Start::Fresh);
    }
    let path = &args.checkpoint;
    let saved = model_file::load(path).context("--resume")?;
    let Some(state) = saved.training else {
        bail!("{}: holds no training state to resume", path.display());
    };
    let layer_sizes = layer_sizes(settings, encoder);
    let saved_spec = saved.network.spec();
    if saved.encoder != *encoder
        || saved.network.layer_sizes() != layer_sizes
        || saved_spec != spec_of(settings, encoder)?
        || saved.network.biases().is_none() != args.no_bias
    {
        bail!(
            "{}: the checkpoint was made with other data or flags (layers {:?}, --activation {} --output {} --loss {}{}); resume with the same ones",
            path.display(),
            saved.network.layer_sizes(),
            saved_spec.hidden,
            saved_spec.output,
            saved_spec.loss,
            if saved.network.biases().is_none() { " --no-bias" } else { "" }
        );
    }
    Ok(Start::Resume(Checkpoint {
        network: saved.network,
        state,
        optimizer: saved.optimizer,
        best_network: saved.best_network,
    }))
}

/// The checkpoints a run writes (`--checkpoint-every`), and what a stopped run says of them.
pub struct Checkpoints<'a> {
    args: &'a TrainArgs,
    encoder: &'a Encoder,
    /// Rank 0 writes; every rank reads its part back (a sum over ranks for split layers).
    writes: bool,
    last: Option<usize>,
}

impl<'a> Checkpoints<'a> {
    pub fn new(args: &'a TrainArgs, encoder: &'a Encoder, writes: bool) -> Self {
        Checkpoints {
            args,
            encoder,
            writes,
            last: None,
        }
    }

    /// After each good epoch: the checkpoint, every `--checkpoint-every` epochs.
    pub fn after_epoch(
        &mut self,
        record: &EpochRecord,
        progress: &Progress,
        backend: &mut dyn Backend,
    ) -> backprop::Result<()> {
        let Some(every) = self.args.checkpoint_every else {
            return Ok(());
        };
        if record.epoch % every != 0 {
            return Ok(());
        }
        let checkpoint = SavedModel {
            network: backend.network()?,
            encoder: self.encoder.clone(),
            training: Some(progress.state.clone()),
            optimizer: Some(backend.optimizer_state()?),
            best_network: progress.best_network.clone(),
        };
        if self.writes {
            model_file::save(&self.args.checkpoint, &checkpoint)?;
        }
        self.last = Some(record.epoch);
        Ok(())
    }

    /// What is left on disk, for a run that did not finish.
    fn kept(&self) -> String {
        match self.last {
            Some(epoch) => format!(
                "; the last complete checkpoint, {} (epoch {epoch}), is kept",
                self.args.checkpoint.display()
            ),
            None => "; nothing was written".into(),
        }
    }

    /// A training error, saying which checkpoint is kept (an interruption keeps its exit
    /// status).
    pub fn explain(&self, error: Error) -> anyhow::Error {
        let kept = self.kept();
        match error {
            Error::Interrupted { signal, detail } => anyhow::Error::from(Error::Interrupted {
                signal,
                detail: format!("{detail}{kept}"),
            }),
            other => anyhow::Error::from(other).context(kept.trim_start_matches("; ").to_string()),
        }
    }

    /// Fails a run that diverged, saying where, why (an outlying feature, or the step size),
    /// and which checkpoint is kept.
    pub fn fail_if_diverged(&self, finished: &Finished, train: &Dataset) -> Result<()> {
        let Outcome::Diverged {
            epoch,
            train_loss,
            val_loss,
            first_non_finite_batch,
        } = finished.outcome
        else {
            return Ok(());
        };
        let config = &finished.state.config;
        bail!(
            "{}; {}{}",
            divergence(
                (epoch, train_loss, val_loss),
                first_non_finite_batch,
                config,
                (train.len(), finished.state.initial_loss)
            ),
            divergence_cause(
                (Matrix::from(&train.x), true),
                &self.encoder.feature_names(),
                Some(&train.lines),
                config.learnrate,
                &config.optimizer
            ),
            self.kept()
        )
    }
}
