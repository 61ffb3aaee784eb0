//! Component ids, and a section of them (`receivers:`, `exporters:`, …) read by id: the
//! component's type decides which config its body is read into. Which types exist is the
//! component table's business (`crate::components`); this module only reads a section.

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

/// `type` or `type/name`, e.g. `otlp/alloy`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ComponentId {
    pub kind: String,
    pub name: Option<String>,
}

impl ComponentId {
    pub fn parse(text: &str) -> Result<ComponentId, String> {
        let (kind, name) = match text.split_once('/') {
            Some((kind, name)) => (kind, Some(name)),
            None => (text, None),
        };
        let valid = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
        };
        if !valid(kind) || !name.is_none_or(valid) {
            return Err(format!(
                "invalid component id `{text}`: expected `type` or `type/name` of letters, digits, `_`, `-` or `.`"
            ));
        }
        Ok(ComponentId {
            kind: kind.to_string(),
            name: name.map(str::to_string),
        })
    }
}

impl fmt::Display for ComponentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "{}/{name}", self.kind),
            None => f.write_str(&self.kind),
        }
    }
}

impl<'de> Deserialize<'de> for ComponentId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        ComponentId::parse(&String::deserialize(d)?).map_err(de::Error::custom)
    }
}

/// A config section whose body type depends on the component type.
pub trait Typed: Sized {
    /// The section's name, for messages: `receiver`, `exporter`, …
    const SECTION: &'static str;
    /// Types this build knows, with their aliases, for the message naming an unknown one.
    fn known() -> Vec<&'static str>;
    /// Whether a component type may appear in this section.
    fn accepts(kind: &str) -> bool {
        Self::known().contains(&kind)
    }
    /// Why a type this build does not know will not come (out of scope), if it is one of those.
    fn out_of_scope(_kind: &str) -> Option<String> {
        None
    }
    fn deserialize_kind<'de, D: Deserializer<'de>>(kind: &str, d: D) -> Result<Self, D::Error>;
}

/// Reads a section body that may be empty (`otlp:` alone means all defaults).
pub fn or_default<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(
    d: D,
) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// The components of one section by id, in id order.
#[derive(Debug)]
pub struct Components<T>(BTreeMap<ComponentId, T>);

impl<T> Default for Components<T> {
    fn default() -> Self {
        Components(BTreeMap::new())
    }
}

impl<T> Components<T> {
    pub fn get(&self, id: &ComponentId) -> Option<&T> {
        self.0.get(id)
    }
    pub fn contains(&self, id: &ComponentId) -> bool {
        self.0.contains_key(id)
    }
    pub fn iter(&self) -> impl Iterator<Item = (&ComponentId, &T)> {
        self.0.iter()
    }
}

impl<'de, T: Typed> Deserialize<'de> for Components<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct SectionVisitor<T>(PhantomData<T>);
        struct KindSeed<'k, T>(&'k str, PhantomData<T>);

        impl<'de, T: Typed> DeserializeSeed<'de> for KindSeed<'_, T> {
            type Value = T;
            fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
                T::deserialize_kind(self.0, d)
            }
        }

        /// A component's key, read as an id of a type this section has: an error here is
        /// located at the key.
        struct IdSeed<T>(PhantomData<T>);

        impl<'de, T: Typed> DeserializeSeed<'de> for IdSeed<T> {
            type Value = (String, ComponentId);
            fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                let key = String::deserialize(d)?;
                let id = ComponentId::parse(&key).map_err(de::Error::custom)?;
                if let Some(why) = T::out_of_scope(&id.kind) {
                    return Err(de::Error::custom(why));
                }
                if !T::accepts(&id.kind) {
                    return Err(de::Error::custom(format!(
                        "unknown {} type `{}` (this build knows: {})",
                        T::SECTION,
                        id.kind,
                        T::known().join(", ")
                    )));
                }
                Ok((key, id))
            }
        }

        impl<'de, T: Typed> Visitor<'de> for SectionVisitor<T> {
            type Value = Components<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a map of {} ids to their settings", T::SECTION)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Components::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = BTreeMap::new();
                while let Some((key, id)) = map.next_key_seed(IdSeed::<T>(PhantomData))? {
                    let config = map.next_value_seed(KindSeed::<T>(&id.kind, PhantomData))?;
                    if out.insert(id, config).is_some() {
                        return Err(de::Error::custom(format!(
                            "{} `{key}` is defined twice",
                            T::SECTION
                        )));
                    }
                }
                Ok(Components(out))
            }
        }
        d.deserialize_any(SectionVisitor(PhantomData))
    }
}
