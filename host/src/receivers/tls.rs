//! `tls:` of a receiver: its certificate and key, and with `client_ca_file`, mutual TLS. Read
//! into a rustls config (ring), offering h2 and http/1.1 by ALPN; read again when the files
//! change (see [`crate::secrets`]).

use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_rustls::rustls;

/// `tls:` of a receiver. With `client_ca_file`, clients must present a certificate it signed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsServerConfig {
    /// The server certificate (PEM), re-read when it changes.
    pub cert_file: PathBuf,
    /// The server certificate's private key (PEM), re-read when it changes.
    pub key_file: PathBuf,
    /// CA bundle (PEM) client certificates must chain to: mutual TLS.
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
}

impl TlsServerConfig {
    /// The same settings with every path resolved by `resolve`.
    pub fn resolved(&self, resolve: &dyn Fn(&Path) -> PathBuf) -> Self {
        TlsServerConfig {
            cert_file: resolve(&self.cert_file),
            key_file: resolve(&self.key_file),
            client_ca_file: self.client_ca_file.as_deref().map(resolve),
        }
    }

    /// The files it is built from, to watch for rotation.
    pub fn files(&self) -> Vec<PathBuf> {
        let mut files = vec![self.cert_file.clone(), self.key_file.clone()];
        files.extend(self.client_ca_file.clone());
        files
    }

    /// Reads the certificate, key and client CA; `resolve` anchors relative paths.
    pub fn load(&self, resolve: &dyn Fn(&Path) -> PathBuf) -> Result<rustls::ServerConfig, String> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let read = |what: &str, path: &Path| {
            let path = resolve(path);
            std::fs::read(&path)
                .map_err(|e| format!("cannot read tls.{what} {}: {e}", path.display()))
        };
        let certificates = |what: &str, path: &Path| {
            let pem = read(what, path)?;
            let list: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<_, _>>()
                .map_err(|e| format!("tls.{what} {}: {e}", path.display()))?;
            if list.is_empty() {
                return Err(format!(
                    "tls.{what} {} holds no certificate",
                    path.display()
                ));
            }
            Ok(list)
        };
        let chain = certificates("cert_file", &self.cert_file)?;
        let key = PrivateKeyDer::from_pem_slice(&read("key_file", &self.key_file)?)
            .map_err(|e| format!("tls.key_file {}: {e}", self.key_file.display()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let builder = match &self.client_ca_file {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for certificate in certificates("client_ca_file", ca)? {
                    roots
                        .add(certificate)
                        .map_err(|e| format!("tls.client_ca_file {}: {e}", ca.display()))?;
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .map_err(|e| format!("tls.client_ca_file {}: {e}", ca.display()))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder
            .with_single_cert(chain, key)
            .map_err(|e| format!("tls.cert_file and tls.key_file do not make a pair: {e}"))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }
}
