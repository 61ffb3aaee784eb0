//! Receiver kinds, one file each.

mod fluent_forward;
mod jaeger;
mod otlp;
mod prometheus;
mod zipkin;
