//! `forward`: the same signal in and out, every batch to every pipeline that lists the
//! connector as a receiver (the collector's `forwardconnector`, which has no settings).

use crate::pdata::{Batch, Signal};
use crate::pipeline::Fanout;
use crate::pipeline::connector::{ConnectError, Connected, Connector};
use serde::Deserialize;
use std::sync::Arc;

/// `forward`'s settings: it has none, as the collector's.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardConnectorConfig {}

/// One `forward` instance, for one signal.
pub struct Forward {
    id: String,
    signal: Signal,
    downstream: Arc<Fanout>,
}

impl Forward {
    pub fn new(id: &str, downstream: Arc<Fanout>) -> Forward {
        Forward {
            id: id.to_string(),
            signal: downstream.signal,
            downstream,
        }
    }
}

impl Connector for Forward {
    fn id(&self) -> &str {
        &self.id
    }

    fn signals(&self) -> (Signal, Signal) {
        (self.signal, self.signal)
    }

    fn consume(&self, batch: Batch) -> Result<Connected, ConnectError> {
        Ok(Connected::to(&self.downstream, batch))
    }
}
