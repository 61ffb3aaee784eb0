//! One POST per send: the request encoded as configured, the answer read (its first 64 KiB, as
//! the collector reads) and classified by [`super::response`].

use super::Encoding;
use super::client::Connection;
use super::response::{self, MAX_READ};
use crate::exporters::otlp::Compression;
use crate::exporters::{ExportError, Payload, SendOutcome, Sink};
use crate::pdata::Signal;
use crate::secrets::Rotating;
use bytes::Bytes;
use futures::future::BoxFuture;
use http::HeaderValue;
use http::header::{CONTENT_ENCODING, CONTENT_TYPE, USER_AGENT};
use http_body_util::BodyExt;
use hyper::body::{Frame, SizeHint};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::io::Write;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

pub(super) struct OtlpHttpSink {
    pub connection: Arc<Rotating<Connection>>,
    pub uri: http::Uri,
    pub signal: Signal,
    pub encoding: Encoding,
    pub compression: Compression,
    pub timeout: Duration,
}

const USER_AGENT_VALUE: &str = concat!("trailhead/", env!("CARGO_PKG_VERSION"));

impl Sink for OtlpHttpSink {
    fn send(
        &self,
        payload: Payload,
        _items: usize,
    ) -> BoxFuture<'_, Result<SendOutcome, ExportError>> {
        Box::pin(async move {
            let body = encode_body(self.signal, self.encoding, self.compression, payload)?;
            if self.timeout.is_zero() {
                return self.post(body).await;
            }
            // The collector's `timeout` is Go's `http.Client.Timeout`: connecting, sending and
            // reading the answer; its expiry is a transport error, so retried.
            match tokio::time::timeout(self.timeout, self.post(body)).await {
                Ok(result) => result,
                Err(_) => Err(ExportError::Retryable {
                    message: format!("POST {}: no answer within {:?}", self.uri, self.timeout),
                    retry_after: None,
                }),
            }
        })
    }
}

impl OtlpHttpSink {
    async fn post(&self, body: Body) -> Result<SendOutcome, ExportError> {
        let connection = self.connection.load_full();
        let mut request = http::Request::new(body);
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = self.uri.clone();
        let headers = request.headers_mut();
        let content_type = match self.encoding {
            Encoding::Proto => response::PROTOBUF,
            Encoding::Json => response::JSON,
        };
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        headers.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
        if let Some(name) = content_encoding(self.compression) {
            headers.insert(CONTENT_ENCODING, HeaderValue::from_static(name));
        }
        for (name, value) in &connection.headers {
            headers.insert(name.clone(), value.clone());
        }
        if self.signal == Signal::Profiles {
            // The development version trailhead accepted them at (see `pdata::profiles`).
            headers.insert(
                crate::pdata::profiles::VERSION_HEADER,
                HeaderValue::from_static(crate::pdata::profiles::VERSION),
            );
        }
        let answer =
            connection
                .client
                .request(request)
                .await
                .map_err(|e| ExportError::Retryable {
                    message: format!(
                        "failed to make an HTTP request to {}: {}",
                        self.uri,
                        chain(&e)
                    ),
                    retry_after: None,
                })?;
        let (parts, body) = answer.into_parts();
        let read = read_head(body).await;
        let body = match read {
            Ok(body) => body,
            // A failed body read of a 2xx is an error for the collector (permanent); of an
            // error status, the status alone classifies it.
            Err(e) if parts.status.is_success() => {
                return Err(ExportError::Permanent {
                    message: format!("reading the answer of {}: {e}", self.uri),
                });
            }
            Err(_) => Bytes::new(),
        };
        response::classify(
            &self.uri,
            self.signal,
            parts.status,
            &parts.headers,
            &body,
            SystemTime::now(),
        )
    }
}

/// An error and its sources, so "connection refused" shows behind hyper's "client error".
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

