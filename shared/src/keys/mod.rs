//! Session ids and the secrets that key them: generation, signing, verification, the table
//! key derived from an id, and the sources a running process reads rotated secrets from.
//!
//! * An id is 256 bits from the operating system's CSPRNG.
//! * The cookie value is `base64url(id) "." base64url(HMAC-SHA256(sign_key, id))`.
//! * The table key is `base64url(HMAC-SHA256(table_key_key, id))`, so the table holds no value
//!   from which a working cookie can be built.
//!
//! Both HMAC keys are derived from a configured secret with HKDF-SHA256 under distinct labels.
//! Each configured secret (current first, then the previous ones) has its own pair; a session
//! stays addressed by the pair of the secret that signed it, so rotating the secret does not
//! lose sessions, and the layer moves such sessions to a fresh id on their next write.
//!
//! Two more keys come from each secret: one hashes user ids for the user index (the table holds
//! `HMAC(k_user, user id)`, never the id), one turns a table key into an opaque per-session
//! handle. The key that seals a session's data is keyed by a fifth key from the secret and
//! takes the raw id as input — see `data_key` — so it needs both the cookie and the
//! secret: a dump with the secret opens nothing, and table write access with one's own
//! cookie forges nothing.
//!
//! The secrets can be replaced while the process runs ([`SecretSource`]): an id keeps the keys that
//! verified it, so a replacement between two steps of one request changes nothing for it.

mod refresh;

pub(crate) use self::refresh::Refresher;
pub use self::refresh::{SecretSource, SigningSecrets};

use std::fmt;
use std::sync::{Arc, OnceLock, RwLock};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
#[cfg(feature = "testing")]
use sha2::Digest;
use sha2::Sha256;

use crate::config::SecretKey;

type HmacSha256 = Hmac<Sha256>;

const ID_BYTES: usize = 32;
/// Length of base64url (no padding) of 32 bytes.
const ENCODED_LEN: usize = 43;
/// Length of a well-formed cookie value.
pub(crate) const COOKIE_VALUE_LEN: usize = 2 * ENCODED_LEN + 1;

/// A session id whose signature verified. Its `Debug` output never shows the id.
#[derive(Clone)]
pub struct SessionId {
    raw: [u8; ID_BYTES],
    /// The keys of the secret that signed it.
    keys: Arc<DerivedKeys>,
    /// Whether that secret is the current one.
    current: bool,
    /// The key that seals this session's data, derived on first use (a request opens and
    /// seals with the same id).
    data_key: OnceLock<[u8; 32]>,
    /// The table key, computed on first use (a request reads, writes and seals under it).
    table_key: OnceLock<String>,
}

impl SessionId {
    /// Whether the id was signed with a previous (rotated-out) secret. The layer moves such a
    /// session to a fresh id on its next write.
    pub fn signed_with_previous_key(&self) -> bool {
        !self.current
    }

    #[cfg(feature = "testing")]
    /// The raw id bytes (test builds only).
    pub fn to_bytes(&self) -> [u8; 32] {
        self.raw
    }
}

impl PartialEq for SessionId {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw && self.keys.fingerprint == other.keys.fingerprint
    }
}

impl Eq for SessionId {}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionId(<redacted>)")
    }
}

/// The HMACs keyed from one configured secret. Keyed once and cloned per use: keying
/// costs two SHA-256 blocks that every request would otherwise pay again.
struct DerivedKeys {
    sign: HmacSha256,
    table: HmacSha256,
    user: HmacSha256,
    handle: HmacSha256,
    data: HmacSha256,
    /// Tells two secrets apart without revealing either.
    fingerprint: [u8; 16],
}

impl DerivedKeys {
    fn derive(secret: &SecretKey) -> Self {
        let hkdf = Hkdf::<Sha256>::new(Some(b"dynamodb-session-store"), secret.expose());
        let expand = |label: &[u8], out: &mut [u8]| {
            // Outputs of 32 bytes or fewer are far below HKDF-SHA256's limit.
            hkdf.expand(label, out)
                .expect("a short output is a valid HKDF length");
        };
        let key = |label: &[u8]| {
            let mut okm = [0u8; 32];
            expand(label, &mut okm);
            <HmacSha256 as Mac>::new_from_slice(&okm).expect("HMAC takes keys of any length")
        };
        let mut fingerprint = [0u8; 16];
        expand(b"fingerprint v1", &mut fingerprint);
        DerivedKeys {
            sign: key(b"cookie signature v1"),
            table: key(b"table key v1"),
            user: key(b"user index v1"),
            handle: key(b"session handle v1"),
            data: key(b"sealed session data v2"),
            fingerprint,
        }
    }
}

