//! A GEMM variant as a plain value: the workgroup tile (BM x BN, K staged BK at a time), the
//! outputs each invocation holds (TM x TN, in TM x TN/4 named vec4 accumulators), whether the
//! workgroup tiles are double-buffered, and into how many slices K is split. It checks itself
//! against an adapter's limits and names itself; the generator turns it into WGSL.

use serde::{Deserialize, Serialize};

/// One way to compute a tiled product C (M x N) = A (M x K) · B (K x N).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GemmConfig {
    pub bm: u32,
    pub bn: u32,
    pub bk: u32,
    pub tm: u32,
    pub tn: u32,
    /// Load the next K slice into a second pair of workgroup tiles while computing this one:
    /// one barrier per slice instead of two.
    pub double_buffer: bool,
    /// Split K into this many slices computed by separate workgroups, whose partial sums a
    /// second kernel adds in a fixed order (deterministic); 1 for none.
    pub split_k: u32,
}

impl GemmConfig {
    pub const fn new(bm: u32, bn: u32, bk: u32, tm: u32, tn: u32) -> Self {
        GemmConfig {
            bm,
            bn,
            bk,
            tm,
            tn,
            double_buffer: false,
            split_k: 1,
        }
    }

    pub const fn double_buffered(self) -> Self {
        GemmConfig {
            double_buffer: true,
            ..self
        }
    }

    pub const fn split(self, slices: u32) -> Self {
        GemmConfig {
            split_k: slices,
            ..self
        }
    }

    /// `128x128x8/8x8+db+split4`: tile, outputs per invocation, options.
    pub fn name(&self) -> String {
        format!(
            "{}x{}x{}/{}x{}{}{}",
            self.bm,
            self.bn,
            self.bk,
            self.tm,
            self.tn,
            if self.double_buffer { "+db" } else { "" },
            if self.split_k > 1 {
                format!("+split{}", self.split_k)
            } else {
                String::new()
            }
        )
    }

    /// Invocations along N (x) and M (y).
    pub fn workgroup_size(&self) -> (u32, u32) {
        (self.bn / self.tn, self.bm / self.tm)
    }

    pub fn invocations(&self) -> u32 {
        let (x, y) = self.workgroup_size();
        x * y
    }

    /// Bytes of workgroup memory: the A and B tiles, twice when double-buffered.
    pub fn workgroup_bytes(&self) -> u32 {
        let buffers = if self.double_buffer { 2 } else { 1 };
        buffers * (self.bm + self.bn) * self.bk * 4
    }

    /// The K slice each workgroup of a split product sums: a multiple of BK, so that slices
    /// never share a tile.
    pub fn k_slice(&self, k: u32) -> u32 {
        let per_slice = k.div_ceil(self.split_k.max(1)).max(1);
        per_slice.div_ceil(self.bk) * self.bk
    }

    /// Workgroups along N, M and the K slices.
    pub fn grid(&self, m: u32, n: u32, k: u32) -> (u32, u32, u32) {
        let slices = if self.split_k > 1 {
            k.max(1).div_ceil(self.k_slice(k))
        } else {
            1
        };
        (n.div_ceil(self.bn), m.div_ceil(self.bm), slices)
    }

