//! The sequence every HTTP receiver runs once it knows how to read a request: room first
//! (before a byte of the body is read), then the body within its limit, the decode, and the
//! pipelines. OTLP/HTTP and Zipkin differ only in how they decode and how they answer.

use crate::pdata::{Batch, RequestContext};
use crate::pipeline::{Accepted, ConsumeError, Fanout};
use crate::receivers::body::read_body;
use crate::receivers::forwarded_for;
use axum::extract::ConnectInfo;
use bytes::Bytes;
use http::StatusCode;
use http::request::Parts;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::time::Instant;

/// Why a request was not taken.
pub enum Refused {
    /// No room, or the pipelines refused; the error says whether the sender may retry.
    Pipelines(ConsumeError),
    /// The request itself is wrong: the status and what is wrong (counted as malformed).
    Malformed(StatusCode, String),
}

/// Takes one request into the pipelines. A refusal for room (memory, a full queue or disk) is
/// tried again until `deadline`; `Instant::now()` answers at once.
pub async fn ingest(
    fanout: &Fanout,
    receiver: Arc<str>,
    (parts, body): (&Parts, axum::body::Body),
    limit: usize,
    deadline: Instant,
    decode: impl FnOnce(Bytes, RequestContext) -> Result<Batch, String>,
) -> Result<Accepted, Refused> {
    fanout
        .admit_within(deadline)
        .await
        .map_err(Refused::Pipelines)?;
    let malformed = |status, message| {
        fanout.metrics().malformed_requests.add(1);
        Refused::Malformed(status, message)
    };
    let body = read_body(&parts.headers, body, limit)
        .await
        .map_err(|e| malformed(e.status(), e.to_string()))?;
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let context = RequestContext::of_request(peer, forwarded_for(&parts.headers), receiver);
    let batch = decode(body, context).map_err(|m| malformed(StatusCode::BAD_REQUEST, m))?;
    fanout
        .consume_within(batch, deadline)
        .await
        .map_err(Refused::Pipelines)
}
