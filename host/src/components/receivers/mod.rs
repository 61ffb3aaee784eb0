//! Receiver kinds, one file each.

mod fluent_forward;
mod otlp;
mod zipkin;
