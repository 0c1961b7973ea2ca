//! Autotuning, in the manner of CubeCL's tuner: a set of named candidates, a key, a measurement
//! per candidate (which must include a check against a reference: an unverified candidate never
//! wins), and a cache on disk that remembers the winner with every timing. It knows nothing of
//! GPUs or matrix products: the caller brings the candidates and the measuring closure.

pub mod cache;

pub use cache::{Entry, TuneCache};

/// A cache key made of parts, and sizes rounded up to powers of two so that near shapes
/// share an entry.
pub fn key(parts: &[&str], sizes: &[usize]) -> String {
    let sizes: Vec<String> = sizes
        .iter()
        .map(|&s| s.max(1).next_power_of_two().to_string())
        .collect();
    format!("{}|{}", parts.join("|"), sizes.join("x"))
}

/// A stable 64-bit FNV-1a hash (std's hasher may change between Rust releases, and a cache key
/// must not).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// What measuring one candidate found.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Measurement {
    pub candidate: String,
    /// The median time of its timed runs, in milliseconds.
    pub median_ms: Option<f64>,
    /// Why it may not win (it failed to run, or disagreed with the reference).
    pub rejected: Option<String>,
}

/// Measures every candidate with `measure` (which returns its median time after checking it
/// against the reference, or why it cannot be used) and picks the fastest accepted one.
pub fn tune<C>(
    candidates: &[C],
    name: impl Fn(&C) -> String,
    mut measure: impl FnMut(&C) -> Result<f64, String>,
) -> Option<(usize, Vec<Measurement>)> {
    let measurements: Vec<Measurement> = candidates
        .iter()
        .map(|c| {
            let (median_ms, rejected) = match measure(c) {
                Ok(ms) => (Some(ms), None),
                Err(why) => (None, Some(why)),
            };
            Measurement {
                candidate: name(c),
                median_ms,
                rejected,
            }
        })
        .collect();
    let winner = measurements
        .iter()
        .enumerate()
        .filter_map(|(i, m)| m.median_ms.map(|ms| (i, ms)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(i, _)| i)?;
    Some((winner, measurements))
}

/// The median of `samples` (sorted in place).
pub fn median(samples: &mut [f64]) -> Option<f64> {
    samples.sort_by(f64::total_cmp);
    samples.get(samples.len() / 2).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fastest_accepted_candidate_wins() {
        let candidates = [3.0, 1.0, 2.0, 0.5];
        let (winner, all) = tune(
            &candidates,
            |c| format!("c{c}"),
            |&c| {
                if c < 1.0 {
                    Err("disagrees with the reference".into())
                } else {
                    Ok(c)
                }
            },
        )
        .unwrap();
        assert_eq!(all[winner].candidate, "c1");
        assert_eq!(
            all[3].rejected.as_deref(),
            Some("disagrees with the reference")
        );
        assert!(tune(&[1.0], |_| "x".into(), |_| Err::<f64, _>("no".into())).is_none());
    }

    #[test]
    fn keys_round_sizes_up_to_powers_of_two() {
        assert_eq!(
            key(&["gpu", "forward"], &[1000, 784, 10]),
            "gpu|forward|1024x1024x16"
        );
        assert_eq!(key(&["a"], &[0, 1, 64]), "a|1x1x64");
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_ne!(fnv1a(b"a"), fnv1a(b"b"));
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
    }
}
