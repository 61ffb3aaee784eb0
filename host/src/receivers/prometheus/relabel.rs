//! Prometheus relabeling (`relabel_configs`, `metric_relabel_configs`): the actions, defaults
//! and checks of prometheus/model/relabel. Regexes are RE2 anchored at both ends
//! (`^(?s:REGEX)$`), compiled with the `regex` crate, whose syntax is RE2's; one difference:
//! `\d`, `\w` and `\s` match Unicode there and only ASCII in Go.

use md5::{Digest, Md5};
use regex::Regex;
use serde::Deserialize;
use std::collections::BTreeMap;

/// A label set, sorted by name as Prometheus keeps it.
pub type Labels = BTreeMap<String, String>;

/// One relabeling step, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "RawRelabel")]
pub struct RelabelConfig {
    /// Labels whose values are joined with `separator` into the value the regex matches.
    pub source_labels: Vec<String>,
    /// What joins the source values (default `;`).
    pub separator: String,
    /// The anchored regex (default `(.*)`).
    pub regex: AnchoredRegex,
    /// For `hashmod`: the modulus of the hash.
    pub modulus: u64,
    /// The label written by `replace`, `hashmod`, `lowercase`, `uppercase`, or compared by
    /// `keepequal` and `dropequal`.
    pub target_label: String,
    /// What `replace` and `labelmap` write, with `$1`-style references (default `$1`; in a
    /// config file `${1}` is written `$${1}`, as in the collector, which expands `${…}`).
    pub replacement: String,
    /// What to do (default `replace`).
    pub action: Action,
}

/// A relabel action, case-insensitive as Prometheus reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Replace,
    Keep,
    Drop,
    KeepEqual,
    DropEqual,
    HashMod,
    LabelMap,
    LabelDrop,
    LabelKeep,
    Lowercase,
    Uppercase,
}

impl Action {
    fn parse(text: &str) -> Result<Action, String> {
        Ok(match text.to_ascii_lowercase().as_str() {
            "replace" => Action::Replace,
            "keep" => Action::Keep,
            "drop" => Action::Drop,
            "keepequal" => Action::KeepEqual,
            "dropequal" => Action::DropEqual,
            "hashmod" => Action::HashMod,
            "labelmap" => Action::LabelMap,
            "labeldrop" => Action::LabelDrop,
            "labelkeep" => Action::LabelKeep,
            "lowercase" => Action::Lowercase,
            "uppercase" => Action::Uppercase,
            "" => return Err("relabel action cannot be empty".into()),
            other => return Err(format!("unknown relabel action {other:?}")),
        })
    }

    fn name(self) -> &'static str {
        match self {
            Action::Replace => "replace",
            Action::Keep => "keep",
            Action::Drop => "drop",
            Action::KeepEqual => "keepequal",
            Action::DropEqual => "dropequal",
            Action::HashMod => "hashmod",
            Action::LabelMap => "labelmap",
            Action::LabelDrop => "labeldrop",
            Action::LabelKeep => "labelkeep",
            Action::Lowercase => "lowercase",
            Action::Uppercase => "uppercase",
        }
    }
}

/// A regex as written, compiled anchored.
#[derive(Debug, Clone)]
pub struct AnchoredRegex {
    /// The regex as written.
    pub source: String,
    compiled: Regex,
}

impl AnchoredRegex {
    pub fn new(source: &str) -> Result<AnchoredRegex, String> {
        let compiled = Regex::new(&format!("^(?s:{source})$"))
            .map_err(|e| format!("invalid regex {source:?}: {e}"))?;
        Ok(AnchoredRegex {
            source: source.to_string(),
            compiled,
        })
    }
}

const DEFAULT_REGEX: &str = "(.*)";
const DEFAULT_SEPARATOR: &str = ";";
const DEFAULT_REPLACEMENT: &str = "$1";

/// The step as YAML gives it, before its checks.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRelabel {
    #[serde(default)]
    source_labels: Vec<String>,
    separator: Option<String>,
    regex: Option<String>,
    #[serde(default)]
    modulus: u64,
    #[serde(default)]
    target_label: String,
    replacement: Option<String>,
    action: Option<String>,
}

impl TryFrom<RawRelabel> for RelabelConfig {
    type Error = String;

