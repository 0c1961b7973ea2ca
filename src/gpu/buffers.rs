//! GPU memory: regions of f32 with optional sentinel guards, uploads, and read-back through a
//! `MAP_READ | COPY_DST` staging buffer.

use std::num::NonZeroU64;
use std::ops::Range;

use ndarray::{Array2, ArrayView2};

use crate::error::{Error, Result};
use crate::gpu::context::{GpuContext, Reservation};

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
    /// This buffer's share of the device's memory budget.
    _reservation: Reservation,
}

impl Region {
    /// Allocates `len` values (zeroed; guards filled with sentinels when `guarded`). Fails with
    /// a clear message when the region exceeds the adapter's storage binding limit.
    pub fn new(ctx: &GpuContext, label: &str, len: usize, guarded: bool) -> Result<Self> {
        if len == 0 {
            return Err(Error::Shape(format!("`{label}` would hold no values")));
        }
        let bytes = (len as u64)
            .checked_mul(F32_BYTES)
            .ok_or_else(|| Error::Memory(format!("`{label}` would need over 2^64 bytes")))?;
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
        let reservation = ctx.reserve(label, size)?;
        let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let buffer = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_DST
                | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(Error::Gpu(format!(
                "`{label}` ({size} bytes) does not fit in {}'s memory: {e}",
                ctx.info.name
            )));
        }
        let region = Region {
            buffer,
            len,
            guard_bytes,
            label: label.to_string(),
            _reservation: reservation,
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

    /// Writes `values` into the region from value `start` on, applied before the next
    /// submission: a data set uploaded a slice of records at a time.
    pub fn upload_at<T: Element>(
        &self,
        ctx: &GpuContext,
        start: usize,
        values: &[T],
    ) -> Result<()> {
        if start.saturating_add(values.len()) > self.len {
            return Err(Error::Shape(format!(
                "writing {} values at {start} into `{}`, which holds {}",
                values.len(),
                self.label,
                self.len
            )));
        }
        ctx.queue.write_buffer(
            &self.buffer,
            self.guard_bytes + start as u64 * F32_BYTES,
            bytemuck::cast_slice(values),
        );
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

    /// Reads back a region of u32 values (indices, the status watch).
    pub fn read_u32(&self, ctx: &GpuContext) -> Result<Vec<u32>> {
        Ok(self.read(ctx)?.into_iter().map(f32::to_bits).collect())
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
    let bytes = map_read(ctx, &staging)?;
    // pod_collect_to_vec copies, so the byte vector's alignment does not matter.
    let all: Vec<f32> = bytemuck::pod_collect_to_vec(&bytes);
    let mut values = Vec::with_capacity(regions.len());
    let mut from = 0usize;
    for (_, size) in &spans {
        let n = (size / F32_BYTES) as usize;
        values.push(all[from..from + n].to_vec());
        from += n;
    }
    Ok(values)
}

/// Waits for the submitted work, maps a `MAP_READ` staging buffer and copies it out.
pub fn map_read(ctx: &GpuContext, staging: &wgpu::Buffer) -> Result<Vec<u8>> {
    let slice = staging.slice(..);
    let (sender, receiver) = std::sync::mpsc::channel();
    slice.map_async(wgpu::MapMode::Read, move |result| {
        // The receiver waits below; if it is gone there is nobody left to tell.
        let _ = sender.send(result);
    });
    ctx.device
        .poll(wgpu::PollType::wait_indefinitely())
        .map_err(|e| Error::Gpu(format!("waiting for the GPU: {e}")))?;
    ctx.check_errors()?;
    receiver
        .recv()
        .map_err(|e| Error::Gpu(format!("read-back was never answered: {e}")))?
        .map_err(|e| Error::Gpu(format!("mapping the read-back buffer: {e}")))?;
    let bytes = slice
        .get_mapped_range()
        .map_err(|e| Error::Gpu(format!("reading the mapped buffer: {e}")))?
        .to_vec();
    staging.unmap();
    Ok(bytes)
}

/// Cuts `n` units into as few contiguous blocks of at most `max_block` as possible, of nearly
/// equal sizes (so no block is a sliver).
pub fn split(n: usize, max_block: usize) -> Vec<Range<usize>> {
    let count = n.div_ceil(max_block.max(1)).max(1);
    let (base, extra) = (n / count, n % count);
    let mut start = 0;
    (0..count)
        .map(|b| {
            let len = base + usize::from(b < extra);
            let block = start..start + len;
            start += len;
            block
        })
        .collect()
}

/// A matrix kept as a grid of regions, so that one larger than a storage binding can live on
/// the device: `rows` x `cols` blocks, each its own region (row-major inside).
pub struct BlockMatrix {
    rows: Vec<Range<usize>>,
    cols: Vec<Range<usize>>,
    blocks: Vec<Region>,
}

impl BlockMatrix {
    pub fn new(
        ctx: &GpuContext,
        label: &str,
        rows: Vec<Range<usize>>,
        cols: Vec<Range<usize>>,
        guarded: bool,
    ) -> Result<Self> {
        let mut blocks = Vec::with_capacity(rows.len() * cols.len());
        for (i, r) in rows.iter().enumerate() {
            for (j, c) in cols.iter().enumerate() {
                let name = if rows.len() * cols.len() == 1 {
                    label.to_string()
                } else {
                    format!("{label} block ({i}, {j})")
                };
                blocks.push(Region::new(ctx, &name, r.len() * c.len(), guarded)?);
            }
        }
        Ok(BlockMatrix { rows, cols, blocks })
    }

    pub fn block(&self, i: usize, j: usize) -> &Region {
        &self.blocks[i * self.cols.len() + j]
    }

    pub fn regions(&self) -> impl Iterator<Item = &Region> {
        self.blocks.iter()
    }

    fn shape(&self) -> (usize, usize) {
        let end = |v: &[Range<usize>]| v.last().map_or(0, |r| r.end);
        (end(&self.rows), end(&self.cols))
    }

    /// Uploads a whole matrix (f64, converted to the kernels' f32), block by block.
    pub fn upload(&self, ctx: &GpuContext, a: ArrayView2<f64>) -> Result<()> {
        if a.dim() != self.shape() {
            return Err(Error::Shape(format!(
                "uploading {:?} into a {:?} matrix",
                a.dim(),
                self.shape()
            )));
        }
        for (i, r) in self.rows.iter().enumerate() {
            for (j, c) in self.cols.iter().enumerate() {
                let block = a.slice(ndarray::s![r.clone(), c.clone()]);
                let values: Vec<f32> = block.iter().map(|&v| v as f32).collect();
                self.block(i, j).upload(ctx, &values)?;
            }
        }
        Ok(())
    }

    /// Reads every block back in one submission and assembles the matrix.
    pub fn read(&self, ctx: &GpuContext) -> Result<Array2<f64>> {
        let regions: Vec<&Region> = self.blocks.iter().collect();
        let mut values = read_all(ctx, &regions, false)?.into_iter();
        let mut out = Array2::zeros(self.shape());
        for r in &self.rows {
            for c in &self.cols {
                let block = values.next().unwrap_or_default();
                let block = ArrayView2::from_shape((r.len(), c.len()), &block)
                    .map_err(|e| Error::Shape(e.to_string()))?;
                out.slice_mut(ndarray::s![r.clone(), c.clone()])
                    .assign(&block.mapv(f64::from));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_are_balanced_and_cover_every_unit() {
        assert_eq!(split(10, 4), [0..4, 4..7, 7..10]);
        let whole = |n: usize| std::iter::once(0..n).collect::<Vec<_>>();
        assert_eq!(split(8, 8), whole(8));
        assert_eq!(split(1, 1000), whole(1));
        let blocks = split(262_144, 42_799);
        assert_eq!(blocks.len(), 7);
        assert!(blocks
            .iter()
            .all(|b| b.len() <= 42_799 && b.len() >= 37_449));
        assert_eq!(blocks.last().unwrap().end, 262_144);
    }

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
