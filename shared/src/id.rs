//! Session ids: generation, signing, verification and the table key derived from them.
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

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::SecretKey;

type HmacSha256 = Hmac<Sha256>;

const ID_BYTES: usize = 32;
/// Length of base64url (no padding) of 32 bytes.
const ENCODED_LEN: usize = 43;
/// Length of a well-formed cookie value.
pub(crate) const COOKIE_VALUE_LEN: usize = 2 * ENCODED_LEN + 1;

/// A session id whose signature verified. Its `Debug` output never shows the id.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionId {
    raw: [u8; ID_BYTES],
    /// Which configured secret signed it: 0 is the current one.
    key_index: usize,
}

impl SessionId {
    /// Whether the id was signed with a previous (rotated-out) secret. The layer moves such a
    /// session to a fresh id on its next write.
    pub fn signed_with_previous_key(&self) -> bool {
        self.key_index != 0
    }

    #[cfg(feature = "testing")]
    /// The raw id bytes (test builds only).
    pub fn to_bytes(&self) -> [u8; 32] {
        self.raw
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionId(<redacted>)")
    }
}

/// The two HMACs keyed from one configured secret. Keyed once and cloned per use: keying
/// costs two SHA-256 blocks that every request would otherwise pay again.
struct DerivedKeys {
    sign: HmacSha256,
    table: HmacSha256,
}

impl DerivedKeys {
    fn derive(secret: &SecretKey) -> Self {
        let hkdf = Hkdf::<Sha256>::new(Some(b"dynamodb-session-store"), secret.expose());
        let key = |label: &[u8]| {
            let mut okm = [0u8; 32];
            // 32-byte outputs are far below HKDF-SHA256's limit, so expand cannot fail.
            hkdf.expand(label, &mut okm)
                .expect("32 bytes is a valid HKDF output length");
            <HmacSha256 as Mac>::new_from_slice(&okm).expect("HMAC takes keys of any length")
        };
        DerivedKeys {
            sign: key(b"cookie signature v1"),
            table: key(b"table key v1"),
        }
    }
}

/// The current secret's keys and the previous ones, newest first.
pub(crate) struct Keyring {
    keys: Vec<DerivedKeys>,
}

impl Keyring {
    pub(crate) fn new<'a>(secrets: impl IntoIterator<Item = &'a SecretKey>) -> Self {
        Keyring {
            keys: secrets.into_iter().map(DerivedKeys::derive).collect(),
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
        SessionId { raw, key_index: 0 }
    }

    /// The cookie value for `id`, signed by the secret that owns it.
    pub(crate) fn cookie_value(&self, id: &SessionId) -> String {
        let mut mac = self.keys[id.key_index].sign.clone();
        mac.update(&id.raw);
        let tag = mac.finalize().into_bytes();
        let mut out = String::with_capacity(COOKIE_VALUE_LEN);
        URL_SAFE_NO_PAD.encode_string(id.raw, &mut out);
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(tag, &mut out);
        out
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
            .map(|key_index| SessionId { raw, key_index })
    }

    /// The value stored in the table's hash key for `id`.
    pub(crate) fn table_key(&self, id: &SessionId) -> String {
        let mut mac = self.keys[id.key_index].table.clone();
        mac.update(&id.raw);
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> SecretKey {
        SecretKey::new(s.repeat(32))
    }

    #[test]
    fn signed_ids_verify_and_forgeries_do_not() {
        let ring = Keyring::new([&key("a")]);
        let id = ring.generate();
        let cookie = ring.cookie_value(&id);
        assert_eq!(cookie.len(), COOKIE_VALUE_LEN);
        assert_eq!(ring.verify(&cookie), Some(id.clone()));

        // Truncated, extended, empty, garbage.
        assert_eq!(ring.verify(&cookie[..cookie.len() - 1]), None);
        assert_eq!(ring.verify(&format!("{cookie}A")), None);
        assert_eq!(ring.verify(""), None);
        assert_eq!(ring.verify(&"!".repeat(COOKIE_VALUE_LEN)), None);

        // Every single-character change of the tag or the id is refused.
        for pos in 0..cookie.len() {
            let mut bytes = cookie.clone().into_bytes();
            bytes[pos] = if bytes[pos] == b'A' { b'B' } else { b'A' };
            let tampered = String::from_utf8(bytes).unwrap();
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
        let cookie = old.cookie_value(&id);

        let rotated = Keyring::new([&key("b"), &key("a")]);
        let verified = rotated.verify(&cookie).expect("previous secret verifies");
        assert!(verified.signed_with_previous_key());
        assert_eq!(rotated.table_key(&verified), old.table_key(&id));
        assert_eq!(rotated.cookie_value(&verified), cookie);
    }

    #[test]
    fn table_key_reveals_neither_cookie_nor_id() {
        let ring = Keyring::new([&key("a")]);
        let id = ring.generate();
        let table_key = ring.table_key(&id);
        let cookie = ring.cookie_value(&id);
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
}
