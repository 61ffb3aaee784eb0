//! Receiver kinds, one file each.

mod otlp;
mod zipkin;
