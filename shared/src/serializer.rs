//! Encoding of session data into the item's `data` attribute.

use std::fmt::Debug;

use crate::error::{Error, Result};

/// A session's data: a JSON object, as the gem stores a Ruby hash.
pub type SessionData = serde_json::Map<String, serde_json::Value>;

/// Turns session data into the string stored in the `data` attribute and back.
///
/// The default is [`JsonSerializer`]; the gem's `serializer` option.
pub trait SessionSerializer: Debug + Send + Sync + 'static {
    /// Encodes `data`.
    ///
    /// # Errors
    ///
    /// [`Error::Serialization`] when the data cannot be encoded.
    fn serialize(&self, data: &SessionData) -> Result<String>;

    /// Decodes what [`serialize`](Self::serialize) produced.
    ///
    /// # Errors
    ///
    /// [`Error::Serialization`] when the text is not a valid encoding.
    fn deserialize(&self, text: &str) -> Result<SessionData>;
}

/// JSON, compatible with the gem's default serializer for JSON-safe data.
///
/// # Examples
///
/// ```
/// use dynamodb_session_store::SessionData;
/// use dynamodb_session_store::serializer::{JsonSerializer, SessionSerializer};
///
/// let mut data = SessionData::new();
/// data.insert("user_id".into(), 42.into());
/// let text = JsonSerializer.serialize(&data).unwrap();
/// assert_eq!(text, r#"{"user_id":42}"#);
/// assert_eq!(JsonSerializer.deserialize(&text).unwrap(), data);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonSerializer;

impl SessionSerializer for JsonSerializer {
    fn serialize(&self, data: &SessionData) -> Result<String> {
        serde_json::to_string(data).map_err(Error::Serialization)
    }

    fn deserialize(&self, text: &str) -> Result<SessionData> {
        serde_json::from_str(text).map_err(Error::Serialization)
    }
}