/// The answer's first [`MAX_READ`] bytes; the rest is dropped with the body.
async fn read_head(mut body: hyper::body::Incoming) -> Result<Bytes, hyper::Error> {
    let mut head = bytes::BytesMut::new();
    while head.len() < MAX_READ {
        match body.frame().await {
            Some(frame) => {
                if let Ok(data) = frame?.into_data() {
                    let room = MAX_READ - head.len();
                    head.extend_from_slice(&data[..data.len().min(room)]);
                }
            }
            None => break,
        }
    }
    Ok(head.freeze())
}

fn content_encoding(compression: Compression) -> Option<&'static str> {
    match compression {
        Compression::None => None,
        Compression::Gzip => Some("gzip"),
        Compression::Zstd => Some("zstd"),
    }
}

/// The request body: protobuf as it came (its parts shared, not copied) or OTLP/JSON, then
/// compressed if asked. A payload that does not decode for JSON is refused for good.
pub(super) fn encode_body(
    signal: Signal,
    encoding: Encoding,
    compression: Compression,
    payload: Payload,
) -> Result<Body, ExportError> {
    let permanent = |message: String| ExportError::Permanent { message };
    let parts: Vec<Bytes> = match encoding {
        Encoding::Proto => payload.parts().to_vec(),
        Encoding::Json => vec![Bytes::from(
            to_json(signal, &payload.to_bytes()).map_err(permanent)?,
        )],
    };
    let compressed = match compression {
        Compression::None => return Ok(Body::new(parts)),
        Compression::Gzip => {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            parts
                .iter()
                .try_for_each(|p| encoder.write_all(p))
                .and_then(|()| encoder.finish())
        }
        Compression::Zstd => {
            zstd::stream::write::Encoder::new(Vec::new(), 0).and_then(|mut encoder| {
                parts.iter().try_for_each(|p| encoder.write_all(p))?;
                encoder.finish()
            })
        }
    };
    let compressed = compressed.map_err(|e| permanent(format!("compressing: {e}")))?;
    Ok(Body::new(vec![Bytes::from(compressed)]))
}

/// OTLP/JSON as the specification maps it (lowerCamelCase names, hex ids, enums as integers,
/// 64-bit integers as strings): opentelemetry-proto's serde mapping of the decoded request.
pub(super) fn to_json(signal: Signal, payload: &[u8]) -> Result<Vec<u8>, String> {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest as Logs;
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest as Metrics;
    use opentelemetry_proto::tonic::collector::profiles::v1development::ExportProfilesServiceRequest as Profiles;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest as Traces;
    use prost::Message;
    let decoding = |e: prost::DecodeError| format!("encoding the request as JSON: {e}");
    let json = match signal {
        Signal::Traces => serde_json::to_vec(&Traces::decode(payload).map_err(decoding)?),
        Signal::Metrics => serde_json::to_vec(&Metrics::decode(payload).map_err(decoding)?),
        Signal::Logs => serde_json::to_vec(&Logs::decode(payload).map_err(decoding)?),
        Signal::Profiles => serde_json::to_vec(&Profiles::decode(payload).map_err(decoding)?),
    };
    json.map_err(|e| format!("encoding the request as JSON: {e}"))
}

/// A request body of shared parts with its exact length, so HTTP/1.1 sends `Content-Length`
/// and hyper writes each part without joining them.
pub(crate) struct Body {
    parts: VecDeque<Bytes>,
    remaining: u64,
}

impl Body {
    pub(crate) fn new(parts: Vec<Bytes>) -> Self {
        let remaining = parts.iter().map(|p| p.len() as u64).sum();
        Body {
            parts: parts.into_iter().filter(|p| !p.is_empty()).collect(),
            remaining,
        }
    }

    #[cfg(test)]
    pub(super) fn concat(&self) -> Vec<u8> {
        self.parts.iter().flat_map(|p| p.iter().copied()).collect()
    }
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let next = self.parts.pop_front();
        if let Some(part) = &next {
            self.remaining -= part.len() as u64;
        }
        Poll::Ready(next.map(|part| Ok(Frame::data(part))))
    }

    fn is_end_stream(&self) -> bool {
        self.parts.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}
