//! Hooks that let tests drive rare paths deterministically (the `testing` feature: never
//! enable it in production).

use crate::error::Result;
use crate::keys::SessionId;
use crate::serializer::SessionData;

/// Test-build operations on a [`SessionStore`](crate::SessionStore).
pub trait StoreTesting {
    /// `data` sealed as releases before the secret keyed the data key did (under the id
    /// alone) — what a table writer holding their own cookie could compute. It exists to
    /// prove that such data no longer opens.
    ///
    /// # Errors
    ///
    /// [`Error::SessionTooLarge`](crate::Error::SessionTooLarge),
    /// [`Error::Serialization`](crate::Error::Serialization).
    fn seal_data_with_id_only_key(
        &self,
        id: &SessionId,
        data: &SessionData,
        user: Option<&str>,
    ) -> Result<String>;

    /// Makes the next new ids these before random ones: it exists to reproduce id
    /// collisions.
    fn force_next_ids(&self, ids: impl IntoIterator<Item = [u8; 32]>);
}