    fn try_from(raw: RawRelabel) -> Result<Self, String> {
        let action = match &raw.action {
            Some(text) => Action::parse(text)?,
            None => Action::Replace,
        };
        let defaults_only = raw.separator.is_none()
            && raw.regex.is_none()
            && raw.replacement.is_none()
            && raw.modulus == 0;
        let name = action.name();
        use Action::*;
        if action == HashMod && raw.modulus == 0 {
            return Err("relabel configuration for hashmod requires non-zero modulus".into());
        }
        let needs_target = matches!(
            action,
            Replace | HashMod | Lowercase | Uppercase | KeepEqual | DropEqual
        );
        if needs_target && raw.target_label.is_empty() {
            return Err(format!(
                "relabel configuration for {name} action requires 'target_label' value"
            ));
        }
        if matches!(action, KeepEqual | DropEqual) && !defaults_only {
            return Err(format!(
                "{name} action requires only 'source_labels' and `target_label`, and no other fields"
            ));
        }
        let label_only = raw.source_labels.is_empty()
            && raw.target_label.is_empty()
            && raw.separator.is_none()
            && raw.replacement.is_none()
            && raw.modulus == 0;
        if matches!(action, LabelDrop | LabelKeep) && !label_only {
            return Err(format!(
                "{name} action requires only 'regex', and no other fields"
            ));
        }
        Ok(RelabelConfig {
            source_labels: raw.source_labels,
            separator: raw.separator.unwrap_or_else(|| DEFAULT_SEPARATOR.into()),
            regex: AnchoredRegex::new(raw.regex.as_deref().unwrap_or(DEFAULT_REGEX))?,
            modulus: raw.modulus,
            target_label: raw.target_label,
            replacement: raw
                .replacement
                .unwrap_or_else(|| DEFAULT_REPLACEMENT.into()),
            action,
        })
    }
}

impl Default for RelabelConfig {
    fn default() -> Self {
        RelabelConfig {
            source_labels: Vec::new(),
            separator: DEFAULT_SEPARATOR.into(),
            regex: AnchoredRegex::new(DEFAULT_REGEX).unwrap_or_else(|_| unreachable!()),
            modulus: 0,
            target_label: String::new(),
            replacement: DEFAULT_REPLACEMENT.into(),
            action: Action::Replace,
        }
    }
}

/// Applies `steps` in order; `false` when a step drops the whole set (then `labels` is
/// meaningless).
pub fn relabel(labels: &mut Labels, steps: &[RelabelConfig]) -> bool {
    steps.iter().all(|step| step.apply(labels))
}

impl RelabelConfig {
    /// One step; `false` drops the set.
    fn apply(&self, labels: &mut Labels) -> bool {
        let value = self
            .source_labels
            .iter()
            .map(|name| labels.get(name).map_or("", String::as_str))
            .collect::<Vec<_>>()
            .join(&self.separator);
        let regex = &self.regex.compiled;
        match self.action {
            Action::Keep => return regex.is_match(&value),
            Action::Drop => return !regex.is_match(&value),
            Action::KeepEqual => return get(labels, &self.target_label) == value,
            Action::DropEqual => return get(labels, &self.target_label) != value,
            Action::Replace => self.replace(labels, &value),
            Action::Lowercase => set(labels, &self.target_label, value.to_lowercase()),
            Action::Uppercase => set(labels, &self.target_label, value.to_uppercase()),
            Action::HashMod => {
                let digest = Md5::digest(value.as_bytes());
                let mut low = [0u8; 8];
                low.copy_from_slice(&digest[8..]);
                let bucket = u64::from_be_bytes(low) % self.modulus;
                set(labels, &self.target_label, bucket.to_string());
            }
            Action::LabelMap => {
                let mapped: Vec<(String, String)> = labels
                    .iter()
                    .filter(|(name, _)| regex.is_match(name))
                    .map(|(name, value)| {
                        let to = regex.replace_all(name, self.replacement.as_str());
                        (to.into_owned(), value.clone())
                    })
                    .collect();
                for (name, value) in mapped {
                    set(labels, &name, value);
                }
            }
            Action::LabelDrop => labels.retain(|name, _| !regex.is_match(name)),
            Action::LabelKeep => labels.retain(|name, _| regex.is_match(name)),
        }
        true
    }

    /// `replace`: when the regex matches, the target (itself a template) gets the expanded
    /// replacement; an empty result deletes it, an invalid target name changes nothing.
    fn replace(&self, labels: &mut Labels, value: &str) {
        let Some(captures) = self.regex.compiled.captures(value) else {
            return;
        };
        let mut target = String::new();
        captures.expand(&self.target_label, &mut target);
        if !is_label_name(&target) {
            return;
        }
        let mut replaced = String::new();
        captures.expand(&self.replacement, &mut replaced);
        set(labels, &target, replaced);
    }
}

fn get<'a>(labels: &'a Labels, name: &str) -> &'a str {
    labels.get(name).map_or("", String::as_str)
}

/// Sets a label; an empty value deletes it, as Prometheus' label builder does.
fn set(labels: &mut Labels, name: &str, value: String) {
    if value.is_empty() {
        labels.remove(name);
    } else {
        labels.insert(name.to_string(), value);
    }
}

