//! NumPy arrays in: `--data X.npy` (the inputs, columns `x0`, `x1`, …) with `--target y.npy`
//! (the targets: `y`, or `y0`, `y1`, … for several), or one `.npz` archive holding `x` (or
//! `X`) and, for training, `y`. Numbers of any NumPy dtype become numbers (NaN an empty
//! cell, which `--missing` handles); fixed-width text (`<U`, `|S`) becomes text levels, so
//! string class labels need no encoding first; booleans are 0 and 1 as inputs and the labels
//! `false` and `true` as a target. Records are named by row, from 0 as NumPy
//! counts them.

use std::path::Path;

use crate::data::frame::{Column, Frame, LevelsBuilder, Lines, ReadPlan, Role};
use crate::error::{Error, Result};
use crate::guard::memory::{host_available, MemoryPlan};
use crate::io::npy::Npy;
use crate::io::NpzFile;

/// The names an `.npz` archive's inputs may have.
const INPUT_NAMES: [&str; 2] = ["x", "X"];
const TARGET_NAME: &str = "y";

/// Reads inputs from `.npy` file `inputs` and, when given, targets from `targets`.
pub fn read_npy(inputs: &Path, targets: Option<&Path>, plan: &ReadPlan) -> Result<Frame> {
    let bytes = crate::io::map_input(inputs)?;
    let x = parsed(&bytes, inputs, "inputs")?;
    let target_bytes = targets.map(crate::io::map_input).transpose()?;
    let y = match (&target_bytes, targets) {
        (Some(bytes), Some(path)) => Some((parsed(bytes, path, "targets")?, path)),
        _ => None,
    };
    frame(inputs, (&x, inputs), y.as_ref().map(|(y, p)| (y, *p)), plan)
}

/// Reads `x` (or `X`) and, when present, `y` from an `.npz` archive.
pub fn read_npz(path: &Path, plan: &ReadPlan) -> Result<Frame> {
    let mut npz = NpzFile::open(path)?;
    let input_name = INPUT_NAMES
        .into_iter()
        .find(|n| npz.contains(n))
        .ok_or_else(|| Error::File {
            path: path.into(),
            message: format!(
                "holds {:?}; the inputs must be called `x` (or `X`), the targets `y`",
                npz.names()
            ),
        })?;
    let x_bytes = npz.member(input_name)?;
    let y_bytes = match npz.contains(TARGET_NAME) {
        true => Some(npz.member(TARGET_NAME)?),
        false => None,
    };
    let x = parsed(&x_bytes, path, input_name)?;
    let y = y_bytes
        .as_deref()
        .map(|b| parsed(b, path, TARGET_NAME))
        .transpose()?;
    frame(path, (&x, path), y.as_ref().map(|y| (y, path)), plan)
}

pub(crate) fn parsed<'a>(bytes: &'a [u8], path: &Path, array: &str) -> Result<Npy<'a>> {
    let npy = Npy::parse(bytes).map_err(|message| Error::Array {
        path: path.into(),
        array: array.into(),
        message,
    })?;
    if npy.shape.get(1) == Some(&0) {
        return Err(Error::Array {
            path: path.into(),
            array: array.into(),
            message: format!("has shape {:?}: records without columns", npy.shape),
        });
    }
    if npy.shape.is_empty() || npy.shape.len() > 2 {
        return Err(Error::Array {
            path: path.into(),
            array: array.into(),
            message: format!(
                "has shape {:?}; records are 1-D (one value each) or 2-D (records x columns)",
                npy.shape
            ),
        });
    }
    Ok(npy)
}

