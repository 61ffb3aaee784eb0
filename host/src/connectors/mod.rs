//! The connector kinds at run time: `forward` and `routing` (the collector's
//! `connector/forwardconnector` and contrib's `connector/routingconnector`, v0.161.0). Each
//! implements [`crate::pipeline::connector::Connector`]; the components table parses their
//! settings and builds them between the pipelines (`components::connectors`).
//!
//! Layer: above `processors` (routing evaluates OTTL conditions with the machinery the
//! tail_sampling processor's `ottl_condition` policy has) and below `receivers`, which never
//! name a connector: a connector is fed by pipelines, not by the network.

pub mod forward;
pub mod routing;
