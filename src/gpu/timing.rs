//! Timing kernels on the device: timestamp queries around each dispatch where the adapter has
//! them, else the wall clock around a submission and its completion.

use std::time::Instant;

use crate::error::{Error, Result};
use crate::gpu::buffers::map_read;
use crate::gpu::context::GpuContext;
use crate::gpu::kernels::Dispatch;

/// Runs each dispatch in its own compute pass between two timestamps and returns each one's
/// duration in timestamp ticks (a query set holds at most 4,096 timestamps: 2,048 dispatches).
pub fn timestamps(ctx: &GpuContext, dispatches: &[&Dispatch]) -> Result<Vec<u64>> {
    let count = u32::try_from(2 * dispatches.len())
        .ok()
        .filter(|&c| c <= wgpu::QUERY_SET_MAX_QUERIES)
        .ok_or_else(|| {
            Error::Gpu(format!(
                "{} dispatches are too many to time",
                dispatches.len()
            ))
        })?;
    let queries = ctx.device.create_query_set(&wgpu::QuerySetDescriptor {
        label: Some("kernel timestamps"),
        ty: wgpu::QueryType::Timestamp,
        count,
    });
    let bytes = u64::from(count) * 8;
    let resolved = ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("resolved timestamps"),
        size: bytes,
        usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let staging = ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("timestamp read-back"),
        size: bytes,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut encoder = ctx
        .device
        .create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("timed step"),
        });
    for (i, d) in dispatches.iter().enumerate() {
        let at = 2 * i as u32;
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some(d.kernel),
            timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                query_set: &queries,
                beginning_of_pass_write_index: Some(at),
                end_of_pass_write_index: Some(at + 1),
            }),
        });
        d.record(&mut pass);
    }
    encoder.resolve_query_set(&queries, 0..count, &resolved, 0);
    encoder.copy_buffer_to_buffer(&resolved, 0, &staging, 0, bytes);
    ctx.queue.submit([encoder.finish()]);
    let bytes = map_read(ctx, &staging)?;
    let stamps: Vec<u64> = bytemuck::pod_collect_to_vec(&bytes);
    Ok(stamps
        .chunks_exact(2)
        .map(|p| p[1].saturating_sub(p[0]))
        .collect())
}

/// The milliseconds one run of `dispatches` takes: from timestamps (summed over the
/// dispatches) where the device has them, else the wall clock of a submission.
pub fn run_ms(ctx: &GpuContext, dispatches: &[&Dispatch]) -> Result<f64> {
    if ctx.has_timestamps() {
        let ticks: u64 = timestamps(ctx, dispatches)?.iter().sum();
        return Ok(ticks as f64 * f64::from(ctx.queue.get_timestamp_period()) * 1e-6);
    }
    let started = Instant::now();
    let mut encoder = ctx
        .device
        .create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("timed run"),
        });
    {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
        dispatches.iter().for_each(|d| d.record(&mut pass));
    }
    ctx.queue.submit([encoder.finish()]);
    ctx.device
        .poll(wgpu::PollType::wait_indefinitely())
        .map_err(|e| Error::Gpu(format!("waiting for the GPU: {e}")))?;
    ctx.check_errors()?;
    Ok(started.elapsed().as_secs_f64() * 1e3)
}
