//! The memory planner. Every size a user gives is multiplied with overflow checks, the bytes a
//! run will hold are added up item by item, and the total is compared with what is available
//! before anything is allocated: a refusal names both numbers, instead of an abort or the
//! kernel's OOM killer.
//!
//! Host memory available is the smallest of `/proc/meminfo`'s MemAvailable, the cgroup's
//! limit minus its usage (a container's real ceiling), and `BACKPROP_MEMORY_LIMIT` minus what
//! the process already holds, when set. It is read again at each stage (file, decoded array,
//! table, encoding, network), so each stage is compared with what the earlier ones left.
//! Where none of them can be read (not Linux), only the overflow checks apply.

use crate::error::{Error, Result};

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const TIB: u64 = 1 << 40;

/// The environment variable that caps the host memory a run may plan for.
pub const MEMORY_LIMIT_VAR: &str = "BACKPROP_MEMORY_LIMIT";

/// Bytes as people read them: `512 B`, `1.5 MiB`, `205.3 GiB`.
pub fn human(bytes: u64) -> String {
    let b = bytes as f64;
    match bytes {
        _ if bytes < KIB => format!("{bytes} B"),
        _ if bytes < MIB => format!("{:.1} KiB", b / KIB as f64),
        _ if bytes < GIB => format!("{:.1} MiB", b / MIB as f64),
        _ if bytes < TIB => format!("{:.1} GiB", b / GIB as f64),
        _ => format!("{:.1} TiB", b / TIB as f64),
    }
}

/// Parses a byte count: `1048576`, `512K`, `64MiB`, `16G`, `1.5GB` (K, M, G, T are powers of
/// 1024, with or without `iB`/`B`).
pub fn parse_bytes(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let scale = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => KIB,
        "m" | "mb" | "mib" => MIB,
        "g" | "gb" | "gib" => GIB,
        "t" | "tb" | "tib" => TIB,
        _ => return None,
    };
    if number.is_empty() {
        return None;
    }
    if number.contains('.') {
        let value: f64 = number.parse().ok()?;
        let bytes = value * scale as f64;
        (bytes.is_finite() && bytes >= 0.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
    } else {
        number.parse::<u64>().ok()?.checked_mul(scale)
    }
}

/// Reads a byte-count environment variable: unset is `None`; a value that does not parse is an
/// error naming the variable (a typo must not silently fall back to a default).
pub fn env_bytes(var: &str) -> Result<Option<u64>> {
    match std::env::var(var) {
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(v)) => Err(Error::argument(
            var,
            format!("{v:?} is not a byte count (e.g. 4096, 512MiB, 16GiB)"),
        )),
        Ok(v) => parse_bytes(&v).map(Some).ok_or_else(|| {
            Error::argument(
                var,
                format!("`{v}` is not a byte count (e.g. 4096, 512MiB, 16GiB)"),
            )
        }),
    }
}

/// The product of `dims` as a count of elements, or an error naming `what` when it overflows.
pub fn elements(what: &str, dims: &[usize]) -> Result<u64> {
    dims.iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
        .ok_or_else(|| {
            Error::Memory(format!(
                "{what} would hold {} elements, more than any machine can address",
                dims.iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join(" x ")
            ))
        })
}

/// How much memory there is, and who said so.
#[derive(Clone, Debug, PartialEq)]
pub struct Available {
    pub bytes: u64,
    pub source: String,
}

/// The memory this process may still allocate on the host: see the module documentation.
/// `None` when no source can be read. An invalid `BACKPROP_MEMORY_LIMIT` is an error.
pub fn host_available() -> Result<Option<Available>> {
    let mut best: Option<Available> = None;
    let mut consider = |bytes: Option<u64>, source: &str| {
        if let Some(bytes) = bytes {
            if best.as_ref().is_none_or(|b| bytes < b.bytes) {
                best = Some(Available {
                    bytes,
                    source: source.into(),
                });
            }
        }
    };
    consider(mem_available(), "MemAvailable in /proc/meminfo");
    consider(cgroup_headroom(), "the cgroup's memory limit");
    // The limit covers the whole process: what it already holds counts against it.
    consider(
        env_bytes(MEMORY_LIMIT_VAR)?.map(|limit| limit.saturating_sub(resident_bytes())),
        MEMORY_LIMIT_VAR,
    );
    Ok(best)
}

/// The memory this process holds now, 0 where it cannot be read: its anonymous and shared
/// pages (`RssAnon` + `RssShmem`), not the pages of files it maps, which are the page cache's
/// to reclaim (a mapped 10 GB array read once is not 10 GB held). `VmRSS` on kernels
/// without the split.
fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
    };
    let kib = match (field("RssAnon:"), field("RssShmem:")) {
        (Some(anon), shared) => anon + shared.unwrap_or(0),
        (None, _) => field("VmRSS:").unwrap_or(0),
    };
    kib.saturating_mul(KIB)
}

fn mem_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(KIB)
}

/// The cgroup's limit minus its current usage (v2, then v1); `None` without a limit.
fn cgroup_headroom() -> Option<u64> {
    let read =
        |path: &str| -> Option<u64> { std::fs::read_to_string(path).ok()?.trim().parse().ok() };
    // The usage counts the page cache, which the kernel reclaims before it runs out (a mapped
    // array read once fills it): the file pages on the LRU lists are not held (tmpfs and
    // shared memory pages, which cannot be reclaimed, are not on them).
    let file_pages = |path: &str| -> u64 {
        let stat = std::fs::read_to_string(path).unwrap_or_default();
        ["active_file ", "inactive_file "]
            .iter()
            .filter_map(|field| {
                stat.lines()
                    .find_map(|l| l.strip_prefix(field)?.trim().parse::<u64>().ok())
            })
            .sum()
    };
    let groups = [
        (
            "/sys/fs/cgroup/memory.max",
            "/sys/fs/cgroup/memory.current",
            "/sys/fs/cgroup/memory.stat",
        ),
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/memory/memory.usage_in_bytes",
            "/sys/fs/cgroup/memory/memory.stat",
        ),
    ];
    groups.iter().find_map(|(limit, usage, stat)| {
        // "max" (v2) does not parse: no limit. v1 reports "no limit" as a huge number.
        let limit = read(limit).filter(|&l| l < (1 << 60))?;
        let held = read(usage).unwrap_or(0).saturating_sub(file_pages(stat));
        Some(limit.saturating_sub(held))
    })
}

