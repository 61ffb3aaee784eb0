//! The zpages themselves: small HTML tables built from what trailhead started with.

use crate::components::Config;
use crate::telemetry::Telemetry;
use axum::response::{Html, IntoResponse};
use std::fmt::Write;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// One pipeline as the page shows it: its id and its components' ids, in order.
pub struct PipelineRow {
    pub id: String,
    pub receivers: Vec<String>,
    pub processors: Vec<String>,
    pub exporters: Vec<String>,
}

/// What the pages show, taken from the config trailhead started with.
pub struct State {
    pub config_file: String,
    pub started_at: SystemTime,
    pub started: Instant,
    pub pipelines: Vec<PipelineRow>,
    /// Each started extension: its id and its type.
    pub extensions: Vec<(String, String)>,
    /// Whether self-traces leave for `service.telemetry.traces`.
    pub self_traces: bool,
    pub expvar: bool,
}

impl State {
    pub fn new(config: &Config, telemetry: &Telemetry, expvar: bool) -> State {
        let ids = |list: &[crate::config::ComponentId]| -> Vec<String> {
            list.iter().map(|c| c.to_string()).collect()
        };
        let pipelines = config.service.pipelines.iter().map(|(id, p)| PipelineRow {
            id: id.to_string(),
            receivers: ids(&p.receivers),
            processors: ids(&p.processors),
            exporters: ids(&p.exporters),
        });
        let extensions = config.service.extensions.iter();
        State {
            config_file: config.source.display().to_string(),
            started_at: SystemTime::now(),
            started: Instant::now(),
            pipelines: pipelines.collect(),
            extensions: extensions
                .map(|e| (e.to_string(), e.kind.clone()))
                .collect(),
            self_traces: telemetry.tracer.is_some(),
            expvar,
        }
    }
}

/// The pages' routes; `/debug/expvarz` only when `expvar.enabled`, as in the collector.
pub fn router(state: State) -> axum::Router {
    use axum::routing::get;
    let state = Arc::new(state);
    let serve = |render: fn(&State) -> String| {
        let state = state.clone();
        get(move || {
            let state = state.clone();
            async move { Html(render(&state)) }
        })
    };
    let router = axum::Router::new()
        .route("/debug/servicez", serve(servicez))
        .route("/debug/pipelinez", serve(pipelinez))
        .route("/debug/extensionz", serve(extensionz))
        .route("/debug/featurez", serve(featurez))
        .route("/debug/tracez", serve(tracez));
    if !state.expvar {
        return router;
    }
    router.route(
        "/debug/expvarz",
        get(|| async { expvarz().into_response() }),
    )
}

/// HTML-escapes `text` (ids and paths come from the config file).
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A whole page: a title, a line linking the others, and `body`.
fn page(title: &str, body: &str) -> String {
    let links = ["servicez", "pipelinez", "extensionz", "featurez", "tracez"]
        .map(|p| format!("<a href=\"/debug/{p}\">{p}</a>"))
        .join(" | ");
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title></head>\n\
         <body><h1>{title}</h1>\n<p>{links}</p>\n{body}</body></html>\n"
    )
}

/// A table with `headers` and one row per entry of `rows` (cells already escaped).
fn table(headers: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let mut out = String::from("<table border=\"1\">\n<tr>");
    for h in headers {
        let _ = write!(out, "<th>{h}</th>");
    }
    out.push_str("</tr>\n");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            let _ = write!(out, "<td>{cell}</td>");
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
    out
}

pub fn servicez(state: &State) -> String {
    let uptime = state.started.elapsed().as_secs();
    let rows = [
        ("Version", env!("CARGO_PKG_VERSION").to_string()),
        ("Start time", httpdate::fmt_http_date(state.started_at)),
        ("Uptime", format!("{uptime}s")),
        ("Config file", state.config_file.clone()),
    ];
    let rows = rows.map(|(k, v)| vec![k.to_string(), escape(&v)]);
    page("trailhead service", &table(&["Property", "Value"], rows))
}

pub fn pipelinez(state: &State) -> String {
    let list = |ids: &[String]| escape(&ids.join(" → "));
    let rows = state.pipelines.iter().map(|p| {
        vec![
            escape(&p.id),
            list(&p.receivers),
            list(&p.processors),
            list(&p.exporters),
        ]
    });
    let headers = ["Pipeline", "Receivers", "Processors", "Exporters"];
    page("Pipelines", &table(&headers, rows))
}

pub fn extensionz(state: &State) -> String {
    let rows = (state.extensions.iter()).map(|(id, kind)| vec![escape(id), escape(kind)]);
    page("Extensions", &table(&["Extension", "Type"], rows))
}

pub fn featurez(_state: &State) -> String {
    let body = "<p>trailhead has no feature gates: what the collector puts behind one is \
                either always on or configured by a key.</p>\n";
    page("Feature gates", body)
}

pub fn tracez(state: &State) -> String {
    let sent = if state.self_traces {
        "Its own spans (exports and reloads) leave for <code>service.telemetry.traces</code>."
    } else {
        "Set <code>service.telemetry.traces</code> to send its own spans (exports and reloads)."
    };
    let body = format!(
        "<p>trailhead keeps no recent spans in memory, so this page has no span table. {sent}</p>\n"
    );
    page("Trace spans", &body)
}

/// The collector's expvar page lists Go's `cmdline` and `memstats`; trailhead's equivalents.
fn expvarz() -> axum::Json<serde_json::Value> {
    let cmdline: Vec<String> = std::env::args().collect();
    let heap = crate::telemetry::heap::in_use();
    axum::Json(serde_json::json!({ "cmdline": cmdline, "heap_in_use_bytes": heap }))
}
