//! A trained model on disk: weights and biases as safetensors (float64), and in its metadata
//! the layer sizes, activations, loss, the data encoder (standardisation statistics, category
//! levels, class names) and, for checkpoints, the training state. Written atomically. Format 2;
//! a format-1 file (before biases, other activations and classes) loads as the seeds' network.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::data::Encoder;
use crate::error::{Error, Result};
use crate::io::write_atomic;
use crate::model::{bias_names, weight_names, Activation, Deltas, Loss, Network, Spec};
use crate::ops::optimizer::OptimizerState;
use crate::train::TrainingState;

const METADATA_KEY: &str = "backprop";
const FORMAT_VERSION: u32 = 2;

#[derive(Serialize, Deserialize)]
struct Metadata {
    format_version: u32,
    layer_sizes: Vec<usize>,
    hidden_activation: Activation,
    output_activation: Activation,
    /// Absent from format 1: the seeds' squared error.
    #[serde(default)]
    loss: Loss,
    /// Absent from format 1: no biases.
    #[serde(default)]
    biases: bool,
    encoder: Encoder,
    training: Option<TrainingState>,
    /// A checkpoint's optimizer step count; its moments are tensors `moment1.<name>`, ….
    #[serde(default)]
    optimizer_step: Option<u64>,
}

/// A model as saved: the network, how to encode its inputs, and how far training went.
pub struct SavedModel {
    pub network: Network<f64>,
    pub encoder: Encoder,
    pub training: Option<TrainingState>,
    /// Checkpoints: the optimizer's state, and under early stopping the best epoch's network
    /// (tensors `best.<name>`).
    pub optimizer: Option<OptimizerState<f64>>,
    pub best_network: Option<Network<f64>>,
}

impl SavedModel {
    /// A trained model with nothing of a checkpoint.
    pub fn model(network: Network<f64>, encoder: Encoder) -> Self {
        SavedModel {
            network,
            encoder,
            training: None,
            optimizer: None,
            best_network: None,
        }
    }
}

/// (name, shape, little-endian f64 bytes) of every weight matrix, then every bias, named with
/// `prefix`.
fn parameter_tensors(
    prefix: &str,
    weights: &[ndarray::Array2<f64>],
    biases: Option<&[ndarray::Array1<f64>]>,
) -> Vec<(String, Vec<usize>, Vec<u8>)> {
    let n_layers = weights.len();
    fn bytes<'a>(values: impl Iterator<Item = &'a f64>) -> Vec<u8> {
        values.flat_map(|v| v.to_le_bytes()).collect()
    }
    let mut tensors: Vec<_> = weight_names(n_layers)
        .into_iter()
        .zip(weights)
        .map(|(name, w)| {
            (
                format!("{prefix}{name}"),
                w.shape().to_vec(),
                bytes(w.iter()),
            )
        })
        .collect();
    if let Some(biases) = biases {
        tensors.extend(
            bias_names(n_layers)
                .into_iter()
                .zip(biases)
                .map(|(name, b)| {
                    (
                        format!("{prefix}{name}"),
                        b.shape().to_vec(),
                        bytes(b.iter()),
                    )
                }),
        );
    }
    tensors
}

pub fn save(path: &Path, model: &SavedModel) -> Result<()> {
    let serialized = to_bytes(path, model)?;
    write_atomic(path, |w| {
        std::io::Write::write_all(w, &serialized).map_err(|e| Error::io(path, e))
    })
}

/// The bytes of a model file holding `model`; `path` is what messages call it.
pub fn to_bytes(path: &Path, model: &SavedModel) -> Result<Vec<u8>> {
    let network = &model.network;
    let mut tensors = parameter_tensors("", network.weights(), network.biases());
    for (k, moment) in model
        .optimizer
        .iter()
        .flat_map(|o| o.moments.iter().enumerate())
    {
        tensors.extend(parameter_tensors(
            &format!("moment{}.", k + 1),
            &moment.weights,
            moment.biases.as_deref(),
        ));
    }
    if let Some(best) = &model.best_network {
        tensors.extend(parameter_tensors("best.", best.weights(), best.biases()));
    }
    let views = tensors
        .iter()
        .map(|(name, shape, data)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F64, shape.clone(), data)
                .map(|view| (name.clone(), view))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::File {
            path: path.into(),
            message: e.to_string(),
        })?;
    let spec = network.spec();
    let metadata = Metadata {
        format_version: FORMAT_VERSION,
        layer_sizes: network.layer_sizes(),
        hidden_activation: spec.hidden,
        output_activation: spec.output,
        loss: spec.loss,
        biases: network.biases().is_some(),
        encoder: model.encoder.clone(),
        training: model.training.clone(),
        optimizer_step: model.optimizer.as_ref().map(|o| o.step),
    };
    let json = serde_json::to_string(&metadata).map_err(|e| Error::File {
        path: path.into(),
        message: e.to_string(),
    })?;
    let info = std::collections::HashMap::from([(METADATA_KEY.to_string(), json)]);
    safetensors::serialize(views, Some(info)).map_err(|e| Error::File {
        path: path.into(),
        message: e.to_string(),
    })
}

