//! The `otlp` exporter (alias `otlp_grpc`): sends encoded export requests to an OTLP/gRPC peer
//! such as Grafana Alloy, classifying failures as the collector does.

use super::queue::{BatchSettings, ExporterSpec, QueueSettings, RetrySettings};
use super::{ExportError, Payload, SendOutcome, Sink};
use crate::auth::{AuthConfig, ClientAuthConfig};
use crate::config::values;
use crate::pdata::grpc::{ExportResponse, RawCodec, export_path};
use crate::pdata::{Signal, profiles};
use crate::secrets::{Rotating, Secret, Secrets};
use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::StreamBody;
use hyper::body::Frame;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tonic::codec::{CompressionEncoding, Streaming};
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue, MetadataMap};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Code, Status};
use tower::Service;

mod balance;

/// `exporters: otlp/NAME:`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpExporterConfig {
    /// `host:port`, or a URL with `http://` / `https://`. Without a scheme, TLS is used unless
    /// `tls.insecure` is set. Required (in `loadbalancing`'s `protocol.otlp`, each backend's).
    #[serde(default)]
    pub endpoint: String,
    /// TLS to the peer: `insecure` for plain text, a CA, a client certificate.
    #[serde(default)]
    pub tls: TlsClientConfig,
    /// gRPC metadata sent with every request, e.g. `authorization`.
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
    /// Send a `bearertokenauth` extension's token as `authorization`.
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    /// `none` (default), `gzip` or `zstd`. Unlike the collector, trailhead does not compress by
    /// default: in-cluster gzip costs more CPU than all the rest of its work (BENCHMARKS.md).
    #[serde(default)]
    pub compression: Compression,
    /// Deadline of one send attempt.
    #[serde(default = "default_timeout", deserialize_with = "values::duration")]
    pub timeout: Duration,
    /// The collector's queue: size, consumers, sizer, persistent storage, batching.
    #[serde(default)]
    pub sending_queue: QueueSettings,
    /// Backoff for retryable failures, with the collector's keys and meanings.
    #[serde(default)]
    pub retry_on_failure: RetrySettings,
    /// trailhead's place for the batch keys; the collector's is `sending_queue.batch`.
    #[serde(default)]
    pub batch: Option<BatchSettings>,
    /// How sends pick among the addresses of a `dns:///name:port` endpoint: `round_robin`
    /// (the collector's default: each send on the next address) or `pick_first`. The name is
    /// resolved again every 5 s. A `host:port` endpoint keeps one connection.
    #[serde(default = "default_balancer")]
    pub balancer_name: String,
}

fn default_balancer() -> String {
    "round_robin".into()
}

fn default_timeout() -> Duration {
    Duration::from_secs(5)
}

pub use super::tls::TlsClientConfig;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    #[default]
    None,
    Gzip,
    Zstd,
}

impl Compression {
    fn encoding(self) -> Option<CompressionEncoding> {
        match self {
            Compression::None => None,
            Compression::Gzip => Some(CompressionEncoding::Gzip),
            Compression::Zstd => Some(CompressionEncoding::Zstd),
        }
    }
}

/// A problem building the exporter from its config.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("invalid endpoint `{endpoint}`: {reason}")]
    Endpoint { endpoint: String, reason: String },
    #[error("cannot read {what} `{path}`: {source}")]
    File {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid header `{0}`: names must be lowercase ASCII and values visible ASCII")]
    Header(String),
    #[error("tls.insecure_skip_verify is not supported; give the server's CA in tls.ca_file")]
    SkipVerify,
    #[error("tls.cert_file and tls.key_file must be given together")]
    HalfIdentity,
    #[error("batch: {0}")]
    Batch(String),
    #[error("auth: {0}")]
    Auth(String),
    /// A `loadbalancing` setting that does not fit the signal it serves.
    #[error("{0}")]
    Routing(String),
}

impl OtlpExporterConfig {
    /// The URI to connect to: the endpoint with a scheme.
    pub fn uri(&self) -> String {
        if self.endpoint.contains("://") {
            self.endpoint.clone()
        } else if self.tls.insecure {
            format!("http://{}", self.endpoint)
        } else {
            format!("https://{}", self.endpoint)
        }
    }

