//! The `data` attribute: a session's data and the user it is bound to, serialized,
//! compressed when large, and sealed so that only the holder of the cookie can read it.
//!
//! | form | when |
//! |---|---|
//! | `s1.` + base64url(nonce ‖ AES-256-GCM-SIV(frame)) | sealing on (the default); the table key is the associated data |
//! | `p1.` + base64url(frame) | sealing off, with a bound user or compressed data |
//! | the serializer's text (JSON) | sealing off otherwise, and every item written before sealing existed |
//!
//! Backends carry the `s1.` text ([`StoredItem::data`](crate::backend::StoredItem) is a
//! string, and the trait is public); DynamoDB stores it as a Binary attribute holding the
//! raw nonce ‖ ciphertext ([`sealed_bytes`], [`sealed_text`]), because it bills a Binary
//! attribute by its raw length and the text by its base64, a third more. Items stored as
//! `s1.` text (S) before still open.
//!
//! With sealing on, only the `s1.` form opens: a plain or framed item (or an empty one) is
//! refused — [`Opened::Refused`], which the store reads as absent — unless the migration
//! switch `accept_unsealed` is on, because anyone with table write access could have written
//! it. Sealed data that does not open under this session's key is refused in every mode.
//!
//! frame = flags (1 byte: `1` compressed, `2` a user follows, `4` padded) ‖ \[user length
//! (u16, big endian) ‖ user\] ‖ body (the serializer's text; LZ4 with its size prepended when
//! compressed) ‖ \[padding\].
//!
//! A sealed compressed frame is padded (`0x80`, then zeros: ISO/IEC 7816-4) to a multiple of
//! [`PAD_BUCKET`] bytes: the sealed length follows the compressed length, which depends on
//! how the data's parts resemble each other, so without padding a table reader who can put
//! chosen text into a session could test guesses of a secret beside it by the size (CRIME).
//! Padded, the size moves only in steps of the bucket. Uncompressed data is not padded: its
//! length says how long the data is, not what it holds, as it always did. Compression is
//! used only when the padded, compressed frame is smaller than the plain one.
//!
//! The sealing key is keyed by the secret and takes the raw session id (`keys::data_key`),
//! which the table never holds, and the table key is bound in as associated data: a table
//! dump, even with the signing secret, opens nothing; a table writer, even with their own
//! cookie, cannot seal anything that opens; and data copied to another item does not open
//! there.
//! AES-256-GCM-SIV (RustCrypto's `aes-gcm-siv`, on AES-NI and CLMUL where the CPU has them)
//! with a random 96-bit nonce per write: each session has its own key and writes far fewer
//! than the 2^32 messages a key's random nonces allow, and SIV stays safe even if a nonce
//! repeats. Measured, it seals 1 KB in about a third of XChaCha20-Poly1305's time here.

use aes_gcm_siv::aead::{Aead, KeyInit, Payload as AeadInput};
use aes_gcm_siv::{Aes256GcmSiv, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::keys::{self, SessionId};
use crate::serializer::SessionData;

const SEALED: &str = "s1.";
const FRAMED: &str = "p1.";
const COMPRESSED: u8 = 1;
const HAS_USER: u8 = 2;
const PADDED: u8 = 4;
/// Sealed compressed frames are padded to a multiple of this many bytes.
pub(crate) const PAD_BUCKET: usize = 64;
const PAD_MARKER: u8 = 0x80;
const NONCE_BYTES: usize = 12;
const TAG_BYTES: usize = 16;
/// Largest decompressed body accepted, so a crafted item cannot make a read allocate at will.
const MAX_DECOMPRESSED: usize = 16 << 20;

/// What the `data` attribute carries.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Payload {
    pub(crate) data: SessionData,
    /// The user the session is bound to.
    pub(crate) user: Option<String>,
}

/// Why an item's `data` was refused: what the store counts and logs instead of opening it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Not sealed (plain text, a `p1.` frame or empty) while sealing is on and
    /// `accept_unsealed` is off.
    Unsealed,
    /// Sealed, but not for this session under any key it may be sealed with.
    DoesNotOpen,
    /// The stored `user_hash` and the sealed user disagree.
    UserMismatch,
}

impl Refusal {
    /// For the log line: names the case, never the content.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Refusal::Unsealed => "unsealed data while sealing is on",
            Refusal::DoesNotOpen => "sealed data does not open for this session",
            Refusal::UserMismatch => "stored user hash and sealed user disagree",
        }
    }
}

