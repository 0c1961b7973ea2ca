//! The output-path guard: before a command does any work, every file it will write is checked
//! against every file it reads and every other file it writes. An output is refused when it is
//! the same file as an input (same device and inode, after following symlinks: a hard link or a
//! symlink to the data is caught), when two outputs name one file, when it names something that
//! is not a regular file (a directory, a FIFO, a device), when it is read-only, or when its
//! directory is missing or cannot be written in (tried, not guessed from permission bits).
//!
//! A symlink to a regular file is written through: [`resolve`] gives the file it points to,
//! and [`crate::io::write_atomic`] replaces that file, leaving the link in place.

use std::fs::Metadata;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Symlink hops followed before a chain counts as a loop (Linux's own limit is 40).
const MAX_SYMLINK_HOPS: usize = 40;

/// The file `path` finally names: symlinks followed, even when the last one dangles (writing
/// through a dangling link creates its target, as `cp` does).
pub fn resolve(path: &Path) -> Result<PathBuf> {
    let mut current = path.to_path_buf();
    for _ in 0..MAX_SYMLINK_HOPS {
        match std::fs::symlink_metadata(&current) {
            Ok(m) if m.file_type().is_symlink() => {
                let target = std::fs::read_link(&current).map_err(|e| Error::io(path, e))?;
                current = match current.parent() {
                    Some(dir) if target.is_relative() => dir.join(target),
                    _ => target,
                };
            }
            _ => return Ok(current),
        }
    }
    Err(Error::File {
        path: path.into(),
        message: format!("more than {MAX_SYMLINK_HOPS} symbolic links in a row (a loop?)"),
    })
}

/// The directory a (resolved) file lives in; `.` for a bare file name.
pub fn directory_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// What makes two paths the same file: device and inode where the file exists, else the
/// canonical directory and the name.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Identity {
    Inode(u64, u64),
    Path(PathBuf),
}

fn inode(m: &Metadata) -> Identity {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Identity::Inode(m.dev(), m.ino())
    }
    #[cfg(not(unix))]
    {
        let _ = m;
        Identity::Path(PathBuf::new())
    }
}

fn identity(resolved: &Path) -> Option<Identity> {
    if let Ok(m) = std::fs::metadata(resolved) {
        if cfg!(unix) {
            return Some(inode(&m));
        }
    }
    let dir = std::fs::canonicalize(directory_of(resolved)).ok()?;
    Some(Identity::Path(dir.join(resolved.file_name()?)))
}

fn kind_of(m: &Metadata) -> &'static str {
    let t = m.file_type();
    if t.is_dir() {
        return "a directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if t.is_char_device() || t.is_block_device() {
            return "a device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    "not a regular file"
}

/// The files one command reads and writes, by flag.
#[derive(Default)]
pub struct FilePlan {
    inputs: Vec<(String, PathBuf)>,
    outputs: Vec<(String, PathBuf)>,
    /// Files read and then rewritten on purpose (a checkpoint that `--resume` continues).
    updated: Vec<(String, PathBuf)>,
}

impl FilePlan {
    pub fn new() -> Self {
        Self::default()
    }

    /// A file the command reads (`None`: the flag was not given).
    pub fn input(mut self, flag: &str, path: Option<&Path>) -> Self {
        if let Some(p) = path {
            self.inputs.push((flag.into(), p.into()));
        }
        self
    }

    /// A file the command writes.
    pub fn output(mut self, flag: &str, path: Option<&Path>) -> Self {
        if let Some(p) = path {
            self.outputs.push((flag.into(), p.into()));
        }
        self
    }

    /// A file the command reads and then replaces (it may be itself, but no other output or input).
    pub fn updated(mut self, flag: &str, path: Option<&Path>) -> Self {
        if let Some(p) = path {
            self.updated.push((flag.into(), p.into()));
        }
        self
    }

