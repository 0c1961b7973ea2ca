//! `backprop`: the seeds' backpropagation (a network with sigmoid hidden layers) as a library.
//!
//! Start at [`mlp`]: a multi-layer perceptron to configure, fit on arrays and use, on the GPU
//! when there is one and the CPU otherwise (the command line and the Python package go through
//! it too).
//!
//! The data flow is the layout: data -> [`model`] -> backend ([`cpu`] reference, GPU) ->
//! trainer -> [`report`]. [`cpu`] holds the seeds' formulas one to one and is the oracle that
//! every other backend is checked against.

pub mod backend;
pub mod bench;
pub mod comm;
pub mod cpu;
pub mod data;
pub mod device;
pub mod error;
pub mod float;
pub mod gpu;
pub mod guard;
pub mod io;
pub mod linalg;
pub mod matrix;
pub mod mlp;
pub mod model;
pub mod model_file;
pub mod ops;
pub mod parallel;
pub mod report;
pub mod seed;
pub mod train;
pub mod tune;
pub mod validate;

pub use backend::Backend;
pub use cpu::CpuBackend;
pub use error::{Error, Result};
pub use guard::interrupt::CancelToken;
pub use matrix::Matrix;
pub use model::{
    bias_delta_names, bias_names, delta_names, weight_names, Activation, Deltas, Float, Loss,
    Network, Spec,
};
