//! The vocabulary of a network: each activation and loss is one value with its name, its CPU
//! formula (and derivative) and the code its WGSL twin switches on, so adding one touches this
//! module, `shaders/common.wgsl` and nothing in between.

pub mod activation;
pub mod loss;
pub mod optimizer;

pub use activation::Activation;
pub use loss::Loss;
pub use optimizer::{Optimizer, OptimizerState};
