//! Text borrowed from the JSON being read where it has no escapes: `cleartap replay` reads
//! millions of events, and serde's own `Cow<str>` always allocates. (`#[serde(borrow)]` does
//! this for plain `Cow<str>` fields; these cover `Option<Cow<str>>` and header maps.)

use std::{borrow::Cow, fmt};

use serde::{
    Deserialize, Deserializer,
    de::{Error, Visitor},
};

/// A string, borrowed from the input when it can be.
pub struct Text<'a>(pub Cow<'a, str>);

struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E: Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(TextVisitor).map(Text)
    }
}

/// `deserialize_with` for `Option<Cow<str>>` fields (with `default`: a missing field is None).
pub fn option_str<'de: 'a, 'a, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Cow<'a, str>>, D::Error> {
    Ok(Option::<Text<'a>>::deserialize(deserializer)?.map(|t| t.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn borrows_plain_text_and_owns_escaped_text() {
        let plain: Text<'_> = serde_json::from_str(r#""abc""#).expect("plain");
        assert!(matches!(plain.0, Cow::Borrowed("abc")));
        let escaped: Text<'_> = serde_json::from_str(r#""a\"bc\u00e9""#).expect("escaped");
        assert!(matches!(&escaped.0, Cow::Owned(s) if s == "a\"bcé"));
        let none = option_str(&mut serde_json::Deserializer::from_str("null")).expect("null");
        assert_eq!(none, None);
        assert!(option_str(&mut serde_json::Deserializer::from_str("3")).is_err());
    }
}
