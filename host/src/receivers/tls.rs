//! `tls:` of a receiver: its certificate and key, and with `client_ca_file`, mutual TLS. Read
//! into a rustls config (ring), offering h2 and http/1.1 by ALPN; read again when the files
//! change (see [`crate::secrets`]).

use crate::config::values;
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
    /// The oldest TLS version accepted: `1.2` (the collector's default) or `1.3`. `1.0` and
    /// `1.1` are refused: rustls implements neither, so clients the setting admits would fail.
    #[serde(default)]
    pub min_version: Option<String>,
    /// The newest TLS version offered: `1.2` or `1.3` (the default, the newest).
    #[serde(default)]
    pub max_version: Option<String>,
}

impl TlsServerConfig {
    /// The same settings with every path resolved by `resolve`.
    pub fn resolved(&self, resolve: &dyn Fn(&Path) -> PathBuf) -> Self {
        TlsServerConfig {
            cert_file: resolve(&self.cert_file),
            key_file: resolve(&self.key_file),
            client_ca_file: self.client_ca_file.as_deref().map(resolve),
            min_version: self.min_version.clone(),
            max_version: self.max_version.clone(),
        }
    }

    /// The files it is built from, to watch for rotation.
    pub fn files(&self) -> Vec<PathBuf> {
        let mut files = vec![self.cert_file.clone(), self.key_file.clone()];
        files.extend(self.client_ca_file.clone());
        files
    }

    /// The TLS versions to speak, from `min_version` and `max_version`, as the collector
    /// bounds them (a minimum above the maximum is refused).
    pub fn versions(&self) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, String> {
        let min = values::tls_version("min_version", &self.min_version)?;
        let max = values::tls_version("max_version", &self.max_version)?;
        let twelve = min.is_none_or(|v| v.version == rustls::ProtocolVersion::TLSv1_2);
        let thirteen = max.is_none_or(|v| v.version == rustls::ProtocolVersion::TLSv1_3);
        match (twelve, thirteen) {
            (true, true) => Ok(vec![&rustls::version::TLS13, &rustls::version::TLS12]),
            (true, false) => Ok(vec![&rustls::version::TLS12]),
            (false, true) => Ok(vec![&rustls::version::TLS13]),
            (false, false) => Err("tls.min_version 1.3 is above tls.max_version 1.2".into()),
        }
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
            .with_protocol_versions(&self.versions()?)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn versions(yaml: &str) -> Result<Vec<rustls::ProtocolVersion>, String> {
        let tls: TlsServerConfig =
            crate::config::tree::from_str(&format!("cert_file: c\nkey_file: k\n{yaml}"))?;
        Ok(tls.versions()?.iter().map(|v| v.version).collect())
    }

    // 1.2 and 1.3 bound what is spoken; 1.0 and 1.1 are refused with the reason.
    #[test]
    fn min_and_max_versions() {
        use rustls::ProtocolVersion::{TLSv1_2, TLSv1_3};
        assert_eq!(versions("").unwrap(), [TLSv1_3, TLSv1_2]);
        assert_eq!(versions("min_version: '1.3'").unwrap(), [TLSv1_3]);
        assert_eq!(versions("max_version: '1.2'").unwrap(), [TLSv1_2]);
        assert!(
            versions("min_version: '1.1'")
                .unwrap_err()
                .contains("rustls")
        );
        assert!(versions("min_version: '1.3'\nmax_version: '1.2'").is_err());
        assert!(
            versions("max_version: '2.0'")
                .unwrap_err()
                .contains("unknown TLS version")
        );
    }
}