    /// Why this variant cannot run on an adapter with `limits`, if it cannot.
    pub fn check(&self, limits: &wgpu::Limits) -> Result<(), String> {
        let name = self.name();
        let fail = |why: String| Err(format!("{name}: {why}"));
        if self.tm == 0 || self.tn == 0 || self.bk == 0 || self.tn % 4 != 0 {
            return fail(
                "TN must be a multiple of 4 (vec4 accumulators); TM, BK at least 1".into(),
            );
        }
        if self.bm % self.tm != 0 || self.bn % self.tn != 0 {
            return fail("the tile must be a whole number of invocation blocks".into());
        }
        let invocations = self.invocations();
        if (self.bm * self.bk) % invocations != 0 || (self.bn * self.bk) % invocations != 0 {
            return fail("each tile must load in whole rounds of the workgroup".into());
        }
        let (x, y) = self.workgroup_size();
        if invocations > limits.max_compute_invocations_per_workgroup
            || x > limits.max_compute_workgroup_size_x
            || y > limits.max_compute_workgroup_size_y
        {
            return fail(format!(
                "{x} x {y} invocations exceed the adapter's workgroup limits"
            ));
        }
        if self.workgroup_bytes() > limits.max_compute_workgroup_storage_size {
            return fail(format!(
                "{} bytes of workgroup memory exceed the adapter's {}",
                self.workgroup_bytes(),
                limits.max_compute_workgroup_storage_size
            ));
        }
        if !(1..=64).contains(&self.split_k) {
            return fail("split K into 1 to 64 slices".into());
        }
        Ok(())
    }
}

/// The variants every product is chosen among: large tiles with 8 x 8 outputs per invocation
/// for large products, 4 x 4 on smaller tiles, and split-K forms for products with few output
/// tiles and a long K (the weight update's K is the batch).
pub const VARIANTS: [GemmConfig; 13] = [
    GemmConfig::new(128, 128, 8, 8, 8).double_buffered(),
    GemmConfig::new(128, 128, 8, 8, 8),
    GemmConfig::new(128, 64, 8, 8, 4).double_buffered(),
    GemmConfig::new(64, 128, 8, 4, 8).double_buffered(),
    GemmConfig::new(64, 64, 16, 4, 4),
    GemmConfig::new(64, 64, 8, 4, 4).double_buffered(),
    GemmConfig::new(32, 64, 16, 4, 4),
    GemmConfig::new(32, 64, 16, 4, 4).double_buffered(),
    GemmConfig::new(64, 64, 16, 4, 4).split(2),
    GemmConfig::new(64, 64, 16, 4, 4).split(4),
    GemmConfig::new(64, 64, 16, 4, 4).split(8),
    GemmConfig::new(128, 64, 8, 8, 4).double_buffered().split(4),
    GemmConfig::new(32, 64, 16, 4, 4).split(8),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_fits_webgpu_default_workgroups_and_names_itself_uniquely() {
        let limits = wgpu::Limits {
            max_compute_workgroup_storage_size: 32 * 1024,
            ..wgpu::Limits::default()
        };
        let mut names = std::collections::HashSet::new();
        for v in VARIANTS {
            v.check(&limits).unwrap();
            assert!(names.insert(v.name()), "{}", v.name());
        }
        assert_eq!(VARIANTS[0].name(), "128x128x8/8x8+db");
        assert_eq!(VARIANTS[10].name(), "64x64x16/4x4+split8");
    }

    #[test]
    fn bad_variants_say_why() {
        let limits = wgpu::Limits::default();
        for (v, why) in [
            (GemmConfig::new(64, 64, 16, 4, 6), "multiple of 4"),
            (GemmConfig::new(64, 60, 16, 4, 8), "whole number"),
            (GemmConfig::new(256, 256, 16, 4, 4), "workgroup limits"),
            (
                GemmConfig::new(128, 128, 64, 8, 8).double_buffered(),
                "workgroup memory",
            ),
        ] {
            let err = v.check(&limits).unwrap_err();
            assert!(err.contains(why), "{err}");
        }
    }

    #[test]
    fn split_k_slices_are_whole_tiles_covering_k() {
        let c = GemmConfig::new(64, 64, 16, 4, 4).split(4);
        assert_eq!(c.k_slice(1000), 256);
        assert_eq!(c.grid(10, 70, 1000), (2, 1, 4));
        assert_eq!(c.grid(10, 70, 17), (2, 1, 2));
        assert_eq!(c.grid(10, 70, 1), (2, 1, 1));
        let whole = GemmConfig::new(64, 64, 16, 4, 4);
        assert_eq!(whole.grid(65, 64, 5000), (1, 2, 1));
    }
}
