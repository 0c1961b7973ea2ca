// The error terms of the backward pass, twins of the functions of the same names in src/cpu.rs.

// ---- output_error_term -------------------------------------------------------------------
//     error = target - output_layer_out
//     output_error_term = error * output_layer_out * (1 - output_layer_out)   (sigmoid output)
//     output_error_term = error                                               (identity output)
// dims: m = records, n = output units; flag: FLAG_IDENTITY for an identity output.

@group(0) @binding(1) var<storage, read> target_values: array<f32>;    // records x outputs
@group(0) @binding(2) var<storage, read> output_layer_out: array<f32>; // records x outputs
@group(0) @binding(3) var<storage, read_write> output_error_term_out: array<f32>;
// The non-finite watch: status[0] is the batch being computed (the host copies its number in
// before each batch of an epoch), status[1] the first batch whose output held a NaN or an
// infinity (u32 max while none did). Read once per epoch, so a NaN is reported with the batch
// it appeared in instead of surfacing as a NaN loss.
@group(0) @binding(8) var<storage, read_write> status: array<atomic<u32>, 2>;

// NaN and infinity are the values whose exponent bits are all ones; a bit test, because a
// compiler may assume float comparisons never see NaN.
fn is_non_finite(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7f800000u) == 0x7f800000u;
}

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
    if (is_non_finite(y)) {
        atomicMin(&status[1], atomicLoad(&status[0]));
    }
    let error = target_values[i] - y;
    var term = error;
    if ((dims.flag & FLAG_IDENTITY) == 0u) {
        term = error * y * (1.0 - y);
    }
    output_error_term_out[i] = term;
}

// ---- hidden_error_term (tiled product, entry point `matmul`) -----------------------------
//     hidden_error = np.dot(output_error_term, weights_hidden_to_output.T)
//     hidden_error_term = hidden_error * hidden_layer_out * (1 - hidden_layer_out)
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
    let h = hidden_layer_out[i];
    hidden_error_term_out[i] = hidden_error * h * (1.0 - h);
}
