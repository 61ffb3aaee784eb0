//! How long a receiver keeps a connection: the collector's gRPC `keepalive:` keys with
//! grpc-go's meanings, and the HTTP receivers' `idle_timeout` with an age bound of trailhead's.
//!
//! The idea to understand first: a long-lived connection pins a sender to one replica, so
//! replicas an autoscaler adds get nothing from senders already connected. Bounding a
//! connection's age (jittered, so a fleet does not reconnect at once) and idle time makes
//! senders reconnect through the Service now and then, which spreads them over the replicas.
//! Every bound closes gracefully: HTTP/2 gets a GOAWAY and finishes what is in flight,
//! HTTP/1.1 gets `Connection: close` on its next response, so no request is lost.

use super::pings::PingPolicy;
use crate::config::values::parse_duration;
use axum::response::Response;
use http_body_util::BodyExt;
use serde::{Deserialize, Deserializer};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

/// grpc-go's default for `time`: a server ping after two hours without reads.
pub const DEFAULT_PING_TIME: Duration = Duration::from_secs(2 * 60 * 60);
/// grpc-go's default for `timeout`: a ping unanswered this long closes the connection.
pub const DEFAULT_PING_TIMEOUT: Duration = Duration::from_secs(20);
/// grpc-go's shortest server ping interval; a shorter positive `time` is raised to it.
const MIN_PING_TIME: Duration = Duration::from_secs(1);
/// The collector's `idle_timeout` for HTTP servers.
pub const DEFAULT_HTTP_IDLE: Duration = Duration::from_secs(60);
/// At or past this (grpc-go's infinity is about 292 years) a bound is no bound.
const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// A duration as Go's `time.Duration` takes it: it may be negative, and some grpc-go keys give
/// a negative value a meaning of its own. A bare integer is nanoseconds, as the collector reads
/// it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GoDuration {
    pub negative: bool,
    pub magnitude: Duration,
}

impl GoDuration {
    pub const fn from_secs(seconds: u64) -> Self {
        GoDuration {
            negative: false,
            magnitude: Duration::from_secs(seconds),
        }
    }

    fn is_zero(self) -> bool {
        self.magnitude.is_zero()
    }
}

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Value {
            Nanoseconds(i64),
            Text(String),
        }
        let text = match Value::deserialize(d)? {
            Value::Nanoseconds(n) => {
                return Ok(GoDuration {
                    negative: n < 0,
                    magnitude: Duration::from_nanos(n.unsigned_abs()),
                });
            }
            Value::Text(text) => text,
        };
        let trimmed = text.trim();
        let (negative, rest) = match trimmed.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, trimmed.strip_prefix('+').unwrap_or(trimmed)),
        };
        let magnitude = parse_duration(rest).map_err(serde::de::Error::custom)?;
        Ok(GoDuration {
            negative,
            magnitude,
        })
    }
}

/// `keepalive:` of `protocols: grpc:` (the collector's configgrpc keys). Absent, it means
/// grpc-go's defaults: no idle or age bound, a ping after 2h without reads.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GrpcKeepalive {
    /// How the server bounds and checks its connections.
    pub server_parameters: ServerParameters,
    /// What the server allows of the client's pings.
    pub enforcement_policy: EnforcementPolicy,
}

/// `keepalive: server_parameters:` — grpc-go's `keepalive.ServerParameters`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerParameters {
    /// A connection with no RPC in flight for this long gets a GOAWAY and closes. `0` or
    /// absent: never. Negative: as soon as it has no RPC in flight (grpc-go's reading).
    pub max_connection_idle: GoDuration,
    /// A connection this old (±10% jitter, as grpc-go) gets a GOAWAY: the client opens a new
    /// one for new RPCs while those in flight finish. `0` or absent: never. Negative is
    /// refused (grpc-go would panic on it).
    #[serde(deserialize_with = "non_negative")]
    pub max_connection_age: GoDuration,
    /// After the age's GOAWAY, how long RPCs in flight may take before the connection is
    /// closed under them. `0` or absent: as long as they need. Negative: closed at once.
    pub max_connection_age_grace: GoDuration,
    /// After this long without reading anything, the server pings the client. `0` or absent:
    /// 2h; a positive value under 1s is raised to 1s (grpc-go). Negative is refused.
    #[serde(deserialize_with = "non_negative")]
    pub time: GoDuration,
    /// A server ping unanswered this long closes the connection. `0` or absent: 20s. Negative
    /// is refused.
    #[serde(deserialize_with = "non_negative")]
    pub timeout: GoDuration,
}

