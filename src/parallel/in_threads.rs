//! The parallel backends over ranks that are threads of one test process, against one process:
//! what `tests/mpi.rs` checks through `mpirun` for training, here for every `Backend` method
//! the trainer does not reach (`delta_weights_from_output`), without a launcher.

use std::sync::{Arc, Barrier, Mutex};

use ndarray::{Array2, ArrayView2};
use rand::{Rng, SeedableRng};

use super::{DataParallel, HiddenParallel};
use crate::backend::Backend;
use crate::comm::{Communicator, Traffic};
use crate::cpu::{self, CpuBackend};
use crate::error::Result;
use crate::model::{Activation, Deltas, Init, Loss, Network, Spec};

/// Rank `rank` of `size` threads that sum through shared memory.
struct Threads {
    rank: usize,
    size: usize,
    shared: Arc<(Barrier, Mutex<Vec<f64>>)>,
}

impl Communicator for Threads {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.size
    }

    fn local_rank(&self) -> usize {
        self.rank
    }

    fn all_reduce_sum(&self, values: &mut [f64]) -> Result<()> {
        let (barrier, sum) = &*self.shared;
        // The previous sum has been read by every rank.
        barrier.wait();
        if self.rank == 0 {
            *sum.lock().unwrap() = vec![0.0; values.len()];
        }
        barrier.wait();
        {
            let mut sum = sum.lock().unwrap();
            assert_eq!(sum.len(), values.len(), "ranks sum buffers of one length");
            sum.iter_mut().zip(&*values).for_each(|(s, v)| *s += v);
        }
        barrier.wait();
        values.copy_from_slice(&sum.lock().unwrap());
        Ok(())
    }

    fn all_reduce_sum_f32(&self, values: &mut [f32]) -> Result<()> {
        let mut wide: Vec<f64> = values.iter().map(|&v| f64::from(v)).collect();
        self.all_reduce_sum(&mut wide)?;
        values.iter_mut().zip(wide).for_each(|(v, w)| *v = w as f32);
        Ok(())
    }

    fn broadcast_f64(&self, values: &mut [f64]) -> Result<()> {
        if self.rank != 0 {
            values.fill(0.0);
        }
        self.all_reduce_sum(values)
    }

    fn broadcast_u64(&self, values: &mut [u64]) -> Result<()> {
        // Each u64 as its two 32-bit halves, which f64 holds exactly.
        let mut halves: Vec<f64> = values
            .iter()
            .flat_map(|&v| [f64::from((v >> 32) as u32), f64::from(v as u32)])
            .collect();
        self.broadcast_f64(&mut halves)?;
        for (v, pair) in values.iter_mut().zip(halves.chunks(2)) {
            *v = ((pair[0] as u64) << 32) | pair[1] as u64;
        }
        Ok(())
    }

    fn barrier(&self) {
        self.shared.0.wait();
    }

    fn abort(&self, code: i32) -> ! {
        panic!("rank {} aborted with {code}", self.rank)
    }

    fn traffic(&self) -> Traffic {
        Traffic::default()
    }

    fn describe(&self) -> String {
        format!("{} threads", self.size)
    }
}

/// `rank(comm)` on `size` threads, one a rank; the results in rank order.
fn on_ranks<R: Send>(size: usize, rank: impl Fn(&dyn Communicator) -> R + Sync) -> Vec<R> {
    let shared = Arc::new((Barrier::new(size), Mutex::new(Vec::new())));
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..size)
            .map(|r| {
                let comm = Threads {
                    rank: r,
                    size,
                    shared: Arc::clone(&shared),
                };
                let rank = &rank;
                scope.spawn(move || rank(&comm))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

#[derive(Clone, Copy, Debug)]
enum Mode {
    Data,
    Hidden,
}

/// `network` trained as `mode` on this rank, in f64 on the CPU.
fn parallel<'a>(
    mode: Mode,
    network: &Network<f64>,
    comm: &'a dyn Communicator,
) -> Box<dyn Backend + 'a> {
    match mode {
        Mode::Data => Box::new(
            DataParallel::new(
                Box::new(CpuBackend::<f64>::new(network)),
                comm,
                Default::default(),
            )
            .unwrap(),
        ),
        Mode::Hidden => {
            let slice = HiddenParallel::slice_of(network, comm).unwrap();
            let inner = Box::new(CpuBackend::<f64>::new(&slice));
            Box::new(HiddenParallel::new(network, comm, inner, Default::default()).unwrap())
        }
    }
}