/// What a run will allocate, item by item, in bytes.
#[derive(Clone, Debug, Default)]
pub struct MemoryPlan {
    items: Vec<(String, u64)>,
    /// What a refusal says to make smaller (`smaller sizes` unless told).
    remedy: Option<String>,
}

impl MemoryPlan {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an array of `dims` elements of `bytes_each` bytes, named `what`.
    pub fn add(&mut self, what: impl Into<String>, dims: &[usize], bytes_each: u64) -> Result<()> {
        let what = what.into();
        let bytes = elements(&what, dims)?
            .checked_mul(bytes_each)
            .ok_or_else(|| Error::Memory(format!("{what} would need more than 2^64 bytes")))?;
        self.items.push((what, bytes));
        Ok(())
    }

    /// Has a refusal name what to make smaller, by the flags that set the sizes (`a smaller
    /// --hidden`), instead of `smaller sizes`.
    pub fn remedy(mut self, remedy: impl Into<String>) -> Self {
        self.remedy = Some(remedy.into());
        self
    }

    /// Adds `bytes` for `what`.
    pub fn add_bytes(&mut self, what: impl Into<String>, bytes: u64) {
        self.items.push((what.into(), bytes));
    }

    /// Every item of `other`, prefixed.
    pub fn extend(&mut self, other: &MemoryPlan) {
        self.items.extend(other.items.iter().cloned());
    }

    pub fn total(&self) -> u64 {
        self.items
            .iter()
            .fold(0u64, |acc, (_, b)| acc.saturating_add(*b))
    }

    /// Refuses when the total exceeds `available`, naming both numbers and the largest items.
    /// `memory` says which (`host memory`, `GPU memory on NVIDIA H100`).
    pub fn check(&self, memory: &str, available: Option<&Available>) -> Result<()> {
        let Some(available) = available else {
            return Ok(());
        };
        let total = self.total();
        if total <= available.bytes {
            return Ok(());
        }
        let mut items = self.items.clone();
        items.sort_by_key(|item| std::cmp::Reverse(item.1));
        let largest: Vec<String> = items
            .iter()
            .take(3)
            .map(|(what, bytes)| format!("{what} {}", human(*bytes)))
            .collect();
        Err(Error::Memory(format!(
            "this run needs {} of {memory} ({}), but {} are available ({}); use {}, or set {MEMORY_LIMIT_VAR} if the estimate is wrong",
            human(total),
            largest.join(", "),
            human(available.bytes),
            available.source,
            self.remedy.as_deref().unwrap_or("smaller sizes")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_parse_with_binary_units() {
        assert_eq!(parse_bytes("4096"), Some(4096));
        assert_eq!(parse_bytes("512K"), Some(512 * 1024));
        assert_eq!(parse_bytes("64MiB"), Some(64 << 20));
        assert_eq!(parse_bytes("16GB"), Some(16 << 30));
        assert_eq!(parse_bytes("1.5g"), Some(3 << 29));
        assert_eq!(parse_bytes("2 TiB"), Some(2 << 40));
        assert_eq!(parse_bytes("12b"), Some(12));
        for bad in [
            "",
            "abc",
            "-1",
            "1.2.3",
            "5x",
            "ib",
            "5ib",
            "99999999999999999999",
            "1e400",
        ] {
            assert_eq!(parse_bytes(bad), None, "{bad}");
        }
        assert_eq!(parse_bytes("20000000000T"), None);
    }

    #[test]
    fn element_counts_overflow_into_an_error() {
        assert_eq!(elements("w", &[3, 4]).unwrap(), 12);
        let err = elements("weights", &[usize::MAX, 3])
            .unwrap_err()
            .to_string();
        assert!(err.contains("weights") && err.contains("x 3"), "{err}");
    }

    #[test]
    fn a_plan_over_budget_names_both_numbers_and_the_largest_item() {
        let mut plan = MemoryPlan::new();
        plan.add("one-hot features", &[1000, 1 << 20], 8).unwrap();
        plan.add_bytes("weights", 100);
        let available = Available {
            bytes: 1 << 30,
            source: "test".into(),
        };
        let err = plan
            .check("host memory", Some(&available))
            .unwrap_err()
            .to_string();
        assert!(err.contains("7.8 GiB of host memory"), "{err}");
        assert!(err.contains("one-hot features 7.8 GiB"), "{err}");
        assert!(err.contains("1.0 GiB are available (test)"), "{err}");
        assert!(err.contains("use smaller sizes, or set"), "{err}");
        assert!(plan.check("host memory", None).is_ok());
        let err = plan
            .clone()
            .remedy("a smaller --hidden")
            .check("host memory", Some(&available))
            .unwrap_err()
            .to_string();
        assert!(err.contains("use a smaller --hidden, or set"), "{err}");
        let err = plan.add("x", &[usize::MAX, usize::MAX], 1).unwrap_err();
        assert!(err.to_string().contains("x would hold"), "{err}");
    }
}
