//! Choosing the fastest correct kernels on the device at hand. For each product of a step and
//! its shape, every GEMM variant the adapter can run is timed on the device (a warm-up, then
//! the median of `RUNS` runs; timestamp queries where there are some) on random operands of
//! that shape, and checked against an f64 reference on sampled outputs (corners included)
//! before it may win; the output layer's fused path is tuned against the separate one the same
//! way. Winners are cached on disk (`crate::tune`), keyed by adapter, driver, backprop version,
//! a hash of the kernel sources and the shape rounded to powers of two, so later runs reuse
//! them. Without tuning (`--no-tune`, the library's default), or where tuning a shape would take
//! longer than `TUNE_BUDGET` (a software rasterizer on a large product), `gemm::select::guess`
//! decides and the output layer is fused.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use super::buffers::Region;
use super::gemm::generate::module_source;
use super::gemm::{select, GemmConfig, Product, VARIANTS};
use super::kernels::{Dispatch, Part, NO_NON_FINITE_BATCH, STATUS_LEN};
use super::timing::run_ms;
use super::{product_dims, GpuDevice};
use crate::error::{Error, Result};
use crate::model::Activation;
use crate::tune::{self, Entry, TuneCache};

/// Timed runs per candidate, after one warm-up.
const RUNS: usize = 5;
/// The longest tuning of one shape may take; beyond it the guess is used.
const TUNE_BUDGET: Duration = Duration::from_secs(20);
/// Outputs checked against the f64 reference per candidate (besides the four corners).
const SAMPLES: usize = 60;
/// The two ways of computing the output layer, tuned like the variants.
const OUTPUT_PATHS: [&str; 2] = ["fused", "separate"];

/// Where a tuning line goes (the command prints it on stderr).
pub type Notify = Box<dyn Fn(&str) + Send + Sync>;

/// Whether and where to tune.
#[derive(Default)]
pub struct TuningOptions {
    pub enabled: bool,
    /// Measure again even where the cache has a winner (`backprop tune --retune`).
    pub retune: bool,
    /// Compute every product with this variant, and the output layer fused or not, whatever
    /// the shape (`backprop validate --all-variants` proves each this way).
    pub force: Option<(GemmConfig, bool)>,
    /// The cache file's directory (`tune::cache::default_dir` for the user's cache).
    pub cache_dir: Option<PathBuf>,
    pub notify: Option<Notify>,
}

/// A device's tuning state: the cache and how to report.
pub struct Tuning {
    enabled: bool,
    retune: bool,
    force: Option<(GemmConfig, bool)>,
    cache: Mutex<TuneCache>,
    /// Every decision made with tuning on, in order (for `backprop tune`).
    choices: Mutex<Vec<Choice>>,
    notify: Option<Notify>,
    /// FNV-1a of every kernel source the variants generate: new kernels, new entries.
    source_hash: String,
}

impl Tuning {
    pub fn new(options: TuningOptions) -> Self {
        let sources: String = Product::ALL
            .iter()
            .flat_map(|&p| VARIANTS.iter().map(move |c| module_source(p, c)))
            .collect();
        Tuning {
            enabled: options.enabled,
            retune: options.retune,
            force: options.force,
            choices: Mutex::new(Vec::new()),
            cache: Mutex::new(TuneCache::open(
                options.cache_dir.map(|d| d.join("tune.json")),
            )),
            notify: options.notify,
            source_hash: format!("{:016x}", tune::fnv1a(sources.as_bytes())),
        }
    }

    fn say(&self, line: &str) {
        if let Some(notify) = &self.notify {
            notify(line);
        }
    }
}

/// One decision: what was chosen for which product and shape, and how every candidate fared.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Choice {
    /// The product (`layer_forward`, …) or `output_path`.
    pub what: String,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub winner: String,
    pub measurements: Vec<tune::Measurement>,
    /// Taken from the cache rather than measured now.
    pub cached: bool,
}

