//! Training over several ranks (`--parallel data|hidden`), as backends that wrap the backend
//! each rank computes on and talk through a [`Communicator`]: the trainer, checkpoints and
//! early stopping see one `Backend` and read the same as in one process.
//!
//! - [`DataParallel`]: every rank holds the whole network; each global batch is split across
//!   the ranks, one sum over ranks adds their gradients, every rank applies the same step.
//!   Traffic per step: every weight and bias, once.
//! - [`HiddenParallel`]: each rank holds a slice of the hidden units; one sum over ranks adds
//!   the slices' output pre-activations (records x outputs), and each rank steps its own slice.
//!   Traffic per step: records x outputs numbers, whatever the hidden layer's width.

mod data;
mod hidden;
#[cfg(test)]
mod in_threads;

pub use data::DataParallel;
pub use hidden::HiddenParallel;

use std::ops::Range;

use ndarray::{Array1, Array2};

use crate::comm::Communicator;
use crate::error::{Error, Result};
use crate::guard::interrupt::CancelToken;
use crate::guard::numeric::Precision;
use crate::model::{Deltas, Network};

/// How a distributed run shares the work (`--parallel`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum Parallel {
    /// Split each batch's records across the ranks; every rank holds the whole network.
    #[default]
    Data,
    /// Split the hidden layer's units across the ranks: for a layer too large for one device.
    Hidden,
}

impl Parallel {
    pub fn name(self) -> &'static str {
        match self {
            Parallel::Data => "data",
            Parallel::Hidden => "hidden",
        }
    }
}

/// Rank `rank`'s part of `n` things split into `size` near-equal contiguous parts (the first
/// `n % size` parts one longer).
pub fn share(n: usize, size: usize, rank: usize) -> Range<usize> {
    let (base, extra) = (n / size, n % size);
    let start = rank * base + rank.min(extra);
    start..start + base + usize::from(rank < extra)
}

/// The numbers of a network's parameters (or of deltas, gradients or moments of its shape),
/// weights then biases, each row-major: what a sum over ranks moves.
pub fn flatten(parameters: &Deltas<f64>) -> Vec<f64> {
    values_of(parameters).collect()
}

/// The inverse of [`flatten`]: `values` laid out as `like`'s tensors.
pub fn unflatten(values: &[f64], like: &Deltas<f64>) -> Result<Deltas<f64>> {
    let expected = like.weights.iter().map(Array2::len).sum::<usize>()
        + like.biases.iter().flatten().map(Array1::len).sum::<usize>();
    if values.len() != expected {
        return Err(Error::Shape(format!(
            "{} values do not fill parameters of {expected}",
            values.len()
        )));
    }
    let mut rest = values;
    let mut take = |n: usize| {
        let (head, tail) = rest.split_at(n);
        rest = tail;
        head.to_vec()
    };
    let weights = like
        .weights
        .iter()
        .map(|w| Array2::from_shape_vec(w.dim(), take(w.len())))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Shape(e.to_string()))?;
    let biases = like
        .biases
        .as_ref()
        .map(|b| b.iter().map(|b| Array1::from(take(b.len()))).collect());
    Ok(Deltas { weights, biases })
}

/// A network's weights and biases as a parameter set.
pub fn parameters(network: &Network<f64>) -> Deltas<f64> {
    Deltas {
        weights: network.weights().to_vec(),
        biases: network.biases().map(<[Array1<f64>]>::to_vec),
    }
}

/// Zeros in the shape of `network`'s parameters.
pub fn zeros_like(network: &Network<f64>) -> Deltas<f64> {
    let p = parameters(network);
    Deltas {
        weights: p.weights.iter().map(|w| Array2::zeros(w.dim())).collect(),
        biases: p
            .biases
            .map(|b| b.iter().map(|b| Array1::zeros(b.len())).collect()),
    }
}

/// Sums `values` over the ranks with one more number that says whether a rank's run was
/// cancelled (SIGINT/SIGTERM), so that all stop at the same batch: a rank that stopped alone would leave
/// the others waiting in their next sum. Backends that compute in f32 send f32 (their values
/// are f32 already; half the bytes).
fn all_reduce_or_stop(
    comm: &dyn Communicator,
    precision: Precision,
    values: &mut Vec<f64>,
    cancel: &CancelToken,
) -> Result<()> {
    let mut narrow = Vec::new();
    sum_with_stop_flag(comm, precision, values, &mut narrow, cancel)
}

/// [`all_reduce_or_stop`] through `narrow` for f32 (both kept by callers that sum often).
fn sum_with_stop_flag(
    comm: &dyn Communicator,
    precision: Precision,
    values: &mut Vec<f64>,
    narrow: &mut Vec<f32>,
    cancel: &CancelToken,
) -> Result<()> {
    let own = cancel.signal();
    values.push(f64::from(own.unwrap_or(0)));
    if precision == Precision::F32 {
        narrow.clear();
        narrow.extend(values.iter().map(|&v| v as f32));
        comm.all_reduce_sum_f32(narrow)?;
        values
            .iter_mut()
            .zip(narrow.iter())
            .for_each(|(v, &n)| *v = f64::from(n));
    } else {
        comm.all_reduce_sum(values)?;
    }
    let stopped = values.pop().unwrap_or(0.0);
    if stopped > 0.0 {
        return Err(Error::Interrupted {
            signal: own.unwrap_or(signal_hook::consts::SIGTERM),
            detail: String::new(),
        });
    }
    Ok(())
}

