//! Connectors: components that end one pipeline and start another, here turning spans into
//! metrics. Each keeps an aggregate across requests and sends it on every flush interval.

pub mod attributes;
pub mod exponential;
pub mod lru;
pub mod servicegraph;
pub mod spanmetrics;
