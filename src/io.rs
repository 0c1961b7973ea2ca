//! NumPy files in and out (`.npy`, `.npz`), and atomic writes: a file is written to a temporary
//! name beside its destination and renamed into place, so a failure never leaves half a file.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::Path;

use ndarray::{Array2, ArrayD, Dimension, Ix2};
use ndarray_npy::{NpzReader, NpzWriter, ReadNpyError, ReadNpyExt, ReadNpzError, ReadableElement};

use crate::error::{Error, Result};
use crate::model::{weight_names, Activation, Network};

/// Writes `path` atomically: `write` fills a temporary file in the same directory, which is
/// renamed over `path` only once it is complete and flushed.
pub fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<&mut File>) -> Result<()>,
) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".backprop-")
        .tempfile_in(dir)
        .map_err(|e| Error::io(path, e))?;
    {
        let mut writer = BufWriter::new(tmp.as_file_mut());
        write(&mut writer)?;
        writer.flush().map_err(|e| Error::io(path, e))?;
    }
    tmp.as_file().sync_all().map_err(|e| Error::io(path, e))?;
    persist(tmp, path)
}

/// Renames a finished temporary file onto `path` with the permissions an ordinary new file
/// gets (temporary files are created private, 0600).
pub(crate) fn persist(tmp: tempfile::NamedTempFile, path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).map_or(0o644, |m| m.permissions().mode());
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io(path, e))?;
    }
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

fn open(path: &Path) -> Result<File> {
    File::open(path).map_err(|e| Error::io(path, e))
}

/// Something an array can be read from more than once, in a given element type: ndarray-npy
/// parses one dtype per call, so a float32 file is read again after float64 is refused.
trait ArraySource {
    fn read<T: ReadableElement>(&mut self) -> std::result::Result<ArrayD<T>, ReadNpyError>;
}

/// Reads a float64 or float32 array of any dimension as f64 and rejects NaN and infinities.
fn read_float_array(
    path: &Path,
    array: &str,
    source: &mut impl ArraySource,
) -> Result<ArrayD<f64>> {
    let error = |e: ReadNpyError| Error::Array {
        path: path.into(),
        array: array.into(),
        message: match e {
            ReadNpyError::WrongDescriptor(descr) => {
                format!("dtype {descr} is not supported: use float64 or float32")
            }
            other => format!("not a readable .npy array ({other})"),
        },
    };
    let values = match source.read::<f64>() {
        Ok(a) => a,
        Err(ReadNpyError::WrongDescriptor(_)) => {
            source.read::<f32>().map_err(error)?.mapv(f64::from)
        }
        Err(e) => return Err(error(e)),
    };
    check_finite(path, array, &values)?;
    Ok(values)
}

struct NpyPath<'a>(&'a Path);

impl ArraySource for NpyPath<'_> {
    fn read<T: ReadableElement>(&mut self) -> std::result::Result<ArrayD<T>, ReadNpyError> {
        ArrayD::<T>::read_npy(BufReader::new(File::open(self.0)?))
    }
}

struct NpzMember<'a> {
    reader: &'a mut NpzReader<File>,
    name: &'a str,
}

impl ArraySource for NpzMember<'_> {
    fn read<T: ReadableElement>(&mut self) -> std::result::Result<ArrayD<T>, ReadNpyError> {
        self.reader
            .by_name::<ndarray::OwnedRepr<T>, ndarray::IxDyn>(self.name)
            .map_err(|e| match e {
                ReadNpzError::Npy(e) => e,
                other => ReadNpyError::Io(std::io::Error::other(other.to_string())),
            })
    }
}

fn check_finite(path: &Path, array: &str, values: &ArrayD<f64>) -> Result<()> {
    match values.indexed_iter().find(|(_, v)| !v.is_finite()) {
        None => Ok(()),
        Some((index, v)) => Err(Error::Array {
            path: path.into(),
            array: array.into(),
            message: format!(
                "holds {v} at index {:?}: inputs must be finite",
                index.slice()
            ),
        }),
    }
}

/// Reads one `.npy` file (float64 or float32) as f64.
pub fn read_npy(path: &Path) -> Result<ArrayD<f64>> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    open(path)?;
    read_float_array(path, &name, &mut NpyPath(path))
}

/// An `.npz` archive opened for reading arrays by name.
pub struct NpzFile {
    path: std::path::PathBuf,
    reader: NpzReader<File>,
    names: Vec<String>,
}

impl NpzFile {
    pub fn open(path: &Path) -> Result<Self> {
        let npz_error = |e: ReadNpzError| Error::File {
            path: path.into(),
            message: format!("not a readable .npz archive ({e})"),
        };
        let mut reader = NpzReader::new(open(path)?).map_err(npz_error)?;
        let names = reader.names().map_err(npz_error)?;
        Ok(NpzFile {
            path: path.into(),
            reader,
            names,
        })
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    pub fn contains(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name)
    }

    /// Reads array `name` (float64 or float32) as f64.
    pub fn array(&mut self, name: &str) -> Result<ArrayD<f64>> {
        if !self.contains(name) {
            return Err(Error::Array {
                path: self.path.clone(),
                array: name.into(),
                message: format!("missing; the archive holds {:?}", self.names),
            });
        }
        let mut member = NpzMember {
            reader: &mut self.reader,
            name,
        };
        read_float_array(&self.path, name, &mut member)
    }
}

/// Writes named f64 arrays to an `.npz` archive atomically.
pub fn write_npz(path: &Path, arrays: &[(String, ArrayD<f64>)]) -> Result<()> {
    write_atomic(path, |writer| {
        let mut npz = NpzWriter::new(writer);
        for (name, array) in arrays {
            npz.add_array(name.as_str(), array)
                .map_err(|e| Error::File {
                    path: path.into(),
                    message: format!("writing `{name}`: {e}"),
                })?;
        }
        npz.finish().map_err(|e| Error::File {
            path: path.into(),
            message: e.to_string(),
        })?;
        Ok(())
    })
}

/// The weights of a network read from an `.npz` archive, with each matrix's shape as stored
/// (a 1-D `weights_hidden_to_output` is one output unit, as in the seeds).
pub struct WeightsFile {
    pub network: Network<f64>,
    pub stored_shapes: Vec<Vec<usize>>,
}

/// Reads `weights_input_to_hidden` … `weights_hidden_to_output` (see [`weight_names`]).
pub fn read_weights_npz(path: &Path, output_activation: Activation) -> Result<WeightsFile> {
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
    let network = Network::new(weights, output_activation).map_err(|e| Error::File {
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
