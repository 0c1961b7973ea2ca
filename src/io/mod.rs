//! Files in and out. Every reader takes its bytes through [`read_input`], which refuses what
//! is not a file and anything larger than the memory there is, and then checks each declared
//! size against the bytes present ([`npy`], [`npz`], safetensors in `model_file`, CSV in
//! `data`). Every writer goes through [`write_atomic`]: a temporary file beside the
//! destination, renamed into place once complete, so a failure or an interruption never leaves
//! half a file or a stray temporary.

pub mod npy;
pub mod npz;

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use ndarray::{Array2, ArrayD, Ix2};

use crate::error::{Error, Result};
use crate::guard::interrupt;
use crate::guard::memory::{host_available, MemoryPlan};
use crate::guard::numeric::{check_representable, Precision};
use crate::guard::paths::{directory_of, resolve};
use crate::model::{bias_names, weight_names, Network, Spec};

pub use npz::{write_npz, NpzFile};

/// A temporary file beside the file `path` finally names (symlinks followed), registered so an
/// interruption removes it. Returns the file, its registration and the final path.
pub fn temporary_beside(
    path: &Path,
    suffix: &str,
) -> Result<(tempfile::NamedTempFile, interrupt::Temporary, PathBuf)> {
    let target = resolve(path)?;
    let dir = directory_of(&target).to_path_buf();
    let (tmp, registered) = interrupt::temporary(
        || {
            tempfile::Builder::new()
                .prefix(".backprop-")
                .suffix(suffix)
                .tempfile_in(&dir)
        },
        |t| t.path(),
    )
    .map_err(|e| Error::io(path, e))?;
    Ok((tmp, registered, target))
}

/// Writes `path` atomically: `write` fills a temporary file in the directory of the file `path`
/// finally names, which replaces that file only once it is complete and on disk. A symlink is
/// written through, never replaced by a regular file.
pub fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<&mut File>) -> Result<()>,
) -> Result<()> {
    let (mut tmp, registered, target) = temporary_beside(path, "")?;
    {
        // Large pieces: outputs run to gigabytes (predictions for every record of a file).
        let mut writer = BufWriter::with_capacity(1 << 20, tmp.as_file_mut());
        write(&mut writer)?;
        writer.flush().map_err(|e| Error::io(path, e))?;
    }
    tmp.as_file().sync_all().map_err(|e| Error::io(path, e))?;
    persist(tmp, &target)?;
    drop(registered);
    Ok(())
}

/// Renames a finished temporary file onto `target` (already resolved) with the permissions
/// the file it replaces had, or those an ordinary new file gets (temporaries are 0600).
pub(crate) fn persist(tmp: tempfile::NamedTempFile, target: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(target).map_or(0o644, |m| m.permissions().mode());
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io(target, e))?;
    }
    tmp.persist(target)
        .map_err(|e| Error::io(target, e.error))?;
    Ok(())
}

/// Reads a whole input file. A directory or a device is an error that says so; a regular file
/// larger than the memory available is refused before reading; a pipe is read up to that bound.
pub fn read_input(path: &Path) -> Result<Vec<u8>> {
    let metadata = readable(path)?;
    let available = host_available()?;
    if metadata.is_file() {
        let mut plan = MemoryPlan::new();
        plan.add_bytes(format!("reading {}", path.display()), metadata.len());
        plan.check("host memory", available.as_ref())
            .map_err(|e| Error::File {
                path: path.into(),
                message: e.to_string(),
            })?;
    }
    let limit = available.map_or(u64::MAX, |a| a.bytes);
    let mut bytes = Vec::new();
    File::open(path)
        .map_err(|e| Error::io(path, e))?
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > limit {
        return Err(Error::File {
            path: path.into(),
            message: format!("holds more than the {limit} bytes of memory available"),
        });
    }
    Ok(bytes)
}

/// An input's bytes: a regular file mapped (the page cache holds it once, and only the pages
/// touched are read), anything else read whole through [`read_input`].
pub enum InputBytes {
    Mapped(memmap2::Mmap),
    Read(Vec<u8>),
}

impl AsRef<[u8]> for InputBytes {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl std::ops::Deref for InputBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            InputBytes::Mapped(map) => map,
            InputBytes::Read(bytes) => bytes,
        }
    }
}

/// The bytes of input `path`, mapped when it is a regular file.
pub fn map_input(path: &Path) -> Result<InputBytes> {
    let metadata = readable(path)?;
    if !metadata.is_file() || metadata.len() == 0 {
        return read_input(path).map(InputBytes::Read);
    }
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    // SAFETY: the map is only read. Another process truncating the file while it is mapped
    // would fault the reads past the new end (SIGBUS): the same hazard as every tool that maps
    // its input (NumPy's mmap_mode, ripgrep), accepted for reading gigabytes without a copy.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
    Ok(InputBytes::Mapped(map))
}

