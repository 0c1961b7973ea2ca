//! The pace of an epoch's submissions.

use crate::error::{Error, Result};
use crate::guard::interrupt::CancelToken;

use super::context::GpuContext;

/// Steps recorded per submission by `train_steps`, and the most per submission in an epoch:
/// few submissions, bounded command buffers.
pub const BATCHES_PER_SUBMISSION: usize = 512;

/// The submissions of an epoch, paced: each holds as many batches as the GPU runs in about
/// `PACE` (doubling or halving from one to the next, at most `BATCHES_PER_SUBMISSION`), with
/// at most two in flight. The GPU never waits for the CPU, and a signal is answered between
/// two submissions, within a fraction of a second even where one batch takes long (lavapipe).
pub struct Pacer {
    pub per_submission: usize,
    in_flight: Option<wgpu::SubmissionIndex>,
    last_done: std::time::Instant,
}

/// How long one submission of an epoch should run on the GPU.
const PACE: std::time::Duration = std::time::Duration::from_millis(100);

impl Pacer {
    pub fn new(per_submission: usize) -> Self {
        Pacer {
            per_submission: per_submission.clamp(1, BATCHES_PER_SUBMISSION),
            in_flight: None,
            last_done: std::time::Instant::now(),
        }
    }

    /// Submits `encoder`, then waits for the submission before it and adapts the size of the
    /// next from how long that one ran; a cancelled run stops here.
    pub fn submit(
        &mut self,
        ctx: &GpuContext,
        encoder: wgpu::CommandEncoder,
        cancel: &CancelToken,
    ) -> Result<()> {
        let index = ctx.queue.submit([encoder.finish()]);
        if let Some(previous) = self.in_flight.replace(index) {
            ctx.device
                .poll(wgpu::PollType::Wait {
                    submission_index: Some(previous),
                    timeout: None,
                })
                .map_err(|e| Error::Gpu(format!("waiting for the GPU: {e}")))?;
            let ran = self.last_done.elapsed();
            self.last_done = std::time::Instant::now();
            if ran < PACE / 2 {
                self.per_submission = (self.per_submission * 2).min(BATCHES_PER_SUBMISSION);
            } else if ran > PACE * 2 {
                self.per_submission = (self.per_submission / 2).max(1);
            }
        }
        cancel.check()
    }
}
