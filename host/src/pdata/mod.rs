//! Pipeline data: a batch is one encoded OTLP export request plus where it came from.
//!
//! Keeping the request encoded is what makes passthrough cheap: `wire` validates the framing
//! and counts items in one pass over the bytes, and two encoded requests of the same signal
//! concatenate into one valid request (except profiles: see [`Signal::merges_by_concatenation`]).
//!
//! It also reads the one other format trailhead takes metrics in, the Prometheus exposition
//! (`exposition`): the prometheus receiver's scrapes and trailhead's own registry, pushed over
//! OTLP by `telemetry`, both read it.

pub mod exposition;
pub mod grpc;
pub mod json;
mod payload;
pub mod profiles;
mod profiles_json;
pub mod route;
pub mod route_metrics;
pub mod split;
#[cfg(test)]
pub mod testing;
pub mod wire;

pub use payload::{Payload, Reader};

use bytes::Bytes;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

/// The OTLP signals: the three stable ones and profiles (OTLP `v1development`, see
/// [`profiles`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Signal {
    Traces,
    Metrics,
    Logs,
    Profiles,
}

impl Signal {
    pub const ALL: [Signal; 4] = [
        Signal::Traces,
        Signal::Metrics,
        Signal::Logs,
        Signal::Profiles,
    ];
    /// The signals components serve unless they say otherwise: a component kind takes
    /// profiles only where trailhead implements them for it.
    pub const STABLE: [Signal; 3] = [Signal::Traces, Signal::Metrics, Signal::Logs];

    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Traces => "traces",
            Signal::Metrics => "metrics",
            Signal::Logs => "logs",
            Signal::Profiles => "profiles",
        }
    }

    /// Whether two encoded requests of this signal concatenate into one valid request. Not
    /// for profiles: each request's profiles index into its own `dictionary`, which
    /// concatenation would merge into one with every index past the first request's wrong.
    pub fn merges_by_concatenation(self) -> bool {
        self != Signal::Profiles
    }

    /// What one item of this signal is called in metrics and messages.
    pub fn item_name(self) -> &'static str {
        match self {
            Signal::Traces => "spans",
            Signal::Metrics => "metric points",
            Signal::Logs => "log records",
            Signal::Profiles => "samples",
        }
    }

    pub fn parse(name: &str) -> Option<Signal> {
        Signal::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a batch came from. Kubernetes enrichment associates pods by `peer`.
#[derive(Clone, Debug)]
pub struct RequestContext {
    /// The sender's address as seen on the connection.
    pub peer: Option<SocketAddr>,
    /// The first `X-Forwarded-For` address, as the sender claims it.
    pub forwarded_for: Option<Arc<str>>,
    /// The id of the receiver that accepted the request, e.g. `otlp` or `zipkin/dapr`.
    pub receiver: Arc<str>,
}

impl RequestContext {
    /// The context of a request: the connection's peer and the first address of its
    /// `X-Forwarded-For` (kept as sent; a plugin decides whether to trust it).
    pub fn of_request(
        peer: Option<SocketAddr>,
        forwarded_for: Option<&str>,
        receiver: Arc<str>,
    ) -> Self {
        let forwarded_for = forwarded_for
            .and_then(|list| list.split(',').next())
            .map(str::trim)
            .filter(|first| !first.is_empty())
            .map(Arc::from);
        RequestContext {
            peer,
            forwarded_for,
            receiver,
        }
    }

    /// The context of data trailhead makes itself (canaries, `plugin test`, benchmarks).
    pub fn internal(receiver: &str) -> Self {
        RequestContext {
            peer: None,
            forwarded_for: None,
            receiver: Arc::from(receiver),
        }
    }
}

/// One encoded `Export{Trace,Metrics,Logs,Profiles}ServiceRequest` on its way through a pipeline.
#[derive(Clone, Debug)]
pub struct Batch {
    pub signal: Signal,
    /// The protobuf encoding of the export request.
    pub payload: Payload,
    /// Spans, metric data points, log records or profile samples in `payload` (the
    /// collector's item unit).
    pub items: usize,
    pub context: RequestContext,
}

impl Batch {
    /// An export request trailhead encoded itself, holding `items` items (its encoder counted
    /// them; the fuzz target checks that the count and the framing agree).
    pub fn from_encoded(
        signal: Signal,
        payload: Vec<u8>,
        items: usize,
        context: RequestContext,
    ) -> Batch {
        Batch {
            signal,
            payload: Bytes::from(payload).into(),
            items,
            context,
        }
    }

    /// Validates the framing of `payload` and counts its items.
    pub fn from_protobuf(
        signal: Signal,
        payload: Bytes,
        context: RequestContext,
    ) -> Result<Batch, wire::WireError> {
        let items = wire::count_items(signal, &payload)?;
        if signal == Signal::Profiles {
            profiles::check_decodes(&payload)?;
        }
        Ok(Batch {
            signal,
            payload: payload.into(),
            items,
            context,
        })
    }

    /// Encodes a decoded request message.
    pub fn from_message(
        signal: Signal,
        message: &impl prost::Message,
        context: RequestContext,
    ) -> Batch {
        let payload = Bytes::from(message.encode_to_vec());
        // Our own encoding is well formed; counting cannot fail.
        let items = wire::count_items(signal, &payload).unwrap_or(0);
        Batch {
            signal,
            payload: payload.into(),
            items,
            context,
        }
    }
}
