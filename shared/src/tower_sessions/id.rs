//! A tower-sessions id as one of this store's ids, so that its table key and sealing key
//! are the store's own keyed hashes of it.

use tower_sessions_core::session::Id;

use crate::keys::SessionId;
use crate::store::SessionStore;

/// Fills the 128 bits a store id has beyond a tower-sessions id. A fixed value keeps the
/// two kinds of ids apart: a store id (256 random bits) ends with it with probability 2^-128.
const DOMAIN: [u8; 16] = *b"tower-sessions\0\0";

/// The store ids of the tower-sessions id `id`, one per configured secret, current first:
/// a tower-sessions cookie is not signed by this store, so which secret its session was
/// stored under is found by reading.
pub(super) fn session_ids(store: &SessionStore, id: Id) -> Vec<SessionId> {
    let mut raw = [0u8; 32];
    raw[..16].copy_from_slice(&id.0.to_be_bytes());
    raw[16..].copy_from_slice(&DOMAIN);
    store.adopt_ids(raw)
}

/// The store id of `id` under the current secret, which new sessions are written under.
pub(super) fn current(store: &SessionStore, id: Id) -> SessionId {
    session_ids(store, id)
        .into_iter()
        .next()
        .expect("a store has a current secret")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys;
    use crate::{Config, MemoryStore};

    fn store(secret: &str, previous: &[&str]) -> SessionStore {
        let config = Config::builder()
            .secret_key(secret)
            .previous_secret_keys(previous.iter().copied())
            .build()
            .unwrap();
        SessionStore::with_backend(config, MemoryStore::new()).unwrap()
    }

    #[test]
    fn the_table_key_is_keyed_by_the_secret_and_hides_the_id() {
        let a = store("0123456789abcdef0123456789abcdef", &[]);
        let b = store("fedcba9876543210fedcba9876543210", &[]);
        let id = Id(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
        let key = keys::table_key(&current(&a, id));
        assert_eq!(key, keys::table_key(&current(&a, id)), "stable");
        assert_ne!(key, keys::table_key(&current(&b, id)), "keyed");
        assert_ne!(key, keys::table_key(&current(&a, Id(id.0 + 1))));
        assert!(
            !key.contains(&id.to_string()),
            "the cookie value is not in the key"
        );
    }

    #[test]
    fn a_rotated_store_still_names_the_previous_secrets_key() {
        let old = store("0123456789abcdef0123456789abcdef", &[]);
        let rotated = store(
            "fedcba9876543210fedcba9876543210",
            &["0123456789abcdef0123456789abcdef"],
        );
        let id = Id(7);
        let keys: Vec<_> = session_ids(&rotated, id)
            .iter()
            .map(keys::table_key)
            .collect();
        assert_eq!(keys.len(), 2);
        assert_ne!(keys[0], keys[1]);
        assert_eq!(keys[1], keys::table_key(&current(&old, id)));
    }
}