    /// The batch settings, from `batch` or `sending_queue.batch` (the defaults with neither).
    pub fn batch_settings(&self) -> BatchSettings {
        super::batch_settings(&self.batch, &self.sending_queue)
    }

    /// Whether it speaks plain text: `tls.insecure` for a `dns:///` target, else the URI's
    /// scheme.
    fn plaintext(&self) -> bool {
        match balance::parse_target(&self.endpoint) {
            Some(_) => self.tls.insecure,
            None => !self.uri().starts_with("https://"),
        }
    }

    /// The settings the collector refuses, as (key, reason): a missing `endpoint`, and
    /// [`OtlpExporterConfig::sending_problems`].
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if self.endpoint.is_empty() {
            problems.push(("endpoint", "required: the peer's host:port or URL".into()));
        }
        if let Some(Err(why)) = balance::parse_target(&self.endpoint) {
            problems.push(("endpoint", why));
        }
        problems.extend(self.tls.problems(true, self.plaintext()));
        problems.extend(self.sending_problems());
        problems
    }

    /// The exporterhelper's checks of the batch, queue and retry keys, zero and negative
    /// values included (all but `endpoint`, which `loadbalancing` fills in per backend).
    pub fn sending_problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if let Err(why) = balance::Policy::parse(&self.balancer_name) {
            problems.push(("balancer_name", why));
        }
        problems.extend(super::sending_problems(
            &self.batch,
            &self.sending_queue,
            &self.retry_on_failure,
        ));
        problems
    }

    /// Builds the queue-driver spec of this exporter for one signal. Connects lazily, so a peer
    /// that is down at start is retried like any other outage. `token` is the bearertokenauth
    /// extension `auth` names; its file and the TLS files are watched through `secrets`, and a
    /// change rebuilds the connection for the sends that follow.
    pub fn build(
        &self,
        id: &str,
        signal: Signal,
        resolve: impl Fn(&PathBuf) -> PathBuf,
        token: Option<ClientAuthConfig>,
        secrets: &Secrets,
    ) -> Result<ExporterSpec, BuildError> {
        let settings = self.resolved(&resolve);
        let token = token.map(|t| t.resolved(&|p| resolve(&p.to_path_buf())));
        let mut files = settings.tls.files();
        files.extend(token.iter().flat_map(ClientAuthConfig::files));
        let what = format!("exporter {id}/{}", signal.as_str());
        let connect = settings.clone();
        let connection = secrets.watch(what, files, move || connect.connect(token.as_ref()))?;
        let sink = OtlpSink {
            connection,
            signal,
            compression: self.compression,
            timeout: self.timeout,
        };
        Ok(ExporterSpec {
            id: id.to_string(),
            signal,
            sink: Arc::new(sink),
            queue: self.sending_queue.clone(),
            batch: self.batch_settings().policy().map_err(BuildError::Batch)?,
            retry: self.retry_on_failure.clone(),
        })
    }

    /// The same settings with the TLS paths resolved by `resolve`.
    pub fn resolved(&self, resolve: &impl Fn(&PathBuf) -> PathBuf) -> Self {
        let mut settings = self.clone();
        for path in [
            &mut settings.tls.ca_file,
            &mut settings.tls.cert_file,
            &mut settings.tls.key_file,
        ] {
            *path = path.as_ref().map(resolve);
        }
        settings
    }

    /// The channel (with the TLS files read now) and the metadata (with the token read now).
    fn connect(&self, token: Option<&ClientAuthConfig>) -> Result<Connection, BuildError> {
        let headers = self.metadata(token)?;
        if let Some(target) = balance::parse_target(&self.endpoint) {
            return self.connect_balanced(target, headers);
        }
        let uri = self.uri();
        let endpoint_error = |reason: String| BuildError::Endpoint {
            endpoint: self.endpoint.clone(),
            reason,
        };
        let mut endpoint =
            Endpoint::from_shared(uri.clone()).map_err(|e| endpoint_error(e.to_string()))?;
        if uri.starts_with("https://") {
            endpoint = endpoint
                .tls_config(self.tls.client_config()?)
                .map_err(|e| endpoint_error(e.to_string()))?;
        }
        // The collector's `timeout: 0` is no deadline at all.
        if !self.timeout.is_zero() {
            endpoint = endpoint.timeout(self.timeout).connect_timeout(self.timeout);
        }
        Ok(Connection {
            channels: Channels::One(endpoint.connect_lazy()),
            headers,
        })
    }

    /// A `dns:///` endpoint's connection: a channel per resolved address.
    fn connect_balanced(
        &self,
        target: Result<(String, u16), String>,
        headers: MetadataMap,
    ) -> Result<Connection, BuildError> {
        let (host, port) = target.map_err(|reason| BuildError::Endpoint {
            endpoint: self.endpoint.clone(),
            reason,
        })?;
        let policy =
            balance::Policy::parse(&self.balancer_name).map_err(|reason| BuildError::Endpoint {
                endpoint: self.endpoint.clone(),
                reason: format!("balancer_name: {reason}"),
            })?;
        let https = !self.tls.insecure;
        let tls = match https {
            // Each address is verified against the name, as grpc-go does.
            true if self.tls.server_name_override.is_none() => {
                Some(self.tls.client_config()?.domain_name(host.clone()))
            }
            true => Some(self.tls.client_config()?),
            false => None,
        };
        let template = balance::Template {
            https,
            tls,
            timeout: self.timeout,
        };
        Ok(Connection {
            channels: Channels::Balanced(balance::Balanced::start(host, port, policy, template)),
            headers,
        })
    }

    /// The configured headers, then what the client authenticator adds (read now). As grpc-go
    /// sends per-RPC credentials beside the call's metadata, a name in both is sent twice.
    fn metadata(&self, token: Option<&ClientAuthConfig>) -> Result<MetadataMap, BuildError> {
        let mut headers = MetadataMap::new();
        let added = match token {
            Some(token) => {
                let added = token.load().map_err(BuildError::Auth)?;
                if added.grpc_needs_tls && self.plaintext() {
                    return Err(BuildError::Auth(
                        "these credentials are sent only over TLS, as the collector's gRPC \
                         client refuses to send them in plain text: set an https endpoint or \
                         tls.insecure: false"
                            .into(),
                    ));
                }
                added.grpc_metadata()
            }
            None => Vec::new(),
        };
        let configured = self
            .headers
            .iter()
            .map(|(name, value)| (name.as_str(), value, false));
        let added = added
            .iter()
            .map(|(name, value)| (name.as_str(), value, true));
        for (name, value, append) in configured.chain(added) {
            let key = AsciiMetadataKey::from_bytes(name.as_bytes())
                .map_err(|_| BuildError::Header(name.to_string()))?;
            let value = AsciiMetadataValue::try_from(value.0.as_str())
                .map_err(|_| BuildError::Header(name.to_string()))?;
            if append {
                headers.append(key, value);
            } else {
                headers.insert(key, value);
            }
        }
        Ok(headers)
    }
}

