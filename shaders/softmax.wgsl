// softmax_rows: the softmax output, row by row, in place over the output layer's values
// (computed by the forward product with an identity activation). Twin of `softmax_row` in
// src/ops/activation.rs:
//     output_layer_out = exp(z - max z) / sum(exp(z - max z))      per record
// dims: m = records, n = outputs. One invocation per record.

@group(0) @binding(1) var<storage, read_write> values: array<f32>; // records x outputs

@compute @workgroup_size(256)
fn softmax_rows(
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) local: u32,
) {
    let row = element_index(group, groups, local);
    if (row >= dims.m) {
        return;
    }
    let base = row * dims.n;
    var largest = values[base];
    for (var j = 1u; j < dims.n; j++) {
        largest = max(largest, values[base + j]);
    }
    var sum = 0.0;
    for (var j = 0u; j < dims.n; j++) {
        let e = exp(values[base + j] - largest);
        values[base + j] = e;
        sum += e;
    }
    for (var j = 0u; j < dims.n; j++) {
        values[base + j] = values[base + j] / sum;
    }
}
