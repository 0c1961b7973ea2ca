//! The tuning cache on disk: one JSON file of entries keyed by adapter, driver, backprop
//! version, kernel-source hash and shape. An entry stores the winner, every timing and a
//! checksum of the candidates' names, and goes stale by itself when the list changes. The file
//! is written atomically; an unreadable one is ignored (and rewritten), never an error.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{fnv1a, Measurement};
use crate::error::Result;

/// The environment variable that moves the cache (default: `$XDG_CACHE_HOME/backprop`, else
/// `~/.cache/backprop`).
pub const CACHE_DIR_VAR: &str = "BACKPROP_CACHE_DIR";

/// What tuning decided for one key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub winner: String,
    /// FNV-1a of the candidates' names, in order: a changed list makes the entry stale.
    pub candidates_checksum: u64,
    pub measurements: Vec<Measurement>,
}

/// The checksum of a candidate list.
pub fn checksum(names: &[String]) -> u64 {
    fnv1a(names.join("\n").as_bytes())
}

#[derive(Default, Serialize, Deserialize)]
struct File {
    entries: BTreeMap<String, Entry>,
}

/// The cache in memory, and where it lives (none: kept in memory only).
pub struct TuneCache {
    path: Option<PathBuf>,
    file: File,
}

/// The cache directory: `BACKPROP_CACHE_DIR`, else `$XDG_CACHE_HOME/backprop`, else
/// `$HOME/.cache/backprop`.
pub fn default_dir() -> Option<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    var(CACHE_DIR_VAR).map(PathBuf::from).or_else(|| {
        var("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| var("HOME").map(|h| Path::new(&h).join(".cache")))
            .map(|d| d.join("backprop"))
    })
}

impl TuneCache {
    /// The cache at `path` (a missing or unreadable file is an empty cache).
    pub fn open(path: Option<PathBuf>) -> Self {
        let file = path
            .as_deref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        TuneCache { path, file }
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The winner stored for `key`, if its candidate list is still `names`.
    pub fn get(&self, key: &str, names: &[String]) -> Option<&Entry> {
        self.file
            .entries
            .get(key)
            .filter(|e| e.candidates_checksum == checksum(names) && names.contains(&e.winner))
    }

    /// Stores an entry and writes the file (creating its directory).
    pub fn insert(&mut self, key: String, entry: Entry) -> Result<()> {
        self.file.entries.insert(key, entry);
        let Some(path) = &self.path else {
            return Ok(());
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| crate::Error::io(dir, e))?;
        }
        let text = serde_json::to_string_pretty(&self.file).map_err(|e| crate::Error::File {
            path: path.clone(),
            message: e.to_string(),
        })?;
        crate::io::write_atomic(path, |w| {
            std::io::Write::write_all(w, text.as_bytes()).map_err(|e| crate::Error::io(path, e))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(winner: &str, names: &[String]) -> Entry {
        Entry {
            winner: winner.into(),
            candidates_checksum: checksum(names),
            measurements: Vec::new(),
        }
    }

    #[test]
    fn entries_survive_a_reopen_and_go_stale_when_the_candidates_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("tune.json");
        let names = vec!["a".to_string(), "b".to_string()];
        let mut cache = TuneCache::open(Some(path.clone()));
        cache.insert("k".into(), entry("b", &names)).unwrap();
        let reopened = TuneCache::open(Some(path.clone()));
        assert_eq!(reopened.get("k", &names).unwrap().winner, "b");
        assert!(reopened.get("k", &names[..1]).is_none(), "stale");
        assert!(reopened.get("other", &names).is_none());
        std::fs::write(&path, "{ not json").unwrap();
        assert!(TuneCache::open(Some(path)).get("k", &names).is_none());
    }
}
