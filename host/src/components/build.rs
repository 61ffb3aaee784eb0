//! What building a component needs, and why a build fails: the config (to resolve paths and
//! find the extensions a component names), the secrets watcher and the telemetry. The helpers
//! here are the steps several kinds share: a receiver protocol's TLS, authenticator and
//! limits, and the client authenticator an exporter's `auth:` names.

use super::{Config, ExtensionConfig};
use crate::auth::oidc::Verifier;
use crate::auth::{AuthConfig, ClientAuthConfig, ServerAuth};
use crate::config::Diagnostic;
use crate::exporters::otlp::BuildError;
use crate::receivers::ServeOptions;
use crate::receivers::limits::ConnectionLimits;
use crate::receivers::tls::TlsServerConfig;
use crate::secrets::Secrets;
use crate::telemetry::Telemetry;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why trailhead could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("receiver `{id}`: {source}")]
    Receiver { id: String, source: std::io::Error },
    #[error("exporter `{id}`: {source}")]
    Exporter { id: String, source: BuildError },
    #[error("{what}: {source}")]
    Admin {
        what: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Processor(Diagnostic),
    #[error("{0}")]
    Kubernetes(String),
    #[error("receiver `{id}`: {message}")]
    Listener { id: String, message: String },
    #[error("exporter `{id}`: sending_queue.storage: {message}")]
    Storage { id: String, message: String },
}

/// What building a component reads.
pub struct Build<'a> {
    pub config: &'a Config,
    pub secrets: &'a Secrets,
    pub telemetry: &'a Telemetry,
    /// The Kubernetes watches `prometheus` receivers discover targets with.
    pub discovery: Arc<crate::kubernetes::discovery::Discovery>,
}

/// A server a receiver listens with: its name, endpoint, routes and how it serves.
pub type ReceiverServer<'c> = (String, &'c String, axum::Router, ServeOptions);

/// What one receiver protocol serves with: its TLS and bearer token (read, checked, and
/// watched for rotation) and its limits.
pub struct Protocol<'a> {
    pub tls: &'a Option<TlsServerConfig>,
    pub auth: &'a Option<AuthConfig>,
    pub limits: &'a ConnectionLimits,
    pub max_concurrent_streams: Option<u32>,
}

impl Build<'_> {
    /// A path written in the config, relative to the config file's folder.
    pub fn resolve_path(&self, path: &Path) -> PathBuf {
        self.config.resolve_path(path)
    }

    /// The TLS, bearer token and limits of one protocol of `receiver` (served as `server`),
    /// read, checked, and re-read when their files change.
    pub fn serve_options(
        &self,
        receiver: &str,
        server: &str,
        protocol: Protocol<'_>,
    ) -> Result<ServeOptions, StartError> {
        let failed = |message: String| StartError::Listener {
            id: receiver.to_string(),
            message,
        };
        protocol.limits.validate().map_err(failed)?;
        let tls = match protocol.tls {
            Some(tls) => {
                let tls = tls.resolved(&|p| self.resolve_path(p));
                let what = format!("receiver {server} tls");
                let watched = self
                    .secrets
                    .watch(what, tls.files(), move || tls.load(&|p| p.into()));
                Some(watched.map_err(failed)?)
            }
            None => None,
        };
        let auth = match protocol.auth {
            Some(auth) => Some(
                self.server_auth(auth, &format!("receiver {server}"))
                    .map_err(failed)?,
            ),
            None => None,
        };
        Ok(ServeOptions {
            tls,
            auth,
            limits: protocol.limits.clone(),
            max_concurrent_streams: protocol.max_concurrent_streams,
            // Each receiver kind sets its own from its keys.
            lifetime: Default::default(),
            cors: None,
        })
    }

    /// The server authenticator `auth` names, read, checked, and re-read when its files
    /// change; `user` says who uses it, in logs and metrics.
    fn server_auth(&self, auth: &AuthConfig, user: &str) -> Result<Arc<ServerAuth>, String> {
        let extension = &auth.authenticator;
        let what = format!("{user} {extension}");
        let failed = |e: String| format!("extension `{extension}`: {e}");
        let resolve = |p: &Path| self.resolve_path(p);
        let checker = match self.config.extensions.get(extension) {
            Some(ExtensionConfig::BearerToken(token)) => {
                let token = token.resolved(&resolve);
                let watched = self
                    .secrets
                    .watch(what, token.files(), move || token.load(&|p| p.into()));
                ServerAuth::Bearer(watched.map_err(failed)?)
            }
            Some(ExtensionConfig::BasicAuth(basic)) => {
                let Some(htpasswd) = &basic.htpasswd else {
                    return Err(failed(
                        "a basicauth extension with client_auth authenticates exporters; a \
                         receiver needs one with htpasswd"
                            .into(),
                    ));
                };
                let htpasswd = htpasswd.resolved(&resolve);
                let watched = self
                    .secrets
                    .watch(what, htpasswd.files(), move || htpasswd.load());
                ServerAuth::Basic(watched.map_err(failed)?)
            }
            Some(ExtensionConfig::Oidc(oidc)) => {
                let verifier = Verifier::start(&oidc.resolved(&resolve), self.secrets, &what);
                ServerAuth::Oidc(Arc::new(verifier.map_err(failed)?))
            }
            _ => {
                return Err(format!(
                    "auth.authenticator `{extension}` is not a server authenticator \
                     (bearertokenauth, basicauth with htpasswd, oidc)"
                ));
            }
        };
        Ok(Arc::new(checker))
    }

    /// The client authenticator an exporter's `auth:` names, if it names one, its files
    /// resolved; a failure is the exporter `id`'s.
    pub fn exporter_auth(
        &self,
        id: &str,
        auth: Option<&AuthConfig>,
    ) -> Result<Option<ClientAuthConfig>, StartError> {
        auth.map(|auth| self.client_auth(auth))
            .transpose()
            .map_err(|e| StartError::Exporter {
                id: id.to_string(),
                source: BuildError::Auth(e),
            })
    }

    /// The settings of the client authenticator `auth` names, its files resolved.
    fn client_auth(&self, auth: &AuthConfig) -> Result<ClientAuthConfig, String> {
        let extension = &auth.authenticator;
        let client = match self.config.extensions.get(extension) {
            Some(ExtensionConfig::BearerToken(token)) => {
                ClientAuthConfig::Bearer((**token).clone())
            }
            Some(ExtensionConfig::BasicAuth(basic)) => match &basic.client_auth {
                Some(client) => ClientAuthConfig::Basic(client.clone()),
                None => {
                    return Err(format!(
                        "extension `{extension}`: a basicauth extension with htpasswd \
                         authenticates receivers; an exporter needs one with client_auth"
                    ));
                }
            },
            Some(ExtensionConfig::HeadersSetter(headers)) => {
                ClientAuthConfig::HeadersSetter((**headers).clone())
            }
            _ => {
                return Err(format!(
                    "auth.authenticator `{extension}` is not a client authenticator \
                     (bearertokenauth, basicauth with client_auth, headers_setter)"
                ));
            }
        };
        Ok(client.resolved(&|p| self.resolve_path(p)))
    }
}
