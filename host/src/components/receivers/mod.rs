//! Receiver kinds, one file each.

mod jaeger;
mod otlp;
mod zipkin;