/// The current secret's keys and the previous ones, newest first.
pub(crate) struct Keyring {
    keys: Vec<Arc<DerivedKeys>>,
}

impl Keyring {
    pub(crate) fn new<'a>(secrets: impl IntoIterator<Item = &'a SecretKey>) -> Self {
        Keyring {
            keys: secrets
                .into_iter()
                .map(|secret| Arc::new(DerivedKeys::derive(secret)))
                .collect(),
        }
    }

    /// A fresh id from the OS CSPRNG, owned by the current secret.
    pub(crate) fn generate(&self) -> SessionId {
        let mut raw = [0u8; ID_BYTES];
        getrandom::fill(&mut raw).expect("the operating system's random source failed");
        self.adopt(raw)
    }

    /// Wraps raw id bytes as a current-secret id.
    pub(crate) fn adopt(&self, raw: [u8; ID_BYTES]) -> SessionId {
        SessionId {
            raw,
            keys: self.keys[0].clone(),
            current: true,
            data_key: OnceLock::new(),
            table_key: OnceLock::new(),
        }
    }

    /// Wraps raw id bytes as an id of each configured secret, current first: for an id
    /// that comes unsigned (a tower-sessions id), which may have been stored under a
    /// secret since rotated out.
    #[cfg(feature = "tower-sessions")]
    pub(crate) fn adopt_each(&self, raw: [u8; ID_BYTES]) -> Vec<SessionId> {
        self.keys
            .iter()
            .enumerate()
            .map(|(index, keys)| SessionId {
                raw,
                keys: keys.clone(),
                current: index == 0,
                data_key: OnceLock::new(),
                table_key: OnceLock::new(),
            })
            .collect()
    }

    /// Verifies a cookie value against every configured secret, newest first. Any malformed,
    /// truncated or forged value gives `None`.
    pub(crate) fn verify(&self, cookie_value: &str) -> Option<SessionId> {
        if cookie_value.len() != COOKIE_VALUE_LEN {
            return None;
        }
        let (id_part, tag_part) = cookie_value.split_once('.')?;
        let mut raw = [0u8; ID_BYTES];
        let mut tag = [0u8; 32];
        // decode_slice refuses non-canonical encodings, so one id has exactly one cookie value
        // per secret.
        if URL_SAFE_NO_PAD.decode_slice(id_part, &mut raw).ok()? != ID_BYTES
            || URL_SAFE_NO_PAD.decode_slice(tag_part, &mut tag).ok()? != 32
        {
            return None;
        }
        self.keys
            .iter()
            .position(|keys| {
                let mut mac = keys.sign.clone();
                mac.update(&raw);
                // Constant-time comparison (hmac uses `subtle` underneath).
                mac.verify_slice(&tag).is_ok()
            })
            .map(|index| SessionId {
                raw,
                keys: self.keys[index].clone(),
                current: index == 0,
                data_key: OnceLock::new(),
                table_key: OnceLock::new(),
            })
    }
}

impl Keyring {
    /// The user index value of `user` under every configured secret, current first: a
    /// session bound before a rotation is found under the secret it was written with.
    pub(crate) fn user_hashes(&self, user: &str) -> Vec<String> {
        self.keys
            .iter()
            .map(|keys| mac_text(&keys.user, user.as_bytes()))
            .collect()
    }

    /// An opaque handle for the session stored under `table_key`: stable while the current
    /// secret is, and revealing neither the id, the cookie nor the table key.
    pub(crate) fn handle(&self, table_key: &str) -> String {
        URL_SAFE_NO_PAD.encode(&mac(&self.keys[0].handle, table_key.as_bytes())[..16])
    }
}

/// The user index value of `user` for a session written under `id` (its secret's key).
pub(crate) fn user_hash(id: &SessionId, user: &str) -> String {
    mac_text(&id.keys.user, user.as_bytes())
}

/// HMAC-SHA256 of `input` under `key`.
fn mac(key: &HmacSha256, input: &[u8]) -> [u8; 32] {
    let mut mac = key.clone();
    mac.update(input);
    mac.finalize().into_bytes().into()
}

/// HMAC-SHA256 of `input` under `key`, base64url.
fn mac_text(key: &HmacSha256, input: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(mac(key, input))
}

/// The key that seals `id`'s data: HMAC-SHA256 of the raw id (which only the cookie carries;
/// the table holds a keyed hash of it) under a key HKDF derives from the secret that signed
/// the id. Without the cookie, a dump and the secret open nothing; without the secret, table
/// write access and one's own cookie seal nothing that opens. Sessions of a previous secret
/// keep opening under that secret's key, and move to the current one with their id.
pub(crate) fn data_key(id: &SessionId) -> [u8; 32] {
    *id.data_key.get_or_init(|| mac(&id.keys.data, &id.raw))
}

