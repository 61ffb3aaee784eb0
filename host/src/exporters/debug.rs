//! The `debug` exporter: prints what arrives on stdout, so a newcomer sees telemetry flow.

use super::queue::{BatchPolicy, ExporterSpec, QueueSettings, RetrySettings};
use super::{ExportError, Payload, SendOutcome, Sink};
use crate::pdata::{Signal, json};
use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::Value;
use std::io::Write;
use std::sync::Arc;

/// `exporters: debug:`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DebugExporterConfig {
    /// `basic`: a count per batch; `normal`: a line per item; `detailed`: the whole batch as
    /// OTLP/JSON.
    pub verbosity: Verbosity,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verbosity {
    #[default]
    Basic,
    Normal,
    Detailed,
}

impl DebugExporterConfig {
    pub fn build(&self, id: &str, signal: Signal) -> ExporterSpec {
        ExporterSpec {
            id: id.to_string(),
            signal,
            sink: Arc::new(DebugSink {
                id: id.to_string(),
                signal,
                verbosity: self.verbosity,
            }),
            queue: QueueSettings {
                enabled: true,
                num_consumers: 1,
                queue_size: 1000,
                ..QueueSettings::default()
            },
            batch: BatchPolicy::UNBATCHED,
            retry: RetrySettings {
                enabled: false,
                ..RetrySettings::default()
            },
        }
    }
}

/// `exporters: logging:`, the collector's old name of `debug` (removed from the collector in
/// v0.111; configs still use it). It runs as `debug`, with the old exporter's default verbosity
/// (`normal`) and its `loglevel` mapped onto `verbosity` as the collector mapped it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoggingExporterConfig {
    /// Deprecated by the collector for `verbosity`: `debug` is `detailed`, `info` is `normal`,
    /// `warn`, `error` (and zap's `dpanic`, `panic`, `fatal`) are `basic`.
    pub loglevel: Option<LogLevel>,
    /// As `debug`'s `verbosity`; `normal` when neither it nor `loglevel` is set.
    pub verbosity: Option<Verbosity>,
}

/// zap's levels, as the `logging` exporter's `loglevel` took them (either case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    #[serde(alias = "DEBUG")]
    Debug,
    #[serde(alias = "INFO")]
    Info,
    #[serde(alias = "WARN")]
    Warn,
    #[serde(alias = "ERROR")]
    Error,
    #[serde(alias = "DPANIC")]
    Dpanic,
    #[serde(alias = "PANIC")]
    Panic,
    #[serde(alias = "FATAL")]
    Fatal,
}

impl LoggingExporterConfig {
    /// The `debug` exporter it runs as.
    pub fn as_debug(&self) -> DebugExporterConfig {
        let from_level = self.loglevel.map(|level| match level {
            LogLevel::Debug => Verbosity::Detailed,
            LogLevel::Info => Verbosity::Normal,
            _ => Verbosity::Basic,
        });
        DebugExporterConfig {
            verbosity: self.verbosity.or(from_level).unwrap_or(Verbosity::Normal),
        }
    }

    /// What the collector refused in it, as (key, why).
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        match (self.loglevel, self.verbosity) {
            (Some(_), Some(_)) => vec![(
                "loglevel",
                "`loglevel` and `verbosity` are incompatible; use only `verbosity`".into(),
            )],
            _ => Vec::new(),
        }
    }

    /// The warning a config using it gets: what to write instead.
    pub fn warning(&self) -> String {
        let verbosity = format!("{:?}", self.as_debug().verbosity).to_lowercase();
        format!(
            "the `logging` exporter is the old name of `debug`, removed from the collector; \
             running it as `debug` with verbosity: {verbosity}"
        )
    }
}

struct DebugSink {
    id: String,
    signal: Signal,
    verbosity: Verbosity,
}

impl Sink for DebugSink {
    fn send(
        &self,
        payload: Payload,
        items: usize,
    ) -> BoxFuture<'_, Result<SendOutcome, ExportError>> {
        let text = render(
            &self.id,
            self.signal,
            self.verbosity,
            &payload.to_bytes(),
            items,
        );
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
        Box::pin(async { Ok(SendOutcome::default()) })
    }
}

