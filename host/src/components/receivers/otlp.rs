//! The `otlp` receiver kind: OTLP over gRPC and HTTP, every signal.

use super::super::build::Protocol;
use crate::auth::AuthConfig;
use crate::components::{Build, Kind, Receiver, ReceiverServer, StartError};
use crate::config::or_default;
use crate::receivers::Consumers;
use crate::receivers::otlp::{OtlpReceiverConfig, grpc, http};
use serde::Deserializer;

impl Kind for OtlpReceiverConfig {
    const NAME: &'static str = "otlp";
    fn parse<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        or_default(d)
    }
}

impl Receiver for OtlpReceiverConfig {
    fn auth(&self) -> Vec<(&'static [&'static str], &AuthConfig)> {
        let grpc = self.protocols.grpc.as_ref().and_then(|g| g.auth.as_ref());
        let http = self.protocols.http.as_ref().and_then(|h| h.auth.as_ref());
        let grpc = grpc.map(|auth| (&["protocols", "grpc"][..], auth));
        let http = http.map(|auth| (&["protocols", "http"][..], auth));
        grpc.into_iter().chain(http).collect()
    }

    fn servers<'c>(
        &'c self,
        id: &str,
        consumers: &Consumers,
        build: &Build<'_>,
    ) -> Result<Vec<ReceiverServer<'c>>, StartError> {
        let mut servers = Vec::new();
        if let Some(grpc) = &self.protocols.grpc {
            let router = grpc::router(id, grpc, consumers);
            let name = format!("{id} (grpc)");
            let protocol = Protocol {
                tls: &grpc.tls,
                auth: &grpc.auth,
                limits: &grpc.limits,
                max_concurrent_streams: grpc.max_concurrent_streams,
            };
            let mut options = build.serve_options(id, &name, protocol)?;
            options.lifetime = grpc.keepalive.lifetime();
            servers.push((name, &grpc.endpoint, router, options));
        }
        if let Some(http) = &self.protocols.http {
            let router = http::router(id, http, consumers);
            let name = format!("{id} (http)");
            let protocol = Protocol {
                tls: &http.tls,
                auth: &http.auth,
                limits: &http.limits,
                max_concurrent_streams: None,
            };
            let mut options = build.serve_options(id, &name, protocol)?;
            options.lifetime = http.lifetime();
            options.open_preflights = http
                .cors
                .as_ref()
                .is_some_and(|c| !c.allowed_origins.is_empty());
            servers.push((name, &http.endpoint, router, options));
        }
        Ok(servers)
    }
}
