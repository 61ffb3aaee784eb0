//! Limits on what one listener takes: open connections, and requests per second (a token
//! bucket shared by every connection). Past them, connections are closed and requests refused
//! with a retryable status, so one noisy client cannot take the gateway from the others.

use serde::Deserialize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// `limits:` of a receiver protocol (trailhead's own; the collector has no such key).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectionLimits {
    /// Connections open at once; more are closed as soon as they are accepted.
    pub max_connections: Option<usize>,
    /// Requests per second, averaged; `burst` may come at once (default: one second's worth).
    pub requests_per_second: Option<f64>,
    /// Requests that may come at once above the average rate.
    pub burst: Option<u32>,
}

impl ConnectionLimits {
    pub fn validate(&self) -> Result<(), String> {
        if self.max_connections == Some(0) {
            return Err("limits.max_connections must be at least 1".into());
        }
        if let Some(rate) = self.requests_per_second
            && !(rate.is_finite() && rate > 0.0)
        {
            return Err("limits.requests_per_second must be a positive number".into());
        }
        if self.burst == Some(0) {
            return Err("limits.burst must be at least 1".into());
        }
        Ok(())
    }

    pub fn rate_limiter(&self) -> Option<RateLimiter> {
        let rate = self.requests_per_second?;
        let burst = self.burst.map_or(rate.ceil().max(1.0), f64::from);
        Some(RateLimiter {
            rate,
            burst,
            bucket: Mutex::new((burst, Instant::now())),
        })
    }
}

/// A token bucket.
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    /// Tokens left, as of when.
    bucket: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    /// Takes a token, or says how long until one is there.
    pub fn try_acquire(&self) -> Result<(), Duration> {
        self.try_acquire_at(Instant::now())
    }

    fn try_acquire_at(&self, now: Instant) -> Result<(), Duration> {
        let mut bucket = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
        let (tokens, since) = *bucket;
        let tokens = (tokens + now.saturating_duration_since(since).as_secs_f64() * self.rate)
            .min(self.burst);
        if tokens >= 1.0 {
            *bucket = (tokens - 1.0, now);
            Ok(())
        } else {
            *bucket = (tokens, now);
            Err(Duration::from_secs_f64((1.0 - tokens) / self.rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_the_burst_then_the_rate() {
        let limits = ConnectionLimits {
            requests_per_second: Some(10.0),
            burst: Some(3),
            ..ConnectionLimits::default()
        };
        let limiter = limits.rate_limiter().unwrap();
        let start = Instant::now();
        for _ in 0..3 {
            assert!(limiter.try_acquire_at(start).is_ok());
        }
        let wait = limiter.try_acquire_at(start).unwrap_err();
        assert!((wait.as_secs_f64() - 0.1).abs() < 1e-6, "{wait:?}");
        assert!(
            limiter
                .try_acquire_at(start + Duration::from_millis(100))
                .is_ok()
        );
        assert!(
            limiter
                .try_acquire_at(start + Duration::from_millis(100))
                .is_err()
        );
        // Idle time refills only up to the burst.
        for _ in 0..3 {
            assert!(
                limiter
                    .try_acquire_at(start + Duration::from_secs(60))
                    .is_ok()
            );
        }
        assert!(
            limiter
                .try_acquire_at(start + Duration::from_secs(60))
                .is_err()
        );
    }

    #[test]
    fn zero_and_negative_limits_are_refused() {
        let bad = |yaml: &str| {
            crate::config::tree::from_str::<ConnectionLimits>(yaml)
                .unwrap()
                .validate()
        };
        assert!(bad("max_connections: 0").is_err());
        assert!(bad("requests_per_second: -1").is_err());
        assert!(bad("burst: 0").is_err());
        assert!(bad("{max_connections: 5, requests_per_second: 0.5}").is_ok());
    }
}
