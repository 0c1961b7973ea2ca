//! Which variant computes a product of a given shape: the tuned winner where the tuner has
//! one (see `crate::tune` and `gpu::tuning`), otherwise [`guess`], a readable rule in the
//! manner of ggml's `ggml_vk_guess_matmul_pipeline`.

use super::{GemmConfig, VARIANTS};

/// The variants that run on an adapter with `limits`.
pub fn candidates(limits: &wgpu::Limits) -> Vec<GemmConfig> {
    VARIANTS
        .iter()
        .copied()
        .filter(|c| c.check(limits).is_ok())
        .collect()
}

/// The heuristic choice for C (m x n) = A (m x k) · B (k x n):
/// - few output tiles and a long K (the weight update of a small layer over a large batch):
///   64 x 64 tiles split along K into enough slices to give the GPU about 64 workgroups;
/// - large outputs (at least 128 x 128 and 2^20 values): 128 x 128 tiles, 8 x 8 per invocation,
///   double-buffered;
/// - medium outputs (2^16 values): 64 x 64 tiles, double-buffered;
/// - small outputs: 32 x 64 tiles, so that more workgroups share the work.
///
/// A variant the adapter cannot run falls back to the first one it can.
pub fn guess(m: usize, n: usize, k: usize, limits: &wgpu::Limits) -> GemmConfig {
    let base = GemmConfig::new(64, 64, 16, 4, 4);
    let tiles = m.div_ceil(64) * n.div_ceil(64);
    let wanted = if k >= 1024 && tiles < 32 {
        let slices = (64 / tiles.max(1)).next_power_of_two().clamp(2, 8);
        base.split(slices as u32)
    } else if m >= 128 && n >= 128 && m * n >= 1 << 20 {
        GemmConfig::new(128, 128, 8, 8, 8).double_buffered()
    } else if m * n >= 1 << 16 {
        GemmConfig::new(64, 64, 8, 4, 4).double_buffered()
    } else {
        GemmConfig::new(32, 64, 16, 4, 4)
    };
    if wanted.check(limits).is_ok() {
        return wanted;
    }
    candidates(limits).first().copied().unwrap_or(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guess_follows_its_rule() {
        let limits = wgpu::Limits {
            max_compute_workgroup_storage_size: 32 * 1024,
            ..wgpu::Limits::default()
        };
        // GPU.md's S: the forward product 1024 x 784 · 784 x 256, the update 784 x 256 over
        // K = 1024 records, and XL's forward 8192 x 16384.
        assert_eq!(guess(1024, 256, 784, &limits).name(), "64x64x8/4x4+db");
        assert_eq!(guess(784, 10, 1024, &limits).name(), "64x64x16/4x4+split4");
        assert_eq!(guess(8192, 16384, 4096, &limits).name(), "128x128x8/8x8+db");
        assert_eq!(guess(32, 25, 61, &limits).name(), "32x64x16/4x4");
        // An adapter with little workgroup memory still gets a variant it can run.
        let tiny = wgpu::Limits {
            max_compute_workgroup_storage_size: 12 * 1024,
            ..wgpu::Limits::default()
        };
        assert!(guess(8192, 16384, 4096, &tiny).check(&tiny).is_ok());
    }
}
