//! The built-in `filter` processor: drops the spans, span events, metrics, data points and log
//! records that match any of its OTTL conditions, as the collector's filterprocessor does.
//!
//! ```yaml
//! processors:
//!   filter:
//!     error_mode: ignore
//!     traces:
//!       span: ['attributes["http.route"] == "/healthz"']
//!     logs:
//!       log_record: ['severity_number < SEVERITY_NUMBER_INFO']
//! ```
//!
//! Conditions read whole columns from the host (one call per path per batch), so the cost per
//! item is the comparison itself. Spans are filtered before their events, metrics before
//! their data points, and a metric whose data points all match goes with them.

mod config;

use config::{Condition, Config, ErrorMode, Field};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use trailhead_ottl::{Columns, Path, Value};
use trailhead_plugin_v0_1::{
    AnyValue, LogBatch, MetricBatch, Plugin, PluginError, PluginInfo, Signal, SpanBatch, host,
};

thread_local! {
    static CONFIG: RefCell<Option<Config>> = const { RefCell::new(None) };
}

/// One level of a batch (spans, span events, metrics, data points or log records): its item
/// count, and its columns fetched from the host once each.
/// Fetches one field's column from the host.
type Fetch<'a> = Box<dyn FnMut(&Field) -> Vec<Value> + 'a>;

struct Level<'a> {
    len: usize,
    fetch: Fetch<'a>,
    cache: HashMap<Field, Rc<[Value]>>,
}

impl<'a> Level<'a> {
    fn new(len: u32, fetch: impl FnMut(&Field) -> Vec<Value> + 'a) -> Self {
        Level {
            len: len as usize,
            fetch: Box::new(fetch),
            cache: HashMap::new(),
        }
    }

    fn column(&mut self, field: &Field) -> Rc<[Value]> {
        if let Some(values) = self.cache.get(field) {
            return values.clone();
        }
        let values: Rc<[Value]> = (self.fetch)(field).into();
        self.cache.insert(field.clone(), values.clone());
        values
    }

    /// A nested level (events of these spans, points of these metrics): its own fields come
    /// from `own`, the rest from this level through `owners`.
    fn nested<'b>(
        &'b mut self,
        owners: Vec<u32>,
        mut own: impl FnMut(&Field) -> Vec<Value> + 'b,
    ) -> Level<'b> {
        Level::new(owners.len() as u32, move |field| match field {
            Field::Parent(f) => pick(&self.column(f), &owners),
            Field::ResourceAttribute(_) | Field::ScopeName => pick(&self.column(field), &owners),
            _ => own(field),
        })
    }
}

fn pick(values: &[Value], owners: &[u32]) -> Vec<Value> {
    owners
        .iter()
        .map(|&o| values.get(o as usize).cloned().unwrap_or(Value::Nil))
        .collect()
}

/// A condition's paths, answered from a level.
struct Lookup<'l, 'a> {
    level: &'l mut Level<'a>,
    fields: &'l HashMap<Path, Field>,
}

impl Columns for Lookup<'_, '_> {
    fn item_count(&self) -> usize {
        self.level.len
    }
    fn column(&mut self, path: &Path) -> Rc<[Value]> {
        match self.fields.get(path) {
            Some(field) => self.level.column(field),
            None => vec![Value::Nil; self.level.len].into(),
        }
    }
}

fn value(v: Option<AnyValue>) -> Value {
    match v {
        None => Value::Nil,
        Some(AnyValue::Str(s)) => Value::Str(s),
        Some(AnyValue::Boolean(b)) => Value::Bool(b),
        Some(AnyValue::Int(i)) => Value::Int(i),
        Some(AnyValue::Double(d)) => Value::Double(d),
        Some(AnyValue::Bytes(b)) => Value::Bytes(b),
        Some(AnyValue::ArrayPb(_)) => Value::Composite("an array"),
        Some(AnyValue::KvlistPb(_)) => Value::Composite("a map"),
    }
}

