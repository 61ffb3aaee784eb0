//! The `fluent_forward` receiver kind (`fluentforward`, its deprecated name in the collector,
//! is still read): fluentd's and fluent-bit's Forward protocol, logs only.

use crate::components::{Build, Kind, Receiver, StartError};
use crate::config::or_default;
use crate::pdata::Signal;
use crate::receivers::fluent_forward::{self, FluentForwardReceiverConfig};
use crate::receivers::{Consumers, Listening};
use futures::future::BoxFuture;
use serde::Deserializer;
use serde::de::Error;
use tokio_util::sync::CancellationToken;

impl Kind for FluentForwardReceiverConfig {
    const NAME: &'static str = "fluent_forward";
    const ALIASES: &'static [&'static str] = &["fluentforward"];
    const SIGNALS: &'static [Signal] = &[Signal::Logs];
    fn parse<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let config: FluentForwardReceiverConfig = or_default(d)?;
        if config.endpoint.is_none() {
            return Err(D::Error::custom(
                "`endpoint` is required: `host:port`, `unix://PATH` or `/PATH` (the collector's empty default listens on a port nobody is told of)",
            ));
        }
        Ok(config)
    }
}

impl Receiver for FluentForwardReceiverConfig {
    fn start_own<'a>(
        &'a self,
        id: &'a str,
        consumers: &'a Consumers,
        build: &'a Build<'_>,
        stop: CancellationToken,
    ) -> BoxFuture<'a, Result<Vec<Listening>, StartError>> {
        Box::pin(async move {
            let (Some(fanout), Some(endpoint)) = (consumers.get(Signal::Logs), &self.endpoint)
            else {
                return Ok(Vec::new());
            };
            let telemetry = build.telemetry;
            fluent_forward::start(id, endpoint, fanout.clone(), telemetry, stop)
                .await
                .map_err(|source| StartError::Receiver {
                    id: id.to_string(),
                    source,
                })
        })
    }
}
