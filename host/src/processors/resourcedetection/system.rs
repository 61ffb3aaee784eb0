//! The `system` detector: the host trailhead runs on (its name, id, OS and architecture), read
//! the way the collector's system detector reads them: the OS hostname or its FQDN (the
//! `hostname_sources` in order), `/etc/machine-id`, uname and os-release as the OpenTelemetry
//! Go SDK formats them, Go's names for the OS and architecture.

use super::Detected;
use serde::Deserialize;
use std::collections::BTreeMap;

/// The attributes the collector's system detector has, with its default `enabled`, and
/// whether trailhead reads them. Enabling one trailhead does not read is refused at start.
const ATTRIBUTES: &[(&str, bool, bool)] = &[
    ("host.name", true, true),
    ("os.type", true, true),
    ("host.id", false, true),
    ("host.arch", false, true),
    ("os.description", false, true),
    ("host.ip", false, false),
    ("host.mac", false, false),
    ("host.interface", false, false),
    ("os.version", false, false),
    ("host.cpu.vendor.id", false, false),
    ("host.cpu.family", false, false),
    ("host.cpu.model.id", false, false),
    ("host.cpu.model.name", false, false),
    ("host.cpu.stepping", false, false),
    ("host.cpu.cache.l2.size", false, false),
];

/// The hostname sources the collector knows, tried in the order given.
const SOURCES: &[&str] = &["dns", "os", "cname", "lookup"];

/// `system:` of a resourcedetection entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where host.name comes from, first that answers wins: `dns` (the FQDN), `os`, `cname`, `lookup`. Default [dns, os].
    pub hostname_sources: Vec<String>,
    /// Which attributes to set: `{host.id: {enabled: true}}`.
    pub resource_attributes: BTreeMap<String, Switch>,
}

/// One attribute's `enabled`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Switch {
    /// Whether the detector sets the attribute.
    pub enabled: bool,
}

impl Config {
    /// The sources and enabled attributes, or what is wrong with them (`key.path: why`).
    fn checked(&self) -> Result<(Vec<&str>, Vec<&'static str>), String> {
        for source in &self.hostname_sources {
            if !SOURCES.contains(&source.as_str()) {
                return Err(format!(
                    "system.hostname_sources: hostname_sources contains invalid value: {source:?}"
                ));
            }
        }
        let mut sources: Vec<&str> = self.hostname_sources.iter().map(String::as_str).collect();
        if sources.is_empty() {
            sources = vec!["dns", "os"];
        }
        for (name, switch) in &self.resource_attributes {
            match ATTRIBUTES.iter().find(|(known, _, _)| known == name) {
                None => {
                    return Err(format!(
                        "system.resource_attributes: has invalid keys: {name}"
                    ));
                }
                Some((_, _, false)) if switch.enabled => {
                    return Err(format!(
                        "system.resource_attributes: {name} is not built in trailhead's system detector (it reads {})",
                        readable().join(", ")
                    ));
                }
                Some(_) => {}
            }
        }
        let enabled = ATTRIBUTES
            .iter()
            .filter(|(name, default, _)| {
                self.resource_attributes
                    .get(*name)
                    .map_or(*default, |s| s.enabled)
            })
            .map(|(name, _, _)| *name)
            .collect();
        Ok((sources, enabled))
    }
}

fn readable() -> Vec<&'static str> {
    let built = ATTRIBUTES.iter().filter(|(_, _, built)| *built);
    built.map(|(name, _, _)| *name).collect()
}

/// Checks the section without detecting anything (config errors come before detection).
pub fn check(config: &Config) -> Result<(), String> {
    config.checked().map(|_| ())
}

/// The enabled attributes of this host. Fails, as the collector does, when no hostname
/// source answers; a missing machine id only leaves host.id out.
pub fn detect(config: &Config) -> Result<Detected, String> {
    let (sources, enabled) = config.checked()?;
    let hostname = sources
        .iter()
        .find_map(|source| hostname_from(source).ok())
        .ok_or("all hostname sources failed to get hostname")?;
    let mut detected: Detected = Vec::new();
    for name in enabled {
        let value = match name {
            "host.name" => Some(hostname.clone()),
            "os.type" => Some(os_type().to_string()),
            "host.id" => host_id(),
            "host.arch" => Some(host_arch().to_string()),
            "os.description" => Some(os_description()),
            _ => None,
        };
        if let Some(value) = value {
            detected.push((name.to_string(), value));
        }
    }
    if !detected.iter().any(|(name, _)| name == "host.id") && enabled_has(config, "host.id") {
        tracing::warn!(
            "resourcedetection: failed to get host ID: no /etc/machine-id or /var/lib/dbus/machine-id"
        );
    }
    Ok(detected)
}

fn enabled_has(config: &Config, name: &str) -> bool {
    config
        .resource_attributes
        .get(name)
        .is_some_and(|s| s.enabled)
}

