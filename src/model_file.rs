//! A trained model on disk: weights and biases as safetensors (float64), and in its metadata
//! the layer sizes, activations, loss, the data encoder (standardisation statistics, category
//! levels, class names) and, for checkpoints, the training state. Written atomically. Format 2;
//! a format-1 file (before biases, other activations and classes) loads as the seeds' network.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::data::Encoder;
use crate::error::{Error, Result};
use crate::io::write_atomic;
use crate::model::{bias_names, weight_names, Activation, Loss, Network, Spec};
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
}

/// A model as saved: the network, how to encode its inputs, and how far training went.
pub struct SavedModel {
    pub network: Network<f64>,
    pub encoder: Encoder,
    pub training: Option<TrainingState>,
}

pub fn save(path: &Path, model: &SavedModel) -> Result<()> {
    let network = &model.network;
    let n_layers = network.weights().len();
    // (name, shape, little-endian f64 bytes) of every weight matrix, then every bias.
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = weight_names(n_layers)
        .into_iter()
        .zip(network.weights())
        .map(|(name, w)| {
            (
                name,
                w.shape().to_vec(),
                w.iter().flat_map(|v| v.to_le_bytes()).collect(),
            )
        })
        .collect();
    if let Some(biases) = network.biases() {
        tensors.extend(
            bias_names(n_layers)
                .into_iter()
                .zip(biases)
                .map(|(name, b)| {
                    (
                        name,
                        b.shape().to_vec(),
                        b.iter().flat_map(|v| v.to_le_bytes()).collect(),
                    )
                }),
        );
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
    };
    let json = serde_json::to_string(&metadata).map_err(|e| Error::File {
        path: path.into(),
        message: e.to_string(),
    })?;
    let info = std::collections::HashMap::from([(METADATA_KEY.to_string(), json)]);
    let serialized = safetensors::serialize(views, Some(info)).map_err(|e| Error::File {
        path: path.into(),
        message: e.to_string(),
    })?;
    write_atomic(path, |w| {
        std::io::Write::write_all(w, &serialized).map_err(|e| Error::io(path, e))
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
    let weights = weight_names(n_layers)
        .iter()
        .enumerate()
        .map(|(l, name)| {
            let shape = (meta.layer_sizes[l], meta.layer_sizes[l + 1]);
            ndarray::Array2::from_shape_vec(shape, values(name, &[shape.0, shape.1])?)
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
                    values(name, &[meta.layer_sizes[l + 1]]).map(ndarray::Array1::from)
                })
                .collect::<Result<Vec<_>>>()
        })
        .transpose()?;
    let spec = Spec {
        hidden: meta.hidden_activation,
        output: meta.output_activation,
        loss: meta.loss,
    };
    let network = Network::with_spec(weights, biases, spec).map_err(|e| error(e.to_string()))?;
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
    })
}
