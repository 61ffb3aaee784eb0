//! Bearer-token authentication: the collector's `bearertokenauth` extension. A receiver whose
//! `auth.authenticator` names one accepts only requests whose `Authorization` header is
//! `<scheme> <token>`; an exporter that names one sends that header.

use super::{ClientHeaders, Refusal, constant_time_eq};
use crate::secrets::Secret;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// `extensions: bearertokenauth/NAME:` with `token` or `filename`, not both.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BearerTokenConfig {
    /// The token itself, inline (prefer `filename` for a mounted Secret).
    #[serde(default)]
    pub token: Option<Secret>,
    /// A file holding the token (a mounted Kubernetes Secret), read at start and again when
    /// it changes.
    #[serde(default)]
    pub filename: Option<PathBuf>,
    /// The scheme in front of the token in `authorization`; `Bearer` by default.
    #[serde(default = "default_scheme")]
    pub scheme: String,
}

fn default_scheme() -> String {
    "Bearer".into()
}

/// The `Authorization` value a request must carry (or an exporter sends).
pub struct BearerToken {
    expected: Vec<u8>,
}

impl BearerTokenConfig {
    /// The same settings with `filename` resolved by `resolve`.
    pub fn resolved(&self, resolve: &dyn Fn(&Path) -> PathBuf) -> Self {
        BearerTokenConfig {
            filename: self.filename.as_deref().map(resolve),
            ..self.clone()
        }
    }

    /// The file it is read from, if any, to watch for rotation.
    pub fn files(&self) -> Vec<PathBuf> {
        self.filename.iter().cloned().collect()
    }

    /// Reads the token; `resolve` anchors a relative `filename`.
    pub fn load(&self, resolve: &dyn Fn(&Path) -> PathBuf) -> Result<BearerToken, String> {
        let token = match (&self.token, &self.filename) {
            (Some(token), None) => token.0.clone(),
            (None, Some(file)) => {
                let path = resolve(file);
                std::fs::read_to_string(&path)
                    .map_err(|e| format!("cannot read filename {}: {e}", path.display()))?
                    .trim()
                    .to_string()
            }
            _ => return Err("give exactly one of `token` and `filename`".into()),
        };
        if token.is_empty() {
            return Err("the token is empty".into());
        }
        Ok(BearerToken {
            expected: format!("{} {token}", self.scheme).into_bytes(),
        })
    }
}

impl BearerToken {
    /// Whether the request carries the token; the error says what was wrong, never the token.
    pub fn check(&self, headers: &http::HeaderMap) -> Result<(), Refusal> {
        let refuse = |message: &str| Err(Refusal::new(message, "Bearer"));
        let Some(given) = headers.get(http::header::AUTHORIZATION) else {
            return refuse("missing Authorization header: this receiver requires a bearer token");
        };
        if constant_time_eq(given.as_bytes(), &self.expected) {
            Ok(())
        } else {
            refuse("wrong bearer token in the Authorization header")
        }
    }

    /// The header value an exporter sends.
    pub fn header_value(&self) -> String {
        String::from_utf8_lossy(&self.expected).into_owned()
    }

    /// What an exporter sets on each request: `authorization`, replacing any configured one.
    /// Sent over plain-text gRPC too, as trailhead always has (the collector's gRPC client
    /// refuses to: its bearertokenauth requires transport security, as basicauth does).
    pub fn client_headers(&self) -> ClientHeaders {
        ClientHeaders::authorization(self.header_value(), false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(config: &str) -> Result<BearerToken, String> {
        let config: BearerTokenConfig = crate::config::tree::from_str(config).unwrap();
        config.load(&|p| p.to_path_buf())
    }

    fn headers(authorization: Option<&str>) -> http::HeaderMap {
        let mut map = http::HeaderMap::new();
        if let Some(value) = authorization {
            map.insert(http::header::AUTHORIZATION, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn checks_scheme_and_token() {
        let bearer = token("token: s3cret").unwrap();
        assert!(bearer.check(&headers(Some("Bearer s3cret"))).is_ok());
        assert!(bearer.check(&headers(Some("Bearer s3cre"))).is_err());
        assert!(bearer.check(&headers(Some("Basic s3cret"))).is_err());
        let missing = bearer.check(&headers(None)).unwrap_err();
        assert!(missing.message.contains("missing"), "{}", missing.message);
        let custom = token("{token: t, scheme: Token}").unwrap();
        assert_eq!(custom.header_value(), "Token t");
    }

    #[test]
    fn token_from_a_file_and_mistakes() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "from-file\n").unwrap();
        let bearer = token(&format!("filename: {}", file.display())).unwrap();
        assert!(bearer.check(&headers(Some("Bearer from-file"))).is_ok());
        assert!(token("{token: a, filename: b}").is_err());
        assert!(token("{}").is_err());
        let config: BearerTokenConfig = crate::config::tree::from_str("token: hidden").unwrap();
        assert!(!format!("{config:?}").contains("hidden"));
    }
}
