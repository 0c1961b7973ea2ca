//! The element types the library computes in, at the bottom of the house: the linear algebra,
//! the model and both backends build on it, and it imports nothing of theirs.

use std::fmt;

/// The element types the CPU reference runs in: f64 is the oracle, f32 is what the GPU computes in.
pub trait Float:
    num_traits::Float
    + num_traits::FromPrimitive
    + ndarray::LinalgScalar
    + ndarray::ScalarOperand
    + fmt::Debug
    + fmt::Display
    + Send
    + Sync
    + 'static
{
}

impl Float for f32 {}
impl Float for f64 {}
