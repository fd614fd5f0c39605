//! Reading a JSON object field by field, remembering every error: what a declared request
//! schema's reader calls.

use serde_json::{Map, Value};

use super::{FieldValue, FromJsonBody};
use crate::domain::Patch;
use crate::error::{ApiError, FieldError, LocItem};

/// Parse a whole body: it must be a JSON object; every field error and every unknown field is
/// reported, in the order of the schema and then of the input.
pub fn parse_body<T: FromJsonBody>(value: Value) -> Result<T, ApiError> {
    let Value::Object(map) = value else {
        return Err(ApiError::validation(FieldError::new(
            vec!["body".into()],
            "model_attributes_type",
            "Input should be a valid dictionary or object to extract fields from",
        )));
    };
    let mut reader = ObjectReader::new(map);
    let parsed = T::from_body(&mut reader);
    reader.finish()?;
    parsed.ok_or_else(|| ApiError::Internal("body parser returned nothing without errors".into()))
}

/// Reads the fields of one JSON object, remembering which were consumed and every error seen.
#[derive(Debug)]
pub struct ObjectReader {
    map: Map<String, Value>,
    /// The keys the object had before any was read.
    present: Vec<String>,
    errors: Vec<FieldError>,
}

impl ObjectReader {
    pub fn new(map: Map<String, Value>) -> Self {
        let present = map.keys().cloned().collect();
        Self { map, present, errors: Vec::new() }
    }

    /// After the fields: when `field` was sent, `needs` must have been sent too (JSON Schema's
    /// `dependentRequired`), else a `missing` error at `needs`. Checked, as a Pydantic model
    /// validator is, only when every field was valid and none was unknown.
    pub fn requires_with(&mut self, field: &str, needs: &str) {
        let sent = |name: &str| self.present.iter().any(|key| key == name);
        if self.errors.is_empty() && self.map.is_empty() && sent(field) && !sent(needs) {
            self.errors.push(FieldError::new(Self::loc(needs), "missing", "Field required"));
        }
    }

    fn loc(name: &str) -> Vec<LocItem> {
        vec!["body".into(), name.into()]
    }

    /// A required field that may not be null.
    pub fn required<T: FieldValue>(&mut self, name: &str) -> Option<T> {
        match self.map.remove(name) {
            None => {
                self.errors.push(FieldError::new(Self::loc(name), "missing", "Field required"));
                None
            }
            Some(value) => self.parse(name, &value),
        }
    }

    /// An optional field that may not be null; absent gives `default`.
    pub fn optional<T: FieldValue>(&mut self, name: &str, default: T) -> Option<T> {
        match self.map.remove(name) {
            None => Some(default),
            Some(value) => self.parse(name, &value),
        }
    }

    /// A PATCH field that may not be null: absent leaves it.
    pub fn patch<T: FieldValue>(&mut self, name: &str) -> Option<Patch<T>> {
        match self.map.remove(name) {
            None => Some(Patch::Absent),
            Some(value) => self.parse(name, &value).map(Patch::Set),
        }
    }

    /// A nullable field: absent or null give `None`.
    pub fn nullable<T: FieldValue>(&mut self, name: &str) -> Option<Option<T>> {
        match self.map.remove(name) {
            None | Some(Value::Null) => Some(None),
            Some(value) => self.parse(name, &value).map(Some),
        }
    }

    /// A nullable PATCH field: absent leaves it, null clears it.
    pub fn nullable_patch<T: FieldValue>(&mut self, name: &str) -> Option<Patch<Option<T>>> {
        match self.map.remove(name) {
            None => Some(Patch::Absent),
            Some(Value::Null) => Some(Patch::Set(None)),
            Some(value) => self.parse(name, &value).map(|v| Patch::Set(Some(v))),
        }
    }

    fn parse<T: FieldValue>(&mut self, name: &str, value: &Value) -> Option<T> {
        match T::parse(value, &Self::loc(name)) {
            Ok(v) => Some(v),
            Err(e) => {
                self.errors.push(e);
                None
            }
        }
    }

    /// Reports every field that the schema did not read as `extra_forbidden`.
    fn finish(mut self) -> Result<(), ApiError> {
        let extra = std::mem::take(&mut self.map);
        for key in extra.keys() {
            self.errors.push(FieldError::new(
                Self::loc(key),
                "extra_forbidden",
                "Extra inputs are not permitted",
            ));
        }
        if self.errors.is_empty() { Ok(()) } else { Err(ApiError::Validation(self.errors)) }
    }
}
