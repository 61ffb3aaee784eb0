//! The `jaeger` receiver kind: Jaeger's collector API (gRPC, thrift over HTTP) on the shared
//! server, and its agent API (thrift over UDP) on sockets of its own.

use super::server;
use crate::auth::AuthConfig;
use crate::components::{Build, Kind, Receiver, ReceiverServer, StartError};
use crate::config::or_default;
use crate::pdata::Signal;
use crate::receivers::jaeger::thrift::Protocol as Thrift;
use crate::receivers::jaeger::{self, JaegerReceiverConfig, udp};
use crate::receivers::{Consumers, Listening};
use futures::future::BoxFuture;
use serde::Deserializer;
use serde::de::Error;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

impl Kind for JaegerReceiverConfig {
    const NAME: &'static str = "jaeger";
    const SIGNALS: &'static [Signal] = &[Signal::Traces];
    fn parse<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let config: JaegerReceiverConfig = or_default(d)?;
        match config.problem() {
            Some(problem) => Err(D::Error::custom(problem)),
            None => Ok(config),
        }
    }
}

impl Receiver for JaegerReceiverConfig {
    fn auth(&self) -> Vec<(&'static [&'static str], &AuthConfig)> {
        let grpc = self.protocols.grpc.as_ref().and_then(|g| g.auth.as_ref());
        let http = self.protocols.thrift_http.as_ref();
        let http = http.and_then(|h| h.auth.as_ref());
        let grpc = grpc.map(|auth| (&["protocols", "grpc"][..], auth));
        let http = http.map(|auth| (&["protocols", "thrift_http"][..], auth));
        grpc.into_iter().chain(http).collect()
    }

    fn includes_metadata(&self) -> bool {
        let grpc = self
            .protocols
            .grpc
            .as_ref()
            .is_some_and(|g| g.include_metadata);
        grpc || (self.protocols.thrift_http.as_ref()).is_some_and(|h| h.include_metadata)
    }

    fn servers<'c>(
        &'c self,
        id: &str,
        consumers: &Consumers,
        build: &Build<'_>,
    ) -> Result<Vec<ReceiverServer<'c>>, StartError> {
        let Some(fanout) = consumers.get(Signal::Traces) else {
            return Ok(Vec::new());
        };
        let mut servers = Vec::new();
        if let Some(grpc) = &self.protocols.grpc {
            let router = jaeger::grpc::router(id, grpc, fanout.clone());
            servers.push(server(build, id, format!("{id} (grpc)"), grpc, router)?);
        }
        if let Some(http) = &self.protocols.thrift_http {
            let router = jaeger::thrift_http_router(id, http, fanout.clone());
            let name = format!("{id} (thrift_http)");
            servers.push(server(build, id, name, http, router)?);
        }
        Ok(servers)
    }

    fn start_own<'a>(
        &'a self,
        id: &'a str,
        consumers: &'a Consumers,
        build: &'a Build<'_>,
        stop: CancellationToken,
    ) -> BoxFuture<'a, Result<Vec<Listening>, StartError>> {
        Box::pin(async move {
            let Some(fanout) = consumers.get(Signal::Traces) else {
                return Ok(Vec::new());
            };
            let receiver: Arc<str> = Arc::from(id);
            let failed = |source| StartError::Receiver {
                id: id.to_string(),
                source,
            };
            let telemetry = build.telemetry;
            let mut listening = Vec::new();
            if let Some(compact) = &self.protocols.thrift_compact {
                let name = format!("{id} (thrift_compact)");
                let (fanout, receiver) = (fanout.clone(), receiver.clone());
                let started = udp::start(
                    name,
                    compact,
                    Thrift::Compact,
                    fanout,
                    receiver,
                    telemetry,
                    stop.clone(),
                );
                listening.push(started.map_err(failed)?);
            }
            if let Some(binary) = &self.protocols.thrift_binary {
                let name = format!("{id} (thrift_binary)");
                let (fanout, receiver) = (fanout.clone(), receiver.clone());
                let started = udp::start(
                    name,
                    binary,
                    Thrift::Binary,
                    fanout,
                    receiver,
                    telemetry,
                    stop,
                );
                listening.push(started.map_err(failed)?);
            }
            Ok(listening)
        })
    }
}