pub fn load(path: &Path) -> Result<SavedModel> {
    from_bytes(path, &crate::io::read_input(path)?)
}

/// A model from the bytes of a safetensors file; `path` is what messages call it. The
/// safetensors crate checks every tensor's offsets and shape against the bytes present.
pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<SavedModel> {
    let error = |message: String| Error::File {
        path: path.into(),
        message,
    };
    let tensors = safetensors::SafeTensors::deserialize(bytes)
        .map_err(|e| error(format!("not a safetensors model ({e})")))?;
    let (_, header) = safetensors::SafeTensors::read_metadata(bytes)
        .map_err(|e| error(format!("not a safetensors model ({e})")))?;
    let json = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get(METADATA_KEY))
        .ok_or_else(|| {
            error("no backprop metadata: not saved by `backprop train --save`".into())
        })?;
    let meta: Metadata =
        serde_json::from_str(json).map_err(|e| error(format!("unreadable metadata ({e})")))?;
    if !(1..=FORMAT_VERSION).contains(&meta.format_version) {
        return Err(error(format!(
            "format version {} (this build reads 1 to {FORMAT_VERSION}; a newer backprop wrote it)",
            meta.format_version
        )));
    }
    let n_layers = meta.layer_sizes.len().saturating_sub(1);
    // A tensor of `shape`, float64, as its values in row-major order.
    let values = |name: &str, shape: &[usize]| -> Result<Vec<f64>> {
        let view = tensors
            .tensor(name)
            .map_err(|e| error(format!("tensor `{name}`: {e}")))?;
        if view.dtype() != safetensors::Dtype::F64 || view.shape() != shape {
            return Err(error(format!(
                "tensor `{name}` is {:?} {:?}, expected F64 {shape:?}",
                view.dtype(),
                view.shape()
            )));
        }
        Ok(view
            .data()
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
            .collect())
    };
    // The weights and biases named with `prefix`.
    let parameters = |prefix: &str| -> Result<Deltas<f64>> {
        let weights = weight_names(n_layers)
            .iter()
            .enumerate()
            .map(|(l, name)| {
                let shape = (meta.layer_sizes[l], meta.layer_sizes[l + 1]);
                let name = format!("{prefix}{name}");
                ndarray::Array2::from_shape_vec(shape, values(&name, &[shape.0, shape.1])?)
                    .map_err(|e| error(e.to_string()))
            })
            .collect::<Result<Vec<_>>>()?;
        let biases = meta
            .biases
            .then(|| {
                bias_names(n_layers)
                    .iter()
                    .enumerate()
                    .map(|(l, name)| {
                        values(&format!("{prefix}{name}"), &[meta.layer_sizes[l + 1]])
                            .map(ndarray::Array1::from)
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .transpose()?;
        Ok(Deltas { weights, biases })
    };
    let Deltas { weights, biases } = parameters("")?;
    let spec = Spec {
        hidden: meta.hidden_activation,
        output: meta.output_activation,
        loss: meta.loss,
    };
    let network = Network::with_spec(weights, biases, spec).map_err(|e| error(e.to_string()))?;
    let optimizer = match (&meta.training, meta.optimizer_step) {
        (Some(training), Some(step)) => Some(OptimizerState {
            step,
            moments: (1..=training.config.optimizer.n_moments())
                .map(|k| parameters(&format!("moment{k}.")))
                .collect::<Result<_>>()?,
        }),
        _ => None,
    };
    let best_network = match meta.training.as_ref().and_then(|t| t.best) {
        Some(_) => {
            let best = parameters("best.")?;
            Some(
                Network::with_spec(best.weights, best.biases, spec)
                    .map_err(|e| error(format!("the best epoch's network: {e}")))?,
            )
        }
        None => None,
    };
    meta.encoder
        .validate()
        .map_err(|e| error(format!("its metadata is inconsistent: {e}")))?;
    if network.n_outputs() != meta.encoder.n_outputs() {
        return Err(error(format!(
            "the network has {} outputs but the encoder makes {} targets",
            network.n_outputs(),
            meta.encoder.n_outputs()
        )));
    }
    if network.n_inputs() != meta.encoder.n_features() {
        return Err(error(format!(
            "the network takes {} inputs but the encoder makes {} features",
            network.n_inputs(),
            meta.encoder.n_features()
        )));
    }
    Ok(SavedModel {
        network,
        encoder: meta.encoder,
        training: meta.training,
        optimizer,
        best_network,
    })
}
