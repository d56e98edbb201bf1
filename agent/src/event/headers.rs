//! Headers of one message as the event carries them: names lower-cased, a repeated name joined
//! with ", " at its first position, values redacted. Written as a JSON object in order of
//! first appearance and read back from one in document order, so live and replayed events
//! hold the same list.

use std::{borrow::Cow, fmt};

use super::borrowed::Text;

use serde::{
    Deserialize, Deserializer, Serialize, Serializer,
    de::{MapAccess, Visitor},
    ser::SerializeMap,
};

#[derive(Debug, Clone)]
pub struct Header<'a> {
    /// Lower case (ASCII), as events show it: [`Headers`] keeps names so. Borrowed from the
    /// parsed head, which stores its names lowered, so building an event allocates no names.
    pub name: Cow<'a, str>,
    /// Redacted where the name or value says it is a secret.
    pub value: Cow<'a, str>,
}

impl PartialEq for Header<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.value == other.value
    }
}

impl Eq for Header<'_> {}

#[derive(Debug, Clone, Default)]
pub struct Headers<'a> {
    list: Vec<Header<'a>>,
    /// One bit per (lower-case first byte mod 64) of the names in `list`: a name whose bit is
    /// clear cannot be a repeat, so most pushes skip the search.
    first_bytes: u64,
}

impl PartialEq for Headers<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.list == other.list
    }
}

impl Eq for Headers<'_> {}

fn first_byte_bit(name: &str) -> u64 {
    name.as_bytes().first().map_or(1, |b| 1u64 << (b & 63))
}

/// `name` in lower case, borrowed when it already is (HTTP/2 names always are).
pub fn lower_case(name: &str) -> Cow<'_, str> {
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(name.to_ascii_lowercase())
    } else {
        Cow::Borrowed(name)
    }
}

impl<'a> Headers<'a> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_capacity(n: usize) -> Self {
        Self {
            list: Vec::with_capacity(n),
            first_bytes: 0,
        }
    }

    /// Adds a header, its name lowered; a repeated name (in any case) is joined to its first
    /// with ", ".
    pub fn push(&mut self, name: Cow<'a, str>, value: Cow<'a, str>) {
        let name = match name {
            Cow::Borrowed(name) => lower_case(name),
            Cow::Owned(mut name) => {
                name.make_ascii_lowercase();
                Cow::Owned(name)
            }
        };
        self.push_lower(name, value);
    }

    /// [`Self::push`] for a name the caller knows is lower case (a parsed head's, a lowered
    /// one): no scan of the name. Quadratic in the number of distinct names, which the parsers
    /// bound (128 per head).
    pub fn push_lower(&mut self, name: Cow<'a, str>, value: Cow<'a, str>) {
        debug_assert!(!name.bytes().any(|b| b.is_ascii_uppercase()), "{name}");
        let bit = first_byte_bit(&name);
        if self.first_bytes & bit == 0 {
            self.first_bytes |= bit;
            self.list.push(Header { name, value });
            return;
        }
        match self.list.iter_mut().find(|h| h.name == name) {
            Some(first) => {
                let joined = first.value.to_mut();
                joined.push_str(", ");
                joined.push_str(&value);
            }
            None => self.list.push(Header { name, value }),
        }
    }

    /// The value of `name` (any case).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.list
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_ref())
    }

    pub fn iter(&self) -> impl Iterator<Item = &Header<'a>> {
        self.list.iter()
    }
}

impl Serialize for Headers<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.list.len()))?;
        for h in &self.list {
            map.serialize_entry(h.name.as_ref(), h.value.as_ref())?;
        }
        map.end()
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Headers<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct HeadersVisitor<'a>(std::marker::PhantomData<Headers<'a>>);
        impl<'de: 'a, 'a> Visitor<'de> for HeadersVisitor<'a> {
            type Value = Headers<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of header names to string values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut headers = Headers::with_capacity(map.size_hint().unwrap_or(0).min(128));
                while let Some((Text(name), Text(value))) = map.next_entry::<Text, Text>()? {
                    let name = match lower_case(&name) {
                        Cow::Borrowed(_) => name,
                        Cow::Owned(lower) => Cow::Owned(lower),
                    };
                    headers.push_lower(name, value);
                }
                Ok(headers)
            }
        }
        deserializer.deserialize_map(HeadersVisitor(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_names_join_and_round_trip() {
        let mut h = Headers::new();
        h.push(lower_case("Set-Cookie"), Cow::Borrowed("a"));
        h.push(lower_case("Content-Type"), Cow::Borrowed("text/plain"));
        h.push(lower_case("set-cookie"), Cow::Borrowed("b"));
        assert_eq!(h.get("set-cookie"), Some("a, b"));
        let text = serde_json::to_string(&h).expect("json");
        assert_eq!(text, r#"{"set-cookie":"a, b","content-type":"text/plain"}"#);
        let back: Headers<'_> = serde_json::from_str(&text).expect("parse");
        assert_eq!(back, h);
    }
}