/// `keepalive: enforcement_policy:` — grpc-go's `keepalive.EnforcementPolicy`, enforced as
/// grpc-go does (absent: its defaults): a client ping too soon is a strike, a response sent
/// clears them, and the third strike gets GOAWAY ENHANCE_YOUR_CALM "too_many_pings" and the
/// connection closed ([`super::pings`]).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EnforcementPolicy {
    /// The shortest interval allowed between client pings while RPCs are in flight. `0` or
    /// absent: 5m. Negative: no minimum.
    pub min_time: GoDuration,
    /// Allow client pings with no RPC in flight; otherwise such a ping within 2h of the last
    /// is a strike.
    pub permit_without_stream: bool,
}

/// What the server loop applies to each connection, resolved from a receiver's keys. The
/// default bounds nothing and keeps HTTP/1.1 connections alive.
#[derive(Debug, Clone, PartialEq)]
pub struct Lifetime {
    /// Close once no request has been in flight for this long (`Some(ZERO)`: at once).
    pub max_idle: Option<Duration>,
    /// Send GOAWAY (HTTP/2) or `Connection: close` (HTTP/1.1) past this age, jittered ±10%.
    pub max_age: Option<Duration>,
    /// After the age's GOAWAY, close with requests still in flight after this long.
    pub age_grace: Option<Duration>,
    /// HTTP/2 server pings after this long without reads, and how long an answer may take.
    pub ping: Option<(Duration, Duration)>,
    /// `false` answers every HTTP/1.1 request with `Connection: close`.
    pub http1_keep_alive: bool,
    /// grpc-go's limits on client pings, for gRPC receivers.
    pub pings: Option<PingPolicy>,
}

/// `#[serde(deserialize_with)]` for the keys grpc-go cannot run with a negative value of
/// (it panics on a negative age, and spins or fails each connection on a negative ping time or
/// timeout): refused with the key named.
fn non_negative<'de, D: Deserializer<'de>>(d: D) -> Result<GoDuration, D::Error> {
    let value = GoDuration::deserialize(d)?;
    if value.negative && !value.is_zero() {
        return Err(serde::de::Error::custom(format!(
            "negative duration -{:?}: must be zero (the default) or more",
            value.magnitude
        )));
    }
    Ok(value)
}

impl Default for Lifetime {
    fn default() -> Self {
        Lifetime {
            max_idle: None,
            max_age: None,
            age_grace: None,
            ping: None,
            http1_keep_alive: true,
            pings: None,
        }
    }
}

/// A bound as grpc-go reads it: zero is none, a negative one `negative` says what.
fn bound(value: GoDuration, negative: Option<Duration>) -> Option<Duration> {
    if value.negative && !value.is_zero() {
        return negative;
    }
    (!value.is_zero() && value.magnitude < FOREVER).then_some(value.magnitude)
}

impl GrpcKeepalive {
    /// The lifetime grpc-go would give each connection with these keys.
    pub fn lifetime(&self) -> Lifetime {
        let p = &self.server_parameters;
        let time = match bound(p.time, None) {
            None if p.time.is_zero() => Some(DEFAULT_PING_TIME),
            None => None,
            Some(time) => Some(time.max(MIN_PING_TIME)),
        };
        let timeout = bound(p.timeout, None).unwrap_or(DEFAULT_PING_TIMEOUT);
        Lifetime {
            max_idle: bound(p.max_connection_idle, Some(Duration::ZERO)),
            max_age: bound(p.max_connection_age, None),
            age_grace: bound(p.max_connection_age_grace, Some(Duration::ZERO)),
            ping: time.map(|time| (time, timeout)),
            http1_keep_alive: true,
            pings: Some(PingPolicy::new(&self.enforcement_policy)),
        }
    }
}

