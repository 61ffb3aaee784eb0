//! The plain-HTTP client the cloud detectors ask their metadata servers with (hyper-util's,
//! on a runtime of its own: detection runs on a thread of its own, outside the gateway's
//! runtime). Metadata servers are link-local HTTP endpoints; nothing here speaks TLS.

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use std::time::Duration;

/// Metadata answers are a few kilobytes; a larger one is refused rather than read whole.
const MAX_BODY: usize = 1 << 20;

/// What a metadata server answered.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

/// One detector's client: a runtime and a connection pool without idle connections.
pub struct MetadataClient {
    runtime: tokio::runtime::Runtime,
    client: Client<HttpConnector, Full<Bytes>>,
    /// How long one request may take, connecting included.
    request_timeout: Duration,
}

impl MetadataClient {
    /// A client whose connections must open within `connect_timeout` and whose requests
    /// must be answered within `request_timeout` (zero: no limit).
    pub fn new(connect_timeout: Duration, request_timeout: Duration) -> Result<Self, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let client = {
            let _entered = runtime.enter();
            let mut connector = HttpConnector::new();
            connector.set_connect_timeout(Some(connect_timeout));
            Client::builder(hyper_util::rt::TokioExecutor::new())
                .pool_max_idle_per_host(0)
                .build(connector)
        };
        Ok(MetadataClient {
            runtime,
            client,
            request_timeout,
        })
    }

    /// Sends one request; any status is an answer, only a failure to get one is an error.
    pub fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
    ) -> Result<Answer, String> {
        let uri: Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
        let mut request = Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| format!("{url}: {}", error_chain(&e)))?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_BODY)
                .collect()
                .await
                .map_err(|e| format!("{url}: reading the answer: {e}"))?
                .to_bytes();
            Ok(Answer {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body: String::from_utf8_lossy(&body).into_owned(),
            })
        };
        let timeout = self.request_timeout;
        self.runtime.block_on(async {
            if timeout.is_zero() {
                return exchange.await;
            }
            tokio::time::timeout(timeout, exchange)
                .await
                .map_err(|_| format!("{url}: no answer within {timeout:?}"))?
        })
    }
}

/// An error and its causes: hyper's own message alone is only "client error (Connect)".
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
