//! The `zpages` extension kind: the collector's debug pages (`/debug/servicez`, `pipelinez`,
//! `extensionz`, `featurez`, `tracez`, and `expvarz` with `expvar.enabled`), served from
//! trailhead's own state until trailhead has a console to map them onto (issue 21).

mod pages;

use crate::components::{Config, Extension, Kind};
use crate::config::or_default;
use crate::receivers::cors::CorsConfig;
use crate::telemetry::Telemetry;
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny};
use std::net::SocketAddr;

/// The collector's default: local unless configured.
const DEFAULT_ENDPOINT: &str = "localhost:55679";

/// `extensions: zpages:`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ZpagesConfig {
    /// Address to serve the pages on, `host:port`; `:port` listens on every interface, as in
    /// the collector. Required: an empty endpoint is refused.
    #[serde(deserialize_with = "endpoint")]
    pub endpoint: SocketAddr,
    /// Whether `/debug/expvarz` answers.
    pub expvar: ExpvarConfig,
    /// Cross-origin requests from browsers, answered as the collector's HTTP servers do.
    pub cors: Option<CorsConfig>,
    /// Refused: trailhead serves its admin pages in plain HTTP (see `refused`).
    pub tls: Option<IgnoredAny>,
    /// Refused: trailhead's admin pages take no authenticator (see `refused`).
    pub auth: Option<IgnoredAny>,
}

/// `expvar:`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExpvarConfig {
    /// Serve `/debug/expvarz`: the command line and the heap in use, as JSON.
    pub enabled: bool,
}

impl Default for ZpagesConfig {
    fn default() -> Self {
        ZpagesConfig {
            endpoint: crate::config::values::parse_listen_address(DEFAULT_ENDPOINT)
                .unwrap_or(([127, 0, 0, 1], 55679).into()),
            expvar: ExpvarConfig::default(),
            cors: None,
            tls: None,
            auth: None,
        }
    }
}

impl Kind for ZpagesConfig {
    const NAME: &'static str = "zpages";
    fn parse<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let config: ZpagesConfig = or_default(d)?;
        match refused(&config) {
            Some(why) => Err(de::Error::custom(why)),
            None => Ok(config),
        }
    }
}

/// Keys the collector honours that trailhead cannot honour the same way: refused with why,
/// since serving the pages without the TLS or the authenticator asked for would expose them.
fn refused(config: &ZpagesConfig) -> Option<&'static str> {
    if config.tls.is_some() {
        return Some(
            "zpages `tls` is not supported: trailhead serves its debug pages in plain HTTP; keep the endpoint local or put a TLS proxy in front",
        );
    }
    if config.auth.is_some() {
        return Some(
            "zpages `auth` is not supported: trailhead's debug pages take no authenticator; keep the endpoint local or put an authenticating proxy in front",
        );
    }
    None
}

/// Reads `endpoint` as the collector does: `host:port`, with `:port` meaning every interface.
fn endpoint<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(d)?;
    if text.is_empty() {
        return Err(de::Error::custom(
            "\"endpoint\" is required when using the \"zpages\" extension",
        ));
    }
    crate::config::values::parse_listen_address(&text).map_err(de::Error::custom)
}

impl Extension for ZpagesConfig {
    fn admin_for(
        &self,
        config: &Config,
        telemetry: &Telemetry,
    ) -> Option<(SocketAddr, axum::Router)> {
        let state = pages::State::new(config, telemetry, self.expvar.enabled);
        let router = CorsConfig::wrap(self.cors.as_ref(), pages::router(state));
        Some((self.endpoint, router))
    }
}

#[cfg(test)]
mod tests;
