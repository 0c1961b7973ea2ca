//! `.npz` archives (a zip of `.npy` members), read from memory with each member's declared size
//! checked against the memory there is before it is decompressed, and against the bytes it
//! actually holds after; written in memory first, so a failure never leaves half an archive
//! (or a zip writer complaining from its destructor).

use std::io::{Cursor, Read, Write};
use std::path::{Path, PathBuf};

use ndarray::ArrayD;
use ndarray_npy::NpzWriter;

use super::{read_input, write_atomic};
use crate::error::{Error, Result};
use crate::guard::memory::MemoryPlan;
use crate::guard::numeric::{check_representable, Precision};

/// An `.npz` archive opened for reading arrays by name.
pub struct NpzFile {
    path: PathBuf,
    archive: zip::ZipArchive<Cursor<Vec<u8>>>,
    names: Vec<String>,
}

impl NpzFile {
    pub fn open(path: &Path) -> Result<Self> {
        Self::from_bytes(path, read_input(path)?)
    }

    /// An archive already in memory; `path` is what messages call it.
    pub fn from_bytes(path: &Path, bytes: Vec<u8>) -> Result<Self> {
        let archive = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| Error::File {
            path: path.into(),
            message: format!("not a readable .npz archive ({e})"),
        })?;
        let names = archive
            .file_names()
            .map(|n| n.strip_suffix(".npy").unwrap_or(n).to_string())
            .collect();
        Ok(NpzFile {
            path: path.into(),
            archive,
            names,
        })
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    pub fn contains(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name)
    }

    /// Reads numeric array `name` as f64; NaN and infinities are refused.
    pub fn array(&mut self, name: &str) -> Result<ArrayD<f64>> {
        let bytes = self.member(name)?;
        let error = |message: String| Error::Array {
            path: self.path.clone(),
            array: name.into(),
            message,
        };
        let values = super::npy::parse(&bytes).map_err(error)?;
        check_representable(name, values.view(), Precision::F64)
            .map_err(|e| error(e.to_string()))?;
        Ok(values)
    }

    /// The `.npy` bytes of array `name`, decompressed (for [`super::npy::Npy::parse`]).
    pub fn member(&mut self, name: &str) -> Result<Vec<u8>> {
        let error = |message: String| Error::Array {
            path: self.path.clone(),
            array: name.into(),
            message,
        };
        let member = self
            .archive
            .file_names()
            .find(|n| n.strip_suffix(".npy").unwrap_or(n) == name)
            .map(str::to_string)
            .ok_or_else(|| error(format!("missing; the archive holds {:?}", self.names)))?;
        let mut file = self
            .archive
            .by_name(&member)
            .map_err(|e| error(format!("unreadable member ({e})")))?;
        let declared = file.size();
        let mut plan = MemoryPlan::new();
        plan.add_bytes(format!("`{name}` decompressed"), declared);
        plan.check(
            "host memory",
            crate::guard::memory::host_available()?.as_ref(),
        )
        .map_err(|e| error(e.to_string()))?;
        // Read what is there, never more than declared (+1 to notice a lie); the vector grows
        // with the bytes that arrive, not with the header's promise.
        let mut bytes = Vec::new();
        (&mut file)
            .take(declared.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(|e| error(format!("unreadable member ({e})")))?;
        if bytes.len() as u64 != declared {
            return Err(error(format!(
                "the archive declares {declared} bytes but the member holds {}",
                bytes.len()
            )));
        }
        Ok(bytes)
    }
}

/// Writes named f64 arrays to an `.npz` archive atomically.
pub fn write_npz(path: &Path, arrays: &[(String, ArrayD<f64>)]) -> Result<()> {
    let error = |message: String| Error::File {
        path: path.into(),
        message,
    };
    let mut npz = NpzWriter::new(Cursor::new(Vec::new()));
    for (name, array) in arrays {
        npz.add_array(name.as_str(), array)
            .map_err(|e| error(format!("writing `{name}`: {e}")))?;
    }
    let bytes = npz.finish().map_err(|e| error(e.to_string()))?.into_inner();
    write_atomic(path, |w| {
        w.write_all(&bytes).map_err(|e| Error::io(path, e))
    })
}
