//! 0.2.1's `profile-batch`: resource-level access to a profiles request. Every call is the
//! logs batch's own at the `resource` level of [`ProfileWork::resources`]; the other levels
//! have no entries (a count of 0, empty columns, and a trap for any index naming one).

use super::{attr_column, check, remove_attrs, set_attr, set_attrs, string_column};
use crate::processors::wasm::host::PluginState;
use crate::processors::wasm::items::Level;
use crate::processors::wasm::profiles::ProfileWork;
use crate::processors::wasm::v0_2::bindings::mathtrail::trailhead::{batch, types};
use crate::processors::wasm::v0_2::{level, to_wit_kv, value_column};
use types::{KeyValue, StringColumn, ValueColumn};
use wasmtime::Result;
use wasmtime::component::Resource;

/// The request lent for this call.
fn work<'a>(
    table: &'a mut wasmtime::component::ResourceTable,
    batch: &Resource<ProfileWork>,
) -> &'a mut ProfileWork {
    // The host created the resource for this call and removes it after, so it is always there.
    table
        .get_mut(batch)
        .expect("batch resource outlives the call")
}

/// The resource level, or a trap when `indexes` name entries of a level a profile batch does
/// not have; `None` (nothing to do) for an empty list at such a level.
fn resource_level(method: &str, l: types::Level, indexes: &[u32]) -> Result<Option<Level>> {
    match level(l) {
        Level::Resource => Ok(Some(Level::Resource)),
        _ if indexes.is_empty() => Ok(None),
        other => Err(wasmtime::format_err!(
            "{method}: level `{}` has no entries in a profile batch: profiles are processed at \
             the resource level only",
            other.as_str()
        )),
    }
}

impl batch::HostProfileBatch for PluginState {
    fn count(&mut self, batch: Resource<ProfileWork>, l: types::Level) -> Result<u32> {
        Ok(match level(l) {
            Level::Resource => work(&mut self.table, &batch).resources().resource_count(),
            _ => 0,
        })
    }
    fn attr_column(
        &mut self,
        batch: Resource<ProfileWork>,
        l: types::Level,
        key: String,
    ) -> Result<ValueColumn> {
        Ok(match level(l) {
            Level::Resource => attr_column(
                work(&mut self.table, &batch).resources(),
                Level::Resource,
                &key,
            ),
            _ => value_column(Default::default()),
        })
    }
    fn attrs(
        &mut self,
        batch: Resource<ProfileWork>,
        l: types::Level,
        index: u32,
    ) -> Result<Vec<KeyValue>> {
        let Some(l) = resource_level("attrs", l, &[index])? else {
            return Ok(Vec::new());
        };
        let resources = work(&mut self.table, &batch).resources();
        check(resources, "attrs", l, &[index])?;
        Ok(resources
            .attributes(l, index)
            .iter()
            .map(to_wit_kv)
            .collect())
    }
    fn set_attr(
        &mut self,
        batch: Resource<ProfileWork>,
        l: types::Level,
        indexes: Vec<u32>,
        key: String,
        value: types::AnyValue,
    ) -> Result<()> {
        let Some(l) = resource_level("set-attr", l, &indexes)? else {
            return Ok(());
        };
        let resources = work(&mut self.table, &batch).resources();
        set_attr(resources, l, &indexes, key, value)
    }
    fn set_attrs(
        &mut self,
        batch: Resource<ProfileWork>,
        l: types::Level,
        index: u32,
        attrs: Vec<KeyValue>,
    ) -> Result<()> {
        let Some(l) = resource_level("set-attrs", l, &[index])? else {
            return Ok(());
        };
        set_attrs(work(&mut self.table, &batch).resources(), l, index, attrs)
    }
    fn remove_attrs(
        &mut self,
        batch: Resource<ProfileWork>,
        l: types::Level,
        indexes: Vec<u32>,
        keys: Vec<String>,
    ) -> Result<()> {
        let Some(l) = resource_level("remove-attrs", l, &indexes)? else {
            return Ok(());
        };
        let resources = work(&mut self.table, &batch).resources();
        remove_attrs(resources, l, &indexes, &keys)
    }
    fn schema_urls(
        &mut self,
        batch: Resource<ProfileWork>,
        l: types::Level,
    ) -> Result<StringColumn> {
        let resources = work(&mut self.table, &batch).resources();
        Ok(match level(l) {
            Level::Resource => string_column(
                resources
                    .schema_urls(Level::Resource)
                    .into_iter()
                    .map(str::as_bytes),
            ),
            _ => string_column(std::iter::empty()),
        })
    }
    fn to_otlp(&mut self, batch: Resource<ProfileWork>) -> Result<Vec<u8>> {
        let request = work(&mut self.table, &batch).encode();
        // The resources are never removed, so writing them back cannot fail to match.
        Ok(request
            .map_err(|e| wasmtime::format_err!("to-otlp: {e}"))?
            .to_bytes()
            .to_vec())
    }
    fn drop(&mut self, _batch: Resource<ProfileWork>) -> Result<()> {
        // The host owns the batch and takes it back after the call.
        Ok(())
    }
}
