//! The profiles request a plugin is lent (contract 0.2.1's `profile-batch`): resource-level
//! access only. The request's resources are held as a logs batch ([`LogWork`] over
//! [`profiles::resources_as_logs`]), so every resource-level read and write is the one a logs
//! batch has; after an `ok` call the resources are written back into the request in place
//! ([`profiles::with_resources`]) and every other byte (the dictionary, the profiles, their
//! samples) stays as it came.

use super::batch::{LendError, LogWork};
use crate::pdata::{Payload, profiles};

/// A profiles request lent to a plugin for one call.
pub struct ProfileWork {
    /// The request as it came.
    original: Payload,
    /// Its resources, one `ResourceLogs` each, in order.
    resources: LogWork,
}

impl ProfileWork {
    /// Lends an encoded `ExportProfilesServiceRequest` (already checked to decode).
    pub fn lend(payload: Payload) -> Result<Self, LendError> {
        let logs = profiles::resources_as_logs(&payload.to_bytes());
        Ok(ProfileWork {
            resources: LogWork::lend(bytes::Bytes::from(logs).into())?,
            original: payload,
        })
    }

    /// The resources, as a logs batch: only its `resource` level is ever handed out.
    pub fn resources(&mut self) -> &mut LogWork {
        &mut self.resources
    }

    /// The request as it stands, the resource changes so far included (`to-otlp`), leaving
    /// this working copy usable.
    pub fn encode(&mut self) -> Result<Payload, String> {
        if !self.resources.changed() {
            return Ok(self.original.clone());
        }
        let logs = self.resources.encode().to_bytes();
        let request = profiles::with_resources(&self.original.to_bytes(), &logs)?;
        Ok(bytes::Bytes::from(request).into())
    }

    /// The request with the plugin's resource changes: the original bytes when it made none.
    /// The sample count is unchanged: no resource, profile or sample can be removed.
    pub fn into_encoded(mut self) -> Result<Payload, String> {
        self.encode()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdata::profiles::tests_support::request;
    use crate::pdata::testing::string_kv;
    use crate::processors::wasm::attr_edits::AttrOp;
    use crate::processors::wasm::items::Level;
    use opentelemetry_proto::tonic::collector::profiles::v1development::ExportProfilesServiceRequest;
    use opentelemetry_proto::tonic::common::v1::AnyValue;
    use prost::Message;

    fn lend(request: &ExportProfilesServiceRequest) -> ProfileWork {
        let bytes = bytes::Bytes::from(request.encode_to_vec());
        ProfileWork::lend(bytes.into()).unwrap()
    }

    // A resource attribute written through the logs view lands in the profiles request, and
    // nothing else of it changes; untouched, the very bytes come back.
    #[test]
    fn resource_edits_land_in_the_request_and_nothing_else_changes() {
        let original = request(&[2, 3]);
        let untouched = lend(&original);
        assert_eq!(
            untouched.into_encoded().unwrap().to_bytes(),
            original.encode_to_vec()
        );

        let mut work = lend(&original);
        assert_eq!(work.resources().count(Level::Resource), 2);
        let ip = string_kv("k8s.pod.ip", "10.0.0.7");
        let value: &AnyValue = ip.value.as_ref().unwrap();
        work.resources()
            .edit_attributes(Level::Resource, 1, AttrOp::set(ip.key.clone(), value));
        let seen = work.encode().unwrap();
        let out = work.into_encoded().unwrap().to_bytes();
        assert_eq!(seen.to_bytes(), out, "to-otlp shows what the call leaves");
        let mut expected = original.clone();
        let resource = expected.resource_profiles[1].resource.as_mut().unwrap();
        resource.attributes.push(ip);
        assert_eq!(ExportProfilesServiceRequest::decode(out).unwrap(), expected);
    }

    // The schema URL of every resource is readable at the resource level.
    #[test]
    fn schema_urls_are_the_resources() {
        let original = request(&[1, 1]);
        let mut work = lend(&original);
        assert_eq!(
            work.resources().schema_urls(Level::Resource),
            ["https://opentelemetry.io/schemas/1.30.0"; 2]
        );
    }
}