fn strings(column: trailhead_plugin_v0_1::StringColumn) -> Vec<Value> {
    let mut start = 0;
    column
        .ends
        .iter()
        .map(|&end| {
            let s = String::from_utf8_lossy(&column.bytes[start..end as usize]).into_owned();
            start = end as usize;
            Value::Str(s)
        })
        .collect()
}

fn unpack(column: trailhead_plugin_v0_1::ValueColumn) -> Vec<Value> {
    let mut start = 0;
    (0..column.kinds.len())
        .map(|i| {
            let end = column.ends[i] as usize;
            let bytes = &column.bytes[start..end];
            start = end;
            let scalar = column.scalars[i];
            match column.kinds[i] {
                1 => Value::Str(String::from_utf8_lossy(bytes).into_owned()),
                2 => Value::Bool(scalar != 0),
                3 => Value::Int(scalar),
                4 => Value::Double(f64::from_bits(scalar as u64)),
                5 => Value::Bytes(bytes.to_vec()),
                6 => Value::Composite("an array"),
                7 => Value::Composite("a map"),
                _ => Value::Nil,
            }
        })
        .collect()
}

fn values<T>(items: Vec<T>, f: impl Fn(T) -> Value) -> Vec<Value> {
    items.into_iter().map(f).collect()
}

/// One resource attribute for every item, asking the host once per resource.
fn per_resource(resources: &[u32], get: impl Fn(u32) -> Option<AnyValue>) -> Vec<Value> {
    let mut seen: HashMap<u32, Value> = HashMap::new();
    resources
        .iter()
        .map(|&r| seen.entry(r).or_insert_with(|| value(get(r))).clone())
        .collect()
}

/// Runs `conditions` over a level; returns the items that match any of them.
fn matching(
    conditions: &[Condition],
    level: &mut Level,
    mode: ErrorMode,
    what: &str,
) -> Result<Vec<u32>, PluginError> {
    let mut matched = vec![false; level.len];
    for condition in conditions {
        let outcome = condition.expr.eval(&mut Lookup {
            level,
            fields: &condition.fields,
        });
        if let Some(first) = outcome.errors.first() {
            let message = format!(
                "condition `{}` failed on {} {what}(s), first {what} {}: {}",
                condition.text,
                outcome.errors.len(),
                first.item,
                first.message
            );
            match mode {
                ErrorMode::Propagate => return Err(PluginError { message }),
                ErrorMode::Ignore => host::log(host::Level::Warn, &message),
                ErrorMode::Silent => {}
            }
        }
        for (m, hit) in matched.iter_mut().zip(outcome.matched) {
            *m |= hit;
        }
    }
    Ok((0..matched.len() as u32)
        .filter(|&i| matched[i as usize])
        .collect())
}

fn with_config<T>(f: impl FnOnce(&Config) -> T) -> T {
    CONFIG.with(|c| f(c.borrow().as_ref().expect("init runs before any batch")))
}

struct Filter;

impl Plugin for Filter {
    fn init(config: &str) -> Result<PluginInfo, String> {
        let config = Config::parse(config)?;
        let c = &config.conditions;
        let mut signals = Vec::new();
        if !c.span.is_empty() || !c.spanevent.is_empty() {
            signals.push(Signal::Traces);
        }
        if !c.metric.is_empty() || !c.datapoint.is_empty() {
            signals.push(Signal::Metrics);
        }
        if !c.log_record.is_empty() {
            signals.push(Signal::Logs);
        }
        CONFIG.with(|slot| *slot.borrow_mut() = Some(config));
        Ok(PluginInfo {
            name: "filter".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            signals,
        })
    }

