//! [`Profiles`]: a profiles request in memory, with the host's resource-level semantics.

use super::convert;
use super::otlp;
use crate::{AnyValue, Error, KeyValue, Level, Plugin, ProfileBatch, StringColumn, ValueColumn};
use otlp::collector::profiles::v1development::ExportProfilesServiceRequest;
use std::cell::{RefCell, RefMut};

/// A profiles request in memory: [`ProfileBatch`] over its resources, as trailhead lends it.
/// The `resource` level has one entry per `ResourceProfiles`; every other level has none, and
/// an index naming one panics with the message the host traps with.
pub struct Profiles {
    request: RefCell<ExportProfilesServiceRequest>,
}

impl Profiles {
    /// A batch of this request.
    pub fn from_request(request: ExportProfilesServiceRequest) -> Self {
        Profiles {
            request: RefCell::new(request),
        }
    }

    /// A batch of an encoded request (protobuf, as a profiler sends it). The prost types'
    /// JSON form needs every field of a `ResourceProfiles`, so there is no `from_json`: build
    /// the request with [`otlp`] types, or decode one a profiler wrote.
    pub fn from_protobuf(bytes: &[u8]) -> Result<Self, String> {
        let request = <ExportProfilesServiceRequest as prost::Message>::decode(bytes)
            .map_err(|e| e.to_string())?;
        Ok(Self::from_request(request))
    }

    /// The request as it stands.
    pub fn request(&self) -> ExportProfilesServiceRequest {
        self.request.borrow().clone()
    }

    /// Calls the plugin's `process_profiles` as trailhead does: the changes are kept if it
    /// returns `Ok` and discarded if it returns `Err`. A panic (trailhead's trap) propagates.
    pub fn run<P: Plugin>(&mut self, plugin: &mut P) -> Result<(), Error> {
        let before = self.request();
        let result = plugin.process_profiles(&*self);
        if result.is_err() {
            *self.request.get_mut() = before;
        }
        result
    }

    /// The attributes of every resource named, after checking `level` and the indexes.
    fn resources(
        &self,
        method: &str,
        level: Level,
        indexes: &[u32],
    ) -> RefMut<'_, ExportProfilesServiceRequest> {
        let request = self.request.borrow_mut();
        let count = self.count_in(&request, level) as usize;
        if let Some(bad) = indexes.iter().find(|&&i| i as usize >= count) {
            if level != Level::Resource {
                panic!(
                    "{method}: level `{}` has no entries in a profile batch: profiles are \
                     processed at the resource level only",
                    level.as_str()
                );
            }
            panic!(
                "{method}: index {bad} is out of range: level `resource` has {count} entries in \
                 this batch"
            );
        }
        request
    }

    fn count_in(&self, request: &ExportProfilesServiceRequest, level: Level) -> u32 {
        match level {
            Level::Resource => request.resource_profiles.len() as u32,
            _ => 0,
        }
    }
}

/// Resource `index`'s attributes, the resource made if it had none.
fn attributes(
    request: &mut ExportProfilesServiceRequest,
    index: u32,
) -> &mut Vec<otlp::common::v1::KeyValue> {
    let resource = request.resource_profiles[index as usize]
        .resource
        .get_or_insert_with(Default::default);
    &mut resource.attributes
}

impl ProfileBatch for Profiles {
    fn count(&self, level: Level) -> u32 {
        self.count_in(&self.request.borrow(), level)
    }
    fn attr_column(&self, level: Level, key: &str) -> ValueColumn {
        let request = self.request.borrow();
        let values: Vec<_> = match level {
            Level::Resource => request
                .resource_profiles
                .iter()
                .map(|r| {
                    let attributes = r
                        .resource
                        .as_ref()
                        .map_or(&[][..], |r| r.attributes.as_slice());
                    convert::find(attributes, key).cloned()
                })
                .collect(),
            _ => Vec::new(),
        };
        convert::pack(values.iter().map(Option::as_ref))
    }
    fn attrs(&self, level: Level, index: u32) -> Vec<KeyValue> {
        let mut request = self.resources("attrs", level, &[index]);
        convert::attrs_from_otlp(attributes(&mut request, index))
    }
    fn set_attr(&self, level: Level, indexes: &[u32], key: &str, value: &AnyValue) {
        let mut request = self.resources("set-attr", level, indexes);
        let value = convert::to_otlp(value, "set-attr");
        for &index in indexes {
            convert::upsert(attributes(&mut request, index), key, value.clone());
        }
    }
    fn set_attrs(&self, level: Level, index: u32, attrs: &[KeyValue]) {
        let mut request = self.resources("set-attrs", level, &[index]);
        let target = attributes(&mut request, index);
        for kv in convert::attrs_to_otlp(attrs, "set-attrs") {
            let value = kv.value.expect("converted values are set");
            convert::upsert(target, &kv.key, value);
        }
    }
    fn remove_attrs(&self, level: Level, indexes: &[u32], keys: &[String]) {
        let mut request = self.resources("remove-attrs", level, indexes);
        for &index in indexes {
            attributes(&mut request, index).retain(|kv| !keys.contains(&kv.key));
        }
    }
    fn schema_urls(&self, level: Level) -> StringColumn {
        let request = self.request.borrow();
        match level {
            Level::Resource => StringColumn::from_strs(
                request
                    .resource_profiles
                    .iter()
                    .map(|r| r.schema_url.as_str()),
            ),
            _ => StringColumn::from_strs([]),
        }
    }
    fn to_otlp(&self) -> Vec<u8> {
        prost::Message::encode_to_vec(&*self.request.borrow())
    }
}
