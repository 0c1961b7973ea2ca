//! A device with its pipelines: opened once, shared by every backend on it, and the place
//! where each product's variant is chosen (tuned, cached or guessed: see `tuning`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::buffers::Region;
use super::context::GpuContext;
use super::gemm::{select, GemmConfig, Product};
use super::kernels::{Dispatch, Kernels, Part};
use super::ops::KernelTwins;
use super::tuning::{self, Choice, Operands, OUTPUT_PATHS, RUNS, TUNE_BUDGET};
use crate::error::{Error, Result};
use crate::model::{Activation, Loss};
use crate::tune::{self as tuner, Entry};

/// A device with its pipelines compiled: opened once, shared by every backend on it.
pub struct GpuDevice {
    pub ctx: GpuContext,
    pub kernels: Kernels,
    /// How products choose their variants (see `tuning`).
    pub tuning: tuning::Tuning,
}

impl Drop for GpuDevice {
    /// The pipelines compiled this run go to the disk cache for the next; best effort (a cache
    /// that cannot be written costs compile time, nothing else).
    fn drop(&mut self) {
        let _ = self.ctx.save_pipeline_cache();
    }
}

impl GpuDevice {
    /// A device whose products use the heuristic variants (no tuning).
    pub fn new(ctx: GpuContext) -> Result<Arc<Self>> {
        Self::with_tuning(ctx, tuning::TuningOptions::default())
    }

    /// A device that tunes its products as `options` say.
    pub fn with_tuning(ctx: GpuContext, options: tuning::TuningOptions) -> Result<Arc<Self>> {
        let kernels = Kernels::new(&ctx)?;
        Ok(Arc::new(GpuDevice {
            ctx,
            kernels,
            tuning: tuning::Tuning::new(options),
        }))
    }

    /// The single-kernel twins of `cpu.rs` on this device.
    pub fn twins(&self) -> KernelTwins<'_> {
        KernelTwins {
            ctx: &self.ctx,
            kernels: &self.kernels,
        }
    }
}

impl GpuDevice {
    /// The variant that computes `product` for a shape given as its constructor takes it:
    /// the cached winner, a newly tuned one, or the guess (see the module documentation).
    pub fn choose(&self, product: Product, shape: (usize, usize, usize)) -> Result<GemmConfig> {
        let (m, n, k) = product.dims(shape);
        let limits = &self.ctx.limits;
        if let Some((forced, _)) = self.tuning.force {
            return Ok(forced);
        }
        let guess = select::guess(m, n, k, limits);
        if !self.tuning.enabled {
            return Ok(guess);
        }
        let candidates = select::candidates(limits);
        let names: Vec<String> = candidates.iter().map(GemmConfig::name).collect();
        let key = self.tuning_key(product.name(), (m, n, k));
        if let Some(found) = self.cached(&key, &names, product.name(), (m, n, k)) {
            return Ok(candidates
                .iter()
                .copied()
                .find(|c| c.name() == found)
                .unwrap_or(guess));
        }
        let started = Instant::now();
        let operands = Operands::new(&self.ctx, product, (m, n, k))?;
        // One run of the guess says what tuning every candidate would cost.
        let probe = operands
            .measure((&self.ctx, &self.kernels), &guess)
            .map_err(Error::Gpu)?;
        let estimate =
            Duration::from_secs_f64(probe * 1e-3 * ((RUNS + 1) * candidates.len()) as f64);
        if estimate > TUNE_BUDGET {
            self.tuning.say(&format!(
                "not tuning {} {m}x{n}x{k}: it would take about {:.0} s on {}; using {}",
                product.name(),
                estimate.as_secs_f64(),
                self.ctx.info.name,
                guess.name()
            ));
            return Ok(guess);
        }
        let Some((winner, measurements)) = tuner::tune(&candidates, GemmConfig::name, |c| {
            operands.measure((&self.ctx, &self.kernels), c)
        }) else {
            return Err(Error::Gpu(format!(
                "no GEMM variant computed {} {m}x{n}x{k} correctly on {}",
                product.name(),
                self.ctx.info.name
            )));
        };
        let chosen = candidates[winner];
        self.remember(
            key,
            &names,
            (product.name(), (m, n, k)),
            winner,
            measurements,
            started,
        )?;
        Ok(chosen)
    }

