//! The parts of `service.telemetry` that push trailhead's own telemetry over OTLP, in the
//! OpenTelemetry configuration schema the collector (v0.161, `otelconftelemetry`) reads:
//! otelconf v0.3.0's `periodic` metric readers, `batch`/`simple` log and span processors, their
//! `otlp` exporter, and the `resource`. Each is settled here into an exporter of trailhead's
//! own kind (`otlp` for `grpc`, `otlp_http` for `http/protobuf`), so sending, TLS and headers
//! are the pipelines' code. What trailhead does not do is refused with its key and why.

use crate::exporters::otlp::OtlpExporterConfig;
use crate::exporters::otlp_http::OtlpHttpExporterConfig;
use crate::pdata::Signal;
pub use crate::telemetry::push::key_value;
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use serde::Deserialize;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;

/// A problem: the key under the section (`processors[0].batch.exporter.otlp.protocol`), and why.
pub type Problem = (String, String);

/// `exporter:` of a periodic reader or of a log or span processor.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushExporter {
    /// OTLP over `http/protobuf` or `grpc`.
    #[serde(default)]
    pub otlp: Option<OtlpPush>,
    /// The SDK's stdout exporter: refused, trailhead's logs already go to stderr.
    #[serde(default)]
    pub console: Option<Value>,
    /// Spans as Zipkin JSON: refused, trailhead sends its spans over OTLP only.
    #[serde(default)]
    pub zipkin: Option<Value>,
}

/// One `name`/`value` of `headers:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NameValue {
    /// The header's name.
    pub name: String,
    /// Its value; no value sends it empty.
    #[serde(default)]
    pub value: Option<String>,
}

/// `exporter.otlp:` (otelconf's `OTLP` and `OTLPMetric`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpPush {
    /// `http/protobuf` or `grpc`; required (`http/json` is refused).
    #[serde(default)]
    pub protocol: Option<String>,
    /// A URL. For `http/protobuf` a URL with a path is where requests go, as given; without
    /// one the signal's `/v1/...` path is added. For `grpc`, `http://` is plain text.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Headers sent with every request.
    #[serde(default)]
    pub headers: Vec<NameValue>,
    /// More headers as `name=value,name=value`; `headers` wins for a name in both.
    #[serde(default)]
    pub headers_list: Option<String>,
    /// `gzip` or `none` (the default).
    #[serde(default)]
    pub compression: Option<String>,
    /// Deadline of one export in milliseconds; 10000 by default, `0` for none.
    #[serde(default)]
    pub timeout: Option<i64>,
    /// For `grpc` without a scheme: plain text instead of TLS.
    #[serde(default)]
    pub insecure: Option<bool>,
    /// CA bundle (PEM) that verifies the server.
    #[serde(default)]
    pub certificate: Option<PathBuf>,
    /// The client certificate (PEM) for mutual TLS.
    #[serde(default)]
    pub client_certificate: Option<PathBuf>,
    /// The client certificate's key (PEM).
    #[serde(default)]
    pub client_key: Option<PathBuf>,
    /// Metrics only: `cumulative` (trailhead's counters are cumulative); `delta` and
    /// `lowmemory` are refused.
    #[serde(default)]
    pub temporality_preference: Option<String>,
    /// Metrics only: `explicit_bucket_histogram`, the one trailhead's histograms have.
    #[serde(default)]
    pub default_histogram_aggregation: Option<String>,
}

/// One settled OTLP destination: the trailhead exporter that sends there.
#[derive(Debug, Clone)]
pub enum Destination {
    Grpc(Box<OtlpExporterConfig>),
    Http(Box<OtlpHttpExporterConfig>),
}

/// `logs.processors[]` and `traces.processors[]` (otelconf's `LogRecordProcessor` and
/// `SpanProcessor`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessorConfig {
    /// Records wait up to `schedule_delay` and leave in batches.
    #[serde(default)]
    pub batch: Option<BatchProcessor>,
    /// Each record leaves as soon as it is made.
    #[serde(default)]
    pub simple: Option<SimpleProcessor>,
}

/// `batch:` of a processor; times in milliseconds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchProcessor {
    /// Where the batches go.
    pub exporter: PushExporter,
    /// The longest a record waits; 1000 for logs, 5000 for spans by default.
    #[serde(default)]
    pub schedule_delay: Option<i64>,
    /// Deadline of one export; 30000 by default.
    #[serde(default)]
    pub export_timeout: Option<i64>,
    /// Records held before new ones are dropped (and counted); 2048 by default.
    #[serde(default)]
    pub max_queue_size: Option<i64>,
    /// The most records in one export; 512 by default.
    #[serde(default)]
    pub max_export_batch_size: Option<i64>,
}