fn problem(
    records: usize,
    output: Activation,
    seed: u64,
) -> (Network<f64>, Array2<f64>, Array2<f64>) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let spec = Spec {
        hidden: Activation::Sigmoid,
        output,
        loss: if output == Activation::Softmax {
            Loss::CrossEntropy
        } else {
            Loss::Mse
        },
    };
    let network =
        Network::random_with(&[5, 7, 3], spec, Init::GlorotUniform, true, &mut rng).unwrap();
    let x = Array2::from_shape_simple_fn((records, 5), || rng.random_range(-1.0..1.0));
    let target = Array2::from_shape_simple_fn((records, 3), || rng.random_range(0.0..1.0));
    (network, x, target)
}

/// The output error term a trainer computes from `output`: not linear in it, so that a
/// callback given part of the output (or another's) gives other deltas.
fn term_of(network: &Network<f64>, target: ArrayView2<f64>, output: &Array2<f64>) -> Array2<f64> {
    let spec = network.spec();
    cpu::output_error_term(target, output.view(), spec.output, spec.loss)
}

/// Every number of `got` within `1e-12` of `want`'s largest.
fn assert_close(what: &str, got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}");
    let scale = want.iter().fold(1e-300f64, |m, v| m.max(v.abs()));
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() <= 1e-12 * scale, "{what}: {g} vs {w}");
    }
}

#[test]
fn deltas_from_the_output_over_ranks_are_one_process_s() {
    // 2 records on 3 ranks leave a data-parallel rank without any.
    for (records, output) in [(5, Activation::Softmax), (2, Activation::Sigmoid)] {
        let (network, x, target) = problem(records, output, 7 + records as u64);
        let mut one = CpuBackend::<f64>::new(&network);
        let mut want_output = None;
        let want = one
            .delta_weights_from_output(x.view(), 0.3, &mut |y| {
                let term = term_of(&network, target.view(), &y);
                want_output = Some(y);
                Ok(term)
            })
            .unwrap();
        let want_output = want_output.unwrap();
        for mode in [Mode::Data, Mode::Hidden] {
            for size in 1..=3 {
                let ranks = on_ranks(size, |comm| {
                    let mut backend = parallel(mode, &network, comm);
                    let mut seen = Vec::new();
                    let deltas = backend
                        .delta_weights_from_output(x.view(), 0.3, &mut |y| {
                            let term = term_of(&network, target.view(), &y);
                            seen.push(y);
                            Ok(term)
                        })
                        .unwrap();
                    (seen, deltas)
                });
                for (rank, (seen, deltas)) in ranks.iter().enumerate() {
                    let what = format!("{mode:?}, {records} records, rank {rank} of {size}");
                    assert_eq!(seen.len(), 1, "{what}: one call of the callback");
                    assert_close(
                        &format!("{what}: output"),
                        seen[0].as_slice().unwrap(),
                        want_output.as_slice().unwrap(),
                    );
                    assert_close(&what, &super::flatten(deltas), &super::flatten(&want));
                }
            }
        }
    }
}

#[test]
fn a_wrong_term_is_an_error_on_every_rank() {
    let (network, x, _) = problem(4, Activation::Identity, 17);
    for mode in [Mode::Data, Mode::Hidden] {
        let errors = on_ranks(3, |comm| {
            let mut backend = parallel(mode, &network, comm);
            backend
                .delta_weights_from_output(x.view(), 0.3, &mut |y| {
                    Ok(Array2::zeros((y.nrows() - 1, y.ncols())))
                })
                .unwrap_err()
                .to_string()
        });
        for error in errors {
            assert!(error.contains("output error term"), "{mode:?}: {error}");
        }
    }
}

