//! The `otlp_http` exporter (alias `otlphttp`): sends export requests to an OTLP/HTTP peer
//! (Grafana Alloy, a vendor's intake, the collector) as protobuf or OTLP/JSON, with the
//! collector's `otlphttp` keys and its answers to each HTTP status.
//!
//! The one idea: a signal's URL is fixed when the exporter is built (`endpoint` + `/v1/traces`,
//! or `traces_endpoint` as given), and everything else a send needs (the pooled client with its
//! TLS files, the headers with the bearer token) is one [`client::Connection`] that is rebuilt
//! when those files rotate. Queueing, batching, the byte bound, retries and the split on 413
//! are the queue's (`exporters/queue.rs`), shared with the gRPC exporter.

mod client;
mod response;
mod sink;

// The `prometheusremotewrite` exporter sends with the same client.
pub(crate) use client::Connection;
pub(crate) use sink::Body;

use super::otlp::{BuildError, Compression, TlsClientConfig};
use super::queue::{BatchSettings, ExporterSpec, QueueSettings, RetrySettings};
use crate::auth::{AuthConfig, ClientAuthConfig};
use crate::config::values;
use crate::pdata::Signal;
use crate::secrets::{Secret, Secrets};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// `exporters: otlp_http/NAME:` (or `otlphttp/NAME:`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpHttpExporterConfig {
    /// Base URL (`http://` or `https://`); each signal is sent to it with `/v1/traces`,
    /// `/v1/metrics` or `/v1/logs` appended. Needed unless every signal has its own endpoint.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The full URL traces are sent to, used as given instead of `endpoint` + `/v1/traces`.
    #[serde(default)]
    pub traces_endpoint: Option<String>,
    /// The full URL metrics are sent to, used as given instead of `endpoint` + `/v1/metrics`.
    #[serde(default)]
    pub metrics_endpoint: Option<String>,
    /// The full URL logs are sent to, used as given instead of `endpoint` + `/v1/logs`.
    #[serde(default)]
    pub logs_endpoint: Option<String>,
    /// The full URL profiles are sent to, used as given instead of `endpoint` +
    /// `/v1development/profiles`.
    #[serde(default)]
    pub profiles_endpoint: Option<String>,
    /// `proto` (default, `application/x-protobuf`) or `json` (OTLP/JSON, `application/json`).
    #[serde(default)]
    pub encoding: Encoding,
    /// `none` (default), `gzip` or `zstd`. Unlike the collector, whose otlphttp exporter
    /// gzips by default, trailhead does not compress unless asked: in-cluster gzip costs more
    /// CPU than all the rest of its work (BENCHMARKS.md), as for the gRPC exporter.
    #[serde(default)]
    pub compression: Compression,
    /// HTTP headers sent with every request, e.g. `x-scope-orgid`; they replace trailhead's own
    /// of the same name, as the collector's do.
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
    /// Send a `bearertokenauth` extension's token as `Authorization`.
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    /// TLS for `https://` URLs: a CA (then only it is trusted, as in the collector), a client
    /// certificate, `server_name_override`. The URL's scheme alone decides whether TLS is
    /// used, so `insecure` has no effect here, as in the collector.
    #[serde(default)]
    pub tls: TlsClientConfig,
    /// Deadline of one request, from connecting to reading the answer (the collector's
    /// `http.Client.Timeout`); 30s by default, `0` for none.
    #[serde(default = "default_timeout", deserialize_with = "values::duration")]
    pub timeout: Duration,
    /// How long an idle pooled connection is kept; 90s by default, `0` for no limit.
    #[serde(default = "default_idle", deserialize_with = "values::duration")]
    pub idle_conn_timeout: Duration,
    /// Idle connections kept per host; `0` means Go's default of 2, as in the collector.
    #[serde(default)]
    pub max_idle_conns_per_host: usize,
    /// Idle connections kept in all; 100 by default, `0` for no limit. An exporter talks to
    /// one host, so the smaller of this and `max_idle_conns_per_host` applies.
    #[serde(default = "default_max_idle")]
    pub max_idle_conns: usize,
    /// One request per connection (no keep-alive): every send connects anew.
    #[serde(default)]
    pub disable_keep_alives: bool,
    /// Accepted for the collector's configs; hyper sizes its own buffers, so it has no effect.
    #[serde(default)]
    pub read_buffer_size: i64,
    /// Accepted for the collector's configs; hyper sizes its own buffers, so it has no effect.
    #[serde(default)]
    pub write_buffer_size: i64,
    /// The collector's queue: size, consumers, sizer, persistent storage, batching.
    #[serde(default)]
    pub sending_queue: QueueSettings,
    /// Backoff for retryable failures (429, 502, 503, 504, transport errors), with the
    /// collector's keys and meanings.
    #[serde(default)]
    pub retry_on_failure: RetrySettings,
    /// trailhead's place for the batch keys; the collector's is `sending_queue.batch`.
    #[serde(default)]
    pub batch: Option<BatchSettings>,
}

