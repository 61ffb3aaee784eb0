//! The `basicauth` extension kind: htpasswd users receivers accept (`htpasswd`), or the
//! credentials exporters send (`client_auth`); one side per extension. Who uses it reads it
//! through [`crate::components::Build`].

use crate::auth::basic::BasicAuthConfig;
use crate::components::{Extension, Kind};
use crate::config::or_default;
use serde::Deserializer;
use serde::de::Error;

impl Kind for BasicAuthConfig {
    const NAME: &'static str = "basicauth";
    fn parse<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let config: BasicAuthConfig = or_default(d)?;
        config.validate().map_err(D::Error::custom)?;
        Ok(config)
    }
}

impl Extension for BasicAuthConfig {}
