//! Receiver kinds, one file each, and what their HTTP and gRPC protocols share: each is served
//! on the shared server with its TLS, auth and limits, its connection lifetime, and (for HTTP)
//! CORS preflights let through before auth.

mod fluent_forward;
mod jaeger;
mod otlp;
mod prometheus;
mod zipkin;

use super::build::Protocol;
use crate::components::{Build, ReceiverServer, StartError};
use crate::receivers::jaeger::ThriftHttpConfig;
use crate::receivers::keepalive::Lifetime;
use crate::receivers::otlp::grpc::{DefaultEndpoint, GrpcConfig};
use crate::receivers::otlp::http::HttpConfig;
use crate::receivers::zipkin::ZipkinReceiverConfig;

/// One protocol's settings, as the shared server reads them.
trait Served {
    fn endpoint(&self) -> &String;
    fn protocol(&self) -> Protocol<'_>;
    fn lifetime(&self) -> Lifetime;
    /// Whether CORS preflights pass without auth: some origin is allowed.
    fn open_preflights(&self) -> bool {
        false
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
    options.open_preflights = settings.open_preflights();
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
            fn open_preflights(&self) -> bool {
                self.cors.as_ref().is_some_and(|c| !c.allowed_origins.is_empty())
            }
        }
    )+};
}

served_over_http!(HttpConfig, ThriftHttpConfig, ZipkinReceiverConfig);