/// Random operands of one product's shape on the device, with their host copies for the
/// reference, and the regions each product's kernel binds.
struct Operands {
    product: Product,
    m: usize,
    n: usize,
    k: usize,
    /// A (m x k) and B (k x n) in the product's own storage layout, host copies.
    a: Vec<f32>,
    b: Vec<f32>,
    a_region: Region,
    b_region: Region,
    /// The output (C, or the output layer's y), and for the output layer its target, error
    /// term and the non-finite watch; for the others, the regions their epilogues bind.
    out: Region,
    target: Vec<f32>,
    extra: Vec<Region>,
}

impl Operands {
    fn new(device: &GpuDevice, product: Product, (m, n, k): (usize, usize, usize)) -> Result<Self> {
        let ctx = &device.ctx;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x7475_6e65);
        let mut random =
            |len: usize| -> Vec<f32> { (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect() };
        let (a, b) = (random(m * k), random(k * n));
        let target = random(m * n);
        let region = |label: &str, values: &[f32]| -> Result<Region> {
            let r = Region::new(ctx, label, values.len(), false)?;
            r.upload(ctx, values)?;
            Ok(r)
        };
        let a_region = region("tuning A", &a)?;
        let b_region = region("tuning B", &b)?;
        let out = Region::new(ctx, "tuning C", m * n, false)?;
        let extra = match product {
            Product::OutputLayer => {
                let status = Region::new(ctx, "tuning status", STATUS_LEN, false)?;
                status.upload(ctx, &[0, NO_NON_FINITE_BATCH])?;
                vec![
                    region("tuning target", &target)?,
                    Region::new(ctx, "tuning error term", m * n, false)?,
                    status,
                ]
            }
            Product::HiddenErrorTerm | Product::WeightUpdate => {
                vec![Region::new(ctx, "tuning epilogue", m * n, false)?]
            }
            Product::LayerForward => Vec::new(),
        };
        Ok(Operands {
            product,
            m,
            n,
            k,
            a,
            b,
            a_region,
            b_region,
            out,
            target,
            extra,
        })
    }

    /// A[i, p] and B[p, j] as the product's kernel reads them from its storage layout.
    fn a_at(&self, i: usize, p: usize) -> f32 {
        match self.product {
            Product::WeightUpdate => self.a[p * self.m + i],
            _ => self.a[i * self.k + p],
        }
    }

    fn b_at(&self, p: usize, j: usize) -> f32 {
        match self.product {
            Product::HiddenErrorTerm => self.b[j * self.k + p],
            _ => self.b[p * self.n + j],
        }
    }

    /// The dispatches of `config` on these operands, writing the raw sum C = A·B to `out`
    /// (partial mode, an identity output, a delta of scale 1).
    fn dispatches(&self, device: &GpuDevice, config: &GemmConfig) -> Result<Vec<Dispatch>> {
        let (ctx, kernels) = (&device.ctx, &device.kernels);
        let (m, n, k) = (self.m, self.n, self.k);
        let raw = Part {
            accumulate: false,
            last: false,
        };
        match self.product {
            Product::LayerForward => kernels.layer_forward(
                ctx,
                config,
                &self.a_region,
                &self.b_region,
                &self.out,
                (m, k, n),
                Activation::Identity,
                raw,
            ),
            Product::OutputLayer => kernels.output_layer(
                ctx,
                config,
                &self.a_region,
                &self.b_region,
                &self.out,
                &self.extra[0],
                &self.extra[1],
                &self.extra[2],
                (m, k, n),
                Activation::Identity,
            ),
            Product::HiddenErrorTerm => kernels.hidden_error_term(
                ctx,
                config,
                &self.a_region,
                &self.b_region,
                &self.extra[0],
                &self.out,
                (m, n, k),
                raw,
            ),
            Product::WeightUpdate => kernels.weight_update(
                ctx,
                config,
                &self.a_region,
                &self.b_region,
                &self.extra[0],
                &self.out,
                (k, m, n),
                k as f32,
                false,
            ),
        }
    }

