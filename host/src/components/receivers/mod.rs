//! Receiver kinds, one file each.

mod otlp;
mod prometheus;
mod zipkin;