/// `simple:` of a processor.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimpleProcessor {
    /// Where each record goes.
    pub exporter: PushExporter,
}

/// How one signal's records are held and sent.
#[derive(Debug, Clone)]
pub struct Batching {
    /// The longest a record waits; zero sends at once (`simple`).
    pub delay: Duration,
    /// Records held before new ones are dropped.
    pub max_queue: usize,
    /// The most records in one export request.
    pub max_batch: usize,
    pub destination: Destination,
}

/// A settled `periodic` reader.
#[derive(Debug, Clone)]
pub struct Periodic {
    pub interval: Duration,
    pub destination: Destination,
}

/// What `service.telemetry` asks to push, settled when the file is read.
#[derive(Debug, Clone, Default)]
pub struct Push {
    /// The resource of everything trailhead says about itself.
    pub resource: Vec<KeyValue>,
    pub metrics: Vec<Periodic>,
    pub logs: Option<Batching>,
    pub traces: Option<Batching>,
}

/// Milliseconds as the schema gives them: absent is `default`; negative is refused.
fn millis(value: Option<i64>, default: u64, key: &str) -> Result<Duration, Problem> {
    match value {
        None => Ok(Duration::from_millis(default)),
        Some(n) if n < 0 => Err((key.into(), format!("{n} is negative; give milliseconds"))),
        Some(n) => Ok(Duration::from_millis(n as u64)),
    }
}

/// A count as the schema gives it: absent is `default`; zero or negative is refused.
fn positive(value: Option<i64>, default: usize, key: &str) -> Result<usize, Problem> {
    match value {
        None => Ok(default),
        Some(n) if n <= 0 => Err((key.into(), format!("{n} must be positive"))),
        Some(n) => Ok(n as usize),
    }
}

impl PushExporter {
    /// The destination, or why not; `at` is this exporter's key.
    pub fn destination(&self, at: &str, signal: Signal) -> Result<Destination, Problem> {
        let refused = |key: &str, why: &str| Err((format!("{at}.{key}"), why.to_string()));
        if self.console.is_some() {
            return refused(
                "console",
                "trailhead writes its logs to stderr and sends its own telemetry over OTLP only; use `otlp`",
            );
        }
        if self.zipkin.is_some() {
            return refused(
                "zipkin",
                "trailhead sends its own spans over OTLP only; use `otlp`",
            );
        }
        match &self.otlp {
            Some(otlp) => otlp.destination(&format!("{at}.otlp"), signal),
            None => Err((at.into(), "an exporter needs `otlp`".into())),
        }
    }
}

impl OtlpPush {
    /// trailhead's exporter with these settings, or the first key it cannot take, and why.
    pub fn destination(&self, at: &str, signal: Signal) -> Result<Destination, Problem> {
        let key = |k: &str| format!("{at}.{k}");
        self.metric_settings(at, signal == Signal::Metrics)?;
        let endpoint = self
            .endpoint
            .as_deref()
            .ok_or((key("endpoint"), "endpoint must be specified".into()))?;
        let compression = match self.compression.as_deref() {
            None | Some("none") => "none",
            Some("gzip") => "gzip",
            Some(other) => {
                let why = format!("unsupported compression `{other}`: use gzip or none");
                return Err((key("compression"), why));
            }
        };
        // `0` is no limit, as the schema says and the Go SDK does (an export context without
        // a deadline); trailhead's exporter reads `0ms` the same way.
        let timeout = millis(self.timeout, 10_000, &key("timeout"))?;
        let mut settings = json!({
            "headers": self.all_headers(&key("headers_list"))?,
            "compression": compression,
            "timeout": format!("{}ms", timeout.as_millis()),
            // Bounded and never retried: a dead endpoint costs one attempt per export, and
            // shutdown does not wait out a backoff for trailhead's own telemetry.
            "sending_queue": {"queue_size": 16, "num_consumers": 1},
            "retry_on_failure": {"enabled": false},
            "tls": {
                "ca_file": self.certificate,
                "cert_file": self.client_certificate,
                "key_file": self.client_key,
            },
        });
        let protocol = self.protocol.as_deref();
        let built = match protocol {
            Some("grpc") => {
                let insecure = endpoint.starts_with("http://") || self.insecure == Some(true);
                settings["endpoint"] = endpoint.into();
                settings["tls"]["insecure"] = insecure.into();
                serde_json::from_value(settings).map(|c| Destination::Grpc(Box::new(c)))
            }
            Some("http/protobuf") => {
                let url = endpoint
                    .parse::<http::Uri>()
                    .map_err(|e| (key("endpoint"), format!("`{endpoint}` is not a URL: {e}")))?;
                // As the Go SDK: a path is the whole path; none is the signal's default.
                let field = match url.path() {
                    "" | "/" => "endpoint".to_string(),
                    _ => format!("{}_endpoint", signal.as_str()),
                };
                settings[field.as_str()] = endpoint.trim_end_matches('/').into();
                serde_json::from_value(settings).map(|c| Destination::Http(Box::new(c)))
            }
            Some("http/json") => {
                let why = "trailhead sends its own telemetry as http/protobuf or grpc";
                return Err((key("protocol"), why.into()));
            }
            Some(other) => {
                let why = format!("unsupported protocol `{other}`: use http/protobuf or grpc");
                return Err((key("protocol"), why));
            }
            None => return Err((key("protocol"), "protocol must be specified".into())),
        };
        built.map_err(|e| (at.into(), e.to_string()))
    }