/// The frame of inputs `x` and targets `y`, each with the file it came from.
fn frame(
    source: &Path,
    x: (&Npy, &Path),
    y: Option<(&Npy, &Path)>,
    plan: &ReadPlan,
) -> Result<Frame> {
    let rows = x.0.shape[0];
    if let Some((y, y_path)) = y {
        if y.shape[0] != rows {
            return Err(Error::File {
                path: y_path.into(),
                message: format!(
                    "holds {} target records (shape {:?}) but {} holds {rows} input records (shape {:?}): they must be the same records",
                    y.shape[0],
                    y.shape,
                    x.1.display(),
                    x.0.shape
                ),
            });
        }
    }
    if rows == 0 {
        return Err(Error::File {
            path: source.into(),
            message: "holds no records".into(),
        });
    }
    let width = |a: &Npy| a.shape.get(1).copied().unwrap_or(1);
    check_column_count(
        source,
        width(x.0).saturating_add(y.map_or(0, |(y, _)| width(y))),
    )?;
    let mut names: Vec<String> = (0..width(x.0)).map(|j| format!("x{j}")).collect();
    let mut targets = Vec::new();
    if let Some((y, _)) = y {
        targets = match (y.shape.len(), width(y)) {
            (_, 1) => vec![TARGET_NAME.to_string()],
            (_, k) => (0..k).map(|j| format!("{TARGET_NAME}{j}")).collect(),
        };
        names.extend(targets.iter().cloned());
    }
    let roles: Vec<Role> = names
        .iter()
        .map(|n| match (plan.role(n), targets.contains(n)) {
            (Role::Infer, true) => Role::Target,
            (role, _) => role,
        })
        .collect();
    let kept = roles.iter().filter(|r| **r != Role::Skip).count();
    super::check_columns_fit(source, rows, kept)?;
    let at = width(x.0);
    let mut all = columns(x.0, x.1, &names[..at], &roles[..at], plan.levels_kept)?;
    if let Some((y, y_path)) = y {
        all.extend(columns(
            y,
            y_path,
            &names[at..],
            &roles[at..],
            plan.levels_kept,
        )?);
    }
    let mut frame = Frame::new(source.into(), names, all, Lines::rows(rows))?;
    frame.targets = targets;
    Ok(frame)
}

/// Checks, before any is made, that `columns` columns fit: every column costs its name, its
/// index entry and its vector besides its values (a 100 MB row of a million booleans is a
/// million columns).
pub(crate) fn check_column_count(source: &Path, columns: usize) -> Result<()> {
    const COLUMN_BYTES: u64 = 256;
    let mut memory = MemoryPlan::new();
    memory.add(format!("{columns} columns"), &[columns], COLUMN_BYTES)?;
    memory
        .check("host memory", host_available()?.as_ref())
        .map_err(|e| Error::File {
            path: source.into(),
            message: e.to_string(),
        })
}

/// The columns of a 1-D or 2-D array, stored as `roles` say.
fn columns(
    array: &Npy,
    path: &Path,
    names: &[String],
    roles: &[Role],
    levels_kept: usize,
) -> Result<Vec<Column>> {
    let rows = array.shape[0];
    let width = names.len();
    let index = |r: usize, c: usize| match array.fortran_order {
        true => c * rows + r,
        false => r * width + c,
    };
    if array.is_text() {
        return Ok((0..width)
            .map(|c| {
                let mut levels = LevelsBuilder::with_capacity(rows);
                if roles[c] != Role::Skip {
                    for r in 0..rows {
                        levels.push(Some(&array.text(index(r, c))));
                    }
                }
                Column::of_text(levels.finish(), roles[c])
            })
            .collect());
    }
    let mut numbers: Vec<Vec<f64>> = roles
        .iter()
        .map(|&role| match role {
            Role::Skip => Vec::new(),
            _ => Vec::with_capacity(rows),
        })
        .collect();
    let wanted: Vec<usize> = (0..width).filter(|&c| roles[c] != Role::Skip).collect();
    // Row by row: a C-order array is then read front to back, once.
    for r in 0..rows {
        for &c in &wanted {
            let v = array.number(index(r, c));
            if v.is_infinite() {
                return Err(Error::File {
                    path: path.into(),
                    message: format!(
                        "row {r}, column `{}`: the value is {v}; only finite numbers (or NaN for a missing value) can be trained on",
                        names[c]
                    ),
                });
            }
            numbers[c].push(v);
        }
    }
    Ok(numbers
        .into_iter()
        .zip(roles)
        .map(|(numbers, &role)| match array.is_bool() {
            true => Column::of_flags(numbers, role),
            false => Column::of_numbers(numbers, role, levels_kept),
        })
        .collect())
}
