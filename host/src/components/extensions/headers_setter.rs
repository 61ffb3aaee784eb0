//! The `headers_setter` extension kind: headers exporters set on every request. Client side
//! only: a receiver naming it is refused. Which context sources are accepted depends on the
//! pipelines (`components::validate`).

use crate::auth::headers_setter::HeadersSetterConfig;
use crate::components::{Extension, Kind};
use crate::config::or_default;
use serde::Deserializer;
use serde::de::Error;

impl Kind for HeadersSetterConfig {
    const NAME: &'static str = "headers_setter";
    fn parse<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let config: HeadersSetterConfig = or_default(d)?;
        config.validate().map_err(D::Error::custom)?;
        Ok(config)
    }
}

impl Extension for HeadersSetterConfig {}
