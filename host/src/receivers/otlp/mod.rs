//! The `otlp` receiver: OTLP/gRPC and OTLP/HTTP (protobuf and JSON) for all three signals.

pub mod grpc;
pub mod http;
pub mod response;

use crate::config::values::enabled_section;
use serde::Deserialize;

/// `receivers: otlp:`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpReceiverConfig {
    pub protocols: Protocols,
}

/// `protocols:` — a protocol is on when its key is present, even with no settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Protocols {
    #[serde(deserialize_with = "enabled_section")]
    pub grpc: Option<grpc::GrpcConfig>,
    #[serde(deserialize_with = "enabled_section")]
    pub http: Option<http::HttpConfig>,
}
