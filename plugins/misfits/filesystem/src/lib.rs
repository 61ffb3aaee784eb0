//! Implements the processor world but reads a host file on every batch, so its component
//! imports `wasi:filesystem`. That import links (language runtimes need it), but no directory
//! is preopened: the read must fail, and the plugin reports the failure as its own error.

use trailhead_plugin_v0_1::{Plugin, PluginError, PluginInfo, Signal, SpanBatch, string};

struct Filesystem;

impl Plugin for Filesystem {
    fn init(_config: &str) -> Result<PluginInfo, String> {
        Ok(PluginInfo {
            name: "misfit-filesystem".into(),
            version: "0.1.0".into(),
            signals: vec![Signal::Traces],
        })
    }
    fn process_spans(batch: &SpanBatch) -> Result<(), PluginError> {
        let stolen = std::fs::read_to_string("/etc/hostname").map_err(|e| PluginError {
            message: format!("cannot read /etc/hostname: {e}"),
        })?;
        batch.set_span_attr(&[0], "stolen", &string(stolen));
        Ok(())
    }
}

trailhead_plugin_v0_1::export!(Filesystem);
