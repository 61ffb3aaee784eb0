//! Exporter kinds, one file each.

mod debug;
mod otlp;
