//! The matrix products of a training step, generated: a product is a role (which step of the
//! seeds' algorithm, with its loads and its epilogue, from `shaders/`) and a variant
//! ([`GemmConfig`]: tiles, outputs per invocation, double buffering, split-K), composed by
//! [`generate`] into one WGSL module. [`select`] picks the variant for a shape: the tuned
//! winner from the cache, or a heuristic guess.

pub mod config;
pub mod generate;
pub mod select;

pub use config::{GemmConfig, VARIANTS};

/// Declarations every module starts with (`Dims`, flags, sigmoid, the non-finite watch).
pub const COMMON: &str = include_str!("../../../shaders/common.wgsl");
const FORWARD: &str = include_str!("../../../shaders/forward.wgsl");
const OUTPUT_LAYER: &str = include_str!("../../../shaders/output_layer.wgsl");
/// The error terms: the element-wise output error term and the hidden error term's product.
pub const ERROR_TERMS: &str = include_str!("../../../shaders/error_terms.wgsl");
const WEIGHT_UPDATE: &str = include_str!("../../../shaders/weight_update.wgsl");
const OPTIMIZER: &str = include_str!("../../../shaders/optimizer.wgsl");

/// The forward pass's epilogue hook when nothing follows the layer.
const NO_FINISH: &str = "fn finish_layer(i: u32, y: f32) {}\n";

/// Which product of the step a kernel computes, with the loads and epilogue of its step file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Product {
    /// `activation(layer_input · weights)` (forward.wgsl).
    LayerForward,
    /// The output layer's forward pass fused with its output error term (forward.wgsl +
    /// output_layer.wgsl): one dispatch instead of two where the output layer is one block.
    OutputLayer,
    /// `(next_error_term · weights_to_nextᵀ) * h(1 - h)` (error_terms.wgsl).
    HiddenErrorTerm,
    /// `learnrate / records · layer_inputᵀ · error_term` (weight_update.wgsl).
    WeightUpdate,
}

impl Product {
    pub const ALL: [Product; 4] = [
        Product::LayerForward,
        Product::OutputLayer,
        Product::HiddenErrorTerm,
        Product::WeightUpdate,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Product::LayerForward => "layer_forward",
            Product::OutputLayer => "output_layer",
            Product::HiddenErrorTerm => "hidden_error_term",
            Product::WeightUpdate => "delta_weights",
        }
    }

    /// The (M, N, K) of the product from the shape its constructor takes: (records, inputs,
    /// units) for the forward passes, (records, hidden, next) for the hidden error term, and
    /// (records, inputs, units) for the weight update, whose M is the inputs and K the records.
    pub fn dims(self, shape: (usize, usize, usize)) -> (usize, usize, usize) {
        let (a, b, c) = shape;
        match self {
            Product::LayerForward | Product::OutputLayer => (a, c, b),
            Product::HiddenErrorTerm => (a, b, c),
            Product::WeightUpdate => (b, c, a),
        }
    }

    /// The step's source: bindings, `load_a`, `load_b`, `store` (and the forward hook).
    pub fn step_source(self) -> String {
        match self {
            Product::LayerForward => [FORWARD, NO_FINISH].concat(),
            Product::OutputLayer => [FORWARD, OUTPUT_LAYER].concat(),
            Product::HiddenErrorTerm => ERROR_TERMS.to_string(),
            Product::WeightUpdate => [OPTIMIZER, WEIGHT_UPDATE].join("\n"),
        }
    }
}
