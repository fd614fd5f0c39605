//! [`Patch`]: a field of a PATCH body, absent (leave it) or sent (change it).

use serde::{Serialize, Serializer};

/// A field of a PATCH body: absent (leave it), or present with a value. For nullable fields the
/// value is itself an `Option` ("null clears it").
///
/// As a field of a serialised change set, `#[serde(skip_serializing_if = "Patch::is_absent")]`
/// leaves an absent one out, and a present one is its value (`null` for "clear it").
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Patch<T> {
    #[default]
    Absent,
    Set(T),
}

impl<T> Patch<T> {
    pub fn into_option(self) -> Option<T> {
        match self {
            Self::Absent => None,
            Self::Set(v) => Some(v),
        }
    }

    pub fn is_absent(&self) -> bool {
        matches!(self, Self::Absent)
    }

    /// The same patch with its value converted (`Patch<Title>` into `Patch<String>`).
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Patch<U> {
        match self {
            Self::Absent => Patch::Absent,
            Self::Set(v) => Patch::Set(f(v)),
        }
    }
}

impl<T: Serialize> Serialize for Patch<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            // Only reached without `skip_serializing_if`. Writing it as `null` would make a
            // change set clear a field that was left alone, so it is an error instead.
            Self::Absent => Err(serde::ser::Error::custom(
                "an absent Patch field must be skipped (#[serde(skip_serializing_if = \"Patch::is_absent\")])",
            )),
            Self::Set(v) => v.serialize(serializer),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Skipped {
        #[serde(skip_serializing_if = "Patch::is_absent")]
        a: Patch<Option<String>>,
    }

    #[derive(Serialize)]
    struct Forgotten {
        a: Patch<String>,
    }

    #[test]
    fn an_absent_field_is_left_out_or_refused_never_written_as_null() {
        assert_eq!(serde_json::to_string(&Skipped { a: Patch::Absent }).ok(), Some("{}".to_owned()));
        assert_eq!(
            serde_json::to_string(&Skipped { a: Patch::Set(None) }).ok(),
            Some(r#"{"a":null}"#.to_owned())
        );
        assert!(serde_json::to_string(&Forgotten { a: Patch::Absent }).is_err());
    }
}
