//! Targets and their scrape loops, with Prometheus 3's semantics (scrape/target.go,
//! scrape/scrape.go): a target's labels from its static config, the job's defaults and
//! `relabel_configs`; each scrape an HTTP GET asking for OpenMetrics first; the samples
//! given the target's labels (`honor_labels`), `metric_relabel_configs` applied, stale
//! markers for series gone since the last scrape (all of them when a scrape fails), and the
//! loop's own `up`, `scrape_duration_seconds`, `scrape_samples_scraped`,
//! `scrape_samples_post_metric_relabeling` and `scrape_series_added`.

use super::relabel::{Labels, RelabelConfig, relabel};
use super::to_otlp::{STALE_NAN, Target, Transaction};
use super::{GlobalConfig, PromConfig, ScrapeConfig, ScrapeProtocol, parse_prom_duration};
use crate::pdata::exposition::{self, Metadata, Sample};
use crate::pdata::{Batch, RequestContext, Signal};
use crate::pipeline::Fanout;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio_util::sync::CancellationToken;

/// A job's settings every one of its targets scrapes with.
#[derive(Debug)]
pub struct Job {
    pub honor_labels: bool,
    pub honor_timestamps: bool,
    pub metric_relabel: Vec<RelabelConfig>,
    /// The Accept header.
    pub accept: String,
    pub fallback: Option<ScrapeProtocol>,
    /// `global.external_labels`, set on every sample as the collector sets them.
    pub external_labels: BTreeMap<String, String>,
}

/// One target to scrape.
#[derive(Debug)]
pub struct ScrapeTarget {
    pub job: Arc<Job>,
    /// Its labels after relabeling, without the `__` ones: what every sample gets.
    pub labels: Labels,
    /// Its labels before relabeling.
    pub discovered: Labels,
    pub url: String,
    pub interval: Duration,
    pub timeout: Duration,
}

/// What turns a job's discovered labels into targets, owned so discovery tasks can keep it.
#[derive(Debug, Clone)]
pub struct TargetRules {
    pub settings: Arc<Job>,
    pub job_name: String,
    pub metrics_path: String,
    pub scheme: String,
    pub params: BTreeMap<String, Vec<String>>,
    pub relabel_configs: Vec<RelabelConfig>,
    pub interval: Duration,
    pub timeout: Duration,
}

impl TargetRules {
    /// The rules of `job`, with its interval and timeout settled.
    pub fn new(job: &ScrapeConfig, global: &GlobalConfig) -> Result<TargetRules, String> {
        let (interval, timeout) = job.timing(global)?;
        Ok(TargetRules {
            settings: Arc::new(job_settings(job, global)),
            job_name: job.job_name.clone(),
            metrics_path: job.metrics_path.clone(),
            scheme: job.scheme.clone(),
            params: job.params.clone(),
            relabel_configs: job.relabel_configs.clone(),
            interval,
            timeout,
        })
    }
}

/// Every static target of every job in `config`; an error names the job and target.
pub fn targets(config: &PromConfig) -> Result<Vec<ScrapeTarget>, String> {
    let mut all = Vec::new();
    for job in &config.scrape_configs {
        let rules = TargetRules::new(job, &config.global)?;
        for group in &job.static_configs {
            for address in &group.targets {
                let mut labels = group.labels.clone();
                labels.insert("__address__".into(), address.clone());
                let target = populate(&rules, labels)
                    .map_err(|e| format!("job {:?}, target {address:?}: {e}", job.job_name))?;
                all.extend(target);
            }
        }
    }
    Ok(all)
}

fn job_settings(job: &ScrapeConfig, global: &GlobalConfig) -> Job {
    let protocols = job
        .scrape_protocols
        .as_deref()
        .unwrap_or(&ScrapeProtocol::DEFAULT);
    Job {
        honor_labels: job.honor_labels,
        honor_timestamps: job.honor_timestamps,
        metric_relabel: job.metric_relabel_configs.clone(),
        accept: accept_header(protocols),
        fallback: job.fallback_scrape_protocol,
        external_labels: global.external_labels.clone(),
    }
}