/// What reading the `data` attribute gave.
#[derive(Debug)]
pub(crate) enum Opened {
    /// The payload.
    Payload(Payload),
    /// Not opened (see [`Refusal`]).
    Refused(Refusal),
}

/// A payload serialized (and compressed) but not yet sealed: sealing needs the id and table
/// key, the size check does not.
#[derive(Clone)]
pub(crate) struct Framed {
    /// The frame, or `None` for plain serializer text (sealing off, nothing to frame).
    frame: Option<Vec<u8>>,
    serialized: String,
}

/// Encodes and decodes the `data` attribute under one configuration.
pub(crate) struct Codec<'a> {
    pub(crate) config: &'a Config,
    /// Bytes of the item outside `data`'s value.
    pub(crate) fixed_bytes: usize,
    pub(crate) limit: usize,
}

impl Codec<'_> {
    /// Checks that `data` fits in one item, compressing only when it would not fit otherwise.
    pub(crate) fn check(&self, data: &SessionData) -> Result<()> {
        let serialized = self.config.serializer.serialize(data)?;
        // Uncompressed, a frame is the text and its flags byte.
        let framed = self.needs_frame(false);
        let uncompressed = self.encoded_len(framed, serialized.len() + usize::from(framed));
        if self.fits(uncompressed).is_ok() {
            return Ok(());
        }
        self.frame(data, None).map(drop)
    }

    /// Serializes and (above the threshold, where it makes the frame smaller) compresses
    /// `data` with `user`, refusing it before any write if the item would be too large.
    pub(crate) fn frame(&self, data: &SessionData, user: Option<&str>) -> Result<Framed> {
        let serialized = self.config.serializer.serialize(data)?;
        let compress = self
            .config
            .compress_above
            .is_some_and(|threshold| serialized.len() > threshold);
        let compressed = if compress {
            let frame = self.build_frame(&serialized, user, true)?;
            // Padding can eat what LZ4 saves on small or random data.
            let plain_len = 1 + user.map_or(0, |u| 2 + u.len()) + serialized.len();
            (frame.len() < plain_len).then_some(frame)
        } else {
            None
        };
        let framed = match compressed {
            Some(frame) => Framed {
                frame: Some(frame),
                serialized: String::new(),
            },
            None if self.needs_frame(user.is_some()) => Framed {
                frame: Some(self.build_frame(&serialized, user, false)?),
                serialized: String::new(),
            },
            None => Framed {
                frame: None,
                serialized,
            },
        };
        let body_len = match &framed.frame {
            Some(frame) => frame.len(),
            None => framed.serialized.len(),
        };
        self.fits(self.encoded_len(framed.frame.is_some(), body_len))?;
        Ok(framed)
    }

    /// The frame of `serialized` and `user`, compressed (and, when sealing, padded) or not.
    fn build_frame(&self, serialized: &str, user: Option<&str>, compress: bool) -> Result<Vec<u8>> {
        let pad = compress && self.config.seal_data;
        let mut frame = Vec::with_capacity(serialized.len() + PAD_BUCKET);
        frame.push(
            if compress { COMPRESSED } else { 0 }
                | if user.is_some() { HAS_USER } else { 0 }
                | if pad { PADDED } else { 0 },
        );
        if let Some(user) = user {
            let len = u16::try_from(user.len()).map_err(|_| {
                Error::invalid("user", "<not shown>", "a user id is at most 65,535 bytes")
            })?;
            frame.extend_from_slice(&len.to_be_bytes());
            frame.extend_from_slice(user.as_bytes());
        }
        if compress {
            frame.extend_from_slice(&lz4_flex::compress_prepend_size(serialized.as_bytes()));
        } else {
            frame.extend_from_slice(serialized.as_bytes());
        }
        if pad {
            frame.push(PAD_MARKER);
            frame.resize(frame.len().next_multiple_of(PAD_BUCKET), 0);
        }
        Ok(frame)
    }

    /// The attribute value for `framed`, sealed for `id` under `table_key` when sealing is on.
    pub(crate) fn encode(&self, framed: Framed, id: &SessionId, table_key: &str) -> String {
        self.encode_with(framed, &keys::data_key(id), table_key)
    }

    /// As [`encode`](Self::encode), sealing under `key`.
    pub(crate) fn encode_with(&self, framed: Framed, key: &[u8; 32], table_key: &str) -> String {
        let Some(frame) = framed.frame else {
            return framed.serialized;
        };
        if !self.config.seal_data {
            return format!("{FRAMED}{}", URL_SAFE_NO_PAD.encode(&frame));
        }
        let cipher = Aes256GcmSiv::new(key.into());
        let mut nonce = [0u8; NONCE_BYTES];
        getrandom::fill(&mut nonce).expect("the operating system's random source failed");
        let sealed = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                AeadInput {
                    msg: &frame,
                    aad: table_key.as_bytes(),
                },
            )
            .expect("sealing a message of at most an item's size cannot fail");
        let mut raw = Vec::with_capacity(NONCE_BYTES + sealed.len());
        raw.extend_from_slice(&nonce);
        raw.extend_from_slice(&sealed);
        sealed_text(&raw)
    }

    /// Reads the attribute: sealed, or — with sealing off or `accept_unsealed` on — framed
    /// or plain text.
    ///
    /// # Errors
    ///
    /// [`Error::MalformedItem`] or [`Error::Serialization`] for a frame that opened (or was
    /// accepted unsealed) but does not decode.
    pub(crate) fn decode(&self, text: &str, id: &SessionId, table_key: &str) -> Result<Opened> {
        let unsealed_ok = !self.config.seal_data || self.config.accept_unsealed;
        if !text.starts_with(SEALED) && !unsealed_ok {
            return Ok(Opened::Refused(Refusal::Unsealed));
        }
        if text.is_empty() {
            // An item the Ruby gem wrote before any data was set.
            return Ok(Opened::Payload(Payload {
                data: SessionData::new(),
                user: None,
            }));
        }
        let frame = if let Some(sealed) = text.strip_prefix(SEALED) {
            // Garbage under the sealed prefix is refused like a wrong key: both are a table
            // writer's doing, and neither may say more than "absent".
            let Some(frame) = URL_SAFE_NO_PAD
                .decode(sealed)
                .ok()
                .filter(|raw| raw.len() >= NONCE_BYTES + TAG_BYTES)
                .and_then(|raw| {
                    let (nonce, sealed) = raw.split_at(NONCE_BYTES);
                    Aes256GcmSiv::new(&keys::data_key(id).into())
                        .decrypt(
                            Nonce::from_slice(nonce),
                            AeadInput {
                                msg: sealed,
                                aad: table_key.as_bytes(),
                            },
                        )
                        .ok()
                })
            else {
                return Ok(Opened::Refused(Refusal::DoesNotOpen));
            };
            frame
        } else if let Some(framed) = text.strip_prefix(FRAMED) {
            URL_SAFE_NO_PAD
                .decode(framed)
                .map_err(|_| malformed("framed data is not base64url"))?
        } else {
            return Ok(Opened::Payload(Payload {
                data: self.config.serializer.deserialize(text)?,
                user: None,
            }));
        };
        self.unframe(&frame).map(Opened::Payload)
    }

    fn unframe(&self, frame: &[u8]) -> Result<Payload> {
        let (&flags, mut rest) = frame
            .split_first()
            .ok_or_else(|| malformed("empty frame"))?;
        if flags & PADDED != 0 {
            let marker = rest
                .iter()
                .rposition(|&b| b != 0)
                .filter(|&at| rest[at] == PAD_MARKER)
                .ok_or_else(|| malformed("padding without its marker"))?;
            rest = &rest[..marker];
        }
        let user = if flags & HAS_USER != 0 {
            let (len, after) = rest
                .split_first_chunk::<2>()
                .ok_or_else(|| malformed("truncated user"))?;
            let len = usize::from(u16::from_be_bytes(*len));
            let user = after
                .get(..len)
                .ok_or_else(|| malformed("truncated user"))?;
            rest = &after[len..];
            Some(String::from_utf8(user.to_vec()).map_err(|_| malformed("user is not UTF-8"))?)
        } else {
            None
        };
        let body = if flags & COMPRESSED != 0 {
            let claimed = rest
                .first_chunk::<4>()
                .map(|size| u32::from_le_bytes(*size) as usize)
                .ok_or_else(|| malformed("truncated compressed data"))?;
            if claimed > MAX_DECOMPRESSED {
                return Err(malformed("compressed data claims an oversize body"));
            }
            lz4_flex::decompress_size_prepended(rest)
                .map_err(|_| malformed("compressed data does not decompress"))?
        } else {
            rest.to_vec()
        };
        let text = String::from_utf8(body).map_err(|_| malformed("data is not UTF-8"))?;
        Ok(Payload {
            data: self.config.serializer.deserialize(&text)?,
            user,
        })
    }

    /// Plain serializer text is kept when there is nothing to seal or attach (compressed
    /// data is always framed).
    fn needs_frame(&self, user: bool) -> bool {
        self.config.seal_data || user
    }

    /// The length of the attribute for a frame (or plain text) of `len` bytes.
    fn encoded_len(&self, framed: bool, len: usize) -> usize {
        match (framed, self.config.seal_data) {
            (false, _) => len,
            // Stored as Binary, billed by its raw length.
            (true, true) => NONCE_BYTES + len + TAG_BYTES,
            (true, false) => FRAMED.len() + base64_len(len),
        }
    }

    fn fits(&self, encoded_len: usize) -> Result<()> {
        let size = self.fixed_bytes + encoded_len;
        if size > self.limit {
            return Err(Error::SessionTooLarge {
                size,
                limit: self.limit,
            });
        }
        Ok(())
    }
}

