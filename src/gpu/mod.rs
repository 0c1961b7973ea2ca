//! The GPU backend: the training step as WGSL compute kernels through wgpu, with the weights
//! and loaded data sets resident on the device. The data flows down the modules:
//! `context` (adapter, limits, budgets) -> `buffers` (regions) -> `gemm` (generated product
//! variants) -> `kernels` (pipelines, checked dispatches) -> `tuning` and `device` (which
//! variant for which shape) -> `layout` and `backend` (the step's plans, `GpuBackend`);
//! `ops` runs each kernel alone as the twin of its CPU function, `timing` times dispatches.

pub mod backend;
pub mod buffers;
pub mod context;
pub mod device;
mod epoch;
pub mod gemm;
pub mod kernels;
pub mod layout;
pub mod ops;
mod pacer;
mod plan;
pub mod timing;
pub mod tuning;

pub use backend::{GpuBackend, GpuOptions};
pub use device::GpuDevice;
