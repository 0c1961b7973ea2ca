//! GPU memory: regions of f32 with optional sentinel guards, uploads, and read-back through a
//! `MAP_READ | COPY_DST` staging buffer.

use std::num::NonZeroU64;

use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;

/// The bit pattern written into guard bands: a quiet NaN whose payload no arithmetic produces,
/// so a stray kernel write shows as a changed pattern even when it writes a NaN.
pub const SENTINEL_BITS: u32 = 0x7FA5_5AA5;

const F32_BYTES: u64 = 4;

/// What a region holds: 4-byte values the kernels read as `f32` or `u32`.
pub trait Element: bytemuck::Pod {}
impl Element for f32 {}
impl Element for u32 {}

/// `len` f32 values in a buffer of their own, optionally between two guard bands of sentinels.
/// Kernels see exactly the region (the binding's size is `len` values), so a kernel writing
/// past its array lands in a guard, where `check_guards` finds it.
pub struct Region {
    buffer: wgpu::Buffer,
    len: usize,
    guard_bytes: u64,
    label: String,
}

impl Region {
    /// Allocates `len` values (zeroed; guards filled with sentinels when `guarded`). Fails with
    /// a clear message when the region exceeds the adapter's storage binding limit.
    pub fn new(ctx: &GpuContext, label: &str, len: usize, guarded: bool) -> Result<Self> {
        if len == 0 {
            return Err(Error::Shape(format!("`{label}` would hold no values")));
        }
        let bytes = len as u64 * F32_BYTES;
        if bytes > ctx.max_binding_bytes {
            return Err(Error::Gpu(format!(
                "`{label}` needs {bytes} bytes in one storage binding, but {} allows {}",
                ctx.info.name, ctx.max_binding_bytes
            )));
        }
        // Bindings start at a multiple of the offset alignment (256 bytes on most adapters).
        let guard_bytes = if guarded {
            u64::from(ctx.limits.min_storage_buffer_offset_alignment).max(256)
        } else {
            0
        };
        let size = bytes + 2 * guard_bytes;
        if size > ctx.limits.max_buffer_size {
            return Err(Error::Gpu(format!(
                "`{label}` needs a {size}-byte buffer, but {} allows {}",
                ctx.info.name, ctx.limits.max_buffer_size
            )));
        }
        let buffer = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_DST
                | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let region = Region {
            buffer,
            len,
            guard_bytes,
            label: label.to_string(),
        };
        if guarded {
            let band = vec![SENTINEL_BITS; (guard_bytes / F32_BYTES) as usize];
            let band = bytemuck::cast_slice(&band);
            ctx.queue.write_buffer(&region.buffer, 0, band);
            ctx.queue
                .write_buffer(&region.buffer, guard_bytes + bytes, band);
        }
        Ok(region)
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    fn bytes(&self) -> u64 {
        self.len as u64 * F32_BYTES
    }

    /// The binding a kernel sees: exactly the region, guards excluded.
    pub fn binding(&self) -> wgpu::BindingResource<'_> {
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: &self.buffer,
            offset: self.guard_bytes,
            size: NonZeroU64::new(self.bytes()),
        })
    }

    /// Writes `values` (f32, or u32 indices) into the region, applied before the next
    /// submission.
    pub fn upload<T: Element>(&self, ctx: &GpuContext, values: &[T]) -> Result<()> {
        let bytes: &[u8] = bytemuck::cast_slice(values);
        if bytes.len() as u64 != self.bytes() {
            return Err(Error::Shape(format!(
                "`{}` holds {} values, got {} bytes",
                self.label,
                self.len,
                bytes.len()
            )));
        }
        ctx.queue
            .write_buffer(&self.buffer, self.guard_bytes, bytes);
        Ok(())
    }

    /// Records a copy of `len` values from `from[from_start..]` to `self[to_start..]`.
    pub fn copy_from(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        from: &Region,
        from_start: usize,
        to_start: usize,
        len: usize,
    ) -> Result<()> {
        if from_start + len > from.len || to_start + len > self.len {
            return Err(Error::Shape(format!(
                "copying {len} values from `{}`[{from_start}..] ({} values) to `{}`[{to_start}..] ({} values)",
                from.label, from.len, self.label, self.len
            )));
        }
        encoder.copy_buffer_to_buffer(
            &from.buffer,
            from.guard_bytes + from_start as u64 * F32_BYTES,
            &self.buffer,
            self.guard_bytes + to_start as u64 * F32_BYTES,
            len as u64 * F32_BYTES,
        );
        Ok(())
    }

    /// Reads the region back.
    pub fn read(&self, ctx: &GpuContext) -> Result<Vec<f32>> {
        Ok(read_all(ctx, &[self], false)?.remove(0))
    }

    /// Fails naming the region and the first changed guard value if a kernel wrote outside it.
    pub fn check_guards(&self, ctx: &GpuContext) -> Result<()> {
        if self.guard_bytes == 0 {
            return Ok(());
        }
        let whole = read_all(ctx, &[self], true)?.remove(0);
        let band = (self.guard_bytes / F32_BYTES) as usize;
        let guards = whole[..band]
            .iter()
            .enumerate()
            .map(|(i, v)| (i as i64 - band as i64, v))
            .chain(
                whole[band + self.len..]
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (i as i64 + self.len as i64, v)),
            );
        for (index, value) in guards {
            if value.to_bits() != SENTINEL_BITS {
                return Err(Error::Gpu(format!(
                    "a kernel wrote {value} at index {index} outside `{}` (0..{})",
                    self.label, self.len
                )));
            }
        }
        Ok(())
    }
}

