// bias_update: delta_b = learnrate / n_records * sum over the batch of error_term, the mean of
// the per-record steps `learnrate * error_term` (a bias is a weight whose input is always 1).
// Twin of `delta_bias` in src/cpu/mod.rs. FLAG_APPLY adds it to the bias in place (training);
// without it the step goes to `bias_deltas` (`backprop step`). With an optimizer rule in the
// flag, scale is -1 / records and `optimizer_update` (optimizer.wgsl) steps the bias.
// dims: n = units (or a block of them), k = records; scale = learnrate / records.

@group(0) @binding(1) var<storage, read> error_term: array<f32>;        // records x units
@group(0) @binding(2) var<storage, read_write> bias: array<f32>;        // units
@group(0) @binding(3) var<storage, read_write> bias_deltas: array<f32>; // units

@compute @workgroup_size(256)
fn bias_update(
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) local: u32,
) {
    let unit = element_index(group, groups, local);
    if (unit >= dims.n) {
        return;
    }
    var sum = 0.0;
    for (var record = 0u; record < dims.k; record++) {
        sum += error_term[record * dims.n + unit];
    }
    let delta = dims.scale * sum;
    if (((dims.flag >> OPT_SHIFT) & OPT_BITS) != OPT_PLAIN) {
        let l2 = select(L2_OF_BIASES, L2_OF_WEIGHTS, (dims.flag & FLAG_OF_WEIGHTS) != 0u);
        bias[unit] = optimizer_update(unit, bias[unit], delta, l2);
    } else if ((dims.flag & FLAG_APPLY) != 0u) {
        bias[unit] += delta;
    } else {
        bias_deltas[unit] = delta;
    }
}
