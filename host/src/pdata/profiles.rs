//! OTLP profiles, the fourth signal: what trailhead does differently for it.
//!
//! **Proto.** trailhead speaks `opentelemetry.proto.{collector.,}profiles.v1development` as
//! released in opentelemetry-proto v1.10.0 (the `opentelemetry-proto` crate 0.33), which is
//! field for field what the collector v0.161.0 speaks (pdata v1.67.0, pprofile v0.161.0).
//!
//! **Version header.** The collector v0.161.0 reads no version header. The proto proposal
//! open-telemetry/opentelemetry-proto#857 defines `otlp-profiles-development-version` (gRPC
//! metadata; `OTLP-Profiles-Development-Version` over HTTP): a positive integer, absent meaning
//! `1`, to be refused when malformed, repeated or unsupported, before the body is read, with
//! INVALID_ARGUMENT / 400. trailhead follows it ([`check_version`]): v1.10.0 predates the
//! mechanism, so it is development version 1, and a request declaring anything else is refused
//! rather than parsed against the wrong schema. As only version 1 is accepted, the exporters
//! pass it on by sending `otlp-profiles-development-version: 1` with every profiles request.
//!
//! **Parsed before forwarded.** A profiles request is decoded in full once on the way in
//! ([`check_decodes`]), as the collector does, so a request trailhead could not parse is never
//! forwarded; after that it travels encoded, as the other signals do.
//!
//! **Never merged.** A request's profiles index into its one `dictionary`, so requests are never
//! concatenated or split (see [`super::Signal::merges_by_concatenation`]).
//!
//! **Resource-level processing.** A plugin that declares `profiles` (contract 0.2.1) gets a
//! `profile-batch`, which the host keeps as a logs request holding the request's resources
//! ([`resources_as_logs`]), one empty log record each; after the call the resources are
//! written back in place ([`with_resources`]) and every other byte stays as it came.

use super::wire::{self, Value, WireError};
use opentelemetry_proto::tonic::collector::profiles::v1development::ExportProfilesServiceRequest;
use prost::Message;

/// The gRPC metadata key (and, case aside, the HTTP header) that declares the profiles schema.
pub const VERSION_HEADER: &str = "otlp-profiles-development-version";
/// The development version of the proto trailhead speaks (opentelemetry-proto v1.10.0).
pub const VERSION: &str = "1";

/// Checks the declared development version: `values` are every value of [`VERSION_HEADER`].
/// The error is the message for INVALID_ARGUMENT / 400.
pub fn check_version<'a>(mut values: impl Iterator<Item = &'a [u8]>) -> Result<(), String> {
    let Some(first) = values.next() else {
        return Ok(()); // absent means version 1
    };
    if values.next().is_some() {
        return Err(format!(
            "{VERSION_HEADER} is repeated: send it once (trailhead speaks version {VERSION})"
        ));
    }
    let text = String::from_utf8_lossy(first);
    let text = text.trim();
    let positive = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && text.trim_start_matches('0') != "";
    if !positive {
        return Err(format!(
            "{VERSION_HEADER} `{text}` is not a positive integer (trailhead speaks version {VERSION})"
        ));
    }
    if text.trim_start_matches('0') != VERSION {
        return Err(format!(
            "unsupported {VERSION_HEADER} `{text}`: trailhead speaks profiles v1development \
             version {VERSION} (opentelemetry-proto v1.10.0)"
        ));
    }
    Ok(())
}

/// Decodes the request in full and drops the result: a profiles request that is framed but
/// does not parse (bad UTF-8 in the string table, a wrong field type) is refused here.
pub fn check_decodes(payload: &[u8]) -> Result<(), WireError> {
    ExportProfilesServiceRequest::decode(payload)
        .map(drop)
        .map_err(|_| WireError {
            path: "request".into(),
            reason: "does not decode as an ExportProfilesServiceRequest (v1development)",
        })
}