#[test]
fn hidden_parallel_steps_and_epochs_are_one_process_s_and_diverge_together() {
    let (network, x, target) = problem(6, Activation::Sigmoid, 27);
    let order = [4, 1, 5, 0, 2, 3];
    let mut one = CpuBackend::<f64>::new(&network);
    one.train_step(x.view(), target.view(), 0.5).unwrap();
    let data = one
        .load_data(x.view().into(), target.view().into())
        .unwrap();
    assert_eq!(
        one.train_epoch(data, &order, 4, 0.5, &Default::default())
            .unwrap(),
        None
    );
    let want = super::parameters(&one.network().unwrap());
    for size in 1..=3 {
        let ranks = on_ranks(size, |comm| {
            let mut backend = parallel(Mode::Hidden, &network, comm);
            backend.train_step(x.view(), target.view(), 0.5).unwrap();
            let data = backend
                .load_data(x.view().into(), target.view().into())
                .unwrap();
            assert_eq!(
                backend
                    .train_epoch(data, &order, 4, 0.5, &Default::default())
                    .unwrap(),
                None
            );
            super::parameters(&backend.network().unwrap())
        });
        for (rank, got) in ranks.iter().enumerate() {
            let what = format!("rank {rank} of {size}");
            assert_close(&what, &super::flatten(got), &super::flatten(&want));
        }
    }

    // Output weights this large overflow the output's sum: the first batch diverges.
    let huge = Network::with_spec(
        vec![
            network.weights()[0].clone(),
            network.weights()[1].mapv(|_| 1e308),
        ],
        network.biases().map(<[_]>::to_vec),
        Spec {
            output: Activation::Identity,
            ..network.spec()
        },
    )
    .unwrap();
    let mut one = CpuBackend::<f64>::new(&huge);
    let data = one
        .load_data(x.view().into(), target.view().into())
        .unwrap();
    assert_eq!(
        one.train_epoch(data, &order, 4, 0.5, &Default::default())
            .unwrap(),
        Some(0)
    );
    let ranks = on_ranks(3, |comm| {
        let mut backend = parallel(Mode::Hidden, &huge, comm);
        let data = backend
            .load_data(x.view().into(), target.view().into())
            .unwrap();
        let diverged = backend
            .train_epoch(data, &order, 4, 0.5, &Default::default())
            .unwrap();
        let step = backend
            .train_step(x.view(), target.view(), 0.5)
            .unwrap_err();
        let deltas = backend
            .delta_weights(x.view(), target.view(), 0.5)
            .unwrap_err();
        let unchanged = super::parameters(&backend.network().unwrap());
        (diverged, step.to_string(), deltas.to_string(), unchanged)
    });
    for (rank, (diverged, step, deltas, unchanged)) in ranks.iter().enumerate() {
        assert_eq!(*diverged, Some(0), "rank {rank}");
        assert!(step.contains("NaN or infinite"), "rank {rank}: {step}");
        assert!(deltas.contains("NaN or infinite"), "rank {rank}: {deltas}");
        let before: Deltas<f64> = super::parameters(&huge);
        assert_eq!(
            super::flatten(unchanged),
            super::flatten(&before),
            "rank {rank}"
        );
    }
}

#[test]
fn ranks_that_hold_different_checksums_all_refuse_and_the_one_that_differs_says_so() {
    let same = on_ranks(3, |comm| {
        crate::comm::check_same_on_every_rank(comm, "the data", u64::MAX - 7).is_ok()
    });
    assert_eq!(same, [true, true, true]);
    let differing = on_ranks(3, |comm| {
        let sum = if comm.rank() == 2 {
            1 << 40
        } else {
            u64::MAX - 7
        };
        crate::comm::check_same_on_every_rank(comm, "the data", sum)
            .unwrap_err()
            .to_string()
    });
    assert!(
        differing[2].contains("rank 2 read the data different from rank 0's"),
        "{differing:?}"
    );
    assert!(differing[0].contains("1 of 3 ranks"), "{differing:?}");
    assert!(differing[1].contains("1 of 3 ranks"), "{differing:?}");
}
