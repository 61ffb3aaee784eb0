//! The `pprof` extension kind: trailhead's own CPU profile in Go's pprof format, served where
//! Go's `net/http/pprof` serves it (`/debug/pprof/profile?seconds=N`), so `go tool pprof
//! http://host:1777/debug/pprof/profile` works on trailhead as it does on the collector.
//! Sampling is pprof-rs as the `pyroscope` crate carries it (its pprof backend; a second copy of
//! pprof-rs cannot be linked next to it: both export the SIGPROF handler's symbol), the profile
//! is encoded here with the workspace's prost.

use crate::components::{Extension, Kind};
use crate::config::or_default;
use crate::telemetry::Telemetry;
use axum::extract::{Path, RawQuery};
use axum::response::{Html, IntoResponse, Response};
use http::{StatusCode, header};
use serde::{Deserialize, Deserializer};
use std::net::SocketAddr;
use std::time::Duration;

/// `extensions: pprof:`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PprofConfig {
    /// Address to serve on, `host:port` as in the collector: `localhost:1777` by default,
    /// `:1777` for every interface.
    #[serde(deserialize_with = "crate::config::values::listen_address")]
    pub endpoint: SocketAddr,
    /// Go's block profile rate. A Rust process has no Go runtime to sample blocking in, so a
    /// value above 0 is accepted with a warning and changes nothing: the CPU profile is still
    /// served, and Go's `/debug/pprof/block` answers 501. Zero or negative: off, as in Go.
    pub block_profile_fraction: i64,
    /// Go's mutex profile fraction. As `block_profile_fraction`: no meaning in a Rust process;
    /// above 0 it is accepted with a warning, and `/debug/pprof/mutex` answers 501.
    pub mutex_profile_fraction: i64,
    /// The collector writes a CPU profile of the whole run to this file at shutdown. Not yet in
    /// trailhead: refused when set, rather than writing a profile that misses the run. Empty: off.
    #[serde(deserialize_with = "no_save_to_file")]
    pub save_to_file: String,
}

impl Default for PprofConfig {
    fn default() -> Self {
        PprofConfig {
            endpoint: SocketAddr::from(([127, 0, 0, 1], 1777)),
            block_profile_fraction: 0,
            mutex_profile_fraction: 0,
            save_to_file: String::new(),
        }
    }
}

impl Kind for PprofConfig {
    const NAME: &'static str = "pprof";
    fn parse<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let config: PprofConfig = or_default(d)?;
        if !config.save_to_file.is_empty() {
            return Err(serde::de::Error::custom(
                "save_to_file: a profile of the whole run is not written by trailhead yet; take                  one over HTTP (`go tool pprof http://HOST:1777/debug/pprof/profile?seconds=N`)",
            ));
        }
        Ok(config)
    }
}

impl Extension for PprofConfig {
    fn admin(&self, _telemetry: &Telemetry) -> Option<(SocketAddr, axum::Router)> {
        for (key, value) in [
            ("block_profile_fraction", self.block_profile_fraction),
            ("mutex_profile_fraction", self.mutex_profile_fraction),
        ] {
            if value > 0 {
                tracing::warn!(
                    key,
                    value,
                    "pprof: a Go runtime setting, with no meaning for trailhead; ignored (CPU profiles are still served)"
                );
            }
        }
        Some((self.endpoint, router()))
    }
}

fn no_save_to_file<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let path = String::deserialize(d)?;
    if path.is_empty() {
        return Ok(path);
    }
    Err(serde::de::Error::custom(
        "a profile of the whole run is not written by trailhead yet; take one over HTTP \
         (`go tool pprof http://HOST:1777/debug/pprof/profile?seconds=N`)",
    ))
}

/// The routes Go's `net/http/pprof` serves, those with a meaning for trailhead.
fn router() -> axum::Router {
    use axum::routing::get;
    axum::Router::new()
        .route("/debug/pprof/", get(index))
        .route("/debug/pprof/profile", get(cpu))
        .route("/debug/pprof/cmdline", get(cmdline))
        .route("/debug/pprof/{name}", get(named))
}