impl TlsClientConfig {
    /// tonic's TLS settings, with the CA and identity (files already resolved) read now. With
    /// a CA, only it is trusted (Go's `RootCAs`, as the collector sets it) unless
    /// `include_system_ca_certs_pool` adds the system's roots.
    fn client_config(&self) -> Result<ClientTlsConfig, BuildError> {
        if self.insecure_skip_verify {
            return Err(BuildError::SkipVerify);
        }
        let mut tls = ClientTlsConfig::new();
        let ca = self.ca()?;
        if ca.is_none() || self.include_system_ca_certs_pool {
            tls = tls.with_native_roots();
        }
        if let Some(ca) = ca {
            tls = tls.ca_certificate(Certificate::from_pem(ca));
        }
        if let Some((cert, key)) = self.identity()? {
            tls = tls.identity(Identity::from_pem(cert, key));
        }
        if let Some(name) = &self.server_name_override {
            tls = tls.domain_name(name.clone());
        }
        Ok(tls)
    }
}

/// What sends go out on: the channel (its TLS) and the metadata (its token). Rebuilt when
/// those files change; a send in flight keeps the one it started with.
struct Connection {
    channels: Channels,
    headers: MetadataMap,
}

/// One channel to the endpoint, or one per address of a `dns:///` name.
enum Channels {
    One(Channel),
    Balanced(Arc<balance::Balanced>),
}

