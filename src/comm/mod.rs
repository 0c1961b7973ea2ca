//! The communication seam of distributed training (llm.c's `zero.cuh`): rank, size, a sum
//! over all ranks, a broadcast from rank 0, a barrier and an abort. Without MPI it is rank 0 of
//! 1 ([`Local`]), so the trainer reads the same with or without it; with the `mpi` feature and
//! a launcher (`mpirun`, `srun`) it is MPI's world ([`mpi::Mpi`]).
//!
//! The collectives move f64 (the numbers that cross the `Backend` seam), f32 (half the bytes
//! where the backends compute in f32) and u64 (checksums);
//! MPI's counts are C ints, so long buffers go in chunks.

#[cfg(feature = "mpi")]
pub mod mpi;

use std::cell::Cell;
use std::time::Instant;

use crate::error::{Error, Result};

/// What collectives have cost so far: the time spent in them (waiting for slower ranks
/// included) and the bytes each rank handed them.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Traffic {
    pub seconds: f64,
    pub bytes: u64,
    pub calls: u64,
}

/// The processes of one run and the operations between them. Every rank must call the
/// collectives (`all_reduce_sum`, `broadcast_*`, `barrier`) in the same order with buffers of
/// the same length.
pub trait Communicator {
    /// This process's rank, 0 to `size() - 1`; rank 0 writes every output.
    fn rank(&self) -> usize;

    /// How many ranks the run has.
    fn size(&self) -> usize;

    /// This process's rank among those on its host: which of the host's GPUs it takes.
    fn local_rank(&self) -> usize;

    /// Replaces `values` on every rank with their element-wise sum over all ranks.
    fn all_reduce_sum(&self, values: &mut [f64]) -> Result<()>;

    /// The same in f32: half the bytes, for backends that compute in f32.
    fn all_reduce_sum_f32(&self, values: &mut [f32]) -> Result<()>;

    /// Replaces `values` on every rank with rank 0's.
    fn broadcast_f64(&self, values: &mut [f64]) -> Result<()>;

    /// Replaces `values` on every rank with rank 0's.
    fn broadcast_u64(&self, values: &mut [u64]) -> Result<()>;

    /// Waits until every rank has arrived, without keeping a core busy.
    fn barrier(&self);

    /// Ends every rank of the run with exit code `code` (a rank that failed calls it, so that
    /// the others do not wait for it forever in their next collective).
    fn abort(&self, code: i32) -> !;

    /// The collectives' cost so far.
    fn traffic(&self) -> Traffic;

    /// `one process` or `MPI (Open MPI v4.1.4): 2 ranks`.
    fn describe(&self) -> String;

    /// Whether this rank writes outputs (models, metrics, plots, checkpoints).
    fn writes_outputs(&self) -> bool {
        self.rank() == 0
    }
}

/// One process: rank 0 of 1, whose collectives change nothing.
#[derive(Default)]
pub struct Local;

impl Communicator for Local {
    fn rank(&self) -> usize {
        0
    }

    fn size(&self) -> usize {
        1
    }

    fn local_rank(&self) -> usize {
        0
    }

    fn all_reduce_sum(&self, _values: &mut [f64]) -> Result<()> {
        Ok(())
    }

    fn all_reduce_sum_f32(&self, _values: &mut [f32]) -> Result<()> {
        Ok(())
    }

    fn broadcast_f64(&self, _values: &mut [f64]) -> Result<()> {
        Ok(())
    }

    fn broadcast_u64(&self, _values: &mut [u64]) -> Result<()> {
        Ok(())
    }

    fn barrier(&self) {}

    fn abort(&self, code: i32) -> ! {
        std::process::exit(code)
    }

    fn traffic(&self) -> Traffic {
        Traffic::default()
    }

    fn describe(&self) -> String {
        "one process".into()
    }
}

/// Adds the time and bytes of collectives to a [`Traffic`] (for the implementations).
#[derive(Default)]
pub struct Meter {
    traffic: Cell<Traffic>,
}

impl Meter {
    /// Runs `collective` over `bytes` bytes, counting its time.
    pub fn measure<R>(&self, bytes: usize, collective: impl FnOnce() -> R) -> R {
        let started = Instant::now();
        let result = collective();
        let mut t = self.traffic.get();
        t.seconds += started.elapsed().as_secs_f64();
        t.bytes += bytes as u64;
        t.calls += 1;
        self.traffic.set(t);
        result
    }

    pub fn traffic(&self) -> Traffic {
        self.traffic.get()
    }
}