/// `otlp_http:` with no body: every default, and no endpoint (which `problems` reports).
impl Default for OtlpHttpExporterConfig {
    fn default() -> Self {
        OtlpHttpExporterConfig {
            endpoint: None,
            traces_endpoint: None,
            metrics_endpoint: None,
            logs_endpoint: None,
            profiles_endpoint: None,
            encoding: Encoding::default(),
            compression: Compression::default(),
            headers: BTreeMap::new(),
            auth: None,
            tls: TlsClientConfig::default(),
            timeout: default_timeout(),
            idle_conn_timeout: default_idle(),
            max_idle_conns_per_host: 0,
            max_idle_conns: default_max_idle(),
            disable_keep_alives: false,
            read_buffer_size: 0,
            write_buffer_size: 0,
            sending_queue: QueueSettings::default(),
            retry_on_failure: RetrySettings::default(),
            batch: None,
        }
    }
}

/// How a request body is encoded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    #[default]
    Proto,
    Json,
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_idle() -> Duration {
    Duration::from_secs(90)
}

fn default_max_idle() -> usize {
    100
}

/// The signals and the per-signal keys that may override `endpoint` for them.
const SIGNAL_KEYS: [(Signal, &str); 4] = [
    (Signal::Traces, "traces_endpoint"),
    (Signal::Metrics, "metrics_endpoint"),
    (Signal::Logs, "logs_endpoint"),
    (Signal::Profiles, "profiles_endpoint"),
];

impl OtlpHttpExporterConfig {
    /// The signal's own endpoint key, if set.
    fn signal_endpoint(&self, signal: Signal) -> Option<&String> {
        match signal {
            Signal::Traces => self.traces_endpoint.as_ref(),
            Signal::Metrics => self.metrics_endpoint.as_ref(),
            Signal::Logs => self.logs_endpoint.as_ref(),
            Signal::Profiles => self.profiles_endpoint.as_ref(),
        }
        .filter(|e| !e.is_empty())
    }

    /// Where `signal` is sent, as the collector composes it: the signal's endpoint as given,
    /// or `endpoint` with `/v1/<signal>` appended (one `/` between them).
    pub fn url(&self, signal: Signal) -> Result<String, BuildError> {
        if let Some(url) = self.signal_endpoint(signal) {
            return Ok(url.clone());
        }
        match self.endpoint.as_deref().filter(|e| !e.is_empty()) {
            Some(base) => {
                let base = base.strip_suffix('/').unwrap_or(base);
                // Profiles are still `v1development` (the collector composes it the same way).
                let version = match signal {
                    Signal::Profiles => "v1development",
                    _ => "v1",
                };
                Ok(format!("{base}/{version}/{}", signal.as_str()))
            }
            None => Err(BuildError::Endpoint {
                endpoint: String::new(),
                reason: format!(
                    "either endpoint or {}_endpoint must be specified",
                    signal.as_str()
                ),
            }),
        }
    }

    /// The batch settings, from `batch` or `sending_queue.batch` (the defaults with neither).
    pub fn batch_settings(&self) -> BatchSettings {
        super::batch_settings(&self.batch, &self.sending_queue)
    }

