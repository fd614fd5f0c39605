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
            // Only reached without `skip_serializing_if`: an absent field says nothing.
            Self::Absent => serializer.serialize_none(),
            Self::Set(v) => v.serialize(serializer),
        }
    }
}
