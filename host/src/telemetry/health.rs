//! The `health_check` extension: 200 while trailhead serves, 503 while it starts or drains,
//! or once a long-lived task has died (see [`super::supervisor`]).
//! The opentelemetry-collector chart's probes hit it on :13133.

use serde::Deserialize;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// `extensions: health_check:`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthCheckConfig {
    /// Address to serve on; `:13133` (as the collector's chart writes it) is every interface.
    #[serde(deserialize_with = "crate::config::values::listen_address")]
    pub endpoint: SocketAddr,
    /// Path answering the check.
    pub path: String,
}

impl Default for HealthCheckConfig {
    fn default() -> Self {
        HealthCheckConfig {
            // Local unless configured, as in the collector; the chart opens it for kubelet.
            endpoint: ([127, 0, 0, 1], 13133).into(),
            path: "/".into(),
        }
    }
}

/// Shared serving state: serving, and not failed. A failure (a long-lived task died) is final.
#[derive(Clone, Debug, Default)]
pub struct Health(Arc<State>);

#[derive(Debug, Default)]
struct State {
    serving: AtomicBool,
    failed: AtomicBool,
}

impl Health {
    pub fn set_serving(&self, serving: bool) {
        self.0.serving.store(serving, Ordering::SeqCst);
    }
    /// A part of trailhead died: health stays 503 until the process exits.
    pub fn set_failed(&self) {
        self.0.failed.store(true, Ordering::SeqCst);
    }
    pub fn is_serving(&self) -> bool {
        self.0.serving.load(Ordering::SeqCst) && !self.0.failed.load(Ordering::SeqCst)
    }
}

/// The health check's routes.
pub fn router(config: &HealthCheckConfig, health: Health) -> axum::Router {
    use axum::http::StatusCode;
    axum::Router::new().route(
        &config.path,
        axum::routing::get(move || {
            let health = health.clone();
            async move {
                if health.is_serving() {
                    (StatusCode::OK, "{\"status\":\"Server available\"}")
                } else {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "{\"status\":\"Server not available\"}",
                    )
                }
            }
        }),
    )
}