    /// The settings the collector refuses, and URLs no request could go to, as (key, reason).
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = self.endpoint_problems();
        problems.extend(super::sending_problems(
            &self.batch,
            &self.sending_queue,
            &self.retry_on_failure,
        ));
        let urls = [
            &self.endpoint,
            &self.traces_endpoint,
            &self.metrics_endpoint,
        ];
        let urls = urls.into_iter().chain([&self.logs_endpoint]).flatten();
        let plaintext = urls.clone().all(|url| url.starts_with("http://"));
        problems.extend(self.tls.problems(false, plaintext && urls.count() > 0));
        for name in self.headers.keys() {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                problems.push(("headers", format!("`{name}` is not a valid header name")));
            }
        }
        problems
    }

    /// No endpoint at all, or one that is not an `http(s)://host…` URL.
    fn endpoint_problems(&self) -> Vec<(&'static str, String)> {
        let given = |e: &Option<String>| e.as_deref().is_some_and(|e| !e.is_empty());
        let any_signal = SIGNAL_KEYS
            .iter()
            .any(|(signal, _)| self.signal_endpoint(*signal).is_some());
        if !given(&self.endpoint) && !any_signal {
            return vec![("endpoint", "at least one endpoint must be specified".into())];
        }
        let mut problems = Vec::new();
        let keys = SIGNAL_KEYS
            .iter()
            .map(|(s, key)| (*key, self.signal_endpoint(*s)));
        for (key, url) in [("endpoint", self.endpoint.as_ref())]
            .into_iter()
            .chain(keys)
        {
            if let Some(why) = url.filter(|u| !u.is_empty()).and_then(|u| bad_url(u)) {
                problems.push((key, why));
            }
        }
        problems
    }

    /// Builds the queue-driver spec of this exporter for one signal. Connects lazily, so a peer
    /// that is down at start is retried like any other outage. `token` is the bearertokenauth
    /// extension `auth` names; its file and the TLS files are watched through `secrets`, and a
    /// change rebuilds the client for the sends that follow.
    pub fn build(
        &self,
        id: &str,
        signal: Signal,
        resolve: impl Fn(&PathBuf) -> PathBuf,
        token: Option<ClientAuthConfig>,
        secrets: &Secrets,
    ) -> Result<ExporterSpec, BuildError> {
        let url = self.url(signal)?;
        let uri = url.parse::<http::Uri>().map_err(|e| BuildError::Endpoint {
            endpoint: url.clone(),
            reason: e.to_string(),
        })?;
        let mut settings = self.clone();
        for path in [
            &mut settings.tls.ca_file,
            &mut settings.tls.cert_file,
            &mut settings.tls.key_file,
        ] {
            *path = path.as_ref().map(&resolve);
        }
        let token = token.map(|t| t.resolved(&|p| resolve(&p.to_path_buf())));
        let tls = &settings.tls;
        let mut files: Vec<PathBuf> = [&tls.ca_file, &tls.cert_file, &tls.key_file]
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        files.extend(token.iter().flat_map(ClientAuthConfig::files));
        let what = format!("exporter {id}/{}", signal.as_str());
        let https = uri.scheme_str() == Some("https");
        let connection =
            secrets.watch(what, files, move || settings.connect(token.as_ref(), https))?;
        let sink = sink::OtlpHttpSink {
            connection,
            uri,
            signal,
            encoding: self.encoding,
            compression: self.compression,
            timeout: self.timeout,
        };
        Ok(ExporterSpec {
            id: id.to_string(),
            signal,
            sink: Arc::new(sink),
            queue: self.sending_queue.clone(),
            batch: self.batch_settings().policy().map_err(BuildError::Batch)?,
            retry: self.retry_on_failure.clone(),
        })
    }
}

/// Why `url` cannot be sent to, if it cannot: it must be absolute, `http` or `https`, with a
/// host. (The collector's `url.Parse` takes `alloy:4318` as the scheme `alloy` and fails at
/// the first send; saying so at start is kinder.)
fn bad_url(url: &str) -> Option<String> {
    let uri = match url.parse::<http::Uri>() {
        Ok(uri) => uri,
        Err(e) => return Some(format!("`{url}` is not a valid URL: {e}")),
    };
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    if !scheme_ok || uri.host().is_none_or(str::is_empty) {
        return Some(format!(
            "`{url}` must be a URL starting with http:// or https:// and naming a host"
        ));
    }
    None
}

#[cfg(test)]
mod tests;
