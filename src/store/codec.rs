//! The one codec of stored values.
//!
//! JSON is self-describing: a field added later with `#[serde(default)]`
//! reads old rows without a migration, and a row can be inspected by hand.
//! Decoding returns an error (never panics) so a damaged row becomes an
//! internal error for one request, not a crash.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::domain::DomainError;

pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, DomainError> {
    serde_json::to_vec(value).map_err(|e| DomainError::internal(format!("encoding a row: {e}")))
}

/// Encodes `value` at the end of `out` (reusing its allocation).
pub fn encode_into<T: Serialize>(value: &T, out: &mut Vec<u8>) -> Result<(), DomainError> {
    serde_json::to_writer(out, value).map_err(|e| DomainError::internal(format!("encoding a row: {e}")))
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DomainError> {
    serde_json::from_slice(bytes).map_err(|e| DomainError::internal(format!("decoding a row: {e}")))
}
