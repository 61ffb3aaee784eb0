//! A test probe for contract 0.2.1's `profile-batch`, built with the SDK. Config:
//! `{"declare": bool, "mode": "echo" | "trap-level" | "fail"}` (`declare` defaults to true,
//! `mode` to `echo`).
//!
//! - `echo`: on every resource, writes what the resource-level calls read, so the host's
//!   tests (`host/tests/integration/wasm_profiles.rs`) can check each call: `probe.service`
//!   (`attr-column` of `service.name`), `probe.schema` (`schema-urls`), `probe.keys`
//!   (`attrs`), `probe.request_bytes` (the length of `to-otlp` before any write) and
//!   `probe.levels` (`count` of the other levels, which must be 0); removes `drop.me`
//!   (`remove-attrs`), sets `probe.all` on every resource at once (`set-attr`), and then
//!   checks that `to-otlp` shows its own writes.
//! - `trap-level`: names a span (`item` 0) in a write, which traps (already on the canary
//!   batch, so a version in this mode is refused at load).
//! - `fail`: writes an attribute, then returns an error (the write must not land).
//!
//! With `declare: false` it does not list `profiles`, so no profiles pipeline may run it.

use trailhead_plugin::{Error, Level, Plugin, ProfileBatch, Signal, int, kv, string};

#[derive(serde::Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "kebab-case")]
enum Mode {
    #[default]
    Echo,
    TrapLevel,
    Fail,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default = "yes")]
    declare: bool,
    #[serde(default)]
    mode: Mode,
}

fn yes() -> bool {
    true
}

struct Probe {
    declare: bool,
    mode: Mode,
}

impl Plugin for Probe {
    type Config = Config;
    const NAME: &'static str = "contract-profiles";
    const VERSION: &'static str = "0.2.1";

    fn new(config: Config) -> Result<Self, String> {
        Ok(Probe {
            declare: config.declare,
            mode: config.mode,
        })
    }
    fn signals(&self) -> Vec<Signal> {
        let mut signals = vec![Signal::Logs];
        if self.declare {
            signals.push(Signal::Profiles);
        }
        signals
    }
    fn process_profiles(&mut self, batch: &impl ProfileBatch) -> Result<(), Error> {
        match self.mode {
            Mode::Echo => echo(batch),
            Mode::TrapLevel => {
                batch.set_attr(Level::Item, &[0], "never", &string("written"));
                Ok(())
            }
            Mode::Fail => {
                batch.set_attr(Level::Resource, &batch.all_resources(), "lost", &int(1));
                Err("the probe was told to fail".into())
            }
        }
    }
}

fn echo(batch: &impl ProfileBatch) -> Result<(), Error> {
    let request_bytes = batch.to_otlp().len() as i64;
    let services = batch.attr_column(Level::Resource, "service.name");
    let schemas = batch.schema_urls(Level::Resource);
    let other_levels: u32 = [Level::Scope, Level::Item, Level::Point]
        .iter()
        .map(|&l| batch.count(l))
        .sum();
    // An empty list at a level with no entries does nothing, as with any batch.
    batch.set_attr(Level::Scope, &[], "never", &string("written"));
    for res in batch.all_resources() {
        let keys: Vec<String> = batch
            .attrs(Level::Resource, res)
            .into_iter()
            .map(|kv| kv.key)
            .collect();
        let service = services.str(res as usize).unwrap_or("(none)").to_string();
        let schema = schemas.iter().nth(res as usize).unwrap_or("?").to_string();
        batch.set_attrs(
            Level::Resource,
            res,
            &[
                kv("probe.service", string(service)),
                kv("probe.schema", string(schema)),
                kv("probe.keys", string(keys.join(","))),
                kv("probe.request_bytes", int(request_bytes)),
                kv("probe.levels", int(other_levels as i64)),
            ],
        );
    }
    batch.remove_attrs(Level::Resource, &batch.all_resources(), &["drop.me".into()]);
    batch.set_attr(
        Level::Resource,
        &batch.all_resources(),
        "probe.all",
        &int(1),
    );
    if batch.to_otlp().len() as i64 <= request_bytes {
        return Err("to-otlp does not show the call's own writes".into());
    }
    Ok(())
}

trailhead_plugin::export!(Probe);
