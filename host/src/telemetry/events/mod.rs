//! What trailhead reports about its own work, one type per event, as Vector's
//! `internal_events` are. Each event owns its counter, its log line and, for work that takes
//! time, its self-trace span, so the three cannot drift apart and a call site is one line:
//! `ExportGaveUp { items, why, error }.emit(&instruments)`.
//!
//! The counters an event adds to are made with the component that emits it (its
//! `*Instruments`), before any event happens: every series exists from the start at zero, so
//! `rate()` and alerts see the first one, and emitting locks nothing.

mod export;
mod kubernetes;
mod plugin;
mod reload;
mod secret;

pub use export::{
    ExportDelivered, ExportFinished, ExportGaveUp, ExportKeptOnDisk, ExportRetrying, ExportSplit,
    ExporterInstruments,
};
pub use kubernetes::{WatchFailed, WatchInstruments, WatchListed, WatchResumed};
pub use plugin::{
    PluginFailed, PluginInstruments, PluginRejected, PluginRolledBack, PluginSwapped,
};
pub use reload::{ReloadApplied, ReloadInstruments, ReloadRejected, ReloadUnchanged};
pub use secret::{SecretInstruments, SecretRotated, SecretRotationFailed};

/// Something that happened, reported to the instruments of the component it happened in.
pub trait Event {
    /// The counters (and self-tracer) of the component that emits this event.
    type Instruments;

    /// Counts it, logs it and, if it has one, records its span.
    fn emit(self, to: &Self::Instruments);
}

#[cfg(test)]
mod tests;
