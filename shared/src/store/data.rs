//! The `data` attribute under this store's configuration: its codec and the room an item
//! leaves it.

use super::payload::Codec;
use super::{MAX_ITEM_BYTES, METADATA_RESERVE, SessionStore};
use crate::error::Result;
use crate::serializer::SessionData;

impl SessionStore {
    /// Checks that `data` would fit in one item, without writing anything.
    ///
    /// # Errors
    ///
    /// [`Error::SessionTooLarge`](crate::Error::SessionTooLarge), or [`Error::Serialization`](crate::Error::Serialization) if the data cannot be encoded.
    pub fn check_size(&self, data: &SessionData) -> Result<()> {
        self.codec().check(data)
    }

    /// Bytes every item spends outside `data`'s value: attribute names, the key value, and a
    /// reserve for the numeric and lock attributes.
    pub(super) fn fixed_item_bytes(&self) -> usize {
        // Table keys are base64url of 32 bytes: 43 characters.
        self.inner.config.table_key.len() + 43 + crate::attributes::DATA.len() + METADATA_RESERVE
    }

    /// The `data` attribute's encoder under this store's configuration.
    pub(super) fn codec(&self) -> Codec<'_> {
        Codec {
            config: &self.inner.config,
            fixed_bytes: self.fixed_item_bytes(),
            limit: MAX_ITEM_BYTES,
        }
    }

    /// The largest encoded `data` attribute, in bytes, a save accepts.
    pub(super) fn max_data_len(&self) -> usize {
        MAX_ITEM_BYTES - self.fixed_item_bytes()
    }
}