/// The lifetime of an HTTP receiver's connections: the collector's `idle_timeout` (zero or
/// negative: none, as Go's `http.Server` reads it with no `read_timeout`) and
/// `keep_alives_enabled`, and trailhead's age bound.
pub fn http_lifetime(
    idle_timeout: GoDuration,
    keep_alives_enabled: bool,
    max_connection_age: Duration,
    max_connection_age_grace: Duration,
) -> Lifetime {
    let positive = |d: Duration| (!d.is_zero() && d < FOREVER).then_some(d);
    Lifetime {
        max_idle: bound(idle_timeout, None),
        max_age: positive(max_connection_age),
        age_grace: positive(max_connection_age_grace),
        ping: None,
        http1_keep_alive: keep_alives_enabled,
        pings: None,
    }
}

/// `age` moved by up to ±10%, as grpc-go's `getJitter`, so connections opened together do not
/// all close together. `unit` in [0, 1) picks where in the range.
pub fn jittered(age: Duration, unit: f64) -> Duration {
    let tenth = age.as_secs_f64() / 10.0;
    Duration::from_secs_f64((age.as_secs_f64() + tenth * (2.0 * unit - 1.0)).max(0.0))
}

/// A number in [0, 1) that differs from connection to connection; no need for more.
pub fn random_unit() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
    );
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// The requests in flight on one connection: what its idle and age bounds need to know.
pub struct Activity {
    state: Mutex<ActivityState>,
    /// Past its age on HTTP/1.1: every response from now on says `Connection: close`.
    aged: AtomicBool,
    /// A response was sent since the last client ping (which clears its strikes).
    responded: AtomicBool,
}

struct ActivityState {
    /// Requests (HTTP/2 streams) whose response has not been sent in full.
    in_flight: usize,
    /// When `in_flight` last fell to zero (or the connection opened).
    idle_since: Instant,
    /// Whether any request came as HTTP/1.x.
    http1: bool,
}

impl Default for Activity {
    fn default() -> Self {
        Activity {
            state: Mutex::new(ActivityState {
                in_flight: 0,
                idle_since: Instant::now(),
                http1: false,
            }),
            aged: AtomicBool::new(false),
            responded: AtomicBool::new(false),
        }
    }
}

impl Activity {
    fn state(&self) -> std::sync::MutexGuard<'_, ActivityState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A request arrived; it is in flight until the [`InFlight`] (and the response body that
    /// holds it) is dropped.
    pub fn begin(self: &Arc<Self>, version: http::Version) -> InFlight {
        let http1 = version < http::Version::HTTP_2;
        let mut state = self.state();
        state.in_flight += 1;
        state.http1 |= http1;
        InFlight {
            activity: self.clone(),
            http1,
        }
    }

    /// Requests in flight now.
    pub fn in_flight(&self) -> usize {
        self.state().in_flight
    }

    /// Whether a response was sent since the last call.
    pub fn take_reset(&self) -> bool {
        self.responded.swap(false, Ordering::Relaxed)
    }

    /// Since when nothing has been in flight, or `None` while something is.
    fn idle_since(&self) -> Option<Instant> {
        let state = self.state();
        (state.in_flight == 0).then_some(state.idle_since)
    }

    /// Marks the connection past its age. True when it should get a GOAWAY now: it speaks
    /// HTTP/2, or nothing yet. An HTTP/1.1 connection is instead told `Connection: close` on
    /// its next response, so a request the client is sending meanwhile is not lost.
    fn age(&self) -> bool {
        self.aged.store(true, Ordering::Relaxed);
        !self.state().http1
    }
}

/// One request in flight; dropped when its response has been sent (or abandoned).
pub struct InFlight {
    activity: Arc<Activity>,
    http1: bool,
}

