//! A bench probe on contract 0.2.0: each batch, reads the one span column its config names
//! (`{"column": "names" | "attr" | "kinds" | "status" | "none"}`) and changes nothing.
//! `plugin-overhead` runs it beside `columns-v1`, which reads the same column through 0.1.0.

use trailhead_plugin::{Error, Level, Plugin, Signal, SpanBatch};

/// The column to read.
#[derive(serde::Deserialize)]
#[serde(rename_all = "lowercase")]
enum Column {
    Names,
    Attr,
    Kinds,
    Status,
    None,
}

#[derive(serde::Deserialize)]
struct Config {
    column: Column,
}

struct Columns(Column);

impl Plugin for Columns {
    type Config = Config;
    const NAME: &'static str = "columns-v2";
    const VERSION: &'static str = "0.2.0";

    fn new(config: Config) -> Result<Self, String> {
        Ok(Columns(config.column))
    }
    fn signals(&self) -> Vec<Signal> {
        vec![Signal::Traces]
    }
    fn process_spans(&mut self, batch: &impl SpanBatch) -> Result<(), Error> {
        // The lengths are used, so the reads cannot be optimised away.
        let read = match self.0 {
            Column::Names => batch.names(Level::Item).len(),
            Column::Attr => batch.attr_column(Level::Item, "http.route").len(),
            Column::Kinds => batch.kinds().len(),
            Column::Status => batch.status_codes().len(),
            Column::None => batch.count(Level::Item) as usize,
        };
        std::hint::black_box(read);
        Ok(())
    }
}

trailhead_plugin::export!(Columns);