/// The metadata of an input that can be read to its end: a directory or a device (/dev/zero
/// never ends) is an error that says so.
pub fn readable(path: &Path) -> Result<std::fs::Metadata> {
    let metadata = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if metadata.is_dir() {
        return Err(Error::File {
            path: path.into(),
            message: "is a directory, not a file".into(),
        });
    }
    if is_device(&metadata) {
        // /dev/zero and /dev/urandom never end: reading them only fills memory.
        return Err(Error::File {
            path: path.into(),
            message: "is a device, not a file".into(),
        });
    }
    Ok(metadata)
}

fn is_device(metadata: &std::fs::Metadata) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = metadata.file_type();
        t.is_char_device() || t.is_block_device()
    }
    #[cfg(not(unix))]
    {
        let _ = metadata;
        false
    }
}

/// Reads one `.npy` file (float64 or float32) as f64; NaN and infinities are refused.
pub fn read_npy(path: &Path) -> Result<ArrayD<f64>> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let error = |message: String| Error::Array {
        path: path.into(),
        array: name.clone(),
        message,
    };
    let values = npy::parse(&read_input(path)?).map_err(error)?;
    check_representable(&name, values.view(), Precision::F64).map_err(|e| error(e.to_string()))?;
    Ok(values)
}

/// The weights of a network read from an `.npz` archive, with each matrix's shape as stored
/// (a 1-D `weights_hidden_to_output` is one output unit, as in the seeds).
pub struct WeightsFile {
    pub network: Network<f64>,
    pub stored_shapes: Vec<Vec<usize>>,
}

/// Reads `weights_input_to_hidden` … `weights_hidden_to_output` (see [`weight_names`]) and,
/// when the archive has them, the biases `bias_hidden` … `bias_output` (all of them or none),
/// for a network of `spec`.
pub fn read_weights_npz(path: &Path, spec: Spec) -> Result<WeightsFile> {
    let mut npz = NpzFile::open(path)?;
    let n_layers = (2..=npz.names().len().max(2))
        .find(|&n| weight_names(n).iter().all(|name| npz.contains(name)))
        .ok_or_else(|| Error::File {
            path: path.into(),
            message: format!(
                "found arrays {:?} but expected {:?} (one hidden layer) or {:?} (two; and so on)",
                npz.names(),
                weight_names(2),
                weight_names(3)
            ),
        })?;
    let names = weight_names(n_layers);
    let mut weights = Vec::with_capacity(n_layers);
    let mut stored_shapes = Vec::with_capacity(n_layers);
    for (l, name) in names.iter().enumerate() {
        let array = npz.array(name)?;
        stored_shapes.push(array.shape().to_vec());
        let is_last = l + 1 == n_layers;
        let matrix = match array.ndim() {
            2 => array.into_dimensionality::<Ix2>().ok(),
            1 if is_last => {
                let n = array.len();
                array.into_shape_with_order((n, 1)).ok()
            }
            _ => None,
        };
        weights.push(matrix.ok_or_else(|| Error::Array {
            path: path.into(),
            array: name.clone(),
            message: format!(
                "has shape {:?}; weight matrices are 2-D (inputs x outputs){}",
                stored_shapes[l],
                if is_last {
                    ", or 1-D for one output unit"
                } else {
                    ""
                }
            ),
        })?);
    }
    let bias_names = bias_names(n_layers);
    let present: Vec<&String> = bias_names.iter().filter(|n| npz.contains(n)).collect();
    let biases = match present.len() {
        0 => None,
        n if n == n_layers => Some(
            bias_names
                .iter()
                .map(|name| {
                    let b = npz.array(name)?;
                    let len = b.len();
                    b.into_shape_with_order(len).map_err(|e| Error::Array {
                        path: path.into(),
                        array: name.clone(),
                        message: e.to_string(),
                    })
                })
                .collect::<Result<Vec<_>>>()?,
        ),
        _ => {
            return Err(Error::File {
                path: path.into(),
                message: format!(
                    "holds {present:?} but a network's biases are all of {bias_names:?} or none"
                ),
            })
        }
    };
    let network = Network::with_spec(weights, biases, spec).map_err(|e| Error::File {
        path: path.into(),
        message: e.to_string(),
    })?;
    Ok(WeightsFile {
        network,
        stored_shapes,
    })
}

/// A 2-D view of records: a 1-D array is one record (as `x` in the seeds).
pub fn records(path: &Path, array: &str, values: ArrayD<f64>) -> Result<Array2<f64>> {
    match values.ndim() {
        1 => {
            let n = values.len();
            Ok(values
                .into_shape_with_order((1, n))
                .map_err(|e| Error::Shape(e.to_string()))?)
        }
        2 => Ok(values
            .into_dimensionality::<Ix2>()
            .map_err(|e| Error::Shape(e.to_string()))?),
        _ => Err(Error::Array {
            path: path.into(),
            array: array.into(),
            message: format!(
                "has shape {:?}; expected 1-D (one record) or 2-D (records x features)",
                values.shape()
            ),
        }),
    }
}