/// host.name from one source.
fn hostname_from(source: &str) -> Result<String, String> {
    let host = os_hostname();
    match source {
        "os" => Ok(host),
        "dns" => fqdn(&host),
        "cname" => canonical_name(&host),
        "lookup" => reverse_lookup(&host),
        _ => Err(format!("unknown hostname source {source}")),
    }
}

/// The kernel's host name, as Go's `os.Hostname` reads it.
pub fn os_hostname() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

/// The FQDN as the collector's `dns` source finds it (the go-fqdn library): the hosts file's
/// canonical name for a line that names the host, else the resolver's canonical name, else
/// the name the host's first address reverse-resolves to.
fn fqdn(host: &str) -> Result<String, String> {
    let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    if let Some(name) = hosts
        .lines()
        .find_map(|line| canonical_in_hosts_line(host, line))
    {
        return Ok(name);
    }
    canonical_name(host).or_else(|_| reverse_lookup(host))
}

/// A hosts-file line's canonical name (its second field) when that name or one of its
/// aliases is `host`; space and tab separate fields and `#` ends the line. A canonical name
/// that is no host name (too long, or a character other than letters, digits, `.`, `-` and
/// non-ASCII) makes the line not match.
pub fn canonical_in_hosts_line(host: &str, line: &str) -> Option<String> {
    let line = line.split('#').next().unwrap_or_default();
    let mut fields = line.split([' ', '\t']).filter(|f| !f.is_empty());
    let _address = fields.next()?;
    let canonical = fields.next()?;
    let valid = canonical.len() <= 254
        && canonical
            .chars()
            .all(|c| !c.is_ascii() || c.is_ascii_alphanumeric() || c == '.' || c == '-');
    if !valid {
        return None;
    }
    let named = canonical == host || fields.any(|alias| alias == host);
    named.then(|| canonical.to_string())
}

/// The resolver's canonical name for `host` (getaddrinfo with AI_CANONNAME, as Go's
/// `LookupCNAME` asks the system resolver), without the trailing dot.
fn canonical_name(host: &str) -> Result<String, String> {
    let hints = dns_lookup::AddrInfoHints {
        flags: libc::AI_CANONNAME,
        socktype: libc::SOCK_STREAM,
        ..Default::default()
    };
    let mut found = dns_lookup::getaddrinfo(Some(host), None, Some(hints))
        .map_err(|e| format!("lookupCNAME failed to get CNAME: {e:?}"))?;
    let name = found
        .find_map(|info| info.ok().and_then(|i| i.canonname))
        .filter(|n| !n.is_empty())
        .ok_or("lookupCNAME failed to get CNAME: no canonical name")?;
    Ok(name.trim_end_matches('.').to_string())
}

/// The name the first of `host`'s addresses that has one reverse-resolves to.
fn reverse_lookup(host: &str) -> Result<String, String> {
    let addresses = dns_lookup::lookup_host(host).map_err(|e| e.to_string())?;
    addresses
        .iter()
        .find_map(|ip| dns_lookup::lookup_addr(ip).ok())
        .map(|name| name.trim_end_matches('.').to_string())
        .ok_or_else(|| "reverseLookupHost failed to lookup host".to_string())
}

/// Go's GOOS for this build, which is what the collector writes as os.type.
pub fn os_type() -> &'static str {
    match std::env::consts::OS {
        "macos" => "darwin",
        other => other,
    }
}

/// Go's GOARCH as the collector maps it to the semantic conventions' host.arch values.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "x86",
        "aarch64" => "arm64",
        "arm" => "arm32",
        "powerpc64" => "ppc64",
        other => other,
    }
}

/// The machine id (systemd's, or D-Bus's where systemd's is missing), as the OpenTelemetry
/// Go SDK reads host.id on Linux.
pub fn host_id() -> Option<String> {
    ["/etc/machine-id", "/var/lib/dbus/machine-id"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .map(|id| id.trim().to_string())
        .find(|id| !id.is_empty())
}

/// The OpenTelemetry Go SDK's OS description: `NAME VERSION` from os-release (VERSION_ID
/// when VERSION is missing, PRETTY_NAME when either is), then `uname -snrvm` in parentheses.
pub fn os_description() -> String {
    let uname = rustix::system::uname();
    let text = [
        uname.sysname(),
        uname.nodename(),
        uname.release(),
        uname.version(),
        uname.machine(),
    ]
    .map(|part| part.to_string_lossy().into_owned())
    .join(" ");
    let release = ["/etc/os-release", "/usr/lib/os-release"]
        .iter()
        .find_map(|path| std::fs::read_to_string(path).ok())
        .map(|file| os_release(&file))
        .unwrap_or_default();
    if release.is_empty() {
        text
    } else {
        format!("{release} ({text})")
    }
}

/// The release name of an os-release file, as the Go SDK builds it.
pub fn os_release(file: &str) -> String {
    let mut values = BTreeMap::new();
    for line in file.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if key.is_empty() {
            continue;
        }
        values.insert(key.trim().to_string(), unescape(unquote(value.trim())));
    }
    let get = |key: &str| values.get(key).cloned().unwrap_or_default();
    let name = get("NAME");
    let version = Some(get("VERSION"))
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| get("VERSION_ID"));
    if !name.is_empty() && !version.is_empty() {
        format!("{name} {version}")
    } else {
        get("PRETTY_NAME")
    }
}

