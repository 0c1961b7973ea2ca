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
use std::time::Duration;

use rand::{Rng, SeedableRng};

use super::buffers::Region;
use super::context::GpuContext;
use super::gemm::generate::module_source;
use super::gemm::{GemmConfig, Product, VARIANTS};
use super::kernels::{Dispatch, Kernels, Part, Update, NO_NON_FINITE_BATCH, STATUS_LEN};
use super::timing::run_ms;
use crate::error::{Error, Result};
use crate::model::{Activation, Loss};
use crate::tune::{self, TuneCache};

/// Timed runs per candidate, after one warm-up.
pub(super) const RUNS: usize = 5;
/// The longest tuning of one shape may take; beyond it the guess is used.
pub(super) const TUNE_BUDGET: Duration = Duration::from_secs(20);
/// Outputs checked against the f64 reference per candidate (besides the four corners).
const SAMPLES: usize = 60;
/// The two ways of computing the output layer, tuned like the variants.
pub(super) const OUTPUT_PATHS: [&str; 2] = ["fused", "separate"];

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
    pub(super) enabled: bool,
    pub(super) retune: bool,
    pub(super) force: Option<(GemmConfig, bool)>,
    pub(super) cache: Mutex<TuneCache>,
    /// Every decision made with tuning on, in order (for `backprop tune`).
    pub(super) choices: Mutex<Vec<Choice>>,
    notify: Option<Notify>,
    /// FNV-1a of every kernel source the variants generate: new kernels, new entries.
    pub(super) source_hash: String,
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

    pub(super) fn say(&self, line: &str) {
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
pub(super) struct Operands {
    product: Product,
    m: usize,
    n: usize,
    k: usize,
    /// A (m x k) and B (k x n) in the product's own storage layout, host copies.
    a: Vec<f32>,
    b: Vec<f32>,
    pub(super) a_region: Region,
    pub(super) b_region: Region,
    /// The output (C, or the output layer's y), and for the output layer its target, error
    /// term and the non-finite watch; for the others, the regions their epilogues bind.
    pub(super) out: Region,
    pub(super) target: Vec<f32>,
    pub(super) extra: Vec<Region>,
}

impl Operands {
    pub(super) fn new(
        ctx: &GpuContext,
        product: Product,
        (m, n, k): (usize, usize, usize),
    ) -> Result<Self> {
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
    pub(super) fn dispatches(
        &self,
        (ctx, kernels): (&GpuContext, &Kernels),
        config: &GemmConfig,
    ) -> Result<Vec<Dispatch>> {
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
                None,
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
                None,
                &self.out,
                &self.extra[0],
                &self.extra[1],
                &self.extra[2],
                (m, k, n),
                (Activation::Identity, Loss::Mse),
            ),
            Product::HiddenErrorTerm => kernels.hidden_error_term(
                ctx,
                config,
                &self.a_region,
                &self.b_region,
                &self.extra[0],
                &self.out,
                (m, n, k),
                Activation::Identity,
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
                Update::Deltas {
                    learnrate: k as f32,
                },
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
    pub(super) fn verify(
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
    pub(super) fn time(&self, ctx: &GpuContext, dispatches: &[&Dispatch]) -> Result<f64> {
        run_ms(ctx, dispatches)?;
        let mut samples = (0..RUNS)
            .map(|_| run_ms(ctx, dispatches))
            .collect::<Result<Vec<_>>>()?;
        tune::median(&mut samples).ok_or_else(|| Error::Gpu("no timing".into()))
    }

    /// Times `config` and checks its raw sums against the reference.
    pub(super) fn measure(
        &self,
        (ctx, kernels): (&GpuContext, &Kernels),
        config: &GemmConfig,
    ) -> std::result::Result<f64, String> {
        let dispatches = self
            .dispatches((ctx, kernels), config)
            .map_err(|e| e.to_string())?;
        let refs: Vec<&Dispatch> = dispatches.iter().collect();
        let ms = self.time(ctx, &refs).map_err(|e| e.to_string())?;
        let values = self.out.read(ctx).map_err(|e| e.to_string())?;
        self.verify(&values, |_, _, sum| sum)?;
        Ok(ms)
    }
}