/// The environment variables through which launchers tell a process how many ranks its run
/// has: Open MPI's `mpirun`, MPICH's and Intel MPI's Hydra (and Slurm's `srun --mpi=pmi2`),
/// MVAPICH, and Slurm's `srun` itself (set for the tasks of a job step, not in a batch script).
pub const LAUNCHER_SIZE_VARS: [&str; 4] = [
    "OMPI_COMM_WORLD_SIZE",
    "PMI_SIZE",
    "MV2_COMM_WORLD_SIZE",
    "SLURM_STEP_NUM_TASKS",
];

/// Set by PMIx launchers (`srun --mpi=pmix`, `prterun`), which name no size: MPI tells it.
pub const PMIX_RANK_VAR: &str = "PMIX_RANK";

/// The number of ranks a launcher started this process among, and the variable that says so;
/// `None` when no launcher did.
pub fn launched_ranks() -> Option<(usize, &'static str)> {
    LAUNCHER_SIZE_VARS.iter().find_map(|&name| {
        let value = std::env::var(name).ok()?;
        Some((value.trim().parse().ok()?, name))
    })
}

/// The communicator of this process: MPI's world when a launcher started it and the `mpi`
/// feature is built in, otherwise [`Local`]. Launched as one of several ranks without the
/// feature, it refuses: the copies would all train alone and race to write the same files.
pub fn init() -> Result<Box<dyn Communicator>> {
    let launched = launched_ranks();
    #[cfg(feature = "mpi")]
    if launched.is_some() || std::env::var_os(PMIX_RANK_VAR).is_some() {
        return Ok(Box::new(mpi::Mpi::init()?));
    }
    match launched {
        Some((ranks, var)) if ranks > 1 => Err(Error::Distributed(format!(
            "this process is one of {ranks} ranks ({var}={ranks}), but this backprop was built without MPI: \
             each copy would train alone and all would write the same files. Build it with MPI \
             (`cargo build --release --features mpi`, which needs Open MPI or MPICH and libclang; \
             see README, \"Beyond one machine\"), or run it without mpirun/srun"
        ))),
        _ => Ok(Box::new(Local)),
    }
}

/// Checks that a command which runs in one process was not launched as several ranks.
pub fn single_process(comm: &dyn Communicator, command: &str) -> Result<()> {
    if comm.size() > 1 {
        return Err(Error::Distributed(format!(
            "`backprop {command}` runs in one process, but this is rank {} of {}: launch it without mpirun/srun (`train` and `bench` run distributed)",
            comm.rank(),
            comm.size()
        )));
    }
    Ok(())
}

/// FNV-1a over `values`' bits: ranks compare what they read (a node with another copy of a
/// file would otherwise train on different data).
pub fn checksum(values: impl IntoIterator<Item = f64>) -> u64 {
    values.into_iter().fold(0xcbf2_9ce4_8422_2325, |hash, v| {
        v.to_bits().to_le_bytes().iter().fold(hash, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
    })
}

/// Checks that every rank holds what rank 0 holds, by checksum: `what` names it in the error.
pub fn check_same_on_every_rank(comm: &dyn Communicator, what: &str, sum: u64) -> Result<()> {
    if comm.size() == 1 {
        return Ok(());
    }
    let mut rank0 = [sum];
    comm.broadcast_u64(&mut rank0)?;
    // Every rank learns whether any differs, so that all stop together.
    let mut differs = [f64::from(u8::from(rank0[0] != sum))];
    comm.all_reduce_sum(&mut differs)?;
    match (rank0[0] != sum, differs[0] > 0.0) {
        (true, _) => Err(Error::Distributed(format!(
            "rank {} read {what} different from rank 0's (checksum {sum:016x}, rank 0 {:016x}): every rank must read the same files",
            comm.rank(),
            rank0[0]
        ))),
        (false, true) => Err(Error::Distributed(format!(
            "{} of {} ranks read {what} different from rank 0's: every rank must read the same files",
            differs[0],
            comm.size()
        ))),
        (false, false) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_is_rank_zero_of_one_and_its_collectives_change_nothing() {
        let comm = Local;
        let mut values = [1.5, -2.0];
        comm.all_reduce_sum(&mut values).unwrap();
        comm.broadcast_f64(&mut values).unwrap();
        assert_eq!(values, [1.5, -2.0]);
        assert_eq!((comm.rank(), comm.size(), comm.local_rank()), (0, 1, 0));
        assert!(comm.writes_outputs());
        check_same_on_every_rank(&comm, "data", 7).unwrap();
        single_process(&comm, "predict").unwrap();
    }

    #[test]
    fn checksums_tell_apart_values_that_print_alike() {
        assert_eq!(checksum([1.0, 2.0]), checksum([1.0, 2.0]));
        assert_ne!(checksum([1.0, 2.0]), checksum([2.0, 1.0]));
        assert_ne!(checksum([0.1 + 0.2]), checksum([0.3]));
        assert_ne!(checksum([0.0]), checksum([-0.0]));
    }
}
