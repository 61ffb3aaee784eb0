//! `tls:` of an exporter (the collector's `configtls.ClientConfig`): the CA and the client
//! identity from files or inline PEM, the TLS versions, and the keys whose meaning trailhead
//! keeps some other way (`reload_interval`: files are re-read when they change, see
//! [`crate::secrets`]).

use crate::config::values;
use crate::secrets::Secret;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;
use tokio_rustls::rustls;

/// `tls:` of a client.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsClientConfig {
    /// Plain-text gRPC (h2c).
    pub insecure: bool,
    /// Do not verify the server's certificate. Refused where TLS is spoken (give the CA in
    /// `ca_file`); accepted over plain text, where the collector ignores it too.
    pub insecure_skip_verify: bool,
    /// CA bundle (PEM) to verify the server; the system roots otherwise.
    pub ca_file: Option<PathBuf>,
    /// The same CA bundle written inline, instead of `ca_file`.
    pub ca_pem: Option<String>,
    /// With a CA given, trust the system's roots as well as it.
    pub include_system_ca_certs_pool: bool,
    /// Client certificate (PEM) for mutual TLS.
    pub cert_file: Option<PathBuf>,
    /// The client certificate written inline, instead of `cert_file`.
    pub cert_pem: Option<String>,
    /// The client certificate's private key (PEM).
    pub key_file: Option<PathBuf>,
    /// The private key written inline, instead of `key_file`.
    pub key_pem: Option<Secret>,
    /// Name to verify the server certificate against, instead of the endpoint's host.
    pub server_name_override: Option<String>,
    /// The oldest TLS version spoken: `1.2` (the collector's default) or `1.3`.
    pub min_version: Option<String>,
    /// The newest TLS version spoken: `1.2` or `1.3` (the default, the newest).
    pub max_version: Option<String>,
    /// How often the collector re-reads the files. trailhead re-reads them when they change
    /// (checked every second), which keeps what this asks for; the value is accepted.
    #[serde(deserialize_with = "values::duration")]
    pub reload_interval: Duration,
    /// Cipher suites by Go name. Refused when set: rustls picks among its own safe suites.
    pub cipher_suites: Vec<String>,
    /// Key-exchange curves by Go name. Refused when set, as `cipher_suites`.
    pub curve_preferences: Vec<String>,
}

/// A PEM value from its file or inline: (`what` for messages, file, inline).
type PemSource<'a> = (&'static str, &'a Option<PathBuf>, Option<&'a str>);

impl TlsClientConfig {
    /// The collector's refusals of these keys, plus what trailhead cannot honour, as (key,
    /// why). `grpc`: the `otlp` exporter, whose TLS (tonic's) speaks both 1.2 and 1.3 and
    /// cannot be narrowed to one. `plaintext`: every connection is plain text, so (as in the
    /// collector, which loads no TLS settings then) skipping verification means nothing.
    pub fn problems(&self, grpc: bool, plaintext: bool) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if self.insecure_skip_verify && !plaintext {
            problems.push(("tls", super::otlp::BuildError::SkipVerify.to_string()));
        }
        for (what, file, pem) in self.sources() {
            if file.is_some() && pem.is_some() {
                problems.push(("tls", format!("give {what}_file or {what}_pem, not both")));
            }
        }
        if self.has_cert() != self.has_key() {
            problems.push(("tls", super::otlp::BuildError::HalfIdentity.to_string()));
        }
        if let Err(why) = self.versions() {
            problems.push(("tls", why));
        } else if grpc && self.versions().is_ok_and(|v| v.len() != 2) {
            problems.push((
                "tls",
                "the otlp (gRPC) exporter speaks TLS 1.2 and 1.3 and cannot be narrowed to one yet; \
                 leave min_version at 1.2 and max_version at 1.3, or use otlp_http"
                    .into(),
            ));
        }
        for (key, values) in [
            ("cipher_suites", &self.cipher_suites),
            ("curve_preferences", &self.curve_preferences),
        ] {
            if !values.is_empty() {
                problems.push((
                    "tls",
                    format!(
                        "{key} is not supported: trailhead's TLS (rustls) offers only its own safe \
                     choices; remove the key"
                    ),
                ));
            }
        }
        problems
    }

    fn sources(&self) -> [PemSource<'_>; 3] {
        [
            ("ca", &self.ca_file, self.ca_pem.as_deref()),
            ("cert", &self.cert_file, self.cert_pem.as_deref()),
            (
                "key",
                &self.key_file,
                self.key_pem.as_ref().map(|s| s.0.as_str()),
            ),
        ]
    }

    fn has_cert(&self) -> bool {
        self.cert_file.is_some() || self.cert_pem.is_some()
    }

    fn has_key(&self) -> bool {
        self.key_file.is_some() || self.key_pem.is_some()
    }

    /// The TLS versions to speak, oldest first, as the collector's `min_version` (default
    /// 1.2) and `max_version` (default the newest) give them.
    pub fn versions(&self) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, String> {
        let min = values::tls_version("min_version", &self.min_version)?;
        let max = values::tls_version("max_version", &self.max_version)?;
        let all = [&rustls::version::TLS12, &rustls::version::TLS13];
        let position =
            |v: &rustls::SupportedProtocolVersion| all.iter().position(|a| a.version == v.version);
        let from = min.and_then(position).unwrap_or(0);
        let to = max.and_then(position).unwrap_or(1);
        if from > to {
            return Err(
                "invalid TLS configuration: min_version cannot be greater than max_version".into(),
            );
        }
        Ok(all[from..=to].to_vec())
    }

    /// The files it reads, to watch for rotation.
    pub fn files(&self) -> Vec<PathBuf> {
        [&self.ca_file, &self.cert_file, &self.key_file]
            .into_iter()
            .flatten()
            .cloned()
            .collect()
    }

    /// The CA bundle's PEM, from its file (read now) or inline; `None` when neither is given.
    pub fn ca(&self) -> Result<Option<Vec<u8>>, super::otlp::BuildError> {
        read_pem(self.sources()[0])
    }

    /// The client certificate's and key's PEM, when both are given.
    pub fn identity(&self) -> Result<Option<(Vec<u8>, Vec<u8>)>, super::otlp::BuildError> {
        let [_, cert, key] = self.sources();
        match (read_pem(cert)?, read_pem(key)?) {
            (Some(cert), Some(key)) => Ok(Some((cert, key))),
            (None, None) => Ok(None),
            _ => Err(super::otlp::BuildError::HalfIdentity),
        }
    }
}