    /// Checks every output; the first problem is an error naming its flag and path.
    pub fn check(&self) -> Result<()> {
        let refuse = |flag: &str, path: &Path, message: String| {
            Err(Error::argument(
                flag,
                format!("{}: {message}", path.display()),
            ))
        };
        // Standard output and error count as inputs: a file they are redirected to
        // (`> out.txt` and `--metrics out.txt`) must not be replaced under them.
        let streams = [
            ("standard output", Path::new("/dev/stdout")),
            ("standard error", Path::new("/dev/stderr")),
        ];
        let inputs: Vec<(&str, &Path, Option<Identity>)> = self
            .inputs
            .iter()
            .map(|(flag, path)| (flag.as_str(), path.as_path()))
            .chain(streams)
            .filter_map(|(flag, path)| {
                let m = std::fs::metadata(path).ok()?;
                Some((flag, path, Some(inode(&m))))
            })
            .collect();
        let mut written: Vec<(&str, &Path, Identity)> = Vec::new();
        let outputs = self
            .outputs
            .iter()
            .map(|o| (o, false))
            .chain(self.updated.iter().map(|o| (o, true)));
        for ((flag, path), updated) in outputs {
            if path.as_os_str().is_empty() {
                return refuse(flag, path, "an empty path".into());
            }
            if path.as_os_str().as_encoded_bytes().ends_with(b"/") {
                return refuse(
                    flag,
                    path,
                    "ends with `/`: names a directory, not a file".into(),
                );
            }
            let resolved = resolve(path)?;
            match std::fs::metadata(&resolved) {
                Ok(m) if !m.is_file() => {
                    return refuse(
                        flag,
                        path,
                        format!("is {}; an output must be a regular file", kind_of(&m)),
                    )
                }
                Ok(m) if m.permissions().readonly() => {
                    return refuse(
                        flag,
                        path,
                        "is read-only; it will not be replaced (make it writable, or choose another name)"
                            .into(),
                    )
                }
                _ => {}
            }
            let dir = directory_of(&resolved);
            match std::fs::metadata(dir) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return refuse(flag, path, format!("{} is not a directory", dir.display()))
                }
                Err(e) => return refuse(flag, path, format!("directory {}: {e}", dir.display())),
            }
            // The only honest test of "can I write here" (read-only mounts, ACLs, quotas), with
            // a name as long as the output's (a name over the file system's limit fails here).
            const PROBE: &str = ".backprop-probe-";
            let name_length = resolved.file_name().map_or(0, |n| n.len());
            if let Err(e) = tempfile::Builder::new()
                .prefix(PROBE)
                .rand_bytes(name_length.saturating_sub(PROBE.len()).max(6))
                .tempfile_in(dir)
            {
                return refuse(
                    flag,
                    path,
                    format!("cannot write a file of this name in {}: {e}", dir.display()),
                );
            }
            let Some(id) = identity(&resolved) else {
                continue;
            };
            // A file rewritten on purpose may be its own input, but no other.
            let is_itself = |f: &str, p: &Path| updated && f == flag && p == path.as_path();
            if let Some((input_flag, input, _)) = inputs
                .iter()
                .find(|(f, p, i)| i.as_ref() == Some(&id) && !is_itself(f, p))
            {
                return refuse(
                    flag,
                    path,
                    format!(
                        "is the same file as {input_flag} {}; an output never replaces an input",
                        input.display()
                    ),
                );
            }
            if let Some((other_flag, other, _)) = written.iter().find(|(_, _, i)| *i == id) {
                return refuse(
                    flag,
                    path,
                    format!(
                        "is the same file as {other_flag} {}; two outputs cannot share a file",
                        other.display()
                    ),
                );
            }
            written.push((flag, path, id));
        }
        Ok(())
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn dir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    #[test]
    fn an_output_naming_an_input_through_any_path_is_refused() {
        let d = dir();
        let data = d.path().join("d.csv");
        std::fs::write(&data, "a,b\n1,2\n").unwrap();
        let link = d.path().join("link.csv");
        std::os::unix::fs::symlink(&data, &link).unwrap();
        let hard = d.path().join("hard.csv");
        std::fs::hard_link(&data, &hard).unwrap();
        let dotted = d.path().join(".").join("d.csv");
        for out in [&data, &link, &hard, &dotted] {
            let err = FilePlan::new()
                .input("--data", Some(&data))
                .output("--metrics", Some(out))
                .check()
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("--metrics") && err.contains("same file as --data"),
                "{err}"
            );
        }
    }

    #[test]
    fn two_outputs_naming_one_file_are_refused_even_before_it_exists() {
        let d = dir();
        let a = d.path().join("m.json");
        let b = d.path().join("sub").join("..").join("m.json");
        std::fs::create_dir(d.path().join("sub")).unwrap();
        let err = FilePlan::new()
            .output("--metrics", Some(&a))
            .output("--save", Some(&b))
            .check()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--save") && err.contains("two outputs"),
            "{err}"
        );
    }

    #[test]
    fn directories_fifos_devices_missing_and_read_only_places_are_refused() {
        let d = dir();
        let fifo = d.path().join("fifo");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        let read_only = d.path().join("ro.json");
        std::fs::write(&read_only, "{}").unwrap();
        let mut perms = std::fs::metadata(&read_only).unwrap().permissions();
        perms.set_readonly(true);
        std::fs::set_permissions(&read_only, perms).unwrap();
        let cases: [(&Path, &str); 5] = [
            (d.path(), "a directory"),
            (&fifo, "a FIFO"),
            (Path::new("/dev/null"), "a device"),
            (&d.path().join("missing").join("m.json"), "missing"),
            (&read_only, "read-only"),
        ];
        for (path, expected) in cases {
            let err = FilePlan::new()
                .output("--out", Some(path))
                .check()
                .unwrap_err()
                .to_string();
            let expected = if expected == "missing" {
                "No such file or directory"
            } else {
                expected
            };
            assert!(err.contains(expected) && err.contains("--out"), "{err}");
        }
    }

    #[test]
    fn a_resumed_checkpoint_may_be_rewritten_but_not_replace_the_data() {
        let d = dir();
        let ck = d.path().join("ck.safetensors");
        std::fs::write(&ck, "x").unwrap();
        let ok = FilePlan::new()
            .input("--checkpoint", Some(&ck))
            .updated("--checkpoint", Some(&ck))
            .check();
        assert!(ok.is_ok(), "{ok:?}");
        let err = FilePlan::new()
            .input("--data", Some(&ck))
            .input("--checkpoint", Some(&ck))
            .updated("--checkpoint", Some(&ck))
            .check()
            .unwrap_err()
            .to_string();
        assert!(err.contains("same file as --data"), "{err}");
    }

    #[test]
    fn symlinks_resolve_to_their_final_target_and_loops_are_errors() {
        let d = dir();
        let target = d.path().join("model.safetensors");
        let link = d.path().join("link");
        std::os::unix::fs::symlink("model.safetensors", &link).unwrap();
        assert_eq!(resolve(&link).unwrap(), d.path().join("model.safetensors"));
        assert_eq!(resolve(&target).unwrap(), target);
        let a = d.path().join("a");
        let b = d.path().join("b");
        std::os::unix::fs::symlink(&b, &a).unwrap();
        std::os::unix::fs::symlink(&a, &b).unwrap();
        let err = resolve(&a).unwrap_err().to_string();
        assert!(err.contains("symbolic links"), "{err}");
    }
}
