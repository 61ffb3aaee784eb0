//! The `prometheus` receiver kind: scrapes Prometheus targets into the metrics pipelines. It
//! listens on nothing; its scrape loops start in `start_own`.

use crate::components::{Build, Kind, Receiver, StartError};
use crate::pdata::Signal;
use crate::receivers::prometheus::{PrometheusReceiverConfig, scrape};
use crate::receivers::{Consumers, Listening};
use futures::future::BoxFuture;
use serde::Deserializer;
use serde::de::Error;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

impl Kind for PrometheusReceiverConfig {
    const NAME: &'static str = "prometheus";
    const SIGNALS: &'static [Signal] = &[Signal::Metrics];
    /// Reads the body and checks what the collector checks when it starts: at least one scrape
    /// config, and every target's labels and address.
    fn parse<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let config: PrometheusReceiverConfig = crate::config::or_default(d)?;
        if config.config.scrape_configs.is_empty() {
            return Err(D::Error::custom(
                "no Prometheus scrape_configs or target_allocator set",
            ));
        }
        scrape::targets(&config.config).map_err(D::Error::custom)?;
        Ok(config)
    }
}

impl Receiver for PrometheusReceiverConfig {
    /// One loop per target on the supervisor, each until `stop`.
    fn start_own<'a>(
        &'a self,
        id: &'a str,
        consumers: &'a Consumers,
        build: &'a Build<'_>,
        stop: CancellationToken,
    ) -> BoxFuture<'a, Result<Vec<Listening>, StartError>> {
        Box::pin(async move {
            let Some(fanout) = consumers.get(Signal::Metrics) else {
                return Ok(Vec::new());
            };
            let targets =
                scrape::targets(&self.config).map_err(|message| StartError::Listener {
                    id: id.to_string(),
                    message,
                })?;
            let receiver: Arc<str> = Arc::from(id);
            for target in targets {
                let name = format!("{id} scrape of {}", target.url);
                let run = scrape::run(target, receiver.clone(), fanout.clone(), stop.clone());
                build.telemetry.supervisor.spawn(name, run);
            }
            Ok(Vec::new())
        })
    }
}