fn read_pem((what, file, pem): PemSource<'_>) -> Result<Option<Vec<u8>>, super::otlp::BuildError> {
    if let Some(pem) = pem {
        return Ok(Some(pem.as_bytes().to_vec()));
    }
    let Some(path) = file else {
        return Ok(None);
    };
    let what = match what {
        "ca" => "tls.ca_file",
        "cert" => "tls.cert_file",
        _ => "tls.key_file",
    };
    std::fs::read(path)
        .map(Some)
        .map_err(|source| super::otlp::BuildError::File {
            what,
            path: path.clone(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls(yaml: &str) -> TlsClientConfig {
        crate::config::tree::from_str(yaml).unwrap()
    }

    fn problems(yaml: &str, grpc: bool) -> Vec<String> {
        tls(yaml)
            .problems(grpc, false)
            .into_iter()
            .map(|(_, why)| why)
            .collect()
    }

    #[test]
    fn the_collectors_keys_parse_and_inline_pem_is_read() {
        let config = tls(
            "ca_pem: CA\ncert_pem: CERT\nkey_pem: KEY\nreload_interval: 10s\n\
             include_system_ca_certs_pool: true\nmin_version: '1.2'\nmax_version: '1.3'",
        );
        assert!(config.problems(true, false).is_empty());
        assert_eq!(config.ca().unwrap().unwrap(), b"CA");
        assert_eq!(
            config.identity().unwrap().unwrap(),
            (b"CERT".to_vec(), b"KEY".to_vec())
        );
        assert_eq!(config.reload_interval, Duration::from_secs(10));
        assert!(
            format!("{config:?}").contains("<redacted>"),
            "the inline key is not logged"
        );
    }

    #[test]
    fn a_file_and_its_pem_together_are_refused_as_the_collector_does() {
        assert_eq!(
            problems("ca_file: a.pem\nca_pem: CA", false),
            ["give ca_file or ca_pem, not both"]
        );
        assert_eq!(
            problems("cert_pem: C", false),
            [super::super::otlp::BuildError::HalfIdentity.to_string()]
        );
    }

    #[test]
    fn versions_follow_min_and_max_and_grpc_refuses_narrowing() {
        assert_eq!(tls("{}").versions().unwrap().len(), 2);
        let only13 = tls("min_version: '1.3'").versions().unwrap();
        assert_eq!(only13.len(), 1);
        assert_eq!(only13[0].version, rustls::ProtocolVersion::TLSv1_3);
        assert!(problems("min_version: '1.3'", false).is_empty());
        assert!(problems("min_version: '1.3'", true)[0].contains("cannot be narrowed"));
        assert!(
            problems("min_version: '1.3'\nmax_version: '1.2'", false)[0]
                .contains("cannot be greater")
        );
        assert!(problems("min_version: '1.1'", false)[0].contains("TLS 1.1 is not available"));
        assert!(
            problems("cipher_suites: [TLS_AES_128_GCM_SHA256]", false)[0].contains("cipher_suites")
        );
    }
}
