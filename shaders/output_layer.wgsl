// The fused output layer: appended to forward.wgsl for the last layer when it is one block, so
// that the output layer's forward pass and its output error term are one kernel (the error term
// needs only the output it has just computed). Twin of `layer_forward` then `output_error_term`
// in src/cpu.rs:
//     output_layer_out = activation(np.dot(hidden_layer_out, weights_hidden_to_output))
//     output_error_term = (target - output_layer_out) * f'(output_layer_out)

@group(0) @binding(4) var<storage, read> target_values: array<f32>;              // records x outputs
@group(0) @binding(5) var<storage, read_write> output_error_term_out: array<f32>; // records x outputs

fn finish_layer(i: u32, y: f32) {
    watch_non_finite(y);
    output_error_term_out[i] = output_error_term_of(target_values[i], y);
}