impl Channels {
    /// The channel of one send attempt.
    fn pick(&self) -> Result<Channel, String> {
        match self {
            Channels::One(channel) => Ok(channel.clone()),
            Channels::Balanced(balanced) => balanced.pick(),
        }
    }
}

struct OtlpSink {
    connection: Arc<Rotating<Connection>>,
    signal: Signal,
    compression: Compression,
    timeout: Duration,
}

impl Sink for OtlpSink {
    fn send(
        &self,
        payload: Payload,
        _items: usize,
    ) -> BoxFuture<'_, Result<SendOutcome, ExportError>> {
        Box::pin(async move {
            let connection = self.connection.load_full();
            let mut channel =
                connection
                    .channels
                    .pick()
                    .map_err(|message| ExportError::Retryable {
                        message,
                        retry_after: None,
                    })?;
            std::future::poll_fn(|cx| channel.poll_ready(cx))
                .await
                .map_err(|e| ExportError::Retryable {
                    message: format!("connecting: {e}"),
                    retry_after: None,
                })?;
            let response = match self.compression.encoding() {
                None => self.send_uncompressed(channel, &connection, payload).await,
                Some(encoding) => {
                    self.send_compressed(channel, &connection, payload, encoding)
                        .await
                }
            };
            let partial =
                <ExportResponse as prost::Message>::decode(response.map_err(|s| classify(&s))?)
                    .ok()
                    .and_then(|r| r.partial_success)
                    .unwrap_or_default();
            Ok(SendOutcome {
                rejected: partial.rejected.max(0) as u64,
                message: partial.error_message,
            })
        })
    }
}

impl OtlpSink {
    /// The metadata of a request: the configured headers and the deadline; for profiles, the
    /// development version trailhead accepted them at (see [`crate::pdata::profiles`]).
    fn metadata(&self, connection: &Connection) -> MetadataMap {
        let mut request = tonic::Request::new(());
        *request.metadata_mut() = connection.headers.clone();
        if self.signal == Signal::Profiles {
            request.metadata_mut().insert(
                profiles::VERSION_HEADER,
                tonic::metadata::MetadataValue::from_static(profiles::VERSION),
            );
        }
        if !self.timeout.is_zero() {
            request.set_timeout(self.timeout);
        }
        request.into_parts().0
    }

    /// The payload's parts go to h2 as they are, behind the 5-byte gRPC message header: tonic's
    /// codec would first copy them all into one buffer (3% of S4's CPU). The response is read
    /// by tonic's own decoder, so statuses, trailers and HTTP errors map exactly as in `unary`.
    /// `channel` is the connection's, made ready.
    async fn send_uncompressed(
        &self,
        mut channel: Channel,
        connection: &Connection,
        payload: Payload,
    ) -> Result<Bytes, Status> {
        let length = u32::try_from(payload.len())
            .map_err(|_| Status::resource_exhausted("export request over 4 GiB"))?;
        let mut prefix = [0u8; 5];
        prefix[1..].copy_from_slice(&length.to_be_bytes());
        let frames = body_chunks(&prefix, payload.parts());
        let frames = frames
            .into_iter()
            .map(|b| Ok::<_, Infallible>(Frame::data(b)));
        let body = tonic::body::Body::new(StreamBody::new(futures::stream::iter(frames)));
        let mut request = http::Request::new(body);
        *request.method_mut() = http::Method::POST;
        *request.version_mut() = http::Version::HTTP_2;
        *request.uri_mut() = http::Uri::from_static(export_path(self.signal));
        let headers = request.headers_mut();
        headers.extend(self.metadata(connection).into_headers());
        headers.insert(http::header::TE, http::HeaderValue::from_static("trailers"));
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/grpc"),
        );
        let response = channel
            .call(request)
            .await
            .map_err(|e| Status::from_error(e.into()))?;
        let (parts, body) = response.into_parts();
        if parts.status == http::StatusCode::PAYLOAD_TOO_LARGE {
            return Err(Status::resource_exhausted(
                "HTTP 413: the request is too large for the peer",
            ));
        }
        // Trailers-only: the status came in the headers, with no message.
        if let Some(status) = Status::from_header_map(&parts.headers) {
            return match status.code() {
                Code::Ok => Ok(Bytes::new()),
                _ => Err(status),
            };
        }
        let mut stream = Streaming::new_response(RawCodec, body, parts.status, None, None);
        let message = stream
            .message()
            .await?
            .ok_or_else(|| Status::internal("Missing response message."))?;
        stream.trailers().await?;
        Ok(message)
    }

    async fn send_compressed(
        &self,
        channel: Channel,
        connection: &Connection,
        payload: Payload,
        encoding: CompressionEncoding,
    ) -> Result<Bytes, Status> {
        let mut grpc = tonic::client::Grpc::new(channel)
            .accept_compressed(CompressionEncoding::Gzip)
            .accept_compressed(CompressionEncoding::Zstd)
            .send_compressed(encoding);
        // Compressing copies the request anyway; one more copy to join its parts is noise.
        let mut request = tonic::Request::new(payload.to_bytes());
        *request.metadata_mut() = self.metadata(connection);
        let path = http::uri::PathAndQuery::from_static(export_path(self.signal));
        grpc.unary(request, path, RawCodec)
            .await
            .map(tonic::Response::into_inner)
    }
}

