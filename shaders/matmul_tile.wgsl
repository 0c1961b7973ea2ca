// The tiled matrix product every step of the algorithm is built on, appended by the host to a
// step's source (WGSL has no imports). The step file declares `dims`, the constants
// A_K_CONTIGUOUS / B_N_CONTIGUOUS, and `load_a(m, k)`, `load_b(k, n)`, `store(m, n, value)`;
// this file computes C[m, n] = sum_k A[m, k] * B[k, n] and hands each C[m, n] to `store`.
//
// A 16 x 16 workgroup computes a 64 x 64 tile of C, each invocation a 4 x 4 block held in four
// vec4 accumulators (register blocking: each value read from workgroup memory feeds four
// multiply-adds). K advances in slices of 16 staged through workgroup memory.
// Nothing here assumes M, N or K are multiples of a tile: loads outside A or B read zero and
// stores outside C are skipped, so the kernel guards its own indices.

const TILE_M: u32 = 64u;
const TILE_N: u32 = 64u;
const TILE_K: u32 = 16u;
const THREADS: u32 = 256u;

var<workgroup> tile_a: array<f32, 1024>; // TILE_K x TILE_M, k-major: tile_a[k * TILE_M + m]
var<workgroup> tile_b: array<f32, 1024>; // TILE_K x TILE_N, k-major: tile_b[k * TILE_N + n]

fn guarded_a(m: u32, k: u32) -> f32 {
    if (m < dims.m && k < dims.k) {
        return load_a(m, k);
    }
    return 0.0;
}

fn guarded_b(k: u32, n: u32) -> f32 {
    if (k < dims.k && n < dims.n) {
        return load_b(k, n);
    }
    return 0.0;
}

fn store_row(m: u32, n0: u32, values: vec4<f32>) {
    if (m >= dims.m) {
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        if (n0 + j < dims.n) {
            store(m, n0 + j, values[j]);
        }
    }
}

@compute @workgroup_size(16, 16)
fn matmul(
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(local_invocation_id) local: vec3<u32>,
    @builtin(local_invocation_index) thread: u32,
) {
    let row0 = group.y * TILE_M;
    let col0 = group.x * TILE_N;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);

    for (var k0 = 0u; k0 < dims.k; k0 += TILE_K) {
        // 1024 elements per tile, four per invocation. Neighbouring invocations read
        // neighbouring addresses of the source matrix (coalesced), whichever its layout.
        for (var i = 0u; i < 4u; i++) {
            let e = thread + i * THREADS;
            var m: u32;
            var k: u32;
            if (A_K_CONTIGUOUS) {
                k = e % TILE_K;
                m = e / TILE_K;
            } else {
                m = e % TILE_M;
                k = e / TILE_M;
            }
            tile_a[k * TILE_M + m] = guarded_a(row0 + m, k0 + k);
            var n: u32;
            var kb: u32;
            if (B_N_CONTIGUOUS) {
                n = e % TILE_N;
                kb = e / TILE_N;
            } else {
                kb = e % TILE_K;
                n = e / TILE_K;
            }
            tile_b[kb * TILE_N + n] = guarded_b(k0 + kb, col0 + n);
        }
        workgroupBarrier();
        for (var k = 0u; k < TILE_K; k++) {
            let a = vec4<f32>(
                tile_a[k * TILE_M + local.y * 4u],
                tile_a[k * TILE_M + local.y * 4u + 1u],
                tile_a[k * TILE_M + local.y * 4u + 2u],
                tile_a[k * TILE_M + local.y * 4u + 3u],
            );
            let b = vec4<f32>(
                tile_b[k * TILE_N + local.x * 4u],
                tile_b[k * TILE_N + local.x * 4u + 1u],
                tile_b[k * TILE_N + local.x * 4u + 2u],
                tile_b[k * TILE_N + local.x * 4u + 3u],
            );
            acc0 += a.x * b;
            acc1 += a.y * b;
            acc2 += a.z * b;
            acc3 += a.w * b;
        }
        // The next slice overwrites the tiles: everyone must be done reading them.
        workgroupBarrier();
    }

    let m = row0 + local.y * 4u;
    let n = col0 + local.x * 4u;
    store_row(m, n, acc0);
    store_row(m + 1u, n, acc1);
    store_row(m + 2u, n, acc2);
    store_row(m + 3u, n, acc3);
}