/// An empty `ScopeLogs` holding one empty `LogRecord`: the item a resource's stand-in carries,
/// as plugins may skip resources without items.
const ONE_EMPTY_RECORD: [u8; 4] = [0x12, 0x02, 0x12, 0x00];

/// `schema_url`: field 3 of both `ResourceProfiles` and `ResourceLogs`.
const SCHEMA_URL: u64 = 3;

/// The request's resources as an encoded `ExportLogsServiceRequest`: one `ResourceLogs` per
/// `ResourceProfiles`, in order, holding its resource, its schema URL and one empty log
/// record. Only the resources are ever written back.
pub fn resources_as_logs(payload: &[u8]) -> Vec<u8> {
    let mut logs = Vec::new();
    for resource_profiles in wire::messages(payload, 1) {
        let mut resource_logs = Vec::new();
        if let Some(Value::Bytes(resource)) = wire::last(resource_profiles, 1) {
            wire::put_bytes_field(&mut resource_logs, 1, resource);
        }
        resource_logs.extend_from_slice(&ONE_EMPTY_RECORD);
        if let Some(Value::Bytes(url)) = wire::last(resource_profiles, SCHEMA_URL) {
            wire::put_bytes_field(&mut resource_logs, SCHEMA_URL, url);
        }
        wire::put_bytes_field(&mut logs, 1, &resource_logs);
    }
    logs
}

/// The profiles request `payload` with the resources of `logs` (a plugin's answer to
/// [`resources_as_logs`]) in place of its own, in order. Every other field, the dictionary
/// and every profile included, is copied as it came. An answer with another number of
/// resources is refused: it cannot be matched to the profiles.
pub fn with_resources(payload: &[u8], logs: &[u8]) -> Result<Vec<u8>, String> {
    let resources: Vec<Option<&[u8]>> = wire::messages(logs, 1)
        .map(|resource_logs| match wire::last(resource_logs, 1) {
            Some(Value::Bytes(resource)) => Some(resource),
            _ => None,
        })
        .collect();
    let expected = wire::messages(payload, 1).count();
    if resources.len() != expected {
        return Err(format!(
            "the plugin returned {} resources for {expected} profile resources; profiles are \
             processed at the resource level only",
            resources.len()
        ));
    }
    let mut resources = resources.into_iter();
    let mut out = Vec::with_capacity(payload.len() + 256);
    for (number, value, encoded) in wire::fields(payload) {
        match (number, value) {
            (1, Value::Bytes(body)) => {
                let resource = resources.next().flatten();
                wire::put_bytes_field(&mut out, 1, &replace_resource(body, resource));
            }
            _ => out.extend_from_slice(encoded),
        }
    }
    Ok(out)
}

