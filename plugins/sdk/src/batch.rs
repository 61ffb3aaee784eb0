//! The batch traits: every method of the WIT's `span-batch`, `log-batch`, `metric-batch` and
//! `profile-batch`, implemented for the host's lent batches here and for the native ones in
//! [`crate::testing`]. Plugin code takes `&impl SpanBatch`, so it runs over either.
//!
//! Each trait is declared once, in the macro below, which also writes the component's
//! implementation: a straight call to the generated resource method of the same name.

use crate::bindings::mathtrail::trailhead::batch as wasm;
use crate::{
    AnyValue, ExponentialBuckets, KeyValue, Level, MetricType, Quantile, SpanEvent, SpanId,
    SpanKind, SpanLink, StatusCode, StringColumn, Temporality, TraceId, ValueColumn,
};
use std::time::Duration;

/// Declares a batch trait (`methods`, then `provided` helper methods with bodies) and
/// implements it for the given wit-bindgen resources by forwarding each method.
macro_rules! batch_trait {
    (
        $(#[$doc:meta])* trait $name:ident $(: $super:ident)? for $($wasm:ty),+;
        $methods:tt
        provided $provided:tt
    ) => {
        batch_trait!(@declare [$(#[$doc])*] $name [$($super)?] $methods $provided);
        $(batch_trait!(@forward $name $wasm $methods);)+
    };
    (@declare [$($doc:tt)*] $name:ident [$($super:ident)?]
        { $( $(#[$mdoc:meta])* fn $m:ident(&self $(, $arg:ident: $ty:ty)*) $(-> $ret:ty)?; )* }
        { $($provided:tt)* }
    ) => {
        $($doc)*
        pub trait $name $(: $super)? {
            $( $(#[$mdoc])* fn $m(&self $(, $arg: $ty)*) $(-> $ret)?; )*
            $($provided)*
        }
    };
    (@forward $name:ident $wasm:ty
        { $( $(#[$mdoc:meta])* fn $m:ident(&self $(, $arg:ident: $ty:ty)*) $(-> $ret:ty)?; )* }
    ) => {
        impl $name for $wasm {
            $( fn $m(&self $(, $arg: $ty)*) $(-> $ret)? { <$wasm>::$m(self $(, $arg)*) } )*
        }
    };
}

batch_trait! {
    /// What every batch has: the levels' shape, removal, attributes, resources and scopes, and
    /// the OTLP escape hatch.
    ///
    /// A write names its entries by index; where it takes a list of values, give one per index
    /// or a single one for all. An index out of range or a list of another length is a bug in
    /// the plugin: the call traps (natively, it panics) with a message that says which.
    trait Batch for wasm::SpanBatch, wasm::LogBatch, wasm::MetricBatch;
    {
        /// How many entries `level` has (0 for a level the signal lacks).
        fn count(&self, level: Level) -> u32;
        /// The index of every entry's parent, one level up: a scope's resource, an item's
        /// scope, an event's, link's or point's item, an exemplar's point. Empty for
        /// `resource`.
        fn parents(&self, level: Level) -> Vec<u32>;
        /// Removes entries and everything under them. A scope or resource left without items
        /// goes with them, and so does a metric left without points. The other entries keep
        /// their indexes until the call ends.
        fn remove(&self, level: Level, indexes: &[u32]);
        /// One attribute of every entry of `level` (no value where an entry lacks it).
        fn attr_column(&self, level: Level, key: &str) -> ValueColumn;
        /// Every attribute of one entry.
        fn attrs(&self, level: Level, index: u32) -> Vec<KeyValue>;
        /// Sets one attribute, inserting or overwriting, on the given entries.
        fn set_attr(&self, level: Level, indexes: &[u32], key: &str, value: &AnyValue);
        /// Sets several attributes, inserting or overwriting, on one entry.
        fn set_attrs(&self, level: Level, index: u32, attrs: &[KeyValue]);
        /// Removes attributes from the given entries.
        fn remove_attrs(&self, level: Level, indexes: &[u32], keys: &[String]);
        /// `dropped_attributes_count` of every entry (0 at levels without such a field).
        fn dropped_attrs_counts(&self, level: Level) -> Vec<u32>;
        /// The `schema_url` of every `resource` or `scope` entry (empty for other levels).
        fn schema_urls(&self, level: Level) -> StringColumn;
        /// The name of every scope.
        fn scope_names(&self) -> StringColumn;
        /// The version of every scope.
        fn scope_versions(&self) -> StringColumn;
        /// The batch as it stands, encoded as its OTLP export request (protobuf).
        fn to_otlp(&self) -> Vec<u8>;
        /// Replaces the whole batch with an encoded OTLP export request of the same signal.
        /// Every index is renumbered after it.
        fn replace_from_otlp(&self, otlp: &[u8]) -> Result<(), String>;
    }
    provided {
        /// Every index of `level`: `0..count(level)`, for a write to all entries.
        fn all(&self, level: Level) -> Vec<u32> {
            (0..self.count(level)).collect()
        }
    }
}

batch_trait! {
    /// A batch of spans (an `ExportTraceServiceRequest`). Levels: `resource`, `scope`,
    /// `item` (spans), `event`, `link`.
    trait SpanBatch: Batch for wasm::SpanBatch;
    {
        /// The name of every span (`item`) or event (`event`).
        fn names(&self, level: Level) -> StringColumn;
        /// Renames the given spans or events.
        fn set_names(&self, level: Level, indexes: &[u32], names: &[String]);
        /// The trace ID of every span (`item`) or link (`link`), packed: 16 bytes each.
        fn trace_ids(&self, level: Level) -> Vec<u8>;
        /// The span ID of every span (`item`) or link (`link`), packed: 8 bytes each.
        fn span_ids(&self, level: Level) -> Vec<u8>;
        /// The parent span ID of every span, packed: all zero for a root span.
        fn parent_span_ids(&self) -> Vec<u8>;
        /// The W3C trace state of every span (`item`) or link (`link`).
        fn trace_states(&self, level: Level) -> StringColumn;
        /// Sets the trace state of the given spans or links.
        fn set_trace_states(&self, level: Level, indexes: &[u32], states: &[String]);
        /// The `flags` of every span (`item`) or link (`link`).
        fn flags(&self, level: Level) -> Vec<u32>;
        /// The kind of every span.
        fn kinds(&self) -> Vec<SpanKind>;
        /// Sets the kind of the given spans.
        fn set_kinds(&self, indexes: &[u32], kinds: &[SpanKind]);
        /// When every span started (ns since the Unix epoch).
        fn start_times(&self) -> Vec<u64>;
        /// When every span ended (ns since the Unix epoch).
        fn end_times(&self) -> Vec<u64>;
        /// Sets when the given spans started.
        fn set_start_times(&self, indexes: &[u32], times: &[u64]);
        /// Sets when the given spans ended.
        fn set_end_times(&self, indexes: &[u32], times: &[u64]);
        /// The status code of every span.
        fn status_codes(&self) -> Vec<StatusCode>;
        /// The status message of every span.
        fn status_messages(&self) -> StringColumn;
        /// Sets the status of the given spans.
        fn set_status(&self, indexes: &[u32], code: StatusCode, message: &str);
        /// `dropped_events_count` of every span.
        fn dropped_events_counts(&self) -> Vec<u32>;
        /// `dropped_links_count` of every span.
        fn dropped_links_counts(&self) -> Vec<u32>;
        /// When every event happened.
        fn event_times(&self) -> Vec<u64>;
        /// Appends an event to a span. It gets the next `event` index.
        fn add_event(&self, span: u32, event: &SpanEvent);
        /// Appends a link to a span. It gets the next `link` index.
        fn add_link(&self, span: u32, link: &SpanLink);
    }
    provided {
        /// How long every span took (end − start; zero when the end is before the start).
        fn durations(&self) -> Vec<Duration> {
            let ends = self.end_times();
            let starts = self.start_times();
            starts
                .iter()
                .zip(&ends)
                .map(|(start, end)| Duration::from_nanos(end.saturating_sub(*start)))
                .collect()
        }
        /// The trace ID of every span (`item`) or link (`link`), unpacked.
        fn trace_id_list(&self, level: Level) -> Vec<TraceId> {
            TraceId::split(&self.trace_ids(level)).collect()
        }
        /// The span ID of every span (`item`) or link (`link`), unpacked.
        fn span_id_list(&self, level: Level) -> Vec<SpanId> {
            SpanId::split(&self.span_ids(level)).collect()
        }
    }
}

batch_trait! {
    /// A batch of log records (an `ExportLogsServiceRequest`). Levels: `resource`, `scope`,
    /// `item` (log records).
    trait LogBatch: Batch for wasm::LogBatch;
    {
        /// When every event happened (`time_unix_nano`).
        fn times(&self) -> Vec<u64>;
        /// When every record was first observed (`observed_time_unix_nano`).
        fn observed_times(&self) -> Vec<u64>;
        /// Sets `time_unix_nano` of the given records.
        fn set_times(&self, indexes: &[u32], times: &[u64]);
        /// The severity number of every record (0 unset, 1-4 TRACE, 5-8 DEBUG, 9-12 INFO,
        /// 13-16 WARN, 17-20 ERROR, 21-24 FATAL).
        fn severity_numbers(&self) -> Vec<i32>;
        /// The severity text of every record, as the source wrote it.
        fn severity_texts(&self) -> StringColumn;
        /// Sets the severity number and text of the given records.
        fn set_severity(&self, indexes: &[u32], number: i32, text: &str);
        /// The body of every record (no value where it has none).
        fn bodies(&self) -> ValueColumn;
        /// Replaces the bodies of the given records.
        fn set_bodies(&self, indexes: &[u32], bodies: &[AnyValue]);
        /// The event name of every record.
        fn event_names(&self) -> StringColumn;
        /// The trace ID of every record, packed: 16 bytes each.
        fn trace_ids(&self) -> Vec<u8>;
        /// The span ID of every record, packed: 8 bytes each.
        fn span_ids(&self) -> Vec<u8>;
        /// The `flags` of every record (W3C trace flags in the low byte).
        fn flags(&self) -> Vec<u32>;
    }
    provided {}
}

batch_trait! {
    /// A batch of metrics (an `ExportMetricsServiceRequest`). Levels: `resource`, `scope`,
    /// `item` (metrics), `point` (data points of every type), `exemplar`.
    trait MetricBatch: Batch for wasm::MetricBatch;
    {
        /// The name of every metric.
        fn names(&self) -> StringColumn;
        /// The description of every metric.
        fn descriptions(&self) -> StringColumn;
        /// The unit of every metric.
        fn units(&self) -> StringColumn;
        /// Renames the given metrics.
        fn set_names(&self, indexes: &[u32], names: &[String]);
        /// Sets the description of the given metrics.
        fn set_descriptions(&self, indexes: &[u32], descriptions: &[String]);
        /// Sets the unit of the given metrics.
        fn set_units(&self, indexes: &[u32], units: &[String]);
        /// The type of every metric.
        fn types(&self) -> Vec<MetricType>;
        /// The aggregation temporality of every metric.
        fn temporalities(&self) -> Vec<Temporality>;
        /// Whether every metric is monotonic (only sums can be).
        fn monotonic(&self) -> Vec<bool>;
        /// When every point's aggregation window started (0 for gauges).
        fn start_times(&self) -> Vec<u64>;
        /// When every point (`point`) or exemplar (`exemplar`) was recorded.
        fn times(&self, level: Level) -> Vec<u64>;
        /// The value of every gauge or sum point (`point`) or exemplar (`exemplar`): an int
        /// or a double; no value for points of other types.
        fn values(&self, level: Level) -> ValueColumn;
        /// The `count` of every histogram, exponential histogram and summary point.
        fn counts(&self) -> Vec<u64>;
        /// The `sum` of every histogram, exponential histogram and summary point, where set.
        fn sums(&self) -> Vec<Option<f64>>;
        /// The `min` of every histogram and exponential histogram point, where set.
        fn mins(&self) -> Vec<Option<f64>>;
        /// The `max` of every histogram and exponential histogram point, where set.
        fn maxes(&self) -> Vec<Option<f64>>;
        /// The `flags` of every point (1 means no recorded value).
        fn flags(&self) -> Vec<u32>;
        /// A histogram point's bucket counts (empty for other points).
        fn bucket_counts(&self, point: u32) -> Vec<u64>;
        /// A histogram point's explicit bounds (empty for other points).
        fn explicit_bounds(&self, point: u32) -> Vec<f64>;
        /// An exponential histogram point's buckets (`None` for other points).
        fn exponential_buckets(&self, point: u32) -> Option<ExponentialBuckets>;
        /// A summary point's quantiles (empty for other points).
        fn quantiles(&self, point: u32) -> Vec<Quantile>;
        /// The trace ID of every exemplar, packed: 16 bytes each.
        fn exemplar_trace_ids(&self) -> Vec<u8>;
        /// The span ID of every exemplar, packed: 8 bytes each.
        fn exemplar_span_ids(&self) -> Vec<u8>;
    }
    provided {}
}

batch_trait! {
    /// A batch of profiles (an `ExportProfilesServiceRequest`, `profiles.v1development`), at
    /// the resource level only: one `resource` entry per `ResourceProfiles`; every other level
    /// has no entries (a count of 0, empty columns; an index naming one panics, as the host
    /// traps). The rest of the request (its dictionary, profiles and samples) is read-only,
    /// through [`to_otlp`](ProfileBatch::to_otlp).
    ///
    /// There is no `remove`: a profile's resource cannot be removed, because its samples would
    /// lose it. To drop a whole request, return an `Err` under `on_failure: drop`.
    trait ProfileBatch for wasm::ProfileBatch;
    {
        /// How many resources the batch has (`resource`); 0 for every other level.
        fn count(&self, level: Level) -> u32;
        /// One attribute of every resource (no value where a resource lacks it).
        fn attr_column(&self, level: Level, key: &str) -> ValueColumn;
        /// Every attribute of one resource.
        fn attrs(&self, level: Level, index: u32) -> Vec<KeyValue>;
        /// Sets one attribute, inserting or overwriting, on the given resources.
        fn set_attr(&self, level: Level, indexes: &[u32], key: &str, value: &AnyValue);
        /// Sets several attributes, inserting or overwriting, on one resource.
        fn set_attrs(&self, level: Level, index: u32, attrs: &[KeyValue]);
        /// Removes attributes from the given resources.
        fn remove_attrs(&self, level: Level, indexes: &[u32], keys: &[String]);
        /// The `schema_url` of every `ResourceProfiles` (empty for other levels).
        fn schema_urls(&self, level: Level) -> StringColumn;
        /// The whole request as it stands, this call's resource changes included, encoded
        /// (protobuf).
        fn to_otlp(&self) -> Vec<u8>;
    }
    provided {
        /// Every resource index: `0..count(Level::Resource)`, for a write to all of them.
        fn all_resources(&self) -> Vec<u32> {
            (0..self.count(Level::Resource)).collect()
        }
    }
}
