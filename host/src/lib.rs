//! trailhead: a telemetry gateway that receives OTLP and Zipkin, runs processors, and exports
//! OTLP/gRPC.
//!
//! The one idea to understand first: telemetry travels through trailhead as an encoded OTLP
//! export request ([`pdata::Batch`]), not as a decoded object tree. Receivers check its framing
//! and count its items without allocating per span; exporters concatenate batches (protobuf
//! repeated fields concatenate) and send the bytes as they are. Only a processor that asks for
//! spans pays for decoding them.
//!
//! Data flow: `receivers` → `pipeline::Fanout` (processors, then all-or-nothing admission to
//! every exporter queue) → `exporters` (queue → batcher → senders with retry). See
//! `docs/ARCHITECTURE.md`.

pub mod auth;
pub mod components;
pub mod config;
pub mod connectors;
pub mod exporters;
#[doc(hidden)]
pub mod fuzzing;
pub mod kubernetes;
pub mod pdata;
pub mod pipeline;
pub mod processors;
pub mod receivers;
pub mod secrets;
pub mod service;
pub mod telemetry;
