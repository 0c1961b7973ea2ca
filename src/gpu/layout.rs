//! How a network is laid out across storage bindings: the unit blocks of every layer.

use std::ops::Range;

use crate::error::{Error, Result};

use super::buffers::split;
use super::context;

/// The unit blocks of every layer. Inputs and outputs stay whole (a batch of `max_records`
/// must fit one binding); each hidden layer is cut into the fewest blocks whose activations
/// (`max_records` x block) and weights (previous block x block) fit `max_elements`.
///
/// A layer is also cut so that no block is longer than `max_reduction`, the longest sum one
/// dispatch may compute on this adapter (see `GpuContext::max_reduction`): the blocks' partial
/// sums are then added up across dispatches, as for a layer too wide for one binding.
pub fn plan_layout(
    layer_sizes: &[usize],
    max_elements: u64,
    max_records: usize,
    max_reduction: usize,
) -> Result<Vec<Vec<Range<usize>>>> {
    let max_elements = usize::try_from(max_elements).unwrap_or(usize::MAX);
    let last = layer_sizes.len() - 1;
    // The smallest binding that can hold a layout at all: a pass's inputs and outputs whole,
    // and a one-unit block of every hidden layer.
    let (first, last_units) = (layer_sizes[0], layer_sizes[layer_sizes.len() - 1]);
    let minimum = max_records
        .saturating_mul(first.max(last_units))
        .saturating_mul(4);
    let too_wide = |what: String| {
        Error::Gpu(format!(
            "{what} does not fit one storage binding of {} bytes at {max_records} records at a time; this network needs bindings of at least {minimum} bytes{}",
            max_elements.saturating_mul(4),
            if std::env::var_os(context::MAX_BINDING_VAR).is_some() {
                format!(" ({} is set: raise it to at least {minimum})", context::MAX_BINDING_VAR)
            } else {
                String::new()
            }
        ))
    };
    let mut layout: Vec<Vec<Range<usize>>> = Vec::with_capacity(layer_sizes.len());
    for (k, &n) in layer_sizes.iter().enumerate() {
        let widest_before = layout
            .last()
            .and_then(|b| b.iter().map(|r| r.len()).max())
            .unwrap_or(1);
        let cap = (max_elements / max_records.max(1)).min(max_elements / widest_before);
        let blocks = if k == 0 || k == last {
            if n > max_reduction {
                return Err(Error::Gpu(format!(
                    "the {} layer's {n} units are more than the {max_reduction} terms this adapter sums correctly in one dispatch, and that layer is not split; use --backend cpu",
                    if k == 0 { "input" } else { "output" }
                )));
            }
            if n > cap {
                let what = if k == 0 {
                    "the input layer"
                } else {
                    "the output layer"
                };
                return Err(too_wide(format!("{what} ({n} units)")));
            }
            split(n, n)
        } else if cap == 0 {
            return Err(too_wide(format!("hidden layer {k}")));
        } else {
            split(n, cap.min(max_reduction))
        };
        layout.push(blocks);
    }
    Ok(layout)
}