/// Sums of parameter-shaped values (deltas, gradients) over the ranks, through buffers kept
/// from batch to batch: fresh buffers the size of a wide layer's weights cost page faults on
/// every step.
struct ParameterSum {
    sum: Deltas<f64>,
    values: Vec<f64>,
    narrow: Vec<f32>,
}

impl ParameterSum {
    fn new(like: &Network<f64>) -> Self {
        ParameterSum {
            sum: zeros_like(like),
            values: Vec::new(),
            narrow: Vec::new(),
        }
    }

    /// Sums `part` (zeros for a rank without one) over the ranks, stopping all of them
    /// together as [`all_reduce_or_stop`] does; [`Self::last`] holds the sum.
    fn sum(
        &mut self,
        comm: &dyn Communicator,
        precision: Precision,
        part: Option<&Deltas<f64>>,
        cancel: &CancelToken,
    ) -> Result<()> {
        self.values.clear();
        match part {
            Some(part) => {
                if !part.same_layout(&self.sum) {
                    return Err(Error::Shape(
                        "a rank's deltas do not have the network's shapes".into(),
                    ));
                }
                self.values.extend(values_of(part));
            }
            None => self.values.resize(values_of(&self.sum).count(), 0.0),
        }
        sum_with_stop_flag(comm, precision, &mut self.values, &mut self.narrow, cancel)?;
        let mut summed = self.values.iter();
        for v in values_of_mut(&mut self.sum) {
            *v = summed.next().copied().unwrap_or(f64::NAN);
        }
        Ok(())
    }

    /// Whether the last sum is finite everywhere (a rank's NaN reaches every rank).
    fn is_finite(&self) -> bool {
        all_finite(&self.values)
    }

    /// The last sum.
    fn last(&self) -> &Deltas<f64> {
        &self.sum
    }
}

/// Every value of a parameter set, weights then biases, each row-major.
fn values_of(parameters: &Deltas<f64>) -> impl Iterator<Item = f64> + '_ {
    parameters
        .weights
        .iter()
        .flat_map(|w| w.iter().copied())
        .chain(
            parameters
                .biases
                .iter()
                .flatten()
                .flat_map(|b| b.iter().copied()),
        )
}

/// [`values_of`], to be written.
fn values_of_mut(parameters: &mut Deltas<f64>) -> impl Iterator<Item = &mut f64> + '_ {
    let Deltas { weights, biases } = parameters;
    weights
        .iter_mut()
        .flat_map(|w| w.iter_mut())
        .chain(biases.iter_mut().flatten().flat_map(|b| b.iter_mut()))
}

/// Replaces `values` with rank 0's. MPI's sums are meant to give every rank the same result,
/// but the standard only recommends it: the outputs whose losses decide when training stops
/// are made the same bits on every rank, so that no rank stops alone and leaves the others
/// waiting (records x outputs numbers, once per evaluation).
fn same_as_rank_0(comm: &dyn Communicator, values: &mut Array2<f64>) -> Result<()> {
    match values.as_slice_mut() {
        Some(values) => comm.broadcast_f64(values),
        None => Err(Error::Shape("a summed output is not contiguous".into())),
    }
}

/// Whether every number is finite (a sum over ranks carries a rank's NaN to all of them).
fn all_finite(values: &[f64]) -> bool {
    values.iter().all(|v| v.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Activation;
    use rand::SeedableRng;

    #[test]
    fn shares_cover_every_record_once_and_differ_by_at_most_one() {
        for n in [0, 1, 2, 7, 10, 13] {
            for size in 1..=4 {
                let parts: Vec<_> = (0..size).map(|r| share(n, size, r)).collect();
                assert_eq!(parts[0].start, 0);
                assert_eq!(parts[size - 1].end, n);
                for pair in parts.windows(2) {
                    assert_eq!(pair[0].end, pair[1].start);
                    assert!(pair[0].len() >= pair[1].len());
                    assert!(pair[0].len() - pair[1].len() <= 1);
                }
            }
        }
    }

    #[test]
    fn flatten_and_unflatten_are_inverse_and_refuse_a_wrong_length() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let network = Network::<f64>::random(&[3, 5, 2], Activation::Identity, &mut rng).unwrap();
        let p = parameters(&network);
        let values = flatten(&p);
        assert_eq!(
            values.len(),
            3 * 5 + 5 * 2 + network.biases().map_or(0, |_| 5 + 2)
        );
        let back = unflatten(&values, &p).unwrap();
        assert_eq!(back.weights, p.weights);
        assert_eq!(back.biases, p.biases);
        assert!(unflatten(&values[1..], &p).is_err());
    }
}