    /// `temporality_preference` and `default_histogram_aggregation`: only what trailhead's
    /// metrics are; neither is allowed for logs or spans.
    fn metric_settings(&self, at: &str, metrics: bool) -> Result<(), Problem> {
        let checks = [
            (
                "temporality_preference",
                &self.temporality_preference,
                "cumulative",
                "trailhead's counters are cumulative",
            ),
            (
                "default_histogram_aggregation",
                &self.default_histogram_aggregation,
                "explicit_bucket_histogram",
                "trailhead's histograms have explicit bounds",
            ),
        ];
        for (key, value, accepted, why) in checks {
            match value.as_deref() {
                None => {}
                Some(_) if !metrics => {
                    return Err((format!("{at}.{key}"), "applies to metrics only".into()));
                }
                Some(given) if given != accepted => {
                    let why = format!("`{given}` is not supported: {why}; use `{accepted}`");
                    return Err((format!("{at}.{key}"), why));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// `headers` and `headers_list` as one map, `headers` winning.
    fn all_headers(&self, list_key: &str) -> Result<serde_json::Map<String, Value>, Problem> {
        let mut all = serde_json::Map::new();
        for pair in self.headers_list.iter().flat_map(|l| l.split(',')) {
            if pair.trim().is_empty() {
                continue;
            }
            let (name, value) = pair
                .split_once('=')
                .ok_or_else(|| (list_key.to_string(), format!("`{pair}` is not name=value")))?;
            all.insert(name.trim().into(), value.trim().into());
        }
        for header in &self.headers {
            let value = header.value.clone().unwrap_or_default();
            all.insert(header.name.clone(), value.into());
        }
        Ok(all)
    }
}

/// The one processor of a signal's `processors`, settled; `delay_default` is the schedule
/// delay in milliseconds when `batch` gives none.
pub fn batching(
    processors: &[ProcessorConfig],
    signal: Signal,
    delay_default: u64,
) -> Result<Option<Batching>, Problem> {
    let Some(first) = processors.first() else {
        return Ok(None);
    };
    if processors.len() > 1 {
        let why = "trailhead sends its own records to one exporter; keep one processor";
        return Err(("processors[1]".into(), why.into()));
    }
    let at = "processors[0]";
    match (&first.batch, &first.simple) {
        (Some(batch), None) => {
            let at = format!("{at}.batch");
            let key = |k: &str| format!("{at}.{k}");
            Ok(Some(Batching {
                delay: millis(batch.schedule_delay, delay_default, &key("schedule_delay"))?,
                max_queue: positive(batch.max_queue_size, 2048, &key("max_queue_size"))?,
                max_batch: positive(
                    batch.max_export_batch_size,
                    512,
                    &key("max_export_batch_size"),
                )?,
                destination: batch.exporter.destination(&key("exporter"), signal)?,
            }))
        }
        (None, Some(simple)) => Ok(Some(Batching {
            delay: Duration::ZERO,
            max_queue: 2048,
            max_batch: 512,
            destination: simple
                .exporter
                .destination(&format!("{at}.simple.exporter"), signal)?,
        })),
        _ => Err((
            at.into(),
            "a processor needs one of `batch` or `simple`".into(),
        )),
    }
}

/// The resource: the collector's own attributes (`service.name`, `service.version`, a random
/// `service.instance.id`), then the config's. The inline form (`host.name: x`) replaces one of
/// those, and `null` removes it; `attributes: [{name, value}]` and `attributes_list` add more.
pub fn resource(config: Option<&Value>) -> Result<Vec<KeyValue>, Problem> {
    let mut attributes: Vec<(String, Value)> = vec![
        ("service.name".into(), "trailhead".into()),
        ("service.version".into(), env!("CARGO_PKG_VERSION").into()),
        ("service.instance.id".into(), instance_id().into()),
    ];
    let mut put = |name: &str, value: Value| {
        attributes.retain(|(n, _)| n != name);
        if !value.is_null() {
            attributes.push((name.to_string(), value));
        }
    };
    let empty = serde_json::Map::new();
    let map = match config {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(map)) => map,
        Some(_) => return Err((String::new(), "resource must be a map".into())),
    };
    for (key, value) in map {
        match (key.as_str(), value) {
            ("attributes", Value::Array(list)) => {
                for (index, item) in list.iter().enumerate() {
                    let name = item.get("name").and_then(Value::as_str).ok_or_else(|| {
                        (
                            format!("attributes[{index}]"),
                            "an attribute needs a `name`".to_string(),
                        )
                    })?;
                    put(name, item.get("value").cloned().unwrap_or(Value::Null));
                }
            }
            ("attributes_list", Value::String(list)) => {
                for pair in list.split(',').filter(|p| !p.trim().is_empty()) {
                    let (name, value) = pair
                        .split_once('=')
                        .ok_or_else(|| (key.clone(), format!("`{pair}` is not name=value")))?;
                    put(name.trim(), value.trim().into());
                }
            }
            ("schema_url", _) => {}
            ("detection/development", _) => {
                let why = "resource detection is not supported; set the attributes instead (from the environment with ${env:NAME})";
                return Err((key.clone(), why.into()));
            }
            _ => put(key, value.clone()),
        }
    }
    Ok(attributes
        .into_iter()
        .map(|(key, value)| key_value(&key, any_value(value)))
        .collect())
}

/// A resource value as OTLP's: strings, integers, doubles and booleans keep their type.
fn any_value(value: Value) -> any_value::Value {
    match value {
        Value::Bool(b) => any_value::Value::BoolValue(b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => any_value::Value::IntValue(i),
            None => any_value::Value::DoubleValue(n.as_f64().unwrap_or_default()),
        },
        Value::String(s) => any_value::Value::StringValue(s),
        other => any_value::Value::StringValue(other.to_string()),
    }
}

/// A random UUID (version 4), as the collector's `service.instance.id`. Made from the standard
/// library's randomly seeded hasher: unique per process is all it needs.
fn instance_id() -> String {
    use std::hash::{BuildHasher, RandomState};
    let high = RandomState::new().hash_one(std::process::id());
    let low = RandomState::new().hash_one(std::time::SystemTime::now());
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&high.to_le_bytes());
    bytes[8..].copy_from_slice(&low.to_le_bytes());
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

impl Destination {
    /// The exporter that sends `signal` there, named `id` in trailhead's metrics and logs.
    pub fn build(
        &self,
        id: &str,
        signal: Signal,
        resolve: impl Fn(&PathBuf) -> PathBuf,
        secrets: &crate::secrets::Secrets,
    ) -> Result<crate::exporters::ExporterSpec, crate::exporters::otlp::BuildError> {
        match self {
            Destination::Grpc(otlp) => otlp.build(id, signal, resolve, None, secrets),
            Destination::Http(http) => http.build(id, signal, resolve, None, secrets),
        }
    }
}

/// `service.telemetry.traces` in the collector's shape (otelconf's tracer provider), told from
/// trailhead's older shape (the `otlp` exporter's settings) by its keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectorTraces {
    /// `none` sends no spans; any other level sends them all.
    #[serde(default)]
    pub level: Option<String>,
    /// Accepted without effect: trailhead's own spans start no requests to propagate into.
    #[serde(default)]
    pub propagators: Option<Value>,
    /// One `batch` or `simple` processor with an `otlp` exporter.
    #[serde(default)]
    pub processors: Vec<ProcessorConfig>,
}

impl CollectorTraces {
    /// The keys that only the collector's shape has.
    pub const KEYS: [&str; 5] = ["level", "propagators", "processors", "limits", "sampler"];
}
