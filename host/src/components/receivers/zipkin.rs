//! The `zipkin` receiver kind: Zipkin v1 and v2 spans over HTTP (what Dapr sidecars send).

use super::server;
use crate::auth::AuthConfig;
use crate::components::{Build, Kind, Receiver, ReceiverServer, StartError};
use crate::config::or_default;
use crate::pdata::Signal;
use crate::receivers::Consumers;
use crate::receivers::zipkin::{self, ZipkinReceiverConfig};
use serde::Deserializer;

impl Kind for ZipkinReceiverConfig {
    const NAME: &'static str = "zipkin";
    const SIGNALS: &'static [Signal] = &[Signal::Traces];
    fn parse<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        or_default(d)
    }
}

impl Receiver for ZipkinReceiverConfig {
    fn auth(&self) -> Vec<(&'static [&'static str], &AuthConfig)> {
        self.auth.iter().map(|auth| (&[][..], auth)).collect()
    }

    fn includes_metadata(&self) -> bool {
        self.include_metadata
    }

    fn servers<'c>(
        &'c self,
        id: &str,
        consumers: &Consumers,
        build: &Build<'_>,
    ) -> Result<Vec<ReceiverServer<'c>>, StartError> {
        let Some(router) = zipkin::router(id, self, consumers) else {
            return Ok(Vec::new());
        };
        Ok(vec![server(build, id, id.to_string(), self, router)?])
    }
}
