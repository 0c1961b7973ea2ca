// The error terms of the backward pass, twins of the functions of the same names in src/cpu.rs.

// ---- output_error_term (element-wise; the formula is `output_error_term_of` in common.wgsl,
// shared with the fused output layer) -------------------------------------------------------
// dims: m = records, n = output units; flag: FLAG_IDENTITY for an identity output.

@group(0) @binding(1) var<storage, read> target_values: array<f32>;    // records x outputs
@group(0) @binding(2) var<storage, read> output_layer_out: array<f32>; // records x outputs
@group(0) @binding(3) var<storage, read_write> output_error_term_out: array<f32>;
@compute @workgroup_size(256)
fn output_error_term(
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) local: u32,
) {
    let i = element_index(group, groups, local);
    if (i >= dims.m * dims.n) {
        return;
    }
    let y = output_layer_out[i];
    watch_non_finite(y);
    output_error_term_out[i] = output_error_term_of(target_values[i], y);
}

// ---- hidden_error_term (a generated product, entry point `matmul`) -----------------------
//     hidden_error = np.dot(output_error_term, weights_hidden_to_output.T)
//     hidden_error_term = hidden_error * hidden_layer_out * (1 - hidden_layer_out)   (sigmoid;
//     the hidden activation's `slope_from_output` in general)
// For deeper networks "output" is the next layer. The weights are those from before this
// step's update. dims: m = records, k = units of the next layer, n = hidden units (or blocks
// of them); FLAG_ACCUMULATE / FLAG_PARTIAL when the next layer is split across bindings.

@group(0) @binding(4) var<storage, read> next_error_term: array<f32>;  // records x next units
@group(0) @binding(5) var<storage, read> weights_to_next: array<f32>;  // hidden x next units
@group(0) @binding(6) var<storage, read> hidden_layer_out: array<f32>; // records x hidden
@group(0) @binding(7) var<storage, read_write> hidden_error_term_out: array<f32>;

const A_K_CONTIGUOUS: bool = true;   // next_error_term[record * k + next]
const B_N_CONTIGUOUS: bool = false;  // B[next, hidden] = weights_to_next[hidden * k + next]

fn load_a(m: u32, k: u32) -> f32 {
    return next_error_term[m * dims.k + k];
}

fn load_b(k: u32, n: u32) -> f32 {
    return weights_to_next[n * dims.k + k];
}

fn store(m: u32, n: u32, sum: f32) {
    let i = m * dims.n + n;
    var hidden_error = sum;
    if ((dims.flag & FLAG_ACCUMULATE) != 0u) {
        hidden_error += hidden_error_term_out[i];
    }
    if ((dims.flag & FLAG_PARTIAL) != 0u) {
        hidden_error_term_out[i] = hidden_error;
        return;
    }
    hidden_error_term_out[i] = hidden_error * slope_from_output(hidden_layer_out[i]);
}
