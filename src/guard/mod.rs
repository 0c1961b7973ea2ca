//! The guards every command goes through, one per concern, so that nothing a user types can
//! panic, abort, destroy a file or print NaN with exit 0:
//!
//! - [`paths`]: every output is checked against every input (and every other output) before
//!   any work starts;
//! - [`memory`]: sizes are multiplied with overflow checks and what a run needs is compared
//!   with what the machine has, before anything is allocated;
//! - [`numeric`]: values on their way to a backend must fit its precision, and results on
//!   their way out must be finite;
//! - [`interrupt`]: SIGINT and SIGTERM stop a run at a clean point and leave no temporary file.
//!
//! Bounded reading (declared sizes against the bytes present) lives with the readers in
//! [`crate::io`].

pub mod interrupt;
pub mod memory;
pub mod numeric;
pub mod paths;
