//! A trained model on disk: weights as safetensors (float64), and in its metadata the layer
//! sizes, activations, the data encoder (standardisation statistics, category levels) and,
//! for checkpoints, the training state. Written atomically.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::data::Encoder;
use crate::error::{Error, Result};
use crate::io::write_atomic;
use crate::model::{weight_names, Activation, Network};
use crate::train::TrainingState;

const METADATA_KEY: &str = "backprop";
const FORMAT_VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Metadata {
    format_version: u32,
    layer_sizes: Vec<usize>,
    hidden_activation: Activation,
    output_activation: Activation,
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
    let names = weight_names(model.network.weights().len());
    let bytes: Vec<Vec<u8>> = model
        .network
        .weights()
        .iter()
        .map(|w| w.iter().flat_map(|v| v.to_le_bytes()).collect())
        .collect();
    let views = names
        .iter()
        .zip(model.network.weights())
        .zip(&bytes)
        .map(|((name, w), data)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F64, w.shape().to_vec(), data)
                .map(|view| (name.clone(), view))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::File {
            path: path.into(),
            message: e.to_string(),
        })?;
    let metadata = Metadata {
        format_version: FORMAT_VERSION,
        layer_sizes: model.network.layer_sizes(),
        hidden_activation: Activation::Sigmoid,
        output_activation: model.network.output_activation(),
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
    if meta.format_version != FORMAT_VERSION {
        return Err(error(format!(
            "format version {} (this build reads {FORMAT_VERSION})",
            meta.format_version
        )));
    }
    let n_layers = meta.layer_sizes.len().saturating_sub(1);
    let weights = weight_names(n_layers)
        .iter()
        .enumerate()
        .map(|(l, name)| {
            let view = tensors
                .tensor(name)
                .map_err(|e| error(format!("tensor `{name}`: {e}")))?;
            let shape = (meta.layer_sizes[l], meta.layer_sizes[l + 1]);
            if view.dtype() != safetensors::Dtype::F64 || view.shape() != [shape.0, shape.1] {
                return Err(error(format!(
                    "tensor `{name}` is {:?} {:?}, expected F64 {shape:?}",
                    view.dtype(),
                    view.shape()
                )));
            }
            let values: Vec<f64> = view
                .data()
                .chunks_exact(8)
                .map(|b| f64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
                .collect();
            ndarray::Array2::from_shape_vec(shape, values).map_err(|e| error(e.to_string()))
        })
        .collect::<Result<Vec<_>>>()?;
    let network =
        Network::new(weights, meta.output_activation).map_err(|e| error(e.to_string()))?;
    meta.encoder
        .validate()
        .map_err(|e| error(format!("its metadata is inconsistent: {e}")))?;
    if network.n_outputs() != meta.encoder.targets.len() {
        return Err(error(format!(
            "the network has {} outputs but the encoder {} target columns",
            network.n_outputs(),
            meta.encoder.targets.len()
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