async fn index() -> Html<&'static str> {
    Html(concat!(
        "<html><head><title>/debug/pprof/</title></head><body>\n",
        "<p>trailhead profiles (a Rust process: Go's goroutine, heap, block and mutex profiles ",
        "have no counterpart here)</p>\n",
        "<a href=\"profile?seconds=30\">profile</a>: CPU profile, ",
        "<code>seconds</code> long (30 by default)<br>\n",
        "<a href=\"cmdline\">cmdline</a>: the command line<br>\n",
        "</body></html>\n"
    ))
}

/// Go's profile names without a Rust counterpart: known, so 501 rather than 404.
const GO_ONLY: [&str; 7] = [
    "heap",
    "allocs",
    "goroutine",
    "block",
    "mutex",
    "threadcreate",
    "trace",
];

async fn named(Path(name): Path<String>) -> Response {
    if GO_ONLY.contains(&name.as_str()) {
        let why = format!(
            "{name}: not available. trailhead is a Rust process: it has no Go runtime to take \
             this profile from, and its allocator keeps no sampled allocation stacks. \
             CPU profiles are at /debug/pprof/profile.\n"
        );
        return (StatusCode::NOT_IMPLEMENTED, why).into_response();
    }
    (StatusCode::NOT_FOUND, "Unknown profile\n").into_response()
}

/// The command line, NUL-separated, as Go serves it.
async fn cmdline() -> String {
    std::env::args().collect::<Vec<_>>().join("\x00")
}

/// `?seconds=N`: as Go, anything but a positive integer means 30.
fn seconds(query: Option<&str>) -> u64 {
    let given = query
        .unwrap_or("")
        .split('&')
        .find_map(|pair| pair.strip_prefix("seconds="))
        .map(|n| n.parse::<i64>());
    match given {
        Some(Ok(n)) if n > 0 => n as u64,
        _ => 30,
    }
}