impl InFlight {
    /// The response, marked `Connection: close` on an HTTP/1.1 connection past its age, with
    /// its body holding this request in flight until it is sent.
    pub fn finish(self, mut response: Response) -> Response {
        self.activity.responded.store(true, Ordering::Relaxed);
        if self.http1 && self.activity.aged.load(Ordering::Relaxed) {
            response.headers_mut().insert(
                http::header::CONNECTION,
                http::HeaderValue::from_static("close"),
            );
        }
        response.map(|body| {
            axum::body::Body::new(body.map_frame(move |frame| {
                self.held();
                frame
            }))
        })
    }

    /// Used by the body's frame mapper, so the body owns this until it is dropped.
    fn held(&self) {}
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut state = self.activity.state();
        state.in_flight -= 1;
        if state.in_flight == 0 {
            state.idle_since = Instant::now();
        }
    }
}

/// Drives one connection to its end within `lifetime`, as grpc-go's server transport does:
/// idle past `max_idle`, or the server shutting down, starts a graceful close; past its
/// jittered age it gets a GOAWAY (HTTP/2) and, after `age_grace`, is closed under whatever is
/// still in flight. `None` when it was closed that way.
pub async fn drive<C: Future>(
    mut connection: Pin<&mut C>,
    graceful: impl Fn(Pin<&mut C>),
    activity: &Activity,
    lifetime: &Lifetime,
    shutdown: &CancellationToken,
) -> Option<C::Output> {
    let opened = Instant::now();
    let never = opened + FOREVER * 2;
    let age_at = lifetime
        .max_age
        .map_or(never, |age| opened + jittered(age, random_unit()));
    let idle = lifetime.max_idle;
    let mut idle_check = idle.map_or(never, |idle| opened + idle);
    let mut close_at = never;
    let (mut draining, mut aged) = (false, false);
    loop {
        tokio::select! {
            served = connection.as_mut() => return Some(served),
            () = shutdown.cancelled(), if !draining => {
                draining = true;
                graceful(connection.as_mut());
            }
            () = sleep_until(age_at), if !aged => {
                aged = true;
                if activity.age() {
                    if !draining {
                        draining = true;
                        graceful(connection.as_mut());
                    }
                    if let Some(grace) = lifetime.age_grace {
                        close_at = Instant::now() + grace;
                    }
                }
            }
            () = sleep_until(idle_check), if !draining && idle.is_some() => {
                let idle = idle.unwrap_or_default();
                match activity.idle_since() {
                    Some(since) if since + idle <= Instant::now() => {
                        draining = true;
                        graceful(connection.as_mut());
                    }
                    Some(since) => idle_check = since + idle,
                    // Busy: look again in `idle` (at least a millisecond, so as not to spin).
                    None => idle_check = Instant::now() + idle.max(Duration::from_millis(1)),
                }
            }
            () = sleep_until(close_at), if close_at < never => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grpc(yaml: &str) -> GrpcKeepalive {
        crate::config::tree::from_str::<GrpcKeepalive>(yaml).unwrap()
    }

    // Absent keys mean grpc-go's defaults: no idle or age bound, pings after 2h, 20s to answer.
    #[test]
    fn absent_and_zero_are_grpc_go_defaults() {
        let defaults = Lifetime {
            max_idle: None,
            max_age: None,
            age_grace: None,
            ping: Some((DEFAULT_PING_TIME, DEFAULT_PING_TIMEOUT)),
            http1_keep_alive: true,
            pings: Some(PingPolicy::new(&EnforcementPolicy::default())),
        };
        assert_eq!(grpc("{}").lifetime(), defaults);
        let zeros = "server_parameters: {max_connection_idle: 0s, max_connection_age: 0, \
                     max_connection_age_grace: 0s, time: 0s, timeout: 0s}";
        assert_eq!(grpc(zeros).lifetime(), defaults);
    }

    // Given values pass through; a sub-second ping time is raised to 1s as grpc-go does.
    #[test]
    fn values_and_the_ping_floor() {
        let k = grpc(
            "server_parameters: {max_connection_idle: 30s, max_connection_age: 2m, \
             max_connection_age_grace: 15s, time: 100ms, timeout: 5s}",
        );
        let l = k.lifetime();
        assert_eq!(l.max_idle, Some(Duration::from_secs(30)));
        assert_eq!(l.max_age, Some(Duration::from_secs(120)));
        assert_eq!(l.age_grace, Some(Duration::from_secs(15)));
        assert_eq!(
            l.ping,
            Some((Duration::from_secs(1), Duration::from_secs(5)))
        );
        // A bare integer is nanoseconds, as the collector reads it.
        let k = grpc("server_parameters: {max_connection_age: 3000000000}");
        assert_eq!(k.lifetime().max_age, Some(Duration::from_secs(3)));
    }

    // Negative idle and grace have grpc-go's meaning (at once); negative age, time and
    // timeout, which grpc-go cannot run with, are refused naming the key.
    #[test]
    fn negative_values() {
        let k =
            grpc("server_parameters: {max_connection_idle: -1s, max_connection_age_grace: -5s}");
        assert_eq!(k.lifetime().max_idle, Some(Duration::ZERO));
        assert_eq!(k.lifetime().age_grace, Some(Duration::ZERO));
        // A negative min_time is no minimum in grpc-go; it parses.
        grpc("enforcement_policy: {min_time: -1s}");
        for key in ["max_connection_age", "time", "timeout"] {
            let yaml = format!("server_parameters: {{{key}: -1m}}");
            let e = crate::config::tree::from_str::<GrpcKeepalive>(&yaml)
                .unwrap_err()
                .to_string();
            assert!(e.contains(key) && e.contains("negative"), "{e}");
        }
    }

    // Unknown keys and bad durations are errors that name the key.
    #[test]
    fn bad_keys_are_named() {
        let e = crate::config::tree::from_str::<GrpcKeepalive>("server_parameters: {max_age: 1s}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("max_age"), "{e}");
        let e = crate::config::tree::from_str::<GrpcKeepalive>(
            "server_parameters: {max_connection_age: 5parsecs}",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("max_connection_age") && e.contains("5parsecs"),
            "{e}"
        );
        let e = crate::config::tree::from_str::<GrpcKeepalive>("enforcement_policy: {min_time: x}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("min_time"), "{e}");
    }

    // The enforcement policy's keys parse, and reach the connection's lifetime.
    #[test]
    fn enforcement_policy_is_read() {
        let k = grpc("enforcement_policy: {min_time: 10s, permit_without_stream: true}");
        assert_eq!(k.enforcement_policy.min_time, GoDuration::from_secs(10));
        assert!(k.enforcement_policy.permit_without_stream);
        assert_eq!(
            k.lifetime().pings,
            Some(PingPolicy::new(&k.enforcement_policy))
        );
        let http = http_lifetime(GoDuration::default(), true, Duration::ZERO, Duration::ZERO);
        assert_eq!(http.pings, None);
    }

    // The jitter stays within ±10% of the age, and covers both sides.
    #[test]
    fn jitter_bounds() {
        let age = Duration::from_secs(120);
        assert_eq!(jittered(age, 0.0), Duration::from_secs(108));
        assert!(jittered(age, 0.999_999) <= Duration::from_secs(132));
        assert_eq!(jittered(age, 0.5), age);
        let (mut low, mut high) = (false, false);
        for _ in 0..1000 {
            let unit = random_unit();
            assert!((0.0..1.0).contains(&unit));
            let j = jittered(age, unit);
            assert!(
                j >= Duration::from_secs(108) && j <= Duration::from_secs(132),
                "{j:?}"
            );
            low |= j < age;
            high |= j > age;
        }
        assert!(low && high);
    }

    // HTTP: the collector's idle_timeout (zero or negative: none) and trailhead's age bound.
    #[test]
    fn http_bounds() {
        let l = http_lifetime(
            GoDuration::from_secs(60),
            true,
            Duration::from_secs(120),
            Duration::ZERO,
        );
        assert_eq!(l.max_idle, Some(DEFAULT_HTTP_IDLE));
        assert_eq!(l.max_age, Some(Duration::from_secs(120)));
        assert_eq!(l.age_grace, None);
        assert_eq!(l.ping, None);
        let negative = GoDuration {
            negative: true,
            magnitude: Duration::from_secs(1),
        };
        let l = http_lifetime(negative, false, Duration::ZERO, Duration::ZERO);
        assert_eq!(
            (l.max_idle, l.max_age, l.http1_keep_alive),
            (None, None, false)
        );
        assert_eq!(
            http_lifetime(GoDuration::default(), true, Duration::ZERO, Duration::ZERO).max_idle,
            None
        );
    }

    /// A connection future that ends once `graceful` has been called on it.
    fn connection(closing: &AtomicBool) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(move |_| {
            if closing.load(Ordering::SeqCst) {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        })
    }

    // Past its age an HTTP/2 connection (or one that has said nothing yet) is closed
    // gracefully once, and dropped when the grace ends with requests still in flight.
    #[tokio::test]
    async fn age_drains_then_the_grace_closes() {
        let activity = Arc::new(Activity::default());
        let _in_flight = activity.begin(http::Version::HTTP_2);
        let lifetime = Lifetime {
            max_age: Some(Duration::from_millis(20)),
            age_grace: Some(Duration::from_millis(30)),
            ..Lifetime::default()
        };
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let stuck = std::pin::pin!(std::future::pending::<()>());
        let graceful = |_: Pin<&mut _>| {
            calls.fetch_add(1, Ordering::SeqCst);
        };
        let token = CancellationToken::new();
        let served = drive(stuck, graceful, &activity, &lifetime, &token).await;
        assert!(
            served.is_none(),
            "closed by the grace, not by the connection"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    // An HTTP/1.1 connection past its age is not closed under a client that may be sending:
    // its next response says `Connection: close` instead.
    #[tokio::test]
    async fn http1_past_its_age_says_connection_close() {
        let activity = Arc::new(Activity::default());
        drop(activity.begin(http::Version::HTTP_11));
        let lifetime = Lifetime {
            max_age: Some(Duration::from_millis(10)),
            ..Lifetime::default()
        };
        let closing = AtomicBool::new(false);
        let graceful = |_: Pin<&mut _>| closing.store(true, Ordering::SeqCst);
        let token = CancellationToken::new();
        let open = std::pin::pin!(connection(&closing));
        let driven = drive(open, graceful, &activity, &lifetime, &token);
        assert!(
            tokio::time::timeout(Duration::from_millis(100), driven)
                .await
                .is_err()
        );
        let response = activity
            .begin(http::Version::HTTP_11)
            .finish(Response::new(axum::body::Body::empty()));
        assert_eq!(response.headers()[http::header::CONNECTION], "close");
        let response = activity
            .begin(http::Version::HTTP_2)
            .finish(Response::new(axum::body::Body::empty()));
        assert!(response.headers().get(http::header::CONNECTION).is_none());
    }

    // The idle bound waits while a request is in flight (its response body holds it), and
    // closes the connection once nothing has been in flight for `max_idle`.
    #[tokio::test]
    async fn idle_counts_from_the_last_response() {
        let activity = Arc::new(Activity::default());
        let response = activity
            .begin(http::Version::HTTP_2)
            .finish(Response::new(axum::body::Body::empty()));
        let lifetime = Lifetime {
            max_idle: Some(Duration::from_millis(20)),
            ..Lifetime::default()
        };
        let closing = AtomicBool::new(false);
        let graceful = |_: Pin<&mut _>| closing.store(true, Ordering::SeqCst);
        let token = CancellationToken::new();
        let mut open = std::pin::pin!(connection(&closing));
        let driven = drive(open.as_mut(), graceful, &activity, &lifetime, &token);
        assert!(
            tokio::time::timeout(Duration::from_millis(80), driven)
                .await
                .is_err()
        );
        assert!(
            !closing.load(Ordering::SeqCst),
            "closed with a response unsent"
        );
        drop(response);
        let driven = drive(open, graceful, &activity, &lifetime, &token);
        let served = tokio::time::timeout(Duration::from_secs(5), driven).await;
        assert_eq!(served.ok(), Some(Some(())));
    }
}
