//! A watched secret's events: its changed files rebuilt, or refused.

use super::Event;
use crate::telemetry::catalog;
use crate::telemetry::metrics::{Counter, Registry};

/// The counters of one watched set of secret files.
pub struct SecretInstruments {
    what: String,
    reloads: Counter,
    failures: Counter,
}

impl SecretInstruments {
    /// `what`: the files, in logs and labels, such as `receiver otlp (grpc) tls`.
    pub fn new(registry: &Registry, what: &str) -> Self {
        SecretInstruments {
            what: what.to_string(),
            reloads: registry.counter(&catalog::SECRET_RELOADS, &[what]),
            failures: registry.counter(&catalog::SECRET_RELOAD_FAILURES, &[what]),
        }
    }
}

/// Changed files were re-read and built; new connections and requests use them.
pub struct SecretRotated;

impl Event for SecretRotated {
    type Instruments = SecretInstruments;

    fn emit(self, to: &SecretInstruments) {
        to.reloads.add(1);
        tracing::info!(secret = %to.what, "changed files re-read; new connections and requests use them");
    }
}

/// Changed files do not build; the previous ones keep serving.
pub struct SecretRotationFailed<'a> {
    pub error: &'a str,
}

impl Event for SecretRotationFailed<'_> {
    type Instruments = SecretInstruments;

    fn emit(self, to: &SecretInstruments) {
        to.failures.add(1);
        tracing::warn!(secret = %to.what, error = %self.error, "changed files do not build; the previous ones keep serving");
    }
}
