//! Backoff between attempts of a run: exponential with jitter, capped.

use std::time::Duration;

/// The delay before the attempt after `attempt` (1-based): `base * 2^(attempt-1)`,
/// capped at `max`, of which the upper half is jitter (`jitter` in `0.0..1.0` picks
/// where), so that runs failing together do not retry in lockstep while the delay
/// still at least doubles every attempt until the cap.
pub fn backoff(attempt: i32, base: Duration, max: Duration, jitter: f64) -> Duration {
    debug_assert!((0.0..=1.0).contains(&jitter));
    let exponent = attempt.clamp(1, 32) as u32 - 1;
    let ceiling = base.saturating_mul(2u32.saturating_pow(exponent)).min(max);
    let half = ceiling / 2;
    half + half.mul_f64(jitter.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_until_the_cap_with_bounded_jitter() {
        let (base, max) = (Duration::from_secs(1), Duration::from_secs(60));
        assert_eq!(backoff(1, base, max, 0.0), Duration::from_millis(500));
        assert_eq!(backoff(1, base, max, 1.0), Duration::from_secs(1));
        assert_eq!(backoff(3, base, max, 0.0), Duration::from_secs(2));
        assert_eq!(backoff(3, base, max, 1.0), Duration::from_secs(4));
        assert_eq!(backoff(30, base, max, 1.0), max);
        assert_eq!(backoff(100, base, max, 0.0), max / 2);
        for attempt in 1..10 {
            assert!(backoff(attempt + 1, base, max, 0.0) >= backoff(attempt, base, max, 0.0));
        }
    }
}
