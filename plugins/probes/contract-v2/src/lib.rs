//! A test plugin written straight against `wit/0.2.0`, without the SDK, so the host's side of
//! the contract is tested on its own. Config `{"mode": "…"}`:
//! - `columns`: on spans, writes what it read back as attributes the test checks:
//!   - on every span, `probe.duration_ns` (end − start) and `probe.trace_id` (hex);
//!   - on every scope, `probe.scope` (`name@version`);
//!   - on every resource, `probe.calls`: how many batches this instance has seen (its state);
//!   - on every span with links, `probe.links`: each link's `trace/span/state/flags` (hex IDs),
//!     joined by `,`, found through the links' parents.
//!
//!   A batch with a span named `trap-now` makes it panic instead.
//!
//!   It also removes every event named `drop-me`, adds a link to span 0, and renames server
//!   spans to upper case. On metrics it writes, on every point with exemplars,
//!   `probe.exemplars`: each one's `trace/span` (hex), then removes the first exemplar and
//!   renames every metric to `probe.<name>`. On logs it sets severity 17 `ERROR` where the body says `boom`.
//! - `bad-index`: sets an attribute on span `count(item)`, which is out of range (a trap).
//! - `bad-length`: renames span 0 three times with 2 names (a trap).

wit_bindgen::generate!({
    path: "../../../wit/0.2.0",
    world: "processor",
});

// The world's `use` puts the batch types, `plugin-info` and `plugin-error` at the top level.
use mathtrail::trailhead::types::{
    AnyValue, Level, Signal, SpanKind, SpanLink, StringColumn, ValueKind,
};
use std::cell::Cell;

thread_local! {
    static MODE: Cell<&'static str> = const { Cell::new("columns") };
    static CALLS: Cell<i64> = const { Cell::new(0) };
}

struct Probe;

