//! Authentication: the collector's authenticator extensions, one file per kind.
//!
//! A receiver's `auth.authenticator` names a server authenticator ([`ServerAuth`]): every
//! request is checked before it reaches the router, and a refusal is HTTP 401 or gRPC
//! UNAUTHENTICATED with the collector's message. An exporter's names a client authenticator
//! ([`ClientAuthConfig`]): the headers it sets on every request it sends ([`ClientHeaders`]).
//!
//! | kind | server (receivers) | client (exporters) |
//! | --- | --- | --- |
//! | `bearertokenauth` | yes | yes |
//! | `basicauth` | with `htpasswd` | with `client_auth` |
//! | `oidc` | yes | no |
//! | `headers_setter` | no | yes |

pub mod basic;
mod bearer;
pub mod headers_setter;
mod htpasswd;
pub mod oidc;

pub use bearer::{BearerToken, BearerTokenConfig};

use crate::config::ComponentId;
use crate::secrets::{Rotating, Secret};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// `auth:` of a receiver or exporter.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// An authenticator extension id: `bearertokenauth`, `basicauth` or `oidc` on a receiver;
    /// `bearertokenauth`, `basicauth` or `headers_setter` on an exporter.
    pub authenticator: ComponentId,
}

/// Why a request was refused: the message the client is told (the collector's, never a
/// secret) and the scheme of the `WWW-Authenticate` challenge HTTP 401 carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub message: String,
    pub challenge: &'static str,
}

impl Refusal {
    pub fn new(message: impl Into<String>, challenge: &'static str) -> Self {
        Refusal {
            message: message.into(),
            challenge,
        }
    }
}

/// A receiver's authenticator as it checks requests. The file-backed ones are re-read when
/// their files change; each request is checked against the current one.
pub enum ServerAuth {
    Bearer(Arc<Rotating<BearerToken>>),
    Basic(Arc<Rotating<basic::Htpasswd>>),
    Oidc(Arc<oidc::Verifier>),
}

impl ServerAuth {
    /// Whether the request's headers authenticate it. Only an OIDC token signed by a key not
    /// yet seen waits (for the provider's keys, fetched at most once per cool-down).
    pub async fn check(&self, headers: &http::HeaderMap) -> Result<(), Refusal> {
        match self {
            ServerAuth::Bearer(token) => token.load().check(headers),
            ServerAuth::Basic(htpasswd) => htpasswd.load().check(headers),
            ServerAuth::Oidc(verifier) => verifier.check(headers).await,
        }
    }
}

/// A client authenticator's settings, as an exporter reads them: what its requests carry.
#[derive(Debug, Clone)]
pub enum ClientAuthConfig {
    Bearer(BearerTokenConfig),
    Basic(basic::ClientAuthSettings),
    HeadersSetter(headers_setter::HeadersSetterConfig),
}

impl ClientAuthConfig {
    /// The same settings with their files resolved by `resolve`.
    pub fn resolved(&self, resolve: &dyn Fn(&Path) -> PathBuf) -> Self {
        match self {
            ClientAuthConfig::Bearer(c) => ClientAuthConfig::Bearer(c.resolved(resolve)),
            ClientAuthConfig::Basic(c) => ClientAuthConfig::Basic(c.resolved(resolve)),
            ClientAuthConfig::HeadersSetter(c) => {
                ClientAuthConfig::HeadersSetter(c.resolved(resolve))
            }
        }
    }

    /// The files it reads, to watch for rotation.
    pub fn files(&self) -> Vec<PathBuf> {
        match self {
            ClientAuthConfig::Bearer(c) => c.files(),
            ClientAuthConfig::Basic(c) => c.files(),
            ClientAuthConfig::HeadersSetter(c) => c.files(),
        }
    }

    /// Reads its files (already resolved) now: the headers every request gets.
    pub fn load(&self) -> Result<ClientHeaders, String> {
        match self {
            ClientAuthConfig::Bearer(c) => Ok(c.load(&|p| p.into())?.client_headers()),
            ClientAuthConfig::Basic(c) => c.load(),
            ClientAuthConfig::HeadersSetter(c) => c.load(),
        }
    }
}

/// What a client authenticator does to a request's headers, as headers_setter's actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum HeaderAction {
    /// Set it when the request has none (an empty value counts as none, as Go's `Get`).
    Insert,
    /// Set it only when the request already has it.
    Update,
    /// Set it either way (the collector's default).
    #[default]
    Upsert,
    /// Remove it.
    Delete,
}

/// One header a client authenticator sets: its lower-case name, what to do, and the value.
#[derive(Debug, Clone)]
pub struct HeaderOp {
    pub name: String,
    pub action: HeaderAction,
    pub value: Secret,
}

