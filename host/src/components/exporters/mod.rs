//! Exporter kinds, one file each.

mod debug;
mod loadbalancing;
mod otlp;
mod otlp_http;
