//! The operators' API on the store ([`crate::ops`]), and the test builds' hooks
//! ([`crate::testing`]).

use std::sync::atomic::Ordering;

use aws_sdk_dynamodb::Client;

use super::SessionStore;
use super::backend::StoredItem;
use super::payload::Opened;
use crate::config::MIN_SECRET_KEY_LEN;
use crate::deadline::Deadline;
use crate::error::{Error, Result};
use crate::keys::{self, Keyring, SessionId, SigningSecrets};
use crate::ops::StoreOps;
use crate::serializer::SessionData;
use crate::table::SessionTable;

impl StoreOps for SessionStore {
    fn client(&self) -> Option<&Client> {
        self.inner.client.as_ref()
    }

    fn deadline(&self) -> Option<Deadline> {
        self.deadline
    }

    async fn inspect(&self, id: &SessionId) -> Result<Option<StoredItem>> {
        self.bounded(self.inner.backend.get(&keys::table_key(id), true))
            .await
    }

    fn seal_data(&self, id: &SessionId, data: &SessionData, user: Option<&str>) -> Result<String> {
        let codec = self.codec();
        let framed = codec.frame(data, user)?;
        Ok(codec.encode(framed, id, &keys::table_key(id)))
    }

    fn open_data(&self, id: &SessionId, attribute: &str) -> Result<(SessionData, Option<String>)> {
        match self.codec().decode(attribute, id, &keys::table_key(id))? {
            Opened::Payload(payload) => Ok((payload.data, payload.user)),
            Opened::Refused(refusal) => Err(Error::MalformedItem(refusal.reason().to_owned())),
        }
    }

    fn max_data_len(&self) -> usize {
        SessionStore::max_data_len(self)
    }

    fn session_handle(&self, id: &SessionId) -> String {
        self.inner.keys.current().handle(&keys::table_key(id))
    }

    fn refused_items(&self) -> u64 {
        self.inner.refused.load(Ordering::Relaxed)
    }

    fn secret_refresh_failures(&self) -> u64 {
        self.inner.refresher.as_ref().map_or(0, |r| r.failures())
    }

    fn rotate_secrets(&self, secrets: &SigningSecrets) -> Result<()> {
        let all = std::iter::once(&secrets.current).chain(&secrets.others);
        if all.clone().any(|s| s.expose().len() < MIN_SECRET_KEY_LEN) {
            return Err(Error::invalid(
                "rotated secrets",
                "<redacted>",
                format!("every secret must be at least {MIN_SECRET_KEY_LEN} bytes"),
            ));
        }
        self.inner.keys.replace(Keyring::new(all));
        Ok(())
    }

    async fn create_table(&self) -> Result<String> {
        let client = self.inner.client.as_ref().ok_or(Error::MissingClient)?;
        SessionTable::from_config(&self.inner.config)
            .create(client)
            .await
    }

    async fn delete_table(&self) -> Result<()> {
        let client = self.inner.client.as_ref().ok_or(Error::MissingClient)?;
        SessionTable::from_config(&self.inner.config)
            .delete(client)
            .await
    }
}

#[cfg(feature = "testing")]
impl crate::testing::StoreTesting for SessionStore {
    fn seal_data_with_id_only_key(
        &self,
        id: &SessionId,
        data: &SessionData,
        user: Option<&str>,
    ) -> Result<String> {
        let codec = self.codec();
        let framed = codec.frame(data, user)?;
        Ok(codec.encode_with(framed, &keys::id_only_data_key(id), &keys::table_key(id)))
    }

    fn force_next_ids(&self, ids: impl IntoIterator<Item = [u8; 32]>) {
        self.inner.forced_ids.lock().unwrap().extend(ids);
    }
}
