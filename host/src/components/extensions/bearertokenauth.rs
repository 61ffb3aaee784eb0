//! The `bearertokenauth` extension kind: a token receivers check and exporters send. Who uses
//! it reads it through [`crate::components::Build`].

use crate::auth::BearerTokenConfig;
use crate::components::{Extension, Kind};
use serde::{Deserialize, Deserializer};

impl Kind for BearerTokenConfig {
    const NAME: &'static str = "bearertokenauth";
    /// `token` or `filename` must be given, so the body cannot be empty.
    fn parse<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        BearerTokenConfig::deserialize(d)
    }
}

impl Extension for BearerTokenConfig {}
