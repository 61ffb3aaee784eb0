//! The `otlp` receiver kind: OTLP over gRPC and HTTP, every signal (profiles included).

use super::server;
use crate::auth::AuthConfig;
use crate::components::{Build, Kind, Receiver, ReceiverServer, StartError};
use crate::config::or_default;
use crate::pdata::Signal;
use crate::receivers::Consumers;
use crate::receivers::otlp::{OtlpReceiverConfig, grpc, http};
use serde::Deserializer;

impl Kind for OtlpReceiverConfig {
    const NAME: &'static str = "otlp";
    const SIGNALS: &'static [Signal] = &Signal::ALL;
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

    fn includes_metadata(&self) -> bool {
        let grpc = self
            .protocols
            .grpc
            .as_ref()
            .is_some_and(|g| g.include_metadata);
        grpc || self
            .protocols
            .http
            .as_ref()
            .is_some_and(|h| h.include_metadata)
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
            servers.push(server(build, id, format!("{id} (grpc)"), grpc, router)?);
        }
        if let Some(http) = &self.protocols.http {
            let router = http::router(id, http, consumers);
            servers.push(server(build, id, format!("{id} (http)"), http, router)?);
        }
        Ok(servers)
    }
}
