//! The operator console: a single page at `/` on the metrics address, its assets embedded in
//! the binary (no CDN: it works air-gapped), and one Server-Sent Events stream
//! (`/console/events`) that carries the pipelines' shape and the running config (secrets
//! redacted, with the last reload's changes), again whenever a reload moves them, and a snapshot
//! every second.
//!
//! One source: each snapshot is the registry's own exposition (what `/metrics` serves, less
//! its `# HELP`/`# TYPE` lines), `GET /plugins`' list and the components' recent notes kept in
//! the same registry. The page computes rates from successive snapshots. Nothing is built
//! while nobody watches: the one-second timer belongs to a connection and ends with it. The
//! live tap and the reload button call today's `/tap` and `/reload`; the Kubernetes view looks a
//! pod up by IP in the one metadata cache (`/console/pod?ip=…`).
//!
//! Access follows `service.telemetry.metrics.console`: `local` (the default) answers only
//! connections from this host, as `/tap` and `/reload` do; `open` answers any client; `off`
//! serves nothing.

use super::reload::{Reloader, local_only};
use crate::components::{Config, ConsoleAccess};
use crate::kubernetes;
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

/// What the console reads: the same state `/metrics`, `/plugins` and `/reload` read.
#[derive(Clone)]
struct Sources {
    telemetry: Telemetry,
    reloader: Arc<Reloader>,
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
    let metadata = reloader.metadata().clone();
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
        )
        .route(
            "/console/pod",
            axum::routing::get(move |uri: http::Uri| {
                let metadata = metadata.clone();
                async move { pod_lookup(&metadata, uri.query().unwrap_or("")) }
            }),
        );
    match access {
        ConsoleAccess::Open => router,
        _ => router.layer(axum::middleware::from_fn(local_only)),
    }
}

/// The stream: `topology` and `config` first and again after each reload, `snapshot` every
/// second, while the page is connected.
fn events(sources: Sources) -> Sse<impl futures::Stream<Item = Result<Event, Infallible>>> {
    let mut ticks = tokio::time::interval(SNAPSHOT_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let state = (ticks, sources, None::<u64>);
    let batches = futures::stream::unfold(state, |(mut ticks, sources, sent)| async move {
        ticks.tick().await;
        let running = sources.reloader.running();
        let mut events = Vec::with_capacity(3);
        if sent != Some(running.generation) {
            events.push(
                Event::default()
                    .event("topology")
                    .data(running.topology.to_string()),
            );
            let config = serde_json::json!({
                "settings": running.settings,
                "last_reload": running.last_reload,
            });
            events.push(Event::default().event("config").data(config.to_string()));
        }
        let snapshot = snapshot(&sources).to_string();
        events.push(Event::default().event("snapshot").data(snapshot));
        let batch = futures::stream::iter(events.into_iter().map(Ok::<_, Infallible>));
        Some((batch, (ticks, sources, Some(running.generation))))
    });
    Sse::new(futures::StreamExt::flatten(batches))
}

/// One snapshot: the exposition's samples, the plugins and the recent notes.
fn snapshot(sources: &Sources) -> serde_json::Value {
    let at_unix = crate::telemetry::metrics::unix_seconds();
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

/// `GET /console/pod?ip=A`: the pod the cache holds for that IP (what k8sattributes would
/// stamp on data from it), or 404 saying so.
fn pod_lookup(metadata: &kubernetes::Store, query: &str) -> axum::response::Response {
    let ip = form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == "ip")
        .map(|(_, value)| value.trim().to_string());
    let Some(ip) = ip.filter(|ip| !ip.is_empty()) else {
        let refusal = serde_json::json!({"error": "give ?ip=ADDRESS"});
        return (http::StatusCode::BAD_REQUEST, axum::Json(refusal)).into_response();
    };
    match metadata.pod_by_ip(&ip) {
        Some(pod) => axum::Json(pod_json(&pod)).into_response(),
        None => {
            let cached = metadata.pod_count();
            let error = format!("no pod with IP {ip} among the {cached} pods cached");
            let answer = serde_json::json!({"error": error});
            (http::StatusCode::NOT_FOUND, axum::Json(answer)).into_response()
        }
    }
}

fn pod_json(pod: &kubernetes::Pod) -> serde_json::Value {
    let pairs = |list: &[(Box<str>, Box<str>)]| -> serde_json::Map<String, serde_json::Value> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.as_ref().into()))
            .collect()
    };
    let owners: Vec<serde_json::Value> = pod
        .owners
        .iter()
        .map(|o| serde_json::json!({"kind": o.kind, "name": &*o.name, "uid": &*o.uid}))
        .collect();
    serde_json::json!({
        "name": &*pod.name,
        "namespace": &*pod.namespace,
        "uid": &*pod.uid,
        "ip": &*pod.ip,
        "node": &*pod.node_name,
        "start_time": &*pod.start_time,
        "owners": owners,
        "labels": pairs(&pod.labels),
        "annotations": pairs(&pod.annotations),
        "containers": pairs(&pod.containers),
    })
}

#[cfg(test)]
mod tests;