/// Prometheus' Accept header: each protocol with a falling weight, then anything.
fn accept_header(protocols: &[ScrapeProtocol]) -> String {
    let mut weight = protocols.len() + 1;
    let mut parts = Vec::new();
    for protocol in protocols {
        parts.push(format!("{};q=0.{weight}", protocol.media_type()));
        weight -= 1;
    }
    parts.push(format!("*/*;q=0.{weight}"));
    parts.join(",")
}

/// scrape/target.go's PopulateLabels: `None` when relabeling drops the target.
pub fn populate(rules: &TargetRules, mut labels: Labels) -> Result<Option<ScrapeTarget>, String> {
    let defaults = [
        ("job", rules.job_name.clone()),
        ("__scrape_interval__", format_duration(rules.interval)),
        ("__scrape_timeout__", format_duration(rules.timeout)),
        ("__metrics_path__", rules.metrics_path.clone()),
        ("__scheme__", rules.scheme.clone()),
    ];
    for (name, value) in defaults {
        labels.entry(name.into()).or_insert(value);
    }
    for (name, values) in &rules.params {
        if let Some(first) = values.first() {
            labels
                .entry(format!("__param_{name}"))
                .or_insert(first.clone());
        }
    }
    let discovered = labels.clone();
    if !relabel(&mut labels, &rules.relabel_configs) {
        return Ok(None);
    }
    let address = labels.get("__address__").cloned().unwrap_or_default();
    if address.is_empty() {
        return Err("no address".into());
    }
    if address.contains('/') {
        return Err(format!("{address:?} is not a valid hostname"));
    }
    let duration = |name: &str| {
        let text = labels.get(name).map_or("", String::as_str);
        parse_prom_duration(text).map_err(|e| format!("{name}: {e}"))
    };
    let (interval, timeout) = (
        duration("__scrape_interval__")?,
        duration("__scrape_timeout__")?,
    );
    if interval.is_zero() || timeout > interval {
        return Err("scrape interval must be more than zero and at least the timeout".into());
    }
    labels.retain(|name, _| !name.starts_with("__meta_"));
    labels.entry("instance".into()).or_insert(address.clone());
    let url = scrape_url(&rules.params, &labels, &address);
    if labels.get("__scheme__").is_some_and(|s| s != "http") {
        return Err("trailhead scrapes http only (scheme https is not implemented)".into());
    }
    labels.retain(|name, value| !name.starts_with("__") && !value.is_empty());
    Ok(Some(ScrapeTarget {
        job: rules.settings.clone(),
        labels,
        discovered,
        url,
        interval,
        timeout,
    }))
}

/// The URL: scheme, address, path and the params, `__param_*` labels overriding them.
fn scrape_url(params: &BTreeMap<String, Vec<String>>, labels: &Labels, address: &str) -> String {
    let scheme = labels.get("__scheme__").map_or("http", String::as_str);
    let path = labels.get("__metrics_path__").map_or("", String::as_str);
    let mut params: BTreeMap<String, Vec<String>> = params.clone();
    for (name, value) in labels {
        if let Some(param) = name.strip_prefix("__param_") {
            match params.get_mut(param) {
                Some(values) if !values.is_empty() => values[0] = value.clone(),
                _ => {
                    params.insert(param.to_string(), vec![value.clone()]);
                }
            }
        }
    }
    let query: Vec<String> = params
        .iter()
        .flat_map(|(name, values)| {
            values
                .iter()
                .map(move |value| format!("{}={}", escape(name), escape(value)))
        })
        .collect();
    match query.is_empty() {
        true => format!("{scheme}://{address}{path}"),
        false => format!("{scheme}://{address}{path}?{}", query.join("&")),
    }
}

