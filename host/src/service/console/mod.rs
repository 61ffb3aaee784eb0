//! The operator console: a single page at `/` on the metrics address, its assets embedded in
//! the binary (no CDN: it works air-gapped), and one Server-Sent Events stream
//! (`/console/events`) that carries the pipelines' shape once, then a snapshot every second.
//!
//! One source: each snapshot is the registry's own exposition (what `/metrics` serves, less
//! its `# HELP`/`# TYPE` lines), `GET /plugins`' list and the components' recent notes kept in
//! the same registry. The page computes rates from successive snapshots. Nothing is built
//! while nobody watches: the one-second timer belongs to a connection and ends with it. The
//! live tap and the reload button call today's `/tap` and `/reload`.
//!
//! Access follows `service.telemetry.metrics.console`: `local` (the default) answers only
//! connections from this host, as `/tap` and `/reload` do; `open` answers any client; `off`
//! serves nothing.

use super::reload::{Reloader, local_only};
use crate::components::{Config, ConsoleAccess};
use crate::telemetry::Telemetry;
use axum::response::IntoResponse;
use axum::response::sse::{Event, Sse};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

/// How often a watching page gets a snapshot.
const SNAPSHOT_INTERVAL: Duration = Duration::from_secs(1);

const INDEX_HTML: &str = include_str!("../../../console/index.html");
const APP_JS: &str = include_str!("../../../console/app.js");
const APP_CSS: &str = include_str!("../../../console/app.css");

/// What the console reads: the same state `/metrics` and `/plugins` read.
#[derive(Clone)]
struct Sources {
    telemetry: Telemetry,
    reloader: Arc<Reloader>,
    /// The pipelines' shape, fixed at start (a reload changes only processors' settings
    /// and lists, which the snapshots' plugin list shows).
    topology: Arc<serde_json::Value>,
}

/// The console's routes, or none when `console: off`.
pub fn routes(config: &Config, telemetry: &Telemetry, reloader: &Arc<Reloader>) -> axum::Router {
    let access = config.service.telemetry.metrics.console;
    if access == ConsoleAccess::Off {
        return axum::Router::new();
    }
    let sources = Sources {
        telemetry: telemetry.clone(),
        reloader: reloader.clone(),
        topology: Arc::new(topology(config)),
    };
    let asset = |kind: &'static str, body: &'static str| {
        axum::routing::get(move || async move {
            let headers = [
                (http::header::CONTENT_TYPE, kind),
                (http::header::CACHE_CONTROL, "no-cache"),
            ];
            (headers, body)
        })
    };
    let router = axum::Router::new()
        .route("/", asset("text/html; charset=utf-8", INDEX_HTML))
        .route("/console/app.js", asset("text/javascript", APP_JS))
        .route("/console/app.css", asset("text/css", APP_CSS))
        .route(
            "/console/events",
            axum::routing::get(move || {
                let sources = sources.clone();
                async move { events(sources).into_response() }
            }),
        );
    match access {
        ConsoleAccess::Open => router,
        _ => router.layer(axum::middleware::from_fn(local_only)),
    }
}

/// The stream: `topology` once, then `snapshot` every second while the page is connected.
fn events(sources: Sources) -> Sse<impl futures::Stream<Item = Result<Event, Infallible>>> {
    let first = Event::default()
        .event("topology")
        .data(sources.topology.to_string());
    let first = futures::stream::once(async move { Ok::<_, Infallible>(first) });
    let mut ticks = tokio::time::interval(SNAPSHOT_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let snapshots = futures::stream::unfold((ticks, sources), |(mut ticks, sources)| async move {
        ticks.tick().await;
        let event = Event::default()
            .event("snapshot")
            .data(snapshot(&sources).to_string());
        Some((Ok::<_, Infallible>(event), (ticks, sources)))
    });
    Sse::new(futures::StreamExt::chain(first, snapshots))
}

/// One snapshot: the exposition's samples, the plugins and the recent notes.
fn snapshot(sources: &Sources) -> serde_json::Value {
    let at_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let registry = &sources.telemetry.registry;
    serde_json::json!({
        "at_unix": at_unix,
        "serving": sources.telemetry.health.is_serving(),
        "metrics": samples(&registry.render()),
        "plugins": sources.reloader.status(),
        "notes": registry.recent_notes(),
    })
}

/// The exposition without its comment lines: the samples are all the page reads.
fn samples(exposition: &str) -> String {
    exposition
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .fold(String::new(), |mut out, line| {
            out.push_str(line);
            out.push('\n');
            out
        })
}

/// Each pipeline's receivers, processors and exporters, naming which of them are connectors.
fn topology(config: &Config) -> serde_json::Value {
    let ids = |list: &[crate::config::ComponentId]| -> Vec<String> {
        list.iter().map(ToString::to_string).collect()
    };
    let pipelines: Vec<serde_json::Value> = config
        .service
        .pipelines
        .iter()
        .map(|(id, pipeline)| {
            serde_json::json!({
                "id": id.to_string(),
                "signal": id.kind,
                "receivers": ids(&pipeline.receivers),
                "processors": ids(&pipeline.processors),
                "exporters": ids(&pipeline.exporters),
            })
        })
        .collect();
    let connectors: Vec<String> = config
        .connectors
        .iter()
        .map(|(id, _)| id.to_string())
        .collect();
    serde_json::json!({"pipelines": pipelines, "connectors": connectors})
}

#[cfg(test)]
mod tests;
