//! MPI's world as a [`Communicator`] (rsmpi over Open MPI or MPICH), built with `--features mpi`.
//!
//! rsmpi's safe API has no `MPI_IN_PLACE`, so a sum goes through a copy of the buffer; MPI's
//! counts are C ints, so buffers longer than [`CHUNK`] go in pieces.

use std::cell::RefCell;

use mpi::collective::{CommunicatorCollectives, Root, SystemOperation};
use mpi::datatype::Equivalence;
use mpi::environment::Universe;
use mpi::topology::{Communicator as _, SimpleCommunicator};
use mpi::Threading;

use super::{Communicator, Meter, Traffic};
use crate::error::{Error, Result};

/// Elements per collective call: well inside a C int, and a few hundred MB of f64 at most.
const CHUNK: usize = 1 << 25;

/// The MPI world of a launched run. Dropping it finalizes MPI.
pub struct Mpi {
    world: SimpleCommunicator,
    local_rank: usize,
    meter: Meter,
    send_f64: RefCell<Vec<f64>>,
    send_f32: RefCell<Vec<f32>>,
    // Declared last: MPI is finalized after the communicators above are freed.
    _universe: Universe,
}

impl Mpi {
    /// Initializes MPI. Only the main thread calls MPI (rayon's threads compute), which is
    /// `MPI_THREAD_FUNNELED`.
    pub fn init() -> Result<Self> {
        let (universe, _) =
            mpi::initialize_with_threading(Threading::Funneled).ok_or_else(|| {
                Error::Distributed("MPI was initialized already, or could not be".into())
            })?;
        let world = universe.world();
        // The ranks that share this host's memory, ordered by world rank: the local rank picks
        // among the host's GPUs whatever the launcher's variables are called.
        let local = world.split_shared(world.rank());
        let local_rank = usize::try_from(local.rank()).unwrap_or(0);
        Ok(Mpi {
            world,
            local_rank,
            meter: Meter::default(),
            send_f64: RefCell::default(),
            send_f32: RefCell::default(),
            _universe: universe,
        })
    }
}

impl Mpi {
    /// `MPI_Allreduce` with `MPI_SUM`, through a copy in `send` (no `MPI_IN_PLACE` in rsmpi's
    /// safe API), which is kept: a fresh buffer of a wide layer's gradient would cost page
    /// faults on every step.
    fn sum<T: Equivalence + Copy>(&self, values: &mut [T], send: &RefCell<Vec<T>>) -> Result<()> {
        let mut send = send.borrow_mut();
        self.meter.measure(std::mem::size_of_val(values), || {
            for chunk in values.chunks_mut(CHUNK) {
                send.clear();
                send.extend_from_slice(chunk);
                self.world
                    .all_reduce_into(&send[..], chunk, SystemOperation::sum());
            }
        });
        Ok(())
    }

    /// `MPI_Bcast` from rank 0.
    fn broadcast<T: Equivalence>(&self, values: &mut [T]) -> Result<()> {
        let root = self.world.process_at_rank(0);
        self.meter.measure(std::mem::size_of_val(values), || {
            for chunk in values.chunks_mut(CHUNK) {
                root.broadcast_into(chunk);
            }
        });
        Ok(())
    }
}

impl Communicator for Mpi {
    fn rank(&self) -> usize {
        usize::try_from(self.world.rank()).unwrap_or(0)
    }

    fn size(&self) -> usize {
        usize::try_from(self.world.size()).unwrap_or(1)
    }

    fn local_rank(&self) -> usize {
        self.local_rank
    }

    fn all_reduce_sum(&self, values: &mut [f64]) -> Result<()> {
        self.sum(values, &self.send_f64)
    }

    fn all_reduce_sum_f32(&self, values: &mut [f32]) -> Result<()> {
        self.sum(values, &self.send_f32)
    }

    fn broadcast_f64(&self, values: &mut [f64]) -> Result<()> {
        self.broadcast(values)
    }

    fn broadcast_u64(&self, values: &mut [u64]) -> Result<()> {
        self.broadcast(values)
    }

    fn barrier(&self) {
        // Polled with sleeps rather than MPI_Barrier's busy wait: the ranks that wait here
        // (while rank 0 times a step alone) leave the host's cores to it.
        self.meter.measure(0, || {
            let mut request = self.world.immediate_barrier();
            loop {
                match request.test() {
                    Ok(_) => break,
                    Err(pending) => request = pending,
                }
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
        });
    }

    fn abort(&self, code: i32) -> ! {
        self.world.abort(code)
    }

    fn traffic(&self) -> Traffic {
        self.meter.traffic()
    }

    fn describe(&self) -> String {
        let library = mpi::environment::library_version()
            .ok()
            .and_then(|v| {
                v.lines()
                    .next()
                    .map(|l| l.trim().trim_end_matches(',').to_string())
            })
            .unwrap_or_else(|| "MPI".into());
        format!("{library}: {} ranks", self.size())
    }
}
