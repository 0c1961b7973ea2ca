//! What the tool shows people: arrays printed the way NumPy prints them, tables, JSON.

pub mod metrics;
pub mod numpy_format;
pub mod plot;
pub mod summary;
