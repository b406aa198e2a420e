//! The scalars: timestamps as RFC 3339 strings.

use async_graphql::{InputValueError, InputValueResult, Scalar, ScalarType, Value};
use chrono::{SecondsFormat, Utc};

/// An RFC 3339 timestamp in UTC with the `Z` suffix, e.g. `2026-11-29T20:42:56.123Z`.
#[derive(Clone, Copy, Debug)]
pub struct DateTime(pub chrono::DateTime<Utc>);

/// An RFC 3339 timestamp in UTC with the `Z` suffix and milliseconds,
/// e.g. `2026-11-29T20:42:56.123Z`.
#[Scalar(name = "DateTime", specified_by_url = "https://datatracker.ietf.org/doc/html/rfc3339")]
impl ScalarType for DateTime {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
                .map(|t| Self(t.with_timezone(&Utc)))
                .map_err(|_| InputValueError::custom("expected an RFC 3339 timestamp")),
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.to_rfc3339_opts(SecondsFormat::Millis, true))
    }
}
