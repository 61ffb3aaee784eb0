//! How many spans one span stands for: a span sampled with an OpenTelemetry threshold (`th` in
//! the `ot` entry of its W3C trace state) counts as 2^56 / (2^56 - threshold), rounded up at
//! random by the fraction, as the collector counts it. Without a threshold a span counts once.

/// 2^56: thresholds are 56-bit numbers.
const MAX_ADJUSTED_COUNT: u64 = 1 << 56;
/// Hex digits in a full threshold.
const THRESHOLD_DIGITS: usize = 14;

/// The span's count and whether it was adjusted (`sampling.method` extrapolated vs counted).
pub fn adjusted_count(trace_state: &str) -> (u64, bool) {
    let Some(threshold) = threshold(trace_state) else {
        return (1, false);
    };
    let denominator = MAX_ADJUSTED_COUNT - threshold;
    if denominator == 0 {
        return (1, false);
    }
    (stochastic_div(MAX_ADJUSTED_COUNT, denominator), true)
}

/// The `th` value of the `ot` entry, when the trace state has a valid one.
fn threshold(trace_state: &str) -> Option<u64> {
    if !trace_state.contains("ot=") {
        return None;
    }
    let ot = trace_state
        .split(',')
        .map(str::trim)
        .find_map(|member| member.strip_prefix("ot="))?;
    let th = ot.split(';').find_map(|field| field.strip_prefix("th:"))?;
    if th.is_empty() || th.len() > THRESHOLD_DIGITS || !th.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let padded = format!("{th:0<THRESHOLD_DIGITS$}");
    u64::from_str_radix(&padded, 16).ok()
}

/// `numerator / denominator`, plus one with probability remainder / denominator.
fn stochastic_div(numerator: u64, denominator: u64) -> u64 {
    let quotient = numerator / denominator;
    let remainder = numerator % denominator;
    if remainder == 0 {
        return quotient;
    }
    let random = random_u64();
    if random % denominator < remainder {
        quotient + 1
    } else {
        quotient
    }
}

/// A cheap random number: the standard library's randomly seeded hasher over a counter.
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    RandomState::new().hash_one(COUNTER.fetch_add(1, Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::adjusted_count;

    #[test]
    fn thresholds_scale_the_count() {
        assert_eq!(adjusted_count(""), (1, false));
        assert_eq!(adjusted_count("vendor=x"), (1, false));
        assert_eq!(adjusted_count("ot=th:8"), (2, true));
        assert_eq!(adjusted_count("a=b,ot=rv:abcdef01234567;th:c"), (4, true));
        assert_eq!(adjusted_count("ot=th:0"), (1, true));
        assert_eq!(adjusted_count("ot=th:zz"), (1, false));
        let (third, adjusted) = adjusted_count("ot=th:aaaaaaaaaaaaab");
        assert!(adjusted && (third == 3 || third == 4), "{third}");
    }
}