/// A part at least this long goes to h2 as it is; shorter ones are copied together, since each
/// body chunk becomes at least one DATA frame (a batch of 1-span requests would otherwise be
/// thousands of 300-byte frames).
const ZERO_COPY_MIN: usize = 16 * 1024;

/// The gRPC message `prefix` + `parts` as body chunks: long parts shared, runs of short ones
/// (and the prefix) merged into one buffer each, topped up from the next long part's head.
fn body_chunks(prefix: &[u8], parts: &[Bytes]) -> Vec<Bytes> {
    let mut chunks = Vec::with_capacity(parts.len() + 1);
    let mut pending = bytes::BytesMut::from(prefix);
    for part in parts {
        // `pending` is always shorter than ZERO_COPY_MIN here.
        let long =
            part.len() >= ZERO_COPY_MIN && (pending.is_empty() || part.len() >= 2 * ZERO_COPY_MIN);
        if !long {
            pending.extend_from_slice(part);
            if pending.len() >= ZERO_COPY_MIN {
                chunks.push(pending.split().freeze());
            }
            continue;
        }
        // Top the short bytes up from the part's head, so no chunk is a few bytes alone.
        if !pending.is_empty() {
            let head = ZERO_COPY_MIN - pending.len();
            pending.extend_from_slice(&part[..head]);
            chunks.push(pending.split().freeze());
            chunks.push(part.slice(head..));
        } else {
            chunks.push(part.clone());
        }
    }
    if !pending.is_empty() {
        chunks.push(pending.freeze());
    }
    chunks
}

/// The collector's retry rules: these codes are transient; RESOURCE_EXHAUSTED only when the
/// server says when to come back (RetryInfo), since otherwise it is a permanent quota.
pub fn classify(status: &Status) -> ExportError {
    use tonic_types::StatusExt;
    let retry_after = status
        .get_details_retry_info()
        .and_then(|info| info.retry_delay);
    let message = format!("{:?}: {}", status.code(), status.message());
    match status.code() {
        Code::Cancelled
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::OutOfRange
        | Code::Unavailable
        | Code::DataLoss => ExportError::Retryable {
            message,
            retry_after,
        },
        Code::ResourceExhausted if retry_after.is_some() => ExportError::Retryable {
            message,
            retry_after,
        },
        Code::ResourceExhausted if is_size_refusal(status.message()) => {
            ExportError::TooLarge { message }
        }
        _ => ExportError::Permanent { message },
    }
}

/// Whether RESOURCE_EXHAUSTED is about the message's size, as grpc-go ("grpc: received message
/// larger than max (N vs. M)"), gRPC C-core ("Received message larger than max"), tonic
/// ("decoded message length too large") and a proxy's 413 (below) word it; a quota is not.
fn is_size_refusal(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    message.contains("larger than max") || message.contains("too large")
}

#[cfg(test)]
mod tests {
    use super::*;

