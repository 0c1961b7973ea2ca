// gather: the rows of a resident data set in an epoch's shuffled order, so that every batch of
// the epoch is a contiguous range one buffer copy can move. Not a step of the seeds' algorithm
// but its data movement: the CPU twin is `ndarray::ArrayBase::select(Axis(0), order)`.
// dims: m = records, n = columns. The host checks every order[row] < records before dispatch.

@group(0) @binding(1) var<storage, read> source: array<f32>;     // records x columns
@group(0) @binding(2) var<storage, read> order: array<u32>;      // records
@group(0) @binding(3) var<storage, read_write> gathered: array<f32>; // records x columns

@compute @workgroup_size(256)
fn gather(
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) local: u32,
) {
    let i = element_index(group, groups, local);
    if (i >= dims.m * dims.n) {
        return;
    }
    let row = i / dims.n;
    let column = i % dims.n;
    gathered[i] = source[order[row] * dims.n + column];
}
