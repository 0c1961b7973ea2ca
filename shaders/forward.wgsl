// layer_forward: layer_out = activation(np.dot(layer_input, weights) + bias), fused. `finish_layer`
// is appended by the host: nothing for a layer alone, the output error term for the fused
// output layer (output_layer.wgsl).
// Twin of `layer_forward` in src/cpu.rs:
//     hidden_layer_out = sigmoid(np.dot(x, weights_input_to_hidden))
// dims: m = records, k = inputs to the layer (or to this block of it), n = units of the layer
// (or of this block); flag: FLAG_IDENTITY, and FLAG_ACCUMULATE / FLAG_PARTIAL when the layer's
// inputs are split across bindings.

@group(0) @binding(1) var<storage, read> layer_input: array<f32>;  // records x inputs
@group(0) @binding(2) var<storage, read> weights: array<f32>;      // inputs x units
@group(0) @binding(3) var<storage, read_write> layer_out: array<f32>; // records x units
@group(0) @binding(9) var<storage, read> bias: array<f32>;            // units (with FLAG_BIAS)

const A_K_CONTIGUOUS: bool = true;  // layer_input[record * k + input]
const B_N_CONTIGUOUS: bool = true;  // weights[input * n + unit]

fn load_a(m: u32, k: u32) -> f32 {
    return layer_input[m * dims.k + k];
}

fn load_b(k: u32, n: u32) -> f32 {
    return weights[k * dims.n + n];
}

fn store(m: u32, n: u32, sum: f32) {
    let i = m * dims.n + n;
    var layer_in = sum;
    if ((dims.flag & FLAG_ACCUMULATE) != 0u) {
        layer_in += layer_out[i];
    }
    if ((dims.flag & FLAG_PARTIAL) != 0u) {
        layer_out[i] = layer_in;
        return;
    }
    if ((dims.flag & FLAG_BIAS) != 0u) {
        layer_in += bias[n];
    }
    let out = activate(layer_in);
    layer_out[i] = out;
    finish_layer(i, out);
}
