//! `backprop`: the seeds' backpropagation (a network with sigmoid hidden layers) as a library.
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
pub use model::{
    bias_delta_names, bias_names, delta_names, weight_names, Activation, Deltas, Float, Loss,
    Network, Spec,
};
