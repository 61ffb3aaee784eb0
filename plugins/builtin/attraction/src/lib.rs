//! The collector's attribute actions (`internal/coreinternal/attraction` in
//! opentelemetry-collector-contrib v0.161.0), shared by the built-in `attributes` and
//! `resource` plugins: `insert`, `update`, `upsert`, `delete`, `hash`, `extract` and `convert`,
//! checked as the collector checks them and run in the order given.
//!
//! The one idea: an action list runs over one item's attributes at a time ([`engine`]), with
//! pdata's semantics, and [`Engine::apply`] feeds it from a lent batch with as few host calls as
//! the actions allow: only the keys they name, as columns, unless a `pattern` must see every key.
//!
//! Also here, because the attributes processor's `include`/`exclude` matching needs them too:
//! pdata's `AsString` and value equality ([`value`]) and Go's regular expressions ([`goregex`]).

pub mod apply;
pub mod config;
pub mod engine;
pub mod goregex;
pub mod value;

pub use apply::{Engine, client_address};
pub use config::{ActionConfig, compile};

#[cfg(test)]
mod tests;
