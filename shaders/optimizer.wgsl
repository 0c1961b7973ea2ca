// optimizer_update: one parameter's step from its gradient, twin of `update` in
// src/ops/optimizer.rs (PyTorch's torch.optim formulas, in the same order of operations).
// Prepended to weight_update.wgsl and bias_update.wgsl, whose epilogues call it with the
// gradient of the batch's mean loss, `-(1/B) Σ input·δ`, so the update costs no extra pass over
// the weights. The rule is in `dims.flag` (OPT_* in common.wgsl); the moments have the layout
// of the parameters they belong to.

@group(0) @binding(11) var<storage, read_write> moment1: array<f32>;
@group(0) @binding(12) var<storage, read_write> moment2: array<f32>;
// learning rate, β1 (or μ), β2, ε, the L2 term of the weights, that of the biases, decoupled
// decay factor 1 − lr·λ, Adam's step size lr / (1 − β1ᵗ), √(1 − β2ᵗ): `StepValues`, copied in
// before each batch.
@group(0) @binding(13) var<storage, read> step_values: array<f32, 9>;
const L2_OF_WEIGHTS: u32 = 4u;
const L2_OF_BIASES: u32 = 5u;

// `l2`: L2_OF_WEIGHTS or L2_OF_BIASES, the entry of `step_values` whose L2 term applies.
fn optimizer_update(i: u32, w: f32, gradient: f32, l2: u32) -> f32 {
    let lr = step_values[0];
    let beta1 = step_values[1];
    let g = gradient + step_values[l2] * w;
    switch ((dims.flag >> OPT_SHIFT) & OPT_BITS) {
        case OPT_MOMENTUM, OPT_NESTEROV: {
            let m = beta1 * moment1[i] + g;
            moment1[i] = m;
            var step = m;
            if (((dims.flag >> OPT_SHIFT) & OPT_BITS) == OPT_NESTEROV) {
                step = g + beta1 * m;
            }
            return w - lr * step;
        }
        case OPT_ADAM: {
            let beta2 = step_values[2];
            let m = beta1 * moment1[i] + (1.0 - beta1) * g;
            let v = beta2 * moment2[i] + (1.0 - beta2) * g * g;
            moment1[i] = m;
            moment2[i] = v;
            let denominator = sqrt(v) / step_values[8] + step_values[3];
            return w * step_values[6] - step_values[7] * (m / denominator);
        }
        default: {
            return w - lr * g;
        }
    }
}
