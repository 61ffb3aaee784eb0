//! A bench probe on contract 0.1.0: each batch, reads the one span column its config names
//! (`{"column": "names" | "attr" | "kinds" | "status" | "none"}`) and changes nothing.
//! `plugin-overhead` runs it beside `columns-v2`, which reads the same column through 0.2.0.

use std::cell::Cell;
use trailhead_plugin_v0_1::{Plugin, PluginError, PluginInfo, Signal, SpanBatch};

thread_local! {
    static COLUMN: Cell<&'static str> = const { Cell::new("none") };
}

const COLUMNS: [&str; 5] = ["names", "attr", "kinds", "status", "none"];

struct Columns;

impl Plugin for Columns {
    fn init(config: &str) -> Result<PluginInfo, String> {
        let column = COLUMNS
            .into_iter()
            .find(|c| config.contains(&format!("\"{c}\"")))
            .ok_or_else(|| format!("column: expected one of {COLUMNS:?}"))?;
        COLUMN.with(|c| c.set(column));
        Ok(PluginInfo {
            name: "columns-v1".into(),
            version: "0.1.0".into(),
            signals: vec![Signal::Traces],
        })
    }

    fn process_spans(batch: &SpanBatch) -> Result<(), PluginError> {
        // The lengths are used, so the reads cannot be optimised away.
        let read = match COLUMN.with(Cell::get) {
            "names" => batch.span_names_packed().ends.len(),
            "attr" => batch.span_attr_column_packed("http.route").kinds.len(),
            "kinds" => batch.span_kinds().len(),
            "status" => batch.span_status_codes().len(),
            _ => batch.span_count() as usize,
        };
        std::hint::black_box(read);
        Ok(())
    }
}

trailhead_plugin_v0_1::export!(Columns);
