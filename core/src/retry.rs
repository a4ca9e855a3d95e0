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

/// The one retry decision for a run's failed attempt, whether its worker reported the
/// failure or the scheduler rescued it from a lost worker: the same attempts, the same
/// backoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub base: Duration,
    pub max: Duration,
}

impl RetryPolicy {
    pub fn from_config(config: &crate::config::Config) -> Self {
        RetryPolicy {
            base: config.retry_backoff_base,
            max: config.retry_backoff_max,
        }
    }

    /// After the failure of `attempt` (1-based) of `max_attempts`: the delay before the
    /// next attempt, or None when none is left. `jitter` in `0.0..1.0` (see [`backoff`]).
    pub fn next_attempt_after(
        &self,
        attempt: i32,
        max_attempts: i32,
        jitter: f64,
    ) -> Option<Duration> {
        (attempt < max_attempts).then(|| backoff(attempt, self.base, self.max, jitter))
    }

    /// [`RetryPolicy::next_attempt_after`] with random jitter.
    pub fn next_attempt_after_jittered(&self, attempt: i32, max_attempts: i32) -> Option<Duration> {
        use rand::Rng;
        let jitter = rand::thread_rng().gen_range(0.0..=1.0);
        self.next_attempt_after(attempt, max_attempts, jitter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_attempt_is_retried_after_the_backoff_while_attempts_are_left() {
        let policy = RetryPolicy {
            base: Duration::from_secs(2),
            max: Duration::from_secs(60),
        };
        assert_eq!(
            policy.next_attempt_after(1, 3, 0.0),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            policy.next_attempt_after(2, 3, 1.0),
            Some(Duration::from_secs(4))
        );
        assert_eq!(policy.next_attempt_after(3, 3, 0.5), None);
        let jittered = policy.next_attempt_after_jittered(1, 2).unwrap();
        assert!(jittered >= Duration::from_secs(1) && jittered <= Duration::from_secs(2));
    }

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
