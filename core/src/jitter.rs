//! Jitter: a job's fixed start offset within `0..=jitter_seconds`, so that many jobs
//! on the same tick (a thousand `0 * * * *` jobs) do not start in the same millisecond.
//!
//! The offset depends only on the job id and the bound, never on the process: FNV-1a
//! (64-bit, the published offset basis and prime) over the 16 bytes of the UUID, then
//! the SplitMix64 finalizer to spread every input bit, scaled (not reduced modulo) onto
//! `0..=bound` in milliseconds. So the same job gets the same offset after any restart or
//! release, and raising the bound keeps each job's relative place in it. Rust's
//! `DefaultHasher` is not used: its output may change between releases.

use chrono::Duration;

/// The largest `jitter_seconds` a job may have (one hour).
pub const MAX_JITTER_SECONDS: u32 = 3600;

/// The start offset of job `job_id` for a bound of `jitter_seconds` (clamped to
/// [`MAX_JITTER_SECONDS`]): between zero and the bound inclusive, in whole milliseconds.
pub fn offset(job_id: uuid::Uuid, jitter_seconds: u32) -> Duration {
    let bound_ms = u64::from(jitter_seconds.min(MAX_JITTER_SECONDS)) * 1000;
    let scaled = (u128::from(hash(job_id.as_bytes())) * u128::from(bound_ms + 1)) >> 64;
    Duration::milliseconds(scaled as i64)
}

/// FNV-1a 64 of `bytes`, finalized by SplitMix64's mixer.
fn hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn offsets_stay_within_the_bound() {
        for bound in [0, 1, 7, 60, 3600] {
            for _ in 0..2_000 {
                let o = offset(Uuid::new_v4(), bound);
                assert!(o >= Duration::zero(), "{o}");
                assert!(o <= Duration::seconds(i64::from(bound)), "{o} > {bound}s");
            }
        }
        let id = Uuid::new_v4();
        assert_eq!(offset(id, 0), Duration::zero());
        assert_eq!(offset(id, 100_000), offset(id, MAX_JITTER_SECONDS));
    }

    /// Pinned values (computed independently, in Python, from the description in the
    /// module doc): a change of the function, and so of every job's offset after an
    /// upgrade, fails here.
    #[test]
    fn offsets_are_stable() {
        let cases = [
            ("00000000-0000-0000-0000-000000000000", 3600, 1_468_934),
            ("6f1c2a4e-8b0d-4c3e-9f7a-1d2e3f405162", 3600, 3_186_074),
            ("6f1c2a4e-8b0d-4c3e-9f7a-1d2e3f405162", 60, 53_102),
            ("ffffffff-ffff-ffff-ffff-ffffffffffff", 10, 7_446),
        ];
        for (id, bound, ms) in cases {
            let id: Uuid = id.parse().unwrap();
            assert_eq!(offset(id, bound).num_milliseconds(), ms, "{id} {bound}");
            assert_eq!(offset(id, bound), offset(id, bound));
        }
    }

    #[test]
    fn a_thousand_jobs_spread_over_the_bound() {
        let mut buckets = [0_u32; 60];
        for _ in 0..60_000 {
            let o = offset(Uuid::new_v4(), 60).num_milliseconds();
            buckets[(o / 1000).min(59) as usize] += 1;
        }
        // 1000 expected per second of the minute; a uniform spread stays well inside.
        for (second, n) in buckets.iter().enumerate() {
            assert!((800..1200).contains(n), "second {second}: {n}");
        }
    }

    #[test]
    fn sequential_ids_spread_too() {
        let offsets: std::collections::BTreeSet<i64> = (0..1000_u128)
            .map(|n| offset(Uuid::from_u128(n), 3600).num_milliseconds())
            .collect();
        assert!(offsets.len() > 990, "{}", offsets.len());
    }
}