async fn cpu(RawQuery(query): RawQuery) -> Response {
    let how_long = Duration::from_secs(seconds(query.as_deref()));
    // Samples are taken by a signal handler; the guard stays on one thread.
    let profiled = tokio::task::spawn_blocking(move || {
        let mut sampler = start_sampling()?;
        std::thread::sleep(how_long);
        encode(&mut sampler)
    })
    .await;
    match profiled {
        Ok(Ok(body)) => (
            [
                (header::CONTENT_TYPE, "application/octet-stream"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"profile\"",
                ),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            body,
        )
            .into_response(),
        Ok(Err(why)) => {
            let text = format!("Could not enable CPU profiling: {why}\n");
            (StatusCode::INTERNAL_SERVER_ERROR, text).into_response()
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

/// Samples per second, as Go's CPU profiler.
const HZ: u32 = 100;

/// A running sampler: pyroscope's pprof-rs backend, and when it started.
struct Sampler {
    backend: pyroscope::backend::Pprof<'static>,
    started: std::time::SystemTime,
}

/// Starts the process's one CPU sampler, unless another profiler (this one, or the Pyroscope
/// agent of `service.telemetry.profiles`) already owns SIGPROF.
fn start_sampling() -> Result<Sampler, String> {
    use pyroscope::backend::{Backend, BackendConfig, Pprof, PprofConfig};
    if sigprof_taken() {
        return Err("cpu profiling already in use".into());
    }
    let config = BackendConfig {
        report_thread_name: true,
        ..BackendConfig::default()
    };
    let mut backend = Pprof::new(PprofConfig { sample_rate: HZ }, config);
    let started = std::time::SystemTime::now();
    match backend.initialize() {
        Ok(()) => Ok(Sampler { backend, started }),
        Err(e) => Err(format!("cpu profiling already in use ({e})")),
    }
}

/// Whether a SIGPROF handler is installed: a profiler is running.
#[allow(unsafe_code)]
fn sigprof_taken() -> bool {
    // SAFETY: reads the current disposition only (no new action is given).
    unsafe {
        let mut current: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(libc::SIGPROF, std::ptr::null(), &mut current) != 0 {
            return false;
        }
        current.sa_sigaction != libc::SIG_DFL && current.sa_sigaction != libc::SIG_IGN
    }
}

/// What was sampled, as gzipped pprof protobuf.
fn encode(sampler: &mut Sampler) -> Result<Vec<u8>, String> {
    use pyroscope::backend::{Backend, ReportData};
    use std::io::Write;
    let batch = sampler.backend.report().map_err(|e| e.to_string())?;
    let ReportData::Reports(reports) = batch.data else {
        return Err("the sampler gave no stack traces".into());
    };
    let elapsed = sampler.started.elapsed().unwrap_or_default();
    let profile = proto::profile(&reports, sampler.started, elapsed);
    let bytes = prost::Message::encode_to_vec(&profile);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&bytes).map_err(|e| e.to_string())?;
    gz.finish().map_err(|e| e.to_string())
}

/// Go's `profile.proto`, the fields a CPU profile uses.
mod proto {
    use pyroscope::backend::{Report, StackFrame};
    use std::collections::HashMap;
    use std::time::{Duration, SystemTime};

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Profile {
        #[prost(message, repeated, tag = "1")]
        pub sample_type: Vec<ValueType>,
        #[prost(message, repeated, tag = "2")]
        pub sample: Vec<Sample>,
        #[prost(message, repeated, tag = "4")]
        pub location: Vec<Location>,
        #[prost(message, repeated, tag = "5")]
        pub function: Vec<Function>,
        #[prost(string, repeated, tag = "6")]
        pub string_table: Vec<String>,
        #[prost(int64, tag = "9")]
        pub time_nanos: i64,
        #[prost(int64, tag = "10")]
        pub duration_nanos: i64,
        #[prost(message, optional, tag = "11")]
        pub period_type: Option<ValueType>,
        #[prost(int64, tag = "12")]
        pub period: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ValueType {
        #[prost(int64, tag = "1")]
        pub r#type: i64,
        #[prost(int64, tag = "2")]
        pub unit: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Sample {
        #[prost(uint64, repeated, tag = "1")]
        pub location_id: Vec<u64>,
        #[prost(int64, repeated, tag = "2")]
        pub value: Vec<i64>,
        #[prost(message, repeated, tag = "3")]
        pub label: Vec<Label>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Label {
        #[prost(int64, tag = "1")]
        pub key: i64,
        #[prost(int64, tag = "2")]
        pub str: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Location {
        #[prost(uint64, tag = "1")]
        pub id: u64,
        #[prost(message, repeated, tag = "4")]
        pub line: Vec<Line>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Line {
        #[prost(uint64, tag = "1")]
        pub function_id: u64,
        #[prost(int64, tag = "2")]
        pub line: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Function {
        #[prost(uint64, tag = "1")]
        pub id: u64,
        #[prost(int64, tag = "2")]
        pub name: i64,
        #[prost(int64, tag = "3")]
        pub system_name: i64,
        #[prost(int64, tag = "4")]
        pub filename: i64,
    }

    /// Tables under construction: strings, functions and locations, each deduplicated.
    #[derive(Default)]
    struct Tables {
        strings: HashMap<String, i64>,
        string_table: Vec<String>,
        functions: HashMap<(i64, i64), u64>,
        function: Vec<Function>,
        locations: HashMap<Vec<(u64, i64)>, u64>,
        location: Vec<Location>,
    }

    impl Tables {
        fn string(&mut self, s: &str) -> i64 {
            if let Some(&i) = self.strings.get(s) {
                return i;
            }
            let i = self.string_table.len() as i64;
            self.strings.insert(s.to_string(), i);
            self.string_table.push(s.to_string());
            i
        }

        fn function(&mut self, frame: &StackFrame) -> u64 {
            let name = self.string(frame.name.as_deref().unwrap_or(""));
            let path = frame.absolute_path.as_deref().or(frame.filename.as_deref());
            let filename = self.string(path.unwrap_or(""));
            let next = self.function.len() as u64 + 1;
            let id = *self.functions.entry((name, filename)).or_insert(next);
            if id == next {
                let system_name = name;
                let f = Function {
                    id,
                    name,
                    system_name,
                    filename,
                };
                self.function.push(f);
            }
            id
        }

        /// One location per frame and line.
        fn location(&mut self, frame: &StackFrame) -> u64 {
            let line = i64::from(frame.line.unwrap_or(0));
            let key = vec![(self.function(frame), line)];
            let next = self.location.len() as u64 + 1;
            let id = *self.locations.entry(key.clone()).or_insert(next);
            if id == next {
                let line = key
                    .into_iter()
                    .map(|(function_id, line)| Line { function_id, line })
                    .collect();
                self.location.push(Location { id, line });
            }
            id
        }
    }

    /// The reports as a profile: samples (count) and cpu (nanoseconds), leaf first, labelled
    /// with their thread.
    pub fn profile(reports: &[Report], started: SystemTime, took: Duration) -> Profile {
        let mut t = Tables::default();
        t.string(""); // index 0 is the empty string, by the format
        let period = 1_000_000_000 / i64::from(super::HZ);
        let value_type = |t: &mut Tables, ty: &str, unit: &str| ValueType {
            r#type: t.string(ty),
            unit: t.string(unit),
        };
        let sample_type = vec![
            value_type(&mut t, "samples", "count"),
            value_type(&mut t, "cpu", "nanoseconds"),
        ];
        let thread = t.string("thread");
        let mut sample = Vec::new();
        for (trace, &count) in reports.iter().flat_map(|r| r.data.iter()) {
            let location_id = trace.frames.iter().map(|f| t.location(f)).collect();
            let str = t.string(trace.thread_name.as_deref().unwrap_or(""));
            let count = count as i64;
            let value = vec![count, count * period];
            let label = vec![Label { key: thread, str }];
            sample.push(Sample {
                location_id,
                value,
                label,
            });
        }
        let since_epoch = started.duration_since(std::time::UNIX_EPOCH);
        Profile {
            period_type: Some(value_type(&mut t, "cpu", "nanoseconds")),
            period,
            sample_type,
            sample,
            time_nanos: since_epoch.map_or(0, |d| d.as_nanos() as i64),
            duration_nanos: took.as_nanos() as i64,
            location: t.location,
            function: t.function,
            string_table: t.string_table,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<PprofConfig, String> {
        serde_saphyr::from_str::<PprofConfig>(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_are_the_collectors() {
        let c = PprofConfig::default();
        assert_eq!(c.endpoint, "127.0.0.1:1777".parse().unwrap());
        assert_eq!((c.block_profile_fraction, c.mutex_profile_fraction), (0, 0));
        assert!(c.save_to_file.is_empty());
        let empty = parse("{}").unwrap();
        assert_eq!(empty.endpoint, c.endpoint);
    }

    #[test]
    fn endpoints_read_as_the_collector_reads_them() {
        assert_eq!(
            parse("endpoint: :1888").unwrap().endpoint.to_string(),
            "0.0.0.0:1888"
        );
        let bad = parse("endpoint: nowhere").unwrap_err();
        assert!(bad.contains("`nowhere`"), "{bad}");
    }

    #[test]
    fn go_only_keys_are_accepted_negative_too_and_unknown_keys_refused() {
        let c = parse("block_profile_fraction: -1\nmutex_profile_fraction: 5").unwrap();
        assert_eq!(
            (c.block_profile_fraction, c.mutex_profile_fraction),
            (-1, 5)
        );
        let refused = parse("save_to_file: /tmp/cpu.prof").unwrap_err();
        assert!(
            refused.contains("a profile of the whole run is not written"),
            "{refused}"
        );
        assert!(parse("enpoint: :1777").unwrap_err().contains("enpoint"));
    }

    #[test]
    fn seconds_default_to_30_unless_a_positive_integer() {
        assert_eq!(seconds(None), 30);
        assert_eq!(seconds(Some("seconds=2")), 2);
        assert_eq!(seconds(Some("debug=1&seconds=5")), 5);
        assert_eq!(seconds(Some("seconds=0")), 30);
        assert_eq!(seconds(Some("seconds=-3")), 30);
        assert_eq!(seconds(Some("seconds=x")), 30);
    }
}