fn strings(column: &StringColumn) -> Vec<&str> {
    let mut start = 0;
    column
        .ends
        .iter()
        .map(|&end| {
            let s = std::str::from_utf8(&column.bytes[start..end as usize]).unwrap_or("");
            start = end as usize;
            s
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Guest for Probe {
    fn init(config: String) -> Result<PluginInfo, String> {
        let mode = ["columns", "bad-index", "bad-length"]
            .into_iter()
            .find(|m| config.contains(&format!("\"{m}\"")))
            .ok_or_else(|| {
                format!("mode: expected columns, bad-index or bad-length in {config}")
            })?;
        MODE.with(|m| m.set(mode));
        Ok(PluginInfo {
            name: "contract-v2".into(),
            version: "0.2.0".into(),
            signals: vec![Signal::Traces, Signal::Logs, Signal::Metrics],
        })
    }

    fn process_spans(batch: &SpanBatch) -> Result<(), PluginError> {
        let spans = batch.count(Level::Item);
        match MODE.with(Cell::get) {
            "bad-index" => batch.set_attr(Level::Item, &[spans], "x", &AnyValue::Int(1)),
            "bad-length" => {
                batch.set_names(Level::Item, &[0, 0, 0], &["a".to_string(), "b".to_string()])
            }
            _ => columns(batch),
        }
        Ok(())
    }

    fn process_logs(batch: &LogBatch) -> Result<(), PluginError> {
        let bodies = batch.bodies();
        let boom: Vec<u32> = (0..bodies.kinds.len())
            .filter(|&i| {
                let start = if i == 0 {
                    0
                } else {
                    bodies.ends[i - 1] as usize
                };
                bodies.kinds[i] == ValueKind::Str
                    && &bodies.bytes[start..bodies.ends[i] as usize] == b"boom"
            })
            .map(|i| i as u32)
            .collect();
        if !boom.is_empty() {
            batch.set_severity(&boom, 17, "ERROR");
        }
        Ok(())
    }

    fn process_metrics(batch: &MetricBatch) -> Result<(), PluginError> {
        exemplar_ids(batch);
        if batch.count(Level::Exemplar) > 0 {
            batch.remove(Level::Exemplar, &[0]);
        }
        let names: Vec<String> = strings(&batch.names())
            .into_iter()
            .map(|n| format!("probe.{n}"))
            .collect();
        let all: Vec<u32> = (0..names.len() as u32).collect();
        batch.set_names(&all, &names);
        Ok(())
    }
}

fn columns(batch: &SpanBatch) {
    // A span named `trap-now` makes the instance trap, so the test can see its state go.
    if strings(&batch.names(Level::Item)).contains(&"trap-now") {
        panic!("asked to trap by a span named trap-now");
    }
    let calls = CALLS.with(|c| {
        c.set(c.get() + 1);
        c.get()
    });
    let resources: Vec<u32> = (0..batch.count(Level::Resource)).collect();
    batch.set_attr(
        Level::Resource,
        &resources,
        "probe.calls",
        &AnyValue::Int(calls),
    );

    let (starts, ends, ids) = (
        batch.start_times(),
        batch.end_times(),
        batch.trace_ids(Level::Item),
    );
    for i in 0..starts.len() {
        let duration = ends[i].saturating_sub(starts[i]) as i64;
        batch.set_attrs(
            Level::Item,
            i as u32,
            &[
                mathtrail::trailhead::types::KeyValue {
                    key: "probe.duration_ns".into(),
                    value: AnyValue::Int(duration),
                },
                mathtrail::trailhead::types::KeyValue {
                    key: "probe.trace_id".into(),
                    value: AnyValue::Str(hex(&ids[i * 16..i * 16 + 16])),
                },
            ],
        );
    }
    link_columns(batch);
    let (names, versions) = (batch.scope_names(), batch.scope_versions());
    for (s, (name, version)) in strings(&names).iter().zip(strings(&versions)).enumerate() {
        let tag = AnyValue::Str(format!("{name}@{version}"));
        batch.set_attr(Level::Scope, &[s as u32], "probe.scope", &tag);
    }

    let events = batch.names(Level::Event);
    let doomed: Vec<u32> = strings(&events)
        .iter()
        .enumerate()
        .filter(|(_, n)| **n == "drop-me")
        .map(|(i, _)| i as u32)
        .collect();
    batch.remove(Level::Event, &doomed);

    let server: Vec<u32> = batch
        .kinds()
        .iter()
        .enumerate()
        .filter(|(_, k)| **k == SpanKind::Server)
        .map(|(i, _)| i as u32)
        .collect();
    let span_names = batch.names(Level::Item);
    let upper: Vec<String> = server
        .iter()
        .map(|&i| strings(&span_names)[i as usize].to_uppercase())
        .collect();
    batch.set_names(Level::Item, &server, &upper);

    if !starts.is_empty() {
        batch.add_link(
            0,
            &SpanLink {
                trace_id: vec![7; 16],
                span_id: vec![9; 8],
                trace_state: "probe=1".into(),
                flags: 1,
                attributes: Vec::new(),
            },
        );
    }
}

/// Each link's IDs, trace state and flags, written on the span that owns it.
fn link_columns(batch: &SpanBatch) {
    let (owners, trace_ids, span_ids) = (
        batch.parents(Level::Link),
        batch.trace_ids(Level::Link),
        batch.span_ids(Level::Link),
    );
    let (states, flags) = (batch.trace_states(Level::Link), batch.flags(Level::Link));
    let states = strings(&states);
    let mut per_span: Vec<Vec<String>> = vec![Vec::new(); batch.count(Level::Item) as usize];
    for (l, &span) in owners.iter().enumerate() {
        let (trace, id) = (
            hex(&trace_ids[l * 16..l * 16 + 16]),
            hex(&span_ids[l * 8..l * 8 + 8]),
        );
        per_span[span as usize].push(format!("{trace}/{id}/{}/{}", states[l], flags[l]));
    }
    for (span, links) in per_span.iter().enumerate().filter(|(_, l)| !l.is_empty()) {
        let value = AnyValue::Str(links.join(","));
        batch.set_attr(Level::Item, &[span as u32], "probe.links", &value);
    }
}

/// Each exemplar's trace and span ID, written on the point that owns it.
fn exemplar_ids(batch: &MetricBatch) {
    let (owners, trace_ids, span_ids) = (
        batch.parents(Level::Exemplar),
        batch.exemplar_trace_ids(),
        batch.exemplar_span_ids(),
    );
    let mut per_point: Vec<Vec<String>> = vec![Vec::new(); batch.count(Level::Point) as usize];
    for (e, &point) in owners.iter().enumerate() {
        let ids = format!(
            "{}/{}",
            hex(&trace_ids[e * 16..e * 16 + 16]),
            hex(&span_ids[e * 8..e * 8 + 8])
        );
        per_point[point as usize].push(ids);
    }
    for (point, ids) in per_point.iter().enumerate().filter(|(_, i)| !i.is_empty()) {
        let value = AnyValue::Str(ids.join(","));
        batch.set_attr(Level::Point, &[point as u32], "probe.exemplars", &value);
    }
}

export!(Probe);
