// delta_weights: delta_w = learnrate / n_records * np.dot(layer_input.T, error_term), the mean
// over the batch of the seeds' outer products `learnrate * np.outer(x, error_term)`.
// Twin of `delta_weights` in src/cpu.rs. FLAG_APPLY adds the step to the weights in place
// (training); without it the step goes to `deltas` and the weights stay (`backprop step`).
// With an optimizer rule in the flag, scale is -1 / records (the sum is then the gradient)
// and `optimizer_update` (optimizer.wgsl) steps the weight.
// dims: m = inputs to the layer, n = units of the layer, k = records; scale = learnrate / records.

@group(0) @binding(1) var<storage, read> layer_input: array<f32>;   // records x inputs
@group(0) @binding(2) var<storage, read> error_term: array<f32>;    // records x units
@group(0) @binding(3) var<storage, read_write> weights: array<f32>; // inputs x units
@group(0) @binding(4) var<storage, read_write> deltas: array<f32>;  // inputs x units

const A_K_CONTIGUOUS: bool = false; // A[input, record] = layer_input[record * m + input]
const B_N_CONTIGUOUS: bool = true;  // error_term[record * n + unit]

fn load_a(m: u32, k: u32) -> f32 {
    return layer_input[k * dims.m + m];
}

fn load_b(k: u32, n: u32) -> f32 {
    return error_term[k * dims.n + n];
}

fn store(m: u32, n: u32, sum: f32) {
    let i = m * dims.n + n;
    let delta = dims.scale * sum;
    if (((dims.flag >> OPT_SHIFT) & OPT_BITS) != OPT_PLAIN) {
        weights[i] = optimizer_update(i, weights[i], delta, L2_OF_WEIGHTS);
    } else if ((dims.flag & FLAG_APPLY) != 0u) {
        weights[i] += delta;
    } else {
        deltas[i] = delta;
    }
}