/// Prometheus 3 validates label names as UTF-8: any non-empty valid text.
fn is_label_name(name: &str) -> bool {
    !name.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tree::from_str;

    fn steps(yaml: &str) -> Vec<RelabelConfig> {
        from_str(yaml).unwrap()
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn run(yaml: &str, input: &[(&str, &str)]) -> Option<Labels> {
        let mut set = labels(input);
        relabel(&mut set, &steps(yaml)).then_some(set)
    }

    #[test]
    fn replace_with_defaults_copies_the_joined_value() {
        let out = run(
            "- source_labels: [a, b]\n  target_label: c\n",
            &[("a", "x"), ("b", "y")],
        );
        assert_eq!(out, Some(labels(&[("a", "x"), ("b", "y"), ("c", "x;y")])));
    }

    #[test]
    fn replace_is_anchored_and_templates_the_target() {
        let yaml = "- source_labels: [a]\n  regex: 'b(.)'\n  target_label: 'l_$1'\n  replacement: '$${1}z'\n";
        // `abc` does not match the anchored `b(.)`: nothing changes.
        assert_eq!(run(yaml, &[("a", "abc")]), Some(labels(&[("a", "abc")])));
        assert_eq!(
            run(yaml, &[("a", "bq")]),
            Some(labels(&[("a", "bq"), ("l_q", "qz")]))
        );
    }

    #[test]
    fn replace_with_an_empty_result_deletes_the_target() {
        let yaml = "- source_labels: [missing]\n  target_label: a\n";
        assert_eq!(run(yaml, &[("a", "x")]), Some(labels(&[])));
    }

    #[test]
    fn keep_and_drop_match_the_joined_value() {
        let keep = "- source_labels: [scrape]\n  regex: 'true'\n  action: keep\n";
        assert!(run(keep, &[("scrape", "true")]).is_some());
        assert!(run(keep, &[("scrape", "truex")]).is_none());
        assert!(run(keep, &[]).is_none());
        let drop = "- source_labels: [a]\n  regex: 'x.*'\n  action: DROP\n";
        assert!(run(drop, &[("a", "xyz")]).is_none());
        assert!(run(drop, &[("a", "yz")]).is_some());
    }

    #[test]
    fn keepequal_and_dropequal_compare_with_the_target() {
        let keep = "- source_labels: [a]\n  target_label: b\n  action: keepequal\n";
        assert!(run(keep, &[("a", "1"), ("b", "1")]).is_some());
        assert!(run(keep, &[("a", "1"), ("b", "2")]).is_none());
        let drop = "- source_labels: [a]\n  target_label: b\n  action: dropequal\n";
        assert!(run(drop, &[("a", "1"), ("b", "1")]).is_none());
        assert!(run(drop, &[]).is_none(), "both empty are equal");
    }

    #[test]
    fn labelmap_labeldrop_labelkeep_work_on_names() {
        let map = "- regex: '__meta_(.+)'\n  action: labelmap\n";
        assert_eq!(
            run(map, &[("__meta_pod", "p"), ("x", "1")]),
            Some(labels(&[("__meta_pod", "p"), ("pod", "p"), ("x", "1")]))
        );
        let drop = "- regex: 'x|y'\n  action: labeldrop\n";
        assert_eq!(
            run(drop, &[("x", "1"), ("xy", "2")]),
            Some(labels(&[("xy", "2")]))
        );
        let keep = "- regex: 'x'\n  action: labelkeep\n";
        assert_eq!(
            run(keep, &[("x", "1"), ("xy", "2")]),
            Some(labels(&[("x", "1")]))
        );
    }

    #[test]
    fn hashmod_matches_prometheus() {
        // Prometheus' own test case: the last 8 bytes of md5("baz") mod 1000 are 976.
        let yaml = "- source_labels: [a]\n  target_label: b\n  modulus: 1000\n  action: hashmod\n";
        assert_eq!(
            run(yaml, &[("a", "baz")]),
            Some(labels(&[("a", "baz"), ("b", "976")]))
        );
    }

    #[test]
    fn lowercase_and_uppercase() {
        let yaml = "- source_labels: [a]\n  target_label: b\n  action: lowercase\n- source_labels: [a]\n  target_label: c\n  action: uppercase\n";
        assert_eq!(
            run(yaml, &[("a", "MiX")]),
            Some(labels(&[("a", "MiX"), ("b", "mix"), ("c", "MIX")]))
        );
    }

    #[test]
    fn bad_steps_are_refused_with_prometheus_messages() {
        let error = |yaml: &str| from_str::<Vec<RelabelConfig>>(yaml).unwrap_err();
        assert!(error("- action: hashmod\n  target_label: b\n").contains("non-zero modulus"));
        assert!(error("- action: replace\n").contains("requires 'target_label'"));
        assert!(error("- action: labeldrop\n  source_labels: [a]\n").contains("only 'regex'"));
        assert!(error("- action: explode\n").contains("unknown relabel action"));
        assert!(error("- regex: '('\n  target_label: a\n").contains("invalid regex"));
        assert!(
            error("- action: keepequal\n  target_label: a\n  regex: x\n")
                .contains("no other fields")
        );
    }
}