/// A `ResourceProfiles` body with `resource` as its field 1, where its first field 1 was (or
/// first, if it had none); its scopes and schema URL are copied as they came.
fn replace_resource(body: &[u8], resource: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 256);
    let mut written = false;
    let put = |out: &mut Vec<u8>| {
        if let Some(resource) = resource {
            wire::put_bytes_field(out, 1, resource);
        }
    };
    if wire::last(body, 1).is_none() {
        put(&mut out);
        written = true;
    }
    for (number, _, encoded) in wire::fields(body) {
        if number != 1 {
            out.extend_from_slice(encoded);
        } else if !written {
            put(&mut out);
            written = true;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::tests_support::request;
    use super::*;
    use crate::pdata::testing::string_kv;
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;

    // The declared version: absent or 1 passes; anything else is refused with a reason.
    #[test]
    fn version_header_rules() {
        let check = |values: &[&str]| check_version(values.iter().map(|v| v.as_bytes()));
        assert_eq!(check(&[]), Ok(()));
        assert_eq!(check(&["1"]), Ok(()));
        assert!(check(&["2"]).unwrap_err().contains("unsupported"));
        assert!(
            check(&["0"])
                .unwrap_err()
                .contains("not a positive integer")
        );
        assert!(
            check(&["x"])
                .unwrap_err()
                .contains("not a positive integer")
        );
        assert!(check(&["1", "1"]).unwrap_err().contains("repeated"));
    }

    // Samples are the item count; a framed request that does not decode is refused.
    #[test]
    fn counts_samples_and_refuses_undecodable() {
        let bytes = request(&[2, 3]).encode_to_vec();
        assert_eq!(
            wire::count_items(super::super::Signal::Profiles, &bytes),
            Ok(5)
        );
        assert_eq!(check_decodes(&bytes), Ok(()));
        // A string-table entry that is not UTF-8: framed, but not a valid request.
        let mut bad = request(&[1]);
        bad.dictionary = None;
        let mut bytes = bad.encode_to_vec();
        wire::put_bytes_field(&mut bytes, 2, &[0x2a, 0x01, 0xff]);
        assert!(wire::count_items(super::super::Signal::Profiles, &bytes).is_ok());
        assert!(check_decodes(&bytes).is_err());
    }

    // A plugin's resources come back in place; everything else is byte for byte as it came.
    #[test]
    fn resources_round_trip_through_a_logs_view() {
        let original = request(&[2, 1]);
        let bytes = original.encode_to_vec();
        let mut logs = ExportLogsServiceRequest::decode(resources_as_logs(&bytes).as_slice())
            .expect("a logs request");
        assert_eq!(logs.resource_logs.len(), 2);
        assert_eq!(
            logs.resource_logs[1].schema_url,
            original.resource_profiles[1].schema_url
        );
        for resource_logs in &mut logs.resource_logs {
            let resource = resource_logs.resource.as_mut().unwrap();
            resource
                .attributes
                .push(string_kv("k8s.pod.ip", "10.0.0.7"));
        }
        let out = with_resources(&bytes, &logs.encode_to_vec()).unwrap();
        let decoded = ExportProfilesServiceRequest::decode(out.as_slice()).unwrap();
        let mut expected = original.clone();
        for resource_profiles in &mut expected.resource_profiles {
            let resource = resource_profiles.resource.as_mut().unwrap();
            resource
                .attributes
                .push(string_kv("k8s.pod.ip", "10.0.0.7"));
        }
        assert_eq!(decoded, expected);
        // Unchanged resources give back the very bytes.
        assert_eq!(
            with_resources(&bytes, &resources_as_logs(&bytes)).unwrap(),
            bytes
        );
        // An answer that lost a resource cannot be matched.
        let one = resources_as_logs(&request(&[1]).encode_to_vec());
        assert!(with_resources(&bytes, &one).is_err());
    }
}

/// Builders for other modules' tests.
#[cfg(test)]
pub mod tests_support {
    use crate::pdata::testing::string_kv;
    use opentelemetry_proto::tonic::collector::profiles::v1development::ExportProfilesServiceRequest;
    use opentelemetry_proto::tonic::profiles::v1development::{
        Profile, ProfilesDictionary, ResourceProfiles, Sample, ScopeProfiles,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;

    /// A request with one resource per entry of `samples`, holding that many samples.
    pub fn request(samples: &[usize]) -> ExportProfilesServiceRequest {
        ExportProfilesServiceRequest {
            resource_profiles: samples
                .iter()
                .enumerate()
                .map(|(i, &n)| ResourceProfiles {
                    resource: Some(Resource {
                        attributes: vec![string_kv("service.name", &format!("svc{i}"))],
                        ..Default::default()
                    }),
                    scope_profiles: vec![ScopeProfiles {
                        profiles: vec![Profile {
                            samples: vec![
                                Sample {
                                    stack_index: 1,
                                    values: vec![10],
                                    ..Default::default()
                                };
                                n
                            ],
                            ..Default::default()
                        }],
                        ..Default::default()
                    }],
                    schema_url: "https://opentelemetry.io/schemas/1.30.0".into(),
                })
                .collect(),
            dictionary: Some(ProfilesDictionary {
                string_table: vec!["".into(), "main".into(), "cpu".into()],
                ..Default::default()
            }),
        }
    }
}