/// The sealing key of releases before the secret was part of it: SHA-256 of a label and the
/// raw id alone. Test builds use it to prove that such data no longer opens (anyone holding
/// their own cookie could compute it).
#[cfg(feature = "testing")]
pub(crate) fn id_only_data_key(id: &SessionId) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(b"dynamodb-session-store sealed session data v1\0");
    hash.update(id.raw);
    hash.finalize().into()
}

/// The cookie value for `id`, signed by the secret that verified (or generated) it.
pub(crate) fn cookie_value(id: &SessionId) -> String {
    let tag = mac(&id.keys.sign, &id.raw);
    let mut out = String::with_capacity(COOKIE_VALUE_LEN);
    URL_SAFE_NO_PAD.encode_string(id.raw, &mut out);
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(tag, &mut out);
    out
}

/// The value stored in the table's hash key for `id`.
pub(crate) fn table_key(id: &SessionId) -> String {
    id.table_key
        .get_or_init(|| mac_text(&id.keys.table, &id.raw))
        .clone()
}

/// The keyring in use, replaceable while requests run.
pub(crate) struct KeyCell(RwLock<Arc<Keyring>>);

impl KeyCell {
    pub(crate) fn new(keyring: Keyring) -> Self {
        KeyCell(RwLock::new(Arc::new(keyring)))
    }

    pub(crate) fn current(&self) -> Arc<Keyring> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn replace(&self, keyring: Keyring) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keyring);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> SecretKey {
        SecretKey::new(s.repeat(32))
    }

    /// `cookie` with the character at `pos` replaced by one that always differs from it.
    fn tamper(cookie: &str, pos: usize) -> String {
        let mut bytes = cookie.as_bytes().to_vec();
        bytes[pos] = if bytes[pos] == b'A' { b'B' } else { b'A' };
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn signed_ids_verify_and_forgeries_do_not() {
        let ring = Keyring::new([&key("a")]);
        let id = ring.generate();
        let cookie = cookie_value(&id);
        assert_eq!(cookie.len(), COOKIE_VALUE_LEN);
        assert_eq!(ring.verify(&cookie), Some(id.clone()));

        // Truncated, extended, empty, garbage.
        assert_eq!(ring.verify(&cookie[..cookie.len() - 1]), None);
        assert_eq!(ring.verify(&format!("{cookie}A")), None);
        assert_eq!(ring.verify(""), None);
        assert_eq!(ring.verify(&"!".repeat(COOKIE_VALUE_LEN)), None);

        // Every single-character change of the tag or the id is refused.
        for pos in 0..cookie.len() {
            let tampered = tamper(&cookie, pos);
            assert_ne!(tampered, cookie);
            assert_eq!(ring.verify(&tampered), None, "position {pos}");
        }

        // Signed with another secret.
        let other = Keyring::new([&key("b")]);
        assert_eq!(other.verify(&cookie), None);
    }

    #[test]
    fn rotated_out_secret_still_verifies_and_keeps_its_table_key() {
        let old = Keyring::new([&key("a")]);
        let id = old.generate();
        let cookie = cookie_value(&id);

        let rotated = Keyring::new([&key("b"), &key("a")]);
        let verified = rotated.verify(&cookie).expect("previous secret verifies");
        assert!(verified.signed_with_previous_key());
        assert_eq!(table_key(&verified), table_key(&id));
        assert_eq!(cookie_value(&verified), cookie);
    }

    #[test]
    fn table_key_reveals_neither_cookie_nor_id() {
        let ring = Keyring::new([&key("a")]);
        let id = ring.generate();
        let table_key = table_key(&id);
        let cookie = cookie_value(&id);
        let (id_part, tag_part) = cookie.split_once('.').unwrap();
        assert_ne!(table_key, id_part);
        assert_ne!(table_key, tag_part);
        assert!(ring.verify(&table_key).is_none());
    }

    #[test]
    fn fresh_ids_differ() {
        let ring = Keyring::new([&key("a")]);
        assert_ne!(ring.generate(), ring.generate());
    }

    #[test]
    fn a_replaced_keyring_verifies_the_new_secret_and_old_ids_keep_their_keys() {
        let cell = KeyCell::new(Keyring::new([&key("a")]));
        let id = cell.current().generate();
        let before = table_key(&id);
        cell.replace(Keyring::new([&key("b"), &key("a")]));
        assert_eq!(table_key(&id), before, "an id keeps the keys that made it");
        let fresh = cell.current().generate();
        assert!(cell.current().verify(&cookie_value(&fresh)).is_some());
        assert!(
            cell.current()
                .verify(&cookie_value(&id))
                .unwrap()
                .signed_with_previous_key()
        );
    }
}