/// Go's url.QueryEscape.
fn escape(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            b' ' => out.push('+'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

/// A duration as Prometheus prints it (`1m30s`, `10s`, `500ms`).
fn format_duration(duration: Duration) -> String {
    let mut ms = duration.as_millis() as u64;
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in [
        ("y", 365 * 86_400_000),
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ] {
        if ms >= size {
            out.push_str(&format!("{}{unit}", ms / size));
            ms %= size;
        }
    }
    out
}

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

/// What a target's loop keeps from one scrape to the next.
#[derive(Default)]
struct LoopState {
    /// The series of the last scrape that had no timestamp of their own (for staleness).
    series: HashSet<Labels>,
    /// Metadata seen so far, for the stale markers of families that are gone.
    metadata: HashMap<String, Metadata>,
}

/// Scrapes `target` every interval until `stop`, feeding `fanout`.
pub async fn run(
    target: ScrapeTarget,
    receiver: Arc<str>,
    fanout: Arc<Fanout>,
    stop: CancellationToken,
) {
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let mut state = LoopState::default();
    // Spread targets over the interval, as Prometheus does, by a hash of the URL.
    let offset = target.interval.as_millis() as u64;
    let offset = Duration::from_millis(fnv(&target.url) % offset.max(1));
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + offset, target.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let started = SystemTime::now();
        let scraped = tokio::select! {
            () = stop.cancelled() => return,
            scraped = tokio::time::timeout(target.timeout, fetch(&client, &target)) => scraped,
        };
        let scraped =
            scraped.unwrap_or_else(|_| Err(format!("scrape timed out after {:?}", target.timeout)));
        let (request, error) = build(&target, &mut state, scraped, started);
        if let Some(e) = &error {
            tracing::warn!(receiver = %receiver, target = %target.url, error = %e, "failed to scrape Prometheus endpoint");
        }
        let batch = Batch::from_message(
            Signal::Metrics,
            &request,
            RequestContext::internal(&receiver),
        );
        if let Err(e) = fanout.consume(batch).await {
            tracing::warn!(receiver = %receiver, target = %target.url, error = %e, "the pipelines refused a scrape");
        }
    }
}

/// A small stable hash (FNV-1a), for the scrape offset.
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ byte as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// One GET of the target: the exposition, or why not.
async fn fetch(
    client: &HttpClient,
    target: &ScrapeTarget,
) -> Result<exposition::Exposition, String> {
    let timeout = format!("{}", target.timeout.as_secs_f64());
    let request = http::Request::get(&target.url)
        .header(http::header::ACCEPT, &target.job.accept)
        .header(http::header::ACCEPT_ENCODING, "gzip")
        .header(
            http::header::USER_AGENT,
            concat!("trailhead/", env!("CARGO_PKG_VERSION")),
        )
        .header("X-Prometheus-Scrape-Timeout-Seconds", timeout)
        .body(Empty::new())
        .map_err(|e| e.to_string())?;
    let response = client.request(request).await.map_err(|e| e.to_string())?;
    if response.status() != http::StatusCode::OK {
        return Err(format!("server returned HTTP status {}", response.status()));
    }
    let header = |name| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let (content_type, encoding) = (
        header(http::header::CONTENT_TYPE),
        header(http::header::CONTENT_ENCODING),
    );
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    let body = match encoding.as_str() {
        "gzip" => {
            let mut text = Vec::new();
            flate2::read::GzDecoder::new(&body[..])
                .read_to_end(&mut text)
                .map_err(|e| format!("gzip: {e}"))?;
            text
        }
        _ => body.to_vec(),
    };
    let text = String::from_utf8(body).map_err(|_| "the exposition is not UTF-8".to_string())?;
    let openmetrics = is_openmetrics(&content_type, target.job.fallback)?;
    exposition::parse(&text, openmetrics)
}

/// The format of a Content-Type, as Prometheus 3 picks its parser.
fn is_openmetrics(content_type: &str, fallback: Option<ScrapeProtocol>) -> Result<bool, String> {
    let media = content_type.split(';').next().unwrap_or("").trim();
    match media {
        "application/openmetrics-text" => Ok(true),
        "text/plain" => Ok(false),
        _ => match fallback {
            Some(protocol) => Ok(protocol.is_openmetrics()),
            None => Err(format!(
                "received unsupported Content-Type {content_type:?} and no fallback_scrape_protocol specified for target"
            )),
        },
    }
}

/// The request of one scrape: its samples (or none, when it failed), stale markers, and the
/// loop's own series; and why the scrape failed, if it did.
fn build(
    target: &ScrapeTarget,
    state: &mut LoopState,
    scraped: Result<exposition::Exposition, String>,
    started: SystemTime,
) -> (ExportMetricsServiceRequest, Option<String>) {
    let now_ms = started
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64;
    let duration = started.elapsed().unwrap_or_default().as_secs_f64();
    let (exposition, error) = match scraped {
        Ok(exposition) => (exposition, None),
        Err(e) => (exposition::Exposition::default(), Some(e)),
    };
    for (name, metadata) in &exposition.metadata {
        state.metadata.insert(name.clone(), metadata.clone());
    }
    let job = target.labels.get("job").map_or("", String::as_str);
    let instance = target.labels.get("instance").map_or("", String::as_str);
    let mut tx = Transaction::new(Target {
        job,
        instance,
        discovered: &target.discovered,
        metadata: &state.metadata,
        version: env!("CARGO_PKG_VERSION"),
    });
    let external = &target.job.external_labels;
    let mut append = |mut labels: Labels, ts: i64, value: f64, sample: Option<&Sample>| {
        for (name, value) in external {
            labels.insert(name.clone(), value.clone());
        }
        let exemplar = sample.and_then(|s| s.exemplar.as_ref());
        if let Err(e) = tx.append(labels, ts, value, exemplar) {
            tracing::debug!(error = %e, "failed to add datapoint");
        }
    };
    let mut current = HashSet::new();
    let mut kept = 0usize;
    let mut added = 0usize;
    for sample in &exposition.samples {
        let Some(labels) = sample_labels(target, sample) else {
            continue;
        };
        kept += 1;
        let ts = match (target.job.honor_timestamps, sample.timestamp_ms) {
            (true, Some(ts)) => ts,
            _ => now_ms,
        };
        let own_timestamp = target.job.honor_timestamps && sample.timestamp_ms.is_some();
        if !state.series.contains(&labels) {
            added += 1;
        }
        if !own_timestamp {
            current.insert(labels.clone());
        }
        append(labels, ts, sample.value, Some(sample));
    }
    for gone in state.series.difference(&current) {
        append(gone.clone(), now_ms, f64::from_bits(STALE_NAN), None);
    }
    state.series = current;
    let report = [
        ("up", if error.is_none() { 1.0 } else { 0.0 }),
        ("scrape_duration_seconds", duration),
        ("scrape_samples_scraped", exposition.samples.len() as f64),
        ("scrape_samples_post_metric_relabeling", kept as f64),
        ("scrape_series_added", added as f64),
    ];
    for (name, value) in report {
        // The target's labels: an exposed sample of the same name cannot clash here.
        let mut labels = target.labels.clone();
        labels.insert("__name__".into(), name.into());
        append(labels, now_ms, value, None);
    }
    (tx.finish().0, error)
}

/// scrape.go's mutateSampleLabels then `metric_relabel_configs`: `None` when dropped.
fn sample_labels(target: &ScrapeTarget, sample: &Sample) -> Option<Labels> {
    let mut labels: Labels = sample.labels.iter().cloned().collect();
    labels.insert("__name__".into(), sample.name.clone());
    if target.job.honor_labels {
        for (name, value) in &target.labels {
            if labels.get(name).is_none_or(String::is_empty) {
                labels.insert(name.clone(), value.clone());
            }
        }
    } else {
        let mut conflicting = Vec::new();
        for (name, value) in &target.labels {
            if let Some(exposed) = labels.insert(name.clone(), value.clone())
                && !exposed.is_empty()
            {
                conflicting.push((name.clone(), exposed));
            }
        }
        for (name, exposed) in conflicting {
            let mut renamed = format!("exported_{name}");
            while labels.get(&renamed).is_some_and(|v| !v.is_empty()) {
                renamed = format!("exported_{renamed}");
            }
            labels.insert(renamed, exposed);
        }
    }
    labels.retain(|_, value| !value.is_empty());
    relabel(&mut labels, &target.job.metric_relabel).then_some(labels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tree::from_str;

    fn config(yaml: &str) -> PromConfig {
        from_str(yaml).unwrap()
    }

    #[test]
    fn static_targets_get_prometheus_labels() {
        let config = config(
            "scrape_configs:\n- job_name: api\n  scrape_interval: 15s\n  params:\n    module: [m1]\n  static_configs:\n  - targets: ['10.0.0.1:9100']\n    labels:\n      team: a\n",
        );
        let targets = targets(&config).unwrap();
        let target = &targets[0];
        let expected: Labels = [("instance", "10.0.0.1:9100"), ("job", "api"), ("team", "a")]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into();
        assert_eq!(target.labels, expected);
        assert_eq!(target.url, "http://10.0.0.1:9100/metrics?module=m1");
        assert_eq!(target.discovered["__scrape_interval__"], "15s");
        assert_eq!(target.discovered["__scheme__"], "http");
        assert_eq!(target.timeout, Duration::from_secs(10));
    }

    #[test]
    fn relabeling_can_drop_and_rewrite_targets() {
        let config = config(
            "scrape_configs:\n- job_name: api\n  relabel_configs:\n  - source_labels: [__address__]\n    regex: 'skip.*'\n    action: drop\n  - source_labels: [__address__]\n    regex: '(.*):\\d+'\n    target_label: __address__\n    replacement: '$1:9999'\n  - target_label: __metrics_path__\n    replacement: /probe\n  static_configs:\n  - targets: ['skip:1', 'keep:1']\n",
        );
        let targets = targets(&config).unwrap();
        assert_eq!(targets.len(), 1);
        assert_eq!(targets[0].url, "http://keep:9999/probe");
        assert_eq!(targets[0].labels["instance"], "keep:9999");
    }

    #[test]
    fn conflicting_labels_are_renamed_unless_honored() {
        let config =
            config("scrape_configs:\n- job_name: api\n  static_configs:\n  - targets: ['h:1']\n");
        let target = targets(&config).unwrap().remove(0);
        let sample = Sample {
            name: "m".into(),
            labels: vec![("job".into(), "inner".into())],
            value: 1.0,
            timestamp_ms: None,
            exemplar: None,
        };
        let labels = sample_labels(&target, &sample).unwrap();
        assert_eq!(labels["job"], "api");
        assert_eq!(labels["exported_job"], "inner");
        let honored = ScrapeTarget {
            job: Arc::new(Job {
                honor_labels: true,
                ..job_settings(&ScrapeConfig::default(), &GlobalConfig::default())
            }),
            ..target
        };
        let labels = sample_labels(&honored, &sample).unwrap();
        assert_eq!(labels["job"], "inner");
        assert!(!labels.contains_key("exported_job"));
    }

    #[test]
    fn accept_header_weights_fall() {
        assert_eq!(
            accept_header(&[ScrapeProtocol::PrometheusText0_0_4]),
            "text/plain;version=0.0.4;q=0.2,*/*;q=0.1"
        );
    }

    #[test]
    fn a_failed_scrape_reports_up_zero_and_marks_series_stale() {
        let config =
            config("scrape_configs:\n- job_name: api\n  static_configs:\n  - targets: ['h:1']\n");
        let target = targets(&config).unwrap().remove(0);
        let mut state = LoopState::default();
        let first = exposition::parse("# TYPE g gauge\ng 1\n", false);
        let (_, error) = build(&target, &mut state, first, SystemTime::now());
        assert_eq!(error, None);
        let (request, error) = build(
            &target,
            &mut state,
            Err("refused".into()),
            SystemTime::now(),
        );
        assert_eq!(error.as_deref(), Some("refused"));
        let json = serde_json::to_string(&request).unwrap();
        assert!(json.contains("\"flags\":1"), "g is marked stale: {json}");
        let up = request.resource_metrics[0].scope_metrics[0]
            .metrics
            .iter()
            .find(|m| m.name == "up")
            .unwrap();
        let Some(opentelemetry_proto::tonic::metrics::v1::metric::Data::Gauge(gauge)) = &up.data
        else {
            panic!("up is a gauge")
        };
        assert_eq!(
            gauge.data_points[0].value,
            Some(opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsDouble(0.0))
        );
    }
}