fn unquote(text: &str) -> &str {
    let bytes = text.as_bytes();
    let quoted = bytes.len() >= 2
        && (bytes[0] == b'"' || bytes[0] == b'\'')
        && bytes[0] == bytes[bytes.len() - 1];
    if quoted {
        &text[1..text.len() - 1]
    } else {
        text
    }
}

fn unescape(text: &str) -> String {
    text.replace("\\$", "$")
        .replace("\\\"", "\"")
        .replace("\\'", "'")
        .replace("\\\\", "\\")
        .replace("\\`", "`")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> Config {
        serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"))
    }

    // With no section the collector's defaults hold: host.name and os.type, the hostname
    // from the first of dns and os that answers. Each value is what the OS says, read here
    // through other means: the kernel's files and std's architecture.
    #[test]
    fn defaults_detect_host_name_and_os_type() {
        let detected = detect(&Config::default()).unwrap();
        let names: Vec<&str> = detected.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["host.name", "os.type"]);
        assert_eq!(detected[1].1, "linux");
        let kernel = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        let host = detect(&config("{hostname_sources: [os]}")).unwrap();
        assert_eq!(host[0].1, kernel.trim());
    }

    // Every readable attribute, switched on, holds what the OS reports.
    #[test]
    fn enabled_attributes_hold_what_the_os_reports() {
        let all = "{hostname_sources: [os], resource_attributes: {host.id: {enabled: true}, \
                   host.arch: {enabled: true}, os.description: {enabled: true}, os.type: {enabled: false}}}";
        let detected: BTreeMap<String, String> =
            detect(&config(all)).unwrap().into_iter().collect();
        assert!(!detected.contains_key("os.type"), "{detected:?}");
        let machine_id = std::fs::read_to_string("/etc/machine-id")
            .or_else(|_| std::fs::read_to_string("/var/lib/dbus/machine-id"));
        if let Ok(id) = machine_id {
            assert_eq!(detected["host.id"], id.trim());
        }
        let arch = if cfg!(target_arch = "x86_64") {
            "amd64"
        } else {
            "arm64"
        };
        assert_eq!(detected["host.arch"], arch);
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
        let description = &detected["os.description"];
        assert!(
            description.contains(&format!(" {} ", release.trim())),
            "{description}"
        );
        assert!(description.contains("Linux "), "{description}");
    }

    // The collector's errors: an unknown hostname source, an unknown attribute; and an
    // attribute trailhead does not read is refused rather than silently left out.
    #[test]
    fn bad_sections_are_refused() {
        let cases = [
            (
                "{hostname_sources: [dns, nope]}",
                "contains invalid value: \"nope\"",
            ),
            (
                "{resource_attributes: {host.nmae: {enabled: true}}}",
                "has invalid keys: host.nmae",
            ),
            (
                "{resource_attributes: {host.ip: {enabled: true}}}",
                "host.ip is not built",
            ),
        ];
        for (yaml, want) in cases {
            let error = check(&config(yaml)).unwrap_err();
            assert!(error.contains(want), "{yaml}: {error}");
        }
        assert!(
            check(&config(
                "{resource_attributes: {host.ip: {enabled: false}}}"
            ))
            .is_ok()
        );
    }

    // The go-fqdn hosts-file rules: the canonical name of a line naming the host by its
    // canonical name or an alias; comments end a line; an invalid canonical name never matches.
    #[test]
    fn hosts_lines_give_the_canonical_name() {
        let line = "10.0.0.1\tnode1.example.com  node1 # node1.other";
        assert_eq!(
            canonical_in_hosts_line("node1", line).as_deref(),
            Some("node1.example.com")
        );
        assert_eq!(
            canonical_in_hosts_line("node1.example.com", line).as_deref(),
            Some("node1.example.com")
        );
        assert_eq!(canonical_in_hosts_line("node1.other", line), None);
        assert_eq!(canonical_in_hosts_line("a", "10.0.0.1 bad_name a"), None);
        assert_eq!(canonical_in_hosts_line("a", "# 10.0.0.1 a"), None);
    }

    // os-release as the Go SDK reads it: NAME VERSION first, VERSION_ID next, PRETTY_NAME
    // last; quotes and escapes removed.
    #[test]
    fn os_release_names_as_the_go_sdk() {
        let debian = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\n";
        assert_eq!(os_release(debian), "Debian GNU/Linux 12 (bookworm)");
        assert_eq!(
            os_release("NAME='Alpine'\nVERSION_ID=3.20\n"),
            "Alpine 3.20"
        );
        assert_eq!(
            os_release("# c\nPRETTY_NAME=\"A \\\"B\\\"\"\nNAME=x\n"),
            "A \"B\""
        );
        assert_eq!(os_release(""), "");
    }
}
