//! SIGINT and SIGTERM. A watcher thread receives them (signal-hook's self-pipe, so it may do
//! real work). While a loop that polls [`check`] runs (training), the first signal asks it to
//! stop at its next clean point: between batches, after the last complete checkpoint, with no
//! file half-written; the command then exits 130 (SIGINT) or 143 (SIGTERM). Anywhere else, or
//! at a second signal, the watcher removes every temporary file still registered and exits with
//! the same status at once. Without [`install`] (the library in tests), nothing changes.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Mutex, MutexGuard};

use signal_hook::consts::{SIGINT, SIGTERM};

use crate::error::{Error, Result};

static SIGNAL: AtomicI32 = AtomicI32::new(0);
static POLLING: AtomicBool = AtomicBool::new(false);
static TEMPORARIES: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn temporaries() -> MutexGuard<'static, Vec<PathBuf>> {
    // A panic while holding the lock cannot leave the list inconsistent (push/retain only).
    TEMPORARIES.lock().unwrap_or_else(|e| e.into_inner())
}

/// Starts the watcher. Call once, from `main`, before any work.
pub fn install() -> std::io::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                let first = SIGNAL
                    .compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok();
                if first && POLLING.load(Ordering::SeqCst) {
                    continue;
                }
                // Holding the lock until exit: no temporary can be created after this sweep.
                let mut list = temporaries();
                for path in list.drain(..) {
                    let _ = std::fs::remove_file(&path);
                }
                eprintln_quiet(signal);
                std::process::exit(128 + signal);
            }
        })?;
    Ok(())
}

fn eprintln_quiet(signal: i32) {
    use std::io::Write;
    let name = if signal == SIGINT {
        "SIGINT"
    } else {
        "SIGTERM"
    };
    let _ = writeln!(std::io::stderr(), "interrupted by {name}: stopped");
}

/// `Err(Interrupted)` once a signal has arrived.
pub fn check() -> Result<()> {
    match received() {
        None => Ok(()),
        Some(signal) => Err(Error::Interrupted {
            signal,
            detail: String::new(),
        }),
    }
}

/// The signal that arrived, if one did (distributed training tells the other ranks).
pub fn received() -> Option<i32> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        signal => Some(signal),
    }
}

/// While alive, the first signal asks for a clean stop (seen by [`check`]) instead of exiting.
pub struct Polling(());

impl Polling {
    pub fn start() -> Self {
        POLLING.store(true, Ordering::SeqCst);
        Polling(())
    }
}

impl Drop for Polling {
    fn drop(&mut self) {
        POLLING.store(false, Ordering::SeqCst);
    }
}

/// Creates a temporary file with `create` and registers its path, under one lock, so that the
/// watcher removes it if the process is stopped before [`Temporary`] is dropped.
pub fn temporary<T>(
    create: impl FnOnce() -> std::io::Result<T>,
    path_of: impl FnOnce(&T) -> &Path,
) -> std::io::Result<(T, Temporary)> {
    let mut list = temporaries();
    let made = create()?;
    let path = path_of(&made).to_path_buf();
    list.push(path.clone());
    Ok((made, Temporary(path)))
}

/// A registered temporary path; dropping it unregisters the path (the file itself is renamed
/// into place or removed by its owner).
pub struct Temporary(PathBuf);

impl Drop for Temporary {
    fn drop(&mut self) {
        temporaries().retain(|p| *p != self.0);
    }
}