/// The headers a client authenticator sets, in order.
#[derive(Debug, Clone, Default)]
pub struct ClientHeaders {
    pub ops: Vec<HeaderOp>,
    /// The collector's gRPC client sends these credentials only over TLS (grpc-go refuses
    /// per-RPC credentials that require transport security on a plain-text connection).
    pub grpc_needs_tls: bool,
}

impl ClientHeaders {
    /// `authorization: VALUE`, set either way (bearer and basic credentials).
    pub fn authorization(value: String, grpc_needs_tls: bool) -> Self {
        ClientHeaders {
            ops: vec![HeaderOp {
                name: "authorization".into(),
                action: HeaderAction::Upsert,
                value: Secret(value),
            }],
            grpc_needs_tls,
        }
    }

    /// Applies the actions to an HTTP request's headers, the configured `headers:` already
    /// set: the collector's auth round tripper runs inside its headers one, so it sees them.
    pub fn apply_http(&self, headers: &mut http::HeaderMap) -> Result<(), String> {
        for op in &self.ops {
            let name = http::HeaderName::from_bytes(op.name.as_bytes())
                .map_err(|_| format!("`{}` is not a valid header name", op.name))?;
            let present = headers.get(&name).is_some_and(|v| !v.is_empty());
            let set = match op.action {
                HeaderAction::Insert => !present,
                HeaderAction::Update => present,
                HeaderAction::Upsert => true,
                HeaderAction::Delete => {
                    headers.remove(&name);
                    false
                }
            };
            if set {
                let mut value = http::HeaderValue::from_str(&op.value.0)
                    .map_err(|_| format!("the value of header `{}` is not valid", op.name))?;
                value.set_sensitive(true);
                headers.insert(name, value);
            }
        }
        Ok(())
    }

    /// The gRPC metadata the collector's per-RPC credentials add: the actions applied to an
    /// empty map (they do not see the configured `headers:`, which are sent beside them).
    pub fn grpc_metadata(&self) -> Vec<(String, Secret)> {
        let mut metadata: Vec<(String, Secret)> = Vec::new();
        for op in &self.ops {
            let at = metadata.iter().position(|(name, _)| *name == op.name);
            match (op.action, at) {
                (HeaderAction::Insert, None) | (HeaderAction::Upsert, None) => {
                    metadata.push((op.name.clone(), op.value.clone()))
                }
                (HeaderAction::Update, Some(at)) | (HeaderAction::Upsert, Some(at)) => {
                    metadata[at].1 = op.value.clone()
                }
                (HeaderAction::Delete, Some(at)) => {
                    metadata.remove(at);
                }
                _ => {}
            }
        }
        metadata
    }
}

/// Compares without returning early, so the time taken does not tell how much of a guess was
/// right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// The first value of header `name` (any case), as text; `None` when absent.
fn first_header<'h>(headers: &'h http::HeaderMap, name: &str) -> Option<&'h [u8]> {
    headers.get(name).map(http::HeaderValue::as_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(name: &str, action: HeaderAction, value: &str) -> HeaderOp {
        HeaderOp {
            name: name.into(),
            action,
            value: Secret(value.into()),
        }
    }

    #[test]
    fn actions_on_http_see_the_configured_headers() {
        let headers = ClientHeaders {
            ops: vec![
                op("x-tenant", HeaderAction::Insert, "inserted"),
                op("x-team", HeaderAction::Update, "updated"),
                op("x-missing", HeaderAction::Update, "never"),
                op("x-drop", HeaderAction::Delete, ""),
                op("x-new", HeaderAction::Insert, "new"),
            ],
            grpc_needs_tls: false,
        };
        let mut map = http::HeaderMap::new();
        map.insert("x-tenant", "configured".parse().unwrap());
        map.insert("x-team", "configured".parse().unwrap());
        map.insert("x-drop", "configured".parse().unwrap());
        headers.apply_http(&mut map).unwrap();
        assert_eq!(map["x-tenant"], "configured");
        assert_eq!(map["x-team"], "updated");
        assert_eq!(map["x-new"], "new");
        assert!(map.get("x-missing").is_none() && map.get("x-drop").is_none());
    }

    #[test]
    fn actions_on_grpc_start_from_an_empty_map() {
        let headers = ClientHeaders {
            ops: vec![
                op("a", HeaderAction::Update, "never"),
                op("b", HeaderAction::Insert, "1"),
                op("b", HeaderAction::Insert, "2"),
                op("c", HeaderAction::Upsert, "3"),
                op("c", HeaderAction::Delete, ""),
            ],
            grpc_needs_tls: false,
        };
        let metadata = headers.grpc_metadata();
        let names: Vec<(&str, &str)> = metadata
            .iter()
            .map(|(n, v)| (n.as_str(), v.0.as_str()))
            .collect();
        assert_eq!(names, [("b", "1")]);
    }
}
