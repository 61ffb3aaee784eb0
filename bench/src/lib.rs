//! What trailhead's benchmark binaries share: building OTLP requests.

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{Metric, ResourceMetrics, ScopeMetrics};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;

/// A string attribute.
pub fn string_kv(key: impl Into<String>, value: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

/// A resource with `attributes` attributes `resource.{i}` = `lessons-{i}`, plus `extra`.
pub fn resource(attributes: usize, extra: impl IntoIterator<Item = KeyValue>) -> Resource {
    Resource {
        attributes: (0..attributes)
            .map(|a| string_kv(format!("resource.{a}"), format!("lessons-{a}")))
            .chain(extra)
            .collect(),
        ..Default::default()
    }
}

/// An encoded `ExportTraceServiceRequest` of one resource and one scope.
pub fn traces_request(resource: Resource, spans: Vec<Span>) -> Bytes {
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    Bytes::from(request.encode_to_vec())
}

/// An encoded `ExportLogsServiceRequest` of one resource and one scope.
pub fn logs_request(resource: Resource, log_records: Vec<LogRecord>) -> Bytes {
    let request = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(resource),
            scope_logs: vec![ScopeLogs {
                log_records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    Bytes::from(request.encode_to_vec())
}

/// An encoded `ExportMetricsServiceRequest` of one resource and one scope.
pub fn metrics_request(resource: Resource, metrics: Vec<Metric>) -> Bytes {
    let request = ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(resource),
            scope_metrics: vec![ScopeMetrics {
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    Bytes::from(request.encode_to_vec())
}