/// The raw nonce ‖ ciphertext of a sealed `s1.` text, for a backend that stores bytes;
/// `None` for any other form (or a corrupt one), which stays text.
pub(crate) fn sealed_bytes(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text.strip_prefix(SEALED)?).ok()
}

/// The `s1.` text of sealed bytes a backend stored (see [`sealed_bytes`]).
pub(crate) fn sealed_text(raw: &[u8]) -> String {
    format!("{SEALED}{}", URL_SAFE_NO_PAD.encode(raw))
}

fn base64_len(bytes: usize) -> usize {
    (bytes * 4).div_ceil(3)
}

fn malformed(reason: &str) -> Error {
    Error::MalformedItem(reason.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SecretKey;
    use crate::keys::Keyring;

    fn codec(config: &Config) -> Codec<'_> {
        Codec {
            config,
            fixed_bytes: 600,
            limit: crate::store::MAX_ITEM_BYTES,
        }
    }

    fn open(opened: Result<Opened>) -> Result<Payload> {
        match opened? {
            Opened::Payload(payload) => Ok(payload),
            Opened::Refused(refusal) => Err(malformed(refusal.reason())),
        }
    }

    fn data(value: serde_json::Value) -> SessionData {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn sealed_data_opens_only_for_its_id_and_key() {
        let config = Config::builder().build().unwrap();
        let ring = Keyring::new([&SecretKey::new("k".repeat(32))]);
        let (id, other) = (ring.generate(), ring.generate());
        let codec = codec(&config);
        let payload = data(serde_json::json!({"email": "ann@example.com"}));
        let text = codec.encode(codec.frame(&payload, Some("ann")).unwrap(), &id, "key-1");
        assert!(text.starts_with(SEALED) && !text.contains("ann"), "{text}");
        let opened = open(codec.decode(&text, &id, "key-1")).unwrap();
        assert_eq!(
            (opened.data, opened.user.as_deref()),
            (payload, Some("ann"))
        );
        assert!(
            open(codec.decode(&text, &other, "key-1")).is_err(),
            "another id"
        );
        assert!(
            open(codec.decode(&text, &id, "key-2")).is_err(),
            "another item"
        );
        let twice = codec.encode(codec.frame(&opened_data(), None).unwrap(), &id, "key-1");
        assert_ne!(
            twice,
            codec.encode(codec.frame(&opened_data(), None).unwrap(), &id, "key-1"),
            "a fresh nonce each time"
        );
    }

    fn opened_data() -> SessionData {
        data(serde_json::json!({"n": 1}))
    }

    #[test]
    fn unsealed_items_open_only_with_accept_unsealed_and_large_ones_compress() {
        let config = Config::builder().build().unwrap();
        let ring = Keyring::new([&SecretKey::new("k".repeat(32))]);
        let id = ring.generate();
        let codec = codec(&config);
        let framed = format!("{FRAMED}{}", URL_SAFE_NO_PAD.encode(b"\0{\"n\":1}"));
        for unsealed in [r#"{"n":1}"#, framed.as_str(), ""] {
            assert!(
                matches!(
                    codec.decode(unsealed, &id, "k").unwrap(),
                    Opened::Refused(Refusal::Unsealed)
                ),
                "{unsealed}"
            );
        }
        let migrating = Config::builder().accept_unsealed(true).build().unwrap();
        let migrating = super::tests::codec(&migrating);
        for unsealed in [r#"{"n":1}"#, framed.as_str()] {
            let plain = open(migrating.decode(unsealed, &id, "k")).unwrap();
            assert_eq!(plain.data, opened_data());
        }

        let big = data(serde_json::json!({"cart": vec!["the same item"; 2_000]}));
        let text = codec.encode(codec.frame(&big, None).unwrap(), &id, "k");
        let serialized = serde_json::to_string(&big).unwrap();
        assert!(
            text.len() * 4 < serialized.len(),
            "{} vs {}",
            text.len(),
            serialized.len()
        );
        assert_eq!(open(codec.decode(&text, &id, "k")).unwrap().data, big);
    }

    #[test]
    fn without_sealing_data_stays_readable_text_unless_framed() {
        let config = Config::builder().seal_data(false).build().unwrap();
        let ring = Keyring::new([&SecretKey::new("k".repeat(32))]);
        let id = ring.generate();
        let codec = codec(&config);
        assert_eq!(
            codec.encode(codec.frame(&opened_data(), None).unwrap(), &id, "k"),
            r#"{"n":1}"#
        );
        let with_user = codec.encode(codec.frame(&opened_data(), Some("ann")).unwrap(), &id, "k");
        assert!(with_user.starts_with(FRAMED));
        assert_eq!(
            open(codec.decode(&with_user, &id, "k"))
                .unwrap()
                .user
                .as_deref(),
            Some("ann")
        );
    }

    fn an_id() -> SessionId {
        Keyring::new([&SecretKey::new("k".repeat(32))]).generate()
    }

    #[test]
    fn compressed_sealed_frames_are_padded_to_the_bucket_and_tampering_fails() {
        let config = Config::builder().compress_above(Some(0)).build().unwrap();
        let id = an_id();
        let codec = codec(&config);
        for items in [20, 50, 100, 400, 2_000] {
            let cart: Vec<_> = (0..items).map(|n| format!("item-{n}")).collect();
            let payload = data(serde_json::json!({ "cart": cart }));
            let text = codec.encode(codec.frame(&payload, Some("ann")).unwrap(), &id, "k");
            let raw = sealed_bytes(&text).unwrap();
            let frame = raw.len() - NONCE_BYTES - TAG_BYTES;
            assert_eq!(frame % PAD_BUCKET, 0, "{items} items: a {frame}-byte frame");
            let opened = open(codec.decode(&text, &id, "k")).unwrap();
            assert_eq!(
                (opened.data, opened.user.as_deref()),
                (payload, Some("ann"))
            );
            for at in [0, NONCE_BYTES, raw.len() - 1] {
                let mut tampered = raw.clone();
                tampered[at] ^= 1;
                assert!(
                    matches!(
                        codec.decode(&sealed_text(&tampered), &id, "k").unwrap(),
                        Opened::Refused(Refusal::DoesNotOpen)
                    ),
                    "byte {at} flipped"
                );
            }
        }
    }

    #[test]
    fn compression_is_used_only_where_it_makes_the_frame_smaller() {
        let config = Config::builder().compress_above(Some(0)).build().unwrap();
        let id = an_id();
        let codec = codec(&config);
        // A few bytes of JSON: LZ4's size prefix and the padding would triple it.
        let small = opened_data();
        let text = codec.encode(codec.frame(&small, None).unwrap(), &id, "k");
        let frame = sealed_bytes(&text).unwrap().len() - NONCE_BYTES - TAG_BYTES;
        assert_eq!(frame, 1 + serde_json::to_string(&small).unwrap().len());
    }

    #[test]
    fn frames_sealed_before_padding_existed_still_open() {
        let config = Config::builder().build().unwrap();
        let id = an_id();
        let codec = codec(&config);
        let payload = data(serde_json::json!({"cart": vec!["the same item"; 200]}));
        let serialized = serde_json::to_string(&payload).unwrap();
        let mut frame = vec![COMPRESSED];
        frame.extend_from_slice(&lz4_flex::compress_prepend_size(serialized.as_bytes()));
        let old = Framed {
            frame: Some(frame),
            serialized: String::new(),
        };
        let text = codec.encode(old, &id, "k");
        assert_eq!(open(codec.decode(&text, &id, "k")).unwrap().data, payload);
    }
}
