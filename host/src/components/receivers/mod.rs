//! Receiver kinds, one file each, and what their HTTP and gRPC protocols share: each is served
//! on the shared server with its TLS, auth and limits, its connection lifetime, and (for HTTP)
//! CORS answered around auth.

mod fluent_forward;
mod jaeger;
mod otlp;
mod prometheus;
mod zipkin;

use super::build::Protocol;
use crate::components::{Build, ReceiverServer, StartError};
use crate::receivers::cors::CorsConfig;
use crate::receivers::jaeger::ThriftHttpConfig;
use crate::receivers::keepalive::Lifetime;
use crate::receivers::otlp::grpc::{DefaultEndpoint, GrpcConfig};
use crate::receivers::otlp::http::HttpConfig;
use crate::receivers::zipkin::ZipkinReceiverConfig;
use std::sync::Arc;

/// One protocol's settings, as the shared server reads them.
trait Served {
    fn endpoint(&self) -> &String;
    fn protocol(&self) -> Protocol<'_>;
    fn lifetime(&self) -> Lifetime;
    /// Its `cors`, answered around auth and limits (HTTP only).
    fn cors(&self) -> Option<&CorsConfig> {
        None
    }
}

/// Receiver `id`'s protocol `settings`, served as `name` with `router`.
fn server<'c>(
    build: &Build<'_>,
    id: &str,
    name: String,
    settings: &'c impl Served,
    router: axum::Router,
) -> Result<ReceiverServer<'c>, StartError> {
    let mut options = build.serve_options(id, &name, settings.protocol())?;
    options.lifetime = settings.lifetime();
    options.cors = settings.cors().and_then(CorsConfig::policy).map(Arc::new);
    Ok((name, settings.endpoint(), router, options))
}

impl<E: DefaultEndpoint> Served for GrpcConfig<E> {
    fn endpoint(&self) -> &String {
        &self.endpoint
    }
    fn protocol(&self) -> Protocol<'_> {
        Protocol {
            tls: &self.tls,
            auth: &self.auth,
            limits: &self.limits,
            max_concurrent_streams: self.max_concurrent_streams,
        }
    }
    fn lifetime(&self) -> Lifetime {
        self.keepalive.lifetime()
    }
}

/// The HTTP settings are the same keys in each receiver's own struct (serde cannot flatten
/// them under `deny_unknown_fields`), so they are read the same way here.
macro_rules! served_over_http {
    ($($config:ty),+) => {$(
        impl Served for $config {
            fn endpoint(&self) -> &String {
                &self.endpoint
            }
            fn protocol(&self) -> Protocol<'_> {
                Protocol {
                    tls: &self.tls,
                    auth: &self.auth,
                    limits: &self.limits,
                    max_concurrent_streams: None,
                }
            }
            fn lifetime(&self) -> Lifetime {
                <$config>::lifetime(self)
            }
            fn cors(&self) -> Option<&CorsConfig> {
                self.cors.as_ref()
            }
        }
    )+};
}

served_over_http!(HttpConfig, ThriftHttpConfig, ZipkinReceiverConfig);
