//! The circuit breaker in front of a plugin that keeps failing.

use std::time::{Duration, Instant};

/// Consecutive failures that open the circuit: the plugin is not called while it is open.
const BREAKER_FAILURES: u32 = 5;
const BREAKER_FIRST_WAIT: Duration = Duration::from_secs(1);
const BREAKER_LONGEST_WAIT: Duration = Duration::from_secs(60);

/// Stops calling a plugin that keeps failing, and tries it again after a backoff that doubles
/// while the retries keep failing.
#[derive(Default)]
pub struct Breaker {
    consecutive: u32,
    open_until: Option<Instant>,
    wait: Duration,
}

impl Breaker {
    /// Whether the plugin may be called now (a closed circuit, or an open one whose wait is over).
    pub fn allows(&self) -> bool {
        self.open_until.is_none_or(|until| Instant::now() >= until)
    }

    pub fn succeeded(&mut self) {
        *self = Breaker::default();
    }

    /// Returns true when this failure opens (or re-opens) the circuit.
    pub fn failed(&mut self) -> bool {
        self.consecutive += 1;
        if self.consecutive < BREAKER_FAILURES {
            return false;
        }
        self.wait = if self.open_until.is_some() {
            (self.wait * 2).min(BREAKER_LONGEST_WAIT)
        } else {
            BREAKER_FIRST_WAIT
        };
        self.open_until = Some(Instant::now() + self.wait);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Five failures in a row open the circuit; a success closes it; repeated opening doubles
    // the wait up to a minute.
    #[test]
    fn breaker_opens_backs_off_and_closes() {
        let mut breaker = Breaker::default();
        for _ in 0..BREAKER_FAILURES - 1 {
            assert!(!breaker.failed());
        }
        assert!(breaker.allows());
        assert!(breaker.failed());
        assert!(!breaker.allows());
        assert_eq!(breaker.wait, BREAKER_FIRST_WAIT);
        assert!(breaker.failed());
        assert_eq!(breaker.wait, BREAKER_FIRST_WAIT * 2);
        breaker.succeeded();
        assert!(breaker.allows());
        assert_eq!(breaker.consecutive, 0);
    }
}
