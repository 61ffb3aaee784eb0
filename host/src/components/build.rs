//! What building a component needs, and why a build fails: the config (to resolve paths and
//! find the extensions a component names), the secrets watcher and the telemetry. The helpers
//! here are the steps several kinds share: a receiver protocol's TLS, token and limits, and
//! the token of a `bearertokenauth` extension.

use super::{Config, ExtensionConfig};
use crate::auth::{AuthConfig, BearerToken, BearerTokenConfig};
use crate::config::Diagnostic;
use crate::exporters::otlp::BuildError;
use crate::receivers::ServeOptions;
use crate::receivers::limits::ConnectionLimits;
use crate::receivers::tls::TlsServerConfig;
use crate::secrets::{Rotating, Secrets};
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
                self.bearer_token(auth, &format!("receiver {server}"))
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
            open_preflights: false,
        })
    }

    /// The token of the `bearertokenauth` extension `auth` names, re-read when its file
    /// changes; `user` says who uses it, in logs and metrics.
    fn bearer_token(
        &self,
        auth: &AuthConfig,
        user: &str,
    ) -> Result<Arc<Rotating<BearerToken>>, String> {
        let extension = &auth.authenticator;
        let token = self
            .bearer_token_config(auth)?
            .resolved(&|p| self.resolve_path(p));
        let what = format!("{user} {extension}");
        self.secrets
            .watch(what, token.files(), move || token.load(&|p| p.into()))
            .map_err(|e| format!("extension `{extension}`: {e}"))
    }

    /// The settings of the `bearertokenauth` extension `auth` names.
    /// The `bearertokenauth` extension an exporter's `auth:` names, if it names one; a
    /// failure is the exporter `id`'s.
    pub fn exporter_token(
        &self,
        id: &str,
        auth: Option<&AuthConfig>,
    ) -> Result<Option<BearerTokenConfig>, StartError> {
        auth.map(|auth| self.bearer_token_config(auth))
            .transpose()
            .map_err(|e| StartError::Exporter {
                id: id.to_string(),
                source: BuildError::Auth(e),
            })
    }

    pub fn bearer_token_config(&self, auth: &AuthConfig) -> Result<BearerTokenConfig, String> {
        match self.config.extensions.get(&auth.authenticator) {
            Some(ExtensionConfig::BearerToken(token)) => Ok((**token).clone()),
            _ => Err(format!(
                "auth.authenticator `{}` is not a bearertokenauth extension",
                auth.authenticator
            )),
        }
    }
}
