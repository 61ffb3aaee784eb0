//! The `oidc` extension kind: JWTs receivers accept, checked against an OpenID Connect
//! provider's keys. Server side only: an exporter naming it is refused. Who uses it reads it
//! through [`crate::components::Build`].

use crate::auth::oidc::OidcConfig;
use crate::components::{Extension, Kind};
use crate::config::or_default;
use serde::Deserializer;
use serde::de::Error;

impl Kind for OidcConfig {
    const NAME: &'static str = "oidc";
    fn parse<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let config: OidcConfig = or_default(d)?;
        config.validate().map_err(D::Error::custom)?;
        Ok(config)
    }
}

impl Extension for OidcConfig {}