    fn process_spans(b: &SpanBatch) -> Result<(), PluginError> {
        with_config(|config| {
            let c = &config.conditions;
            let resources = std::cell::OnceCell::new();
            let mut spans = Level::new(b.span_count(), |field| match field {
                Field::Name => strings(b.span_names_packed()),
                Field::Kind => values(b.span_kinds(), |k| Value::Int(k.into())),
                Field::StatusCode => values(b.span_status_codes(), |k| Value::Int(k.into())),
                Field::Attribute(k) => unpack(b.span_attr_column_packed(k)),
                Field::ResourceAttribute(k) => {
                    per_resource(resources.get_or_init(|| b.span_resources()), |r| {
                        b.resource_attr(r, k)
                    })
                }
                Field::ScopeName => values(b.span_scope_names(), Value::Str),
                _ => Vec::new(),
            });
            if !c.span.is_empty() {
                let dropped = matching(&c.span, &mut spans, config.error_mode, "span")?;
                b.drop_spans(&dropped);
            }
            if !c.spanevent.is_empty() {
                let mut events = spans.nested(b.event_spans(), |field| match field {
                    Field::Name => values(b.event_names(), Value::Str),
                    Field::Attribute(k) => values(b.event_attr_column(k), value),
                    _ => Vec::new(),
                });
                let dropped = matching(&c.spanevent, &mut events, config.error_mode, "span event")?;
                b.drop_events(&dropped);
            }
            Ok(())
        })
    }

    fn process_metrics(b: &MetricBatch) -> Result<(), PluginError> {
        with_config(|config| {
            let c = &config.conditions;
            let resources = std::cell::OnceCell::new();
            let mut metrics = Level::new(b.metric_count(), |field| match field {
                Field::Name => values(b.metric_names(), Value::Str),
                Field::Type => values(b.metric_types(), |t| Value::Int(metric_type(&t))),
                Field::ResourceAttribute(k) => {
                    per_resource(resources.get_or_init(|| b.metric_resources()), |r| {
                        b.resource_attr(r, k)
                    })
                }
                Field::ScopeName => values(b.metric_scope_names(), Value::Str),
                _ => Vec::new(),
            });
            if !c.metric.is_empty() {
                let dropped = matching(&c.metric, &mut metrics, config.error_mode, "metric")?;
                b.drop_metrics(&dropped);
            }
            if !c.datapoint.is_empty() {
                let mut points = metrics.nested(b.point_metrics(), |field| match field {
                    Field::Attribute(k) => values(b.point_attr_column(k), value),
                    _ => Vec::new(),
                });
                let dropped = matching(&c.datapoint, &mut points, config.error_mode, "data point")?;
                b.drop_points(&dropped);
            }
            Ok(())
        })
    }

    fn process_logs(b: &LogBatch) -> Result<(), PluginError> {
        with_config(|config| {
            let resources = std::cell::OnceCell::new();
            let mut records = Level::new(b.record_count(), |field| match field {
                Field::SeverityNumber => {
                    values(b.record_severity_numbers(), |n| Value::Int(n.into()))
                }
                Field::Body => values(b.record_bodies(), value),
                Field::Attribute(k) => values(b.record_attr_column(k), value),
                Field::ResourceAttribute(k) => {
                    per_resource(resources.get_or_init(|| b.record_resources()), |r| {
                        b.resource_attr(r, k)
                    })
                }
                Field::ScopeName => values(b.record_scope_names(), Value::Str),
                _ => Vec::new(),
            });
            let dropped = matching(
                &config.conditions.log_record,
                &mut records,
                config.error_mode,
                "log record",
            )?;
            b.drop_records(&dropped);
            Ok(())
        })
    }
}

/// The host's metric type names as OTTL's METRIC_DATA_TYPE_* numbers.
fn metric_type(name: &str) -> i64 {
    match name {
        "gauge" => 1,
        "sum" => 2,
        "histogram" => 3,
        "exponential-histogram" => 4,
        "summary" => 5,
        _ => 0,
    }
}

trailhead_plugin_v0_1::export!(Filter);