    /// Where the reference is checked: the corners, then seeded random outputs.
    fn sample_points(&self) -> Vec<(usize, usize)> {
        let (m, n) = (self.m, self.n);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x7361_6d70);
        let mut points = vec![(0, 0), (m - 1, n - 1), (m - 1, 0), (0, n - 1)];
        points.extend((0..SAMPLES).map(|_| (rng.random_range(0..m), rng.random_range(0..n))));
        points
    }

    /// The f64 sum at (i, j) and its error bound 2·γ_K·Σ|a||b| (as the parity tests state it).
    fn reference(&self, i: usize, j: usize) -> (f64, f64) {
        let (mut sum, mut magnitude) = (0.0f64, 0.0f64);
        for p in 0..self.k {
            let term = f64::from(self.a_at(i, p)) * f64::from(self.b_at(p, j));
            sum += term;
            magnitude += term.abs();
        }
        let u = crate::validate::F32_UNIT_ROUNDOFF;
        let gamma = self.k as f64 * u / (1.0 - self.k as f64 * u);
        (sum, 2.0 * gamma * magnitude + 1e-30)
    }

    /// Checks `values` (m x n) against the reference at the sample points; `expected` maps the
    /// reference sum at (i, j) to what the region should hold there.
    fn verify(
        &self,
        values: &[f32],
        expected: impl Fn(usize, usize, f64) -> f64,
    ) -> std::result::Result<(), String> {
        for (i, j) in self.sample_points() {
            let (sum, bound) = self.reference(i, j);
            let want = expected(i, j, sum);
            let got = f64::from(values[i * self.n + j]);
            let within =
                (got - want).abs() <= bound + 4.0 * crate::validate::F32_UNIT_ROUNDOFF * want.abs();
            if !within {
                return Err(format!(
                    "at ({i}, {j}) it gives {got}, the reference {want} (bound {bound:.1e})"
                ));
            }
        }
        Ok(())
    }

    /// The median time of `dispatches` after a warm-up, in milliseconds.
    fn time(&self, device: &GpuDevice, dispatches: &[&Dispatch]) -> Result<f64> {
        run_ms(&device.ctx, dispatches)?;
        let mut samples = (0..RUNS)
            .map(|_| run_ms(&device.ctx, dispatches))
            .collect::<Result<Vec<_>>>()?;
        tune::median(&mut samples).ok_or_else(|| Error::Gpu("no timing".into()))
    }

    /// Times `config` and checks its raw sums against the reference.
    fn measure(&self, device: &GpuDevice, config: &GemmConfig) -> std::result::Result<f64, String> {
        let dispatches = self.dispatches(device, config).map_err(|e| e.to_string())?;
        let refs: Vec<&Dispatch> = dispatches.iter().collect();
        let ms = self.time(device, &refs).map_err(|e| e.to_string())?;
        let values = self.out.read(&device.ctx).map_err(|e| e.to_string())?;
        self.verify(&values, |_, _, sum| sum)?;
        Ok(ms)
    }
}

impl GpuDevice {
    /// The variant that computes `product` for a shape given as its constructor takes it:
    /// the cached winner, a newly tuned one, or the guess (see the module documentation).
    pub fn choose(&self, product: Product, shape: (usize, usize, usize)) -> Result<GemmConfig> {
        let (m, n, k) = product_dims(product, shape);
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
        let operands = Operands::new(self, product, (m, n, k))?;
        // One run of the guess says what tuning every candidate would cost.
        let probe = operands.measure(self, &guess).map_err(Error::Gpu)?;
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
        let Some((winner, measurements)) =
            tune::tune(&candidates, GemmConfig::name, |c| operands.measure(self, c))
        else {
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
        let operands = Operands::new(self, Product::OutputLayer, (records, outputs, inputs))?;
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
                    operands.dispatches(self, &fused_config).map_err(e)?,
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
                            Activation::Identity,
                        )
                        .map_err(e)?,
                );
                (d, &separate_term)
            };
            let refs: Vec<&Dispatch> = dispatches.iter().collect();
            let ms = operands.time(self, &refs).map_err(e)?;
            let values = term.read(&self.ctx).map_err(e)?;
            // The identity output's error term is target − y.
            operands.verify(&values, |i, j, sum| {
                f64::from(operands.target[i * outputs + j]) - sum
            })?;
            Ok(ms)
        };
        let Some((winner, measurements)) = tune::tune(&OUTPUT_PATHS, |p| p.to_string(), measure)
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
        tune::key(
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
        measurements: Vec<tune::Measurement>,
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
            candidates_checksum: tune::cache::checksum(names),
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
