// Declarations shared by every step, prepended by the host.

// The problem size of one dispatch. For the tiled product C (m x n) = A (m x k) · B (k x n);
// for element-wise kernels m x n is the array. `flag` and `scale` mean what each step says.
struct Dims {
    m: u32,
    n: u32,
    k: u32,
    flag: u32,
    scale: f32,
    // A product split along K: the length of each workgroup's slice (a multiple of BK).
    k_slice: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> dims: Dims;

// `dims.flag`: the activation's code in the low four bits (twins of `Activation::wgsl_code`
// in src/ops/activation.rs), and these bits above them.
const ACTIVATION_BITS: u32 = 15u;
const ACT_SIGMOID: u32 = 0u;
const ACT_IDENTITY: u32 = 1u;
const ACT_TANH: u32 = 2u;
const ACT_RELU: u32 = 3u;
const ACT_LEAKY_RELU: u32 = 4u;
// A layer whose inputs are split across bindings is summed block by block: add the partial
// sum already stored in the output ...
const FLAG_ACCUMULATE: u32 = 16u;
// ... and store the raw partial sum, leaving the epilogue to the last input block.
const FLAG_PARTIAL: u32 = 32u;
// weight_update, bias_update: add the step to the weights instead of writing it to `deltas`.
const FLAG_APPLY: u32 = 64u;
// forward: add the layer's bias before the activation.
const FLAG_BIAS: u32 = 128u;
// output error term: cross-entropy with its matching output (the slope cancels).
const FLAG_CROSS_ENTROPY: u32 = 256u;
// weight_update, bias_update: the optimizer rule in three bits from OPT_SHIFT (twins of
// `Rule` in src/ops/optimizer.rs); OPT_PLAIN is the seeds' step (FLAG_APPLY or `deltas`).
const OPT_SHIFT: u32 = 9u;
const OPT_BITS: u32 = 7u;
const OPT_PLAIN: u32 = 0u;
const OPT_SGD: u32 = 1u;
const OPT_MOMENTUM: u32 = 2u;
const OPT_NESTEROV: u32 = 3u;
const OPT_ADAM: u32 = 4u;
// bias_update with an optimizer rule: the values stepped are weights (a gradient applied
// element-wise), so the weights' L2 term applies, not the biases'.
const FLAG_OF_WEIGHTS: u32 = 4096u;

// The slope of leaky ReLU below 0, as LEAKY_RELU_SLOPE in src/ops/activation.rs.
const LEAKY_RELU_SLOPE: f32 = 0.01;

// 1 / (1 + exp(-x)), as `sigmoid` in src/cpu/mod.rs.
fn sigmoid(x: f32) -> f32 {
    return 1.0 / (1.0 + exp(-x));
}

// The activation `dims.flag` names, as `Activation::apply`.
fn activate(x: f32) -> f32 {
    switch (dims.flag & ACTIVATION_BITS) {
        case ACT_IDENTITY: { return x; }
        case ACT_TANH: { return tanh(x); }
        case ACT_RELU: { return max(x, 0.0); }
        case ACT_LEAKY_RELU: { return select(LEAKY_RELU_SLOPE * x, x, x > 0.0); }
        default: { return sigmoid(x); }
    }
}

// Its derivative at the input that gave output `y`, as `Activation::slope_from_output`.
fn slope_from_output(y: f32) -> f32 {
    switch (dims.flag & ACTIVATION_BITS) {
        case ACT_IDENTITY: { return 1.0; }
        case ACT_TANH: { return 1.0 - y * y; }
        case ACT_RELU: { return select(0.0, 1.0, y > 0.0); }
        case ACT_LEAKY_RELU: { return select(LEAKY_RELU_SLOPE, 1.0, y > 0.0); }
        default: { return y * (1.0 - y); }
    }
}

// Element-wise kernels run 256 invocations per workgroup over a 2-D grid of workgroups, since
// one grid dimension holds at most 65,535 workgroups.
fn element_index(group: vec3<u32>, groups: vec3<u32>, local: u32) -> u32 {
    return (group.y * groups.x + group.x) * 256u + local;
}

// The non-finite watch: status[0] is the batch being computed (the host copies its number in
// before each batch of an epoch), status[1] the first batch whose output held a NaN or an
// infinity (u32 max while none did). Read once per epoch, so a NaN is reported with the batch
// it appeared in instead of surfacing as a NaN loss.
@group(0) @binding(8) var<storage, read_write> status: array<atomic<u32>, 2>;

// NaN and infinity are the values whose exponent bits are all ones; a bit test, because a
// compiler may assume float comparisons never see NaN.
fn watch_non_finite(y: f32) {
    if ((bitcast<u32>(y) & 0x7f800000u) == 0x7f800000u) {
        atomicMin(&status[1], atomicLoad(&status[0]));
    }
}

// output_error_term, twin of the function of that name in src/cpu/mod.rs (and of
// `Loss::output_error_term`):
//     error = target - output_layer_out
//     output_error_term = error * output_layer_out * (1 - output_layer_out)   (sigmoid, squared error)
//     output_error_term = error            (identity and squared error; any output with cross-entropy)
fn output_error_term_of(target_value: f32, y: f32) -> f32 {
    let error = target_value - y;
    if ((dims.flag & FLAG_CROSS_ENTROPY) != 0u) {
        return error;
    }
    return error * slope_from_output(y);
}
