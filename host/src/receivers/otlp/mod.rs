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
    /// Which of gRPC and HTTP to serve; a protocol key with no value takes its defaults.
    pub protocols: Protocols,
}

/// `protocols:` — a protocol is on when its key is present, even with no settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Protocols {
    /// OTLP/gRPC, `0.0.0.0:4317` by default.
    #[serde(deserialize_with = "enabled_section")]
    pub grpc: Option<grpc::GrpcConfig>,
    /// OTLP/HTTP, `0.0.0.0:4318` by default.
    #[serde(deserialize_with = "enabled_section")]
    pub http: Option<http::HttpConfig>,
}
