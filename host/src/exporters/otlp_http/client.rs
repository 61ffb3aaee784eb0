//! The pooled HTTP client and the headers of every request: what a TLS or token file rotation
//! rebuilds. HTTP/1.1 over plain text; over TLS, HTTP/2 when the peer offers it (ALPN), as Go's
//! client does with the collector's `force_attempt_http2: true`.

use super::OtlpHttpExporterConfig;
use crate::auth::ClientAuthConfig;
use crate::exporters::otlp::{BuildError, TlsClientConfig};
use http::{HeaderMap, HeaderName, HeaderValue};
use hyper_rustls::{FixedServerNameResolver, HttpsConnector};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// What sends go out on: the pool (its TLS) and the headers (its token). A send in flight
/// keeps the one it started with.
pub(crate) struct Connection {
    pub client: Client<HttpsConnector<HttpConnector>, super::sink::Body>,
    pub headers: HeaderMap,
}

/// Go's `http.DefaultMaxIdleConnsPerHost`, which the collector's 0 means.
const GO_IDLE_PER_HOST: usize = 2;

impl OtlpHttpExporterConfig {
    /// The client (with the TLS files, already resolved, read now) and the headers (with the
    /// token read now). `https`: whether the URL needs the system's CA roots.
    pub(crate) fn connect(
        &self,
        token: Option<&ClientAuthConfig>,
        https: bool,
    ) -> Result<Connection, BuildError> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        if !self.timeout.is_zero() {
            http.set_connect_timeout(Some(self.timeout));
        }
        let builder = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config(&self.tls, https)?)
            .https_or_http();
        let builder = match &self.tls.server_name_override {
            Some(name) => {
                let name = rustls::pki_types::ServerName::try_from(name.clone()).map_err(|e| {
                    BuildError::Endpoint {
                        endpoint: name.clone(),
                        reason: format!("tls.server_name_override: {e}"),
                    }
                })?;
                builder.with_server_name_resolver(FixedServerNameResolver::new(name))
            }
            None => builder,
        };
        let connector = builder.enable_all_versions().wrap_connector(http);
        let mut pool = Client::builder(TokioExecutor::new());
        pool.pool_idle_timeout(
            (!self.idle_conn_timeout.is_zero()).then_some(self.idle_conn_timeout),
        )
        .pool_max_idle_per_host(self.idle_per_host());
        Ok(Connection {
            client: pool.build(connector),
            headers: self.request_headers(token)?,
        })
    }

    /// How many idle connections the pool keeps, from the collector's three keys.
    pub(super) fn idle_per_host(&self) -> usize {
        if self.disable_keep_alives {
            return 0;
        }
        let per_host = match self.max_idle_conns_per_host {
            0 => GO_IDLE_PER_HOST,
            n => n,
        };
        match self.max_idle_conns {
            0 => per_host,
            all => per_host.min(all),
        }
    }

    /// The configured headers, then what the client authenticator sets (read now): the
    /// collector's auth round tripper runs inside its headers one, so it sees them and wins.
    fn request_headers(&self, token: Option<&ClientAuthConfig>) -> Result<HeaderMap, BuildError> {
        let mut headers = HeaderMap::new();
        for (name, value) in &self.headers {
            let key = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| BuildError::Header(name.to_string()))?;
            let mut value = HeaderValue::from_str(&value.0)
                .map_err(|_| BuildError::Header(name.to_string()))?;
            value.set_sensitive(true);
            headers.insert(key, value);
        }
        if let Some(token) = token {
            let added = token.load().map_err(BuildError::Auth)?;
            added.apply_http(&mut headers).map_err(BuildError::Auth)?;
        }
        if self.disable_keep_alives {
            headers.insert(http::header::CONNECTION, HeaderValue::from_static("close"));
        }
        Ok(headers)
    }
}

/// rustls settings from `tls:`. With a CA, only it is trusted (Go's `RootCAs`, as the
/// collector sets it) unless `include_system_ca_certs_pool` adds the system's roots; without
/// one, the system's roots, read only for an `https` URL so that a plain-text exporter starts
/// in an image without them.
fn tls_config(tls: &TlsClientConfig, https: bool) -> Result<rustls::ClientConfig, BuildError> {
    if tls.insecure_skip_verify && https {
        return Err(BuildError::SkipVerify);
    }
    let versions = tls.versions().map_err(|reason| BuildError::Endpoint {
        endpoint: String::new(),
        reason,
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| BuildError::Endpoint {
            endpoint: String::new(),
            reason: e.to_string(),
        })?;
    let ca = tls.ca()?;
    let mut roots = rustls::RootCertStore::empty();
    if (ca.is_none() && https) || (ca.is_some() && tls.include_system_ca_certs_pool) {
        let native = rustls_native_certs::load_native_certs();
        if let Some(error) = native
            .errors
            .into_iter()
            .next()
            .filter(|_| native.certs.is_empty())
        {
            return Err(BuildError::File {
                what: "the system's CA roots",
                path: PathBuf::new(),
                source: std::io::Error::other(error.to_string()),
            });
        }
        roots.add_parsable_certificates(native.certs);
    }
    if let Some(pem) = &ca {
        add_roots(&mut roots, pem)?;
    }
    let builder = builder.with_root_certificates(roots);
    let source = PathBuf::from(if tls.key_pem.is_some() {
        "key_pem"
    } else {
        "key_file"
    });
    match tls.identity()? {
        Some((cert, key)) => {
            let chain = CertificateDer::pem_slice_iter(&cert)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| invalid("tls.cert_file", &source, e))?;
            let private = PrivateKeyDer::from_pem_slice(&key)
                .map_err(|e| invalid("tls.key_file", &source, e))?;
            builder
                .with_client_auth_cert(chain, private)
                .map_err(|e| invalid("tls.key_file", &source, e))
        }
        None => Ok(builder.with_no_client_auth()),
    }
}

/// The certificates of a PEM bundle, added to the roots trusted.
fn add_roots(roots: &mut rustls::RootCertStore, pem: &[u8]) -> Result<(), BuildError> {
    let source = Path::new("ca");
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| invalid("tls.ca_file", source, e))?;
        roots
            .add(cert)
            .map_err(|e| invalid("tls.ca_file", source, e))?;
    }
    Ok(())
}

/// A file that was read but does not hold what `what` needs.
fn invalid(what: &'static str, path: &Path, error: impl std::fmt::Display) -> BuildError {
    BuildError::File {
        what,
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, error.to_string()),
    }
}
