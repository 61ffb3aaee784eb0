//! The `health_check` extension kind: an admin server answering whether trailhead serves.

use crate::components::{Extension, Kind};
use crate::config::or_default;
use crate::telemetry::Telemetry;
use crate::telemetry::health::{self, HealthCheckConfig};
use serde::Deserializer;
use std::net::SocketAddr;

impl Kind for HealthCheckConfig {
    const NAME: &'static str = "health_check";
    fn parse<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        or_default(d)
    }
}

impl Extension for HealthCheckConfig {
    fn admin(&self, telemetry: &Telemetry) -> Option<(SocketAddr, axum::Router)> {
        let router = health::router(self, telemetry.health.clone());
        Some((self.endpoint, router))
    }
}
