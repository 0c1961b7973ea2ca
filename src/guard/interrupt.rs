//! Stopping a run cleanly. A [`CancelToken`] asks a training run to stop at its next clean
//! point: between batches, after the last complete checkpoint, with no file half-written. Each
//! fit has its own (the Python package cancels one on Ctrl-C); the command line's is the
//! process's, cancelled by SIGINT and SIGTERM: a watcher thread receives them (signal-hook's
//! self-pipe, so it may do real work). While a loop that polls the token runs ([`Polling`]),
//! the first signal cancels it and the command then exits 130 (SIGINT) or 143 (SIGTERM).
//! Anywhere else, or at a second signal, the watcher removes every temporary file still
//! registered and exits with the same status at once. Without [`install`] (the library used
//! from Rust or Python), no signal handler is touched.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use signal_hook::consts::{SIGINT, SIGTERM};

use crate::error::{Error, Result};

/// A request to stop one run, shared by whoever may ask (a signal watcher, another thread)
/// and the run, which polls it between batches. Clones share the request.
#[derive(Clone, Debug, Default)]
pub struct CancelToken(Arc<AtomicI32>);

impl CancelToken {
    /// A token nobody has cancelled yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the run to stop as if `signal` had arrived (`SIGINT` for Ctrl-C); the first
    /// request is the one reported.
    pub fn cancel(&self, signal: i32) {
        let _ = self
            .0
            .compare_exchange(0, signal.max(1), Ordering::SeqCst, Ordering::SeqCst);
    }

    /// The signal the run was cancelled with, if it was.
    pub fn signal(&self) -> Option<i32> {
        match self.0.load(Ordering::SeqCst) {
            0 => None,
            signal => Some(signal),
        }
    }

    /// `Err(Interrupted)` once cancelled.
    pub fn check(&self) -> Result<()> {
        match self.signal() {
            None => Ok(()),
            Some(signal) => Err(Error::Interrupted {
                signal,
                detail: String::new(),
            }),
        }
    }
}

/// The token SIGINT and SIGTERM cancel once [`install`] has run: the command line's.
pub fn process() -> CancelToken {
    PROCESS.get_or_init(CancelToken::new).clone()
}

static PROCESS: OnceLock<CancelToken> = OnceLock::new();
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
            let token = process();
            for signal in signals.forever() {
                let first = token.signal().is_none();
                token.cancel(signal);
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

/// While alive, the first signal cancels [`process`]'s token (a clean stop) instead of exiting.
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