    /// Whether the output layer of a (records, inputs, outputs) shape computes its error term
    /// in its forward product (one dispatch fewer per step): tuned like the variants, fused
    /// without tuning.
    pub fn fuse_output_layer(&self, shape: (usize, usize, usize)) -> Result<bool> {
        if let Some((_, fused)) = self.tuning.force {
            return Ok(fused);
        }
        if !self.tuning.enabled {
            return Ok(true);
        }
        let (records, inputs, outputs) = shape;
        let names: Vec<String> = OUTPUT_PATHS.iter().map(|s| s.to_string()).collect();
        let dims = (records, outputs, inputs);
        let key = self.tuning_key("output_path", dims);
        if let Some(found) = self.cached(&key, &names, "output_path", dims) {
            return Ok(found == "fused");
        }
        let fused_config = self.choose(Product::OutputLayer, shape)?;
        let forward_config = self.choose(Product::LayerForward, shape)?;
        let started = Instant::now();
        let operands = Operands::new(&self.ctx, Product::OutputLayer, (records, outputs, inputs))?;
        let separate_term = Region::new(
            &self.ctx,
            "tuning separate error term",
            records * outputs,
            false,
        )?;
        let measure = |path: &&str| -> std::result::Result<f64, String> {
            let e = |e: Error| e.to_string();
            let (dispatches, term) = if *path == "fused" {
                (
                    operands
                        .dispatches((&self.ctx, &self.kernels), &fused_config)
                        .map_err(e)?,
                    &operands.extra[1],
                )
            } else {
                let mut d = self
                    .kernels
                    .layer_forward(
                        &self.ctx,
                        &forward_config,
                        &operands.a_region,
                        &operands.b_region,
                        None,
                        &operands.out,
                        shape,
                        Activation::Identity,
                        Part::WHOLE,
                    )
                    .map_err(e)?;
                d.push(
                    self.kernels
                        .output_error_term(
                            &self.ctx,
                            &operands.extra[0],
                            &operands.out,
                            &separate_term,
                            &operands.extra[2],
                            (records, outputs),
                            (Activation::Identity, Loss::Mse),
                        )
                        .map_err(e)?,
                );
                (d, &separate_term)
            };
            let refs: Vec<&Dispatch> = dispatches.iter().collect();
            let ms = operands.time(&self.ctx, &refs).map_err(e)?;
            let values = term.read(&self.ctx).map_err(e)?;
            // The identity output's error term is target − y.
            operands.verify(&values, |i, j, sum| {
                f64::from(operands.target[i * outputs + j]) - sum
            })?;
            Ok(ms)
        };
        let Some((winner, measurements)) = tuner::tune(&OUTPUT_PATHS, |p| p.to_string(), measure)
        else {
            return Ok(false);
        };
        self.remember(
            key,
            &names,
            ("output_path", dims),
            winner,
            measurements,
            started,
        )?;
        Ok(OUTPUT_PATHS[winner] == "fused")
    }

    fn tuning_key(&self, what: &str, (m, n, k): (usize, usize, usize)) -> String {
        let info = &self.ctx.info;
        tuner::key(
            &[
                &info.name,
                &format!("{} {}", info.driver, info.driver_info),
                env!("CARGO_PKG_VERSION"),
                &self.tuning.source_hash,
                what,
            ],
            &[m, n, k],
        )
    }

    /// The decisions taken since the device opened (with tuning on).
    pub fn choices(&self) -> Vec<Choice> {
        self.tuning
            .choices
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default()
    }

    fn log(&self, choice: Choice) {
        if let Ok(mut choices) = self.tuning.choices.lock() {
            choices.push(choice);
        }
    }

    /// The cached winner for `key`, logged as a choice (none with `retune`).
    fn cached(
        &self,
        key: &str,
        names: &[String],
        what: &str,
        (m, n, k): (usize, usize, usize),
    ) -> Option<String> {
        if self.tuning.retune {
            return None;
        }
        let cache = self.tuning.cache.lock().ok()?;
        let entry = cache.get(key, names)?.clone();
        drop(cache);
        self.log(Choice {
            what: what.into(),
            m,
            n,
            k,
            winner: entry.winner.clone(),
            measurements: entry.measurements,
            cached: true,
        });
        Some(entry.winner)
    }

    #[allow(clippy::too_many_arguments)]
    fn remember(
        &self,
        key: String,
        names: &[String],
        (what, (m, n, k)): (&str, (usize, usize, usize)),
        winner: usize,
        measurements: Vec<tuner::Measurement>,
        started: Instant,
    ) -> Result<()> {
        let rejected = measurements.iter().filter(|m| m.rejected.is_some()).count();
        let winner_name = measurements[winner].candidate.clone();
        let ms = measurements[winner].median_ms.unwrap_or(0.0);
        self.log(Choice {
            what: what.into(),
            m,
            n,
            k,
            winner: winner_name.clone(),
            measurements: measurements.clone(),
            cached: false,
        });
        let entry = Entry {
            winner: winner_name.clone(),
            candidates_checksum: tuner::cache::checksum(names),
            measurements,
        };
        let mut cache = self
            .tuning
            .cache
            .lock()
            .map_err(|_| Error::Gpu("the tuning cache was poisoned".into()))?;
        let saved = match cache.insert(key, entry) {
            Ok(()) => cache
                .path()
                .map_or(String::new(), |p| format!("; cached in {}", p.display())),
            Err(e) => format!("; not cached: {e}"),
        };
        self.tuning.say(&format!(
            "tuned {what} {m}x{n}x{k} on {}: {winner_name} ({ms:.4} ms) of {} candidates{} in {:.1} s{saved}",
            self.ctx.info.name,
            names.len(),
            if rejected > 0 {
                format!(", {rejected} rejected by the reference check")
            } else {
                String::new()
            },
            started.elapsed().as_secs_f64()
        ));
        Ok(())
    }
}
