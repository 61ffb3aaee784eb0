//! Collector component types trailhead will not have, each with why and what to use instead, so
//! a config brought from the collector is refused with one line that helps rather than
//! "unknown type". trailhead is a gateway: it receives over the network, processes and forwards.
//! What collects from the node it runs on belongs in an agent; what a vendor's exporter did,
//! OTLP to that vendor does.

/// Why a component type of `section` ("receiver", "processor", "exporter", "extension") is out
/// of trailhead's scope, and what to use instead; `None` for a type not listed here.
pub fn reason(section: &str, kind: &str) -> Option<String> {
    let (_, why) = TABLE
        .iter()
        .find(|(s, kinds, _)| *s == section && kinds.contains(&kind))
        .map(|(s, _, why)| (s, why))?;
    Some(format!("`{kind}` is out of trailhead's scope: {why}"))
}

const AGENT: &str = "it collects from the node or cluster it runs on, and trailhead is a gateway; \
    run it in an agent (Grafana Alloy from the k8s-monitoring chart, or the collector as a \
    DaemonSet) that sends OTLP to trailhead";

const VENDOR: &str = "trailhead has no vendor exporters; send OTLP with the `otlp` or \
    `otlp_http` exporter to the vendor's OTLP endpoint (every major backend has one)";

type Entry = (&'static str, &'static [&'static str], &'static str);

const TABLE: &[Entry] = &[
    (
        "receiver",
        &[
            "hostmetrics",
            "host_metrics",
            "kubeletstats",
            "k8s_cluster",
            "k8sobjects",
            "k8s_events",
            "filelog",
            "journald",
            "docker_stats",
            "podman_stats",
            "windowseventlog",
            "otlpjsonfile",
        ],
        AGENT,
    ),
    (
        "receiver",
        &["opencensus"],
        "OpenCensus is retired and the collector removed this receiver (v0.134); its SDKs \
         were replaced by OpenTelemetry's, which send OTLP to the `otlp` receiver",
    ),
    (
        "exporter",
        &["jaeger", "jaeger_thrift"],
        "the collector removed it (v0.85) because Jaeger takes OTLP; use the `otlp` exporter \
         to Jaeger's OTLP port (4317)",
    ),
    (
        "exporter",
        &["loki"],
        "the collector removed it because Loki takes OTLP; use `otlp_http` with \
         endpoint http://LOKI:3100/otlp",
    ),
    (
        "exporter",
        &["opencensus"],
        "OpenCensus is retired and the collector removed this exporter; use `otlp`",
    ),
    (
        "exporter",
        &[
            "datadog",
            "splunk_hec",
            "sapm",
            "signalfx",
            "awsxray",
            "awsemf",
            "googlecloud",
            "googlemanagedprometheus",
            "azuremonitor",
            "azuredataexplorer",
            "elasticsearch",
            "opensearch",
            "newrelic",
            "honeycombmarker",
            "logzio",
            "coralogix",
            "sumologic",
            "dynatrace",
            "clickhouse",
            "tencentcloud_logservice",
        ],
        VENDOR,
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_types_say_why_and_what_instead() {
        // The collector's 2026 snake_case name too (the OpenTelemetry demo's config uses it).
        assert!(reason("receiver", "host_metrics").is_some());
        let agent = reason("receiver", "hostmetrics").unwrap();
        assert!(agent.starts_with("`hostmetrics` is out of trailhead's scope: it collects from"));
        assert!(agent.contains("sends OTLP to trailhead"));
        assert!(reason("exporter", "loki").unwrap().contains("/otlp"));
        assert!(
            reason("exporter", "datadog")
                .unwrap()
                .contains("OTLP endpoint")
        );
        assert!(
            reason("receiver", "opencensus")
                .unwrap()
                .contains("removed")
        );
    }

    #[test]
    fn other_types_and_sections_are_not_listed() {
        assert_eq!(reason("receiver", "otlp"), None);
        assert_eq!(reason("exporter", "hostmetrics"), None);
        assert_eq!(reason("extension", "datadog"), None);
    }
}