/// The text printed for one batch.
pub fn render(
    id: &str,
    signal: Signal,
    verbosity: Verbosity,
    payload: &[u8],
    items: usize,
) -> String {
    let mut text = format!("{id} {signal}: {items} {}\n", signal.item_name());
    if verbosity == Verbosity::Basic {
        return text;
    }
    let request = match json::to_json(signal, payload) {
        Ok(request) => request,
        Err(e) => return text + &format!("  (cannot decode: {e})\n"),
    };
    if verbosity == Verbosity::Detailed {
        return text + &serde_json::to_string_pretty(&request).unwrap_or_default() + "\n";
    }
    let (resources, scopes, records) = match signal {
        Signal::Traces => ("resourceSpans", "scopeSpans", "spans"),
        Signal::Metrics => ("resourceMetrics", "scopeMetrics", "metrics"),
        Signal::Logs => ("resourceLogs", "scopeLogs", "logRecords"),
        Signal::Profiles => ("resourceProfiles", "scopeProfiles", "profiles"),
    };
    for resource in array(&request, resources) {
        let service = array(&resource["resource"], "attributes")
            .iter()
            .find(|kv| kv["key"] == "service.name")
            .and_then(|kv| kv["value"]["stringValue"].as_str())
            .unwrap_or("unknown_service")
            .to_string();
        for scope in array(resource, scopes) {
            for record in array(scope, records) {
                let what = match signal {
                    Signal::Traces => format!(
                        "span {} trace_id={} span_id={}",
                        record["name"], record["traceId"], record["spanId"]
                    ),
                    Signal::Metrics => format!("metric {}", record["name"]),
                    Signal::Logs => format!("log {} {}", record["severityText"], record["body"]),
                    Signal::Profiles => format!(
                        "profile profile_id={} samples={}",
                        record["profileId"],
                        array(record, "samples").len()
                    ),
                };
                text += &format!("  service={service} {what}\n");
            }
        }
    }
    text
}

fn array<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    value[key].as_array().map_or(&[], Vec::as_slice)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Each verbosity shows more: a count, then a line per span naming its service.
    #[test]
    fn verbosity_levels() {
        let payload = crate::pdata::wire::tests_support::traces_request(2);
        let basic = render("debug", Signal::Traces, Verbosity::Basic, &payload, 2);
        assert_eq!(basic, "debug traces: 2 spans\n");
        let normal = render("debug", Signal::Traces, Verbosity::Normal, &payload, 2);
        assert_eq!(
            normal.lines().filter(|l| l.contains("span \"op\"")).count(),
            2,
            "{normal}"
        );
        let detailed = render("debug", Signal::Traces, Verbosity::Detailed, &payload, 2);
        assert!(detailed.contains("\"resourceSpans\""), "{detailed}");
    }

    // `logging` runs as `debug`: `loglevel` maps as the collector mapped it, the old default
    // is `normal`, and `loglevel` with `verbosity` is refused as the collector refused it.
    #[test]
    fn logging_is_the_old_debug() {
        let read = |text: &str| crate::config::tree::from_str::<LoggingExporterConfig>(text);
        let verbosity = |text: &str| read(text).unwrap().as_debug().verbosity;
        assert_eq!(verbosity("{}"), Verbosity::Normal);
        assert_eq!(verbosity("loglevel: debug"), Verbosity::Detailed);
        assert_eq!(verbosity("loglevel: INFO"), Verbosity::Normal);
        assert_eq!(verbosity("loglevel: warn"), Verbosity::Basic);
        assert_eq!(verbosity("loglevel: error"), Verbosity::Basic);
        assert_eq!(verbosity("verbosity: basic"), Verbosity::Basic);
        let both = read("loglevel: debug\nverbosity: basic").unwrap();
        assert_eq!(both.problems()[0].0, "loglevel");
        assert!(read("loglevel: trace").is_err());
        assert!(
            read("verbosity: detailed")
                .unwrap()
                .warning()
                .contains("`debug`")
        );
    }
}