    // Skipping verification means nothing over plain text (the collector loads no TLS
    // settings there) and is refused where TLS is spoken.
    #[test]
    fn skip_verify_is_refused_only_where_tls_is_spoken() {
        let problems = |yaml: &str| {
            let config: OtlpExporterConfig = crate::config::tree::from_str(yaml).unwrap();
            config
                .problems()
                .into_iter()
                .map(|(key, _)| key)
                .collect::<Vec<_>>()
        };
        let skip = "tls: {insecure_skip_verify: true";
        assert!(problems(&format!("endpoint: a:4317\n{skip}, insecure: true}}")).is_empty());
        assert!(problems(&format!("endpoint: http://a:4317\n{skip}}}")).is_empty());
        assert_eq!(problems(&format!("endpoint: a:4317\n{skip}}}")), ["tls"]);
        assert_eq!(
            problems(&format!("endpoint: dns:///a:4317\n{skip}}}")),
            ["tls"]
        );
    }

    // The collector's classification, code by code; RetryInfo carries the wait.
    #[test]
    fn classifies_like_the_collector() {
        let retryable = |s: Status| matches!(classify(&s), ExportError::Retryable { .. });
        assert!(retryable(Status::unavailable("x")));
        assert!(retryable(Status::deadline_exceeded("x")));
        assert!(!retryable(Status::invalid_argument("x")));
        assert!(!retryable(Status::unauthenticated("x")));
        assert!(!retryable(Status::resource_exhausted("quota")));
        let too_large = |s: Status| matches!(classify(&s), ExportError::TooLarge { .. });
        assert!(too_large(Status::resource_exhausted(
            "grpc: received message larger than max (8323708 vs. 4194304)"
        )));
        assert!(too_large(Status::resource_exhausted(
            "Received message larger than max (8323708 vs. 4194304)"
        )));
        assert!(!too_large(Status::resource_exhausted("quota exceeded")));
        use tonic_types::{ErrorDetails, StatusExt};
        let details = ErrorDetails::with_retry_info(Some(Duration::from_secs(3)));
        let status = Status::with_error_details(Code::ResourceExhausted, "slow down", details);
        match classify(&status) {
            ExportError::Retryable { retry_after, .. } => {
                assert_eq!(retry_after, Some(Duration::from_secs(3)))
            }
            other => panic!("{other:?}"),
        }
    }

    // Long parts are sent as they are (but for the head that tops up the short bytes before
    // them), short runs merged; the chunks are the message.
    #[test]
    fn body_chunks_share_long_parts_and_merge_short_ones() {
        let long = Bytes::from(vec![7u8; 3 * ZERO_COPY_MIN]);
        let short = Bytes::from_static(b"abc");
        let parts = [
            short.clone(),
            long.clone(),
            short.clone(),
            short.clone(),
            long.clone(),
        ];
        let chunks = body_chunks(b"hdr", &parts);
        let lengths: Vec<usize> = chunks.iter().map(Bytes::len).collect();
        let rest = 2 * ZERO_COPY_MIN + 6;
        assert_eq!(lengths, [ZERO_COPY_MIN, rest, ZERO_COPY_MIN, rest]);
        assert_eq!(chunks[1].as_ptr(), long[ZERO_COPY_MIN - 6..].as_ptr());
        // A part too short to leave a long remainder is copied whole.
        let medium = Bytes::from(vec![1u8; ZERO_COPY_MIN + 10]);
        let lengths: Vec<usize> = body_chunks(b"hdr", &[medium])
            .iter()
            .map(Bytes::len)
            .collect();
        assert_eq!(lengths, [ZERO_COPY_MIN + 13]);
        let joined: Vec<u8> = chunks.concat();
        let expected: Vec<u8> = [&b"hdr"[..], &short, &long, &short, &short, &long].concat();
        assert_eq!(joined, expected);
        assert_eq!(body_chunks(b"hdr", &[]).concat(), b"hdr");
    }

    // An endpoint without a scheme gets one from tls.insecure.
    #[test]
    fn endpoint_scheme() {
        let config: OtlpExporterConfig =
            crate::config::tree::from_str("endpoint: alloy:4317\ntls: {insecure: true}").unwrap();
        assert_eq!(config.uri(), "http://alloy:4317");
        let config: OtlpExporterConfig =
            crate::config::tree::from_str("endpoint: alloy:4317").unwrap();
        assert_eq!(config.uri(), "https://alloy:4317");
        let config: OtlpExporterConfig =
            crate::config::tree::from_str("endpoint: http://alloy:4317").unwrap();
        assert_eq!(config.uri(), "http://alloy:4317");
    }
}