/// Reads several regions in one submission: each is copied to one staging buffer, which is
/// mapped once. With `with_guards` the guard bands come back too.
pub fn read_all(ctx: &GpuContext, regions: &[&Region], with_guards: bool) -> Result<Vec<Vec<f32>>> {
    let spans: Vec<(u64, u64)> = regions
        .iter()
        .map(|r| {
            if with_guards {
                (0, r.bytes() + 2 * r.guard_bytes)
            } else {
                (r.guard_bytes, r.bytes())
            }
        })
        .collect();
    let total: u64 = spans.iter().map(|(_, size)| size).sum();
    let staging = ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("read-back staging"),
        size: total,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut encoder = ctx
        .device
        .create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("read-back"),
        });
    let mut at = 0;
    for (region, (offset, size)) in regions.iter().zip(&spans) {
        encoder.copy_buffer_to_buffer(&region.buffer, *offset, &staging, at, *size);
        at += size;
    }
    ctx.queue.submit([encoder.finish()]);
    let slice = staging.slice(..);
    let (sender, receiver) = std::sync::mpsc::channel();
    slice.map_async(wgpu::MapMode::Read, move |result| {
        // The receiver waits below; if it is gone there is nobody left to tell.
        let _ = sender.send(result);
    });
    ctx.device
        .poll(wgpu::PollType::wait_indefinitely())
        .map_err(|e| Error::Gpu(format!("waiting for the GPU: {e}")))?;
    receiver
        .recv()
        .map_err(|e| Error::Gpu(format!("read-back was never answered: {e}")))?
        .map_err(|e| Error::Gpu(format!("mapping the read-back buffer: {e}")))?;
    let values = {
        let view = slice
            .get_mapped_range()
            .map_err(|e| Error::Gpu(format!("reading the mapped buffer: {e}")))?;
        let all: &[f32] = bytemuck::cast_slice(&view);
        let mut out = Vec::with_capacity(regions.len());
        let mut from = 0usize;
        for (_, size) in &spans {
            let n = (size / F32_BYTES) as usize;
            out.push(all[from..from + n].to_vec());
            from += n;
        }
        out
    };
    staging.unmap();
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_into_a_guard_band_is_caught_and_named() {
        let Some(ctx) = GpuContext::for_tests() else {
            return;
        };
        let region = Region::new(&ctx, "probe", 5, true).unwrap();
        region.upload(&ctx, &[1.0f32, 2.0, 3.0, 4.0, 5.0]).unwrap();
        region.check_guards(&ctx).unwrap();
        assert_eq!(region.read(&ctx).unwrap(), [1.0, 2.0, 3.0, 4.0, 5.0]);
        // One value just past the end, as an off-by-one kernel would write it.
        let past_end = region.guard_bytes + region.bytes();
        ctx.queue
            .write_buffer(&region.buffer, past_end, bytemuck::cast_slice(&[0.0f32]));
        let err = region.check_guards(&ctx).unwrap_err().to_string();
        assert!(err.contains("index 5 outside `probe` (0..5)"), "{err}");
    }
}
