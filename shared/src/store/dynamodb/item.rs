//! [`StoredItem`] to and from DynamoDB attribute maps (the layout in [`crate::attributes`]).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use crate::attributes::{
    CREATED_AT, DATA, EXPIRE_AT, LOCK_OWNER, LOCKED_AT, MAX_STALE, UPDATED_AT, USER_HASH, VERSION,
};
use crate::error::{Error, Result};
use crate::store::backend::{StoredItem, StoredLock};
use crate::store::payload::{sealed_bytes, sealed_text};

/// When the session was bound to its user (Unix ms); on a revocation marker, the revocation's
/// time. Only the store reads it.
pub(super) const BOUND_AT: &str = "bound_at";

pub(crate) type Item = HashMap<String, AttributeValue>;

/// Every attribute a session read needs, for a `ProjectionExpression`: placeholders and names.
pub(super) const PROJECTION: [(&str, &str); 10] = [
    ("#data", DATA),
    ("#created", CREATED_AT),
    ("#updated", UPDATED_AT),
    ("#expire", EXPIRE_AT),
    ("#version", VERSION),
    ("#session_max_stale", MAX_STALE),
    ("#user", USER_HASH),
    ("#bound", BOUND_AT),
    ("#locked", LOCKED_AT),
    ("#owner", LOCK_OWNER),
];

pub(crate) fn number(n: i64) -> AttributeValue {
    AttributeValue::N(n.to_string())
}

pub(super) fn unsigned(n: u64) -> AttributeValue {
    AttributeValue::N(n.to_string())
}

/// The stored value of a `data` attribute: sealed data as Binary (DynamoDB bills its raw
/// length, a quarter less than the base64 text), every other form as the text it is.
pub(super) fn data_value(data: &str) -> AttributeValue {
    match sealed_bytes(data) {
        Some(raw) => AttributeValue::B(raw.into()),
        None => AttributeValue::S(data.to_owned()),
    }
}

/// The attribute map of a new item under `key`.
pub(super) fn to_item(key_attribute: &str, key: &str, stored: &StoredItem) -> Item {
    let mut item = HashMap::from([
        (key_attribute.to_owned(), AttributeValue::S(key.to_owned())),
        (DATA.to_owned(), data_value(&stored.data)),
        (CREATED_AT.to_owned(), number(stored.created_at)),
        (UPDATED_AT.to_owned(), number(stored.updated_at)),
    ]);
    let optional = [
        (EXPIRE_AT, stored.expire_at.map(number)),
        (VERSION, stored.version.map(unsigned)),
        (MAX_STALE, stored.max_stale.map(unsigned)),
        (BOUND_AT, stored.bound_at.map(number)),
    ];
    for (name, value) in optional {
        if let Some(value) = value {
            item.insert(name.to_owned(), value);
        }
    }
    if let Some(user_hash) = &stored.user_hash {
        item.insert(USER_HASH.to_owned(), AttributeValue::S(user_hash.clone()));
    }
    item
}

impl StoredItem {
    /// Reads a session item's attributes as the store does (for operators, through
    /// [`ops::decode_item`](crate::ops::decode_item)).
    pub(crate) fn from_attributes(item: &HashMap<String, AttributeValue>) -> Result<StoredItem> {
        from_item(item)
    }
}

/// Reads an item this store wrote (or the Ruby gem: `data` may be absent, numbers decimal).
pub(super) fn from_item(item: &Item) -> Result<StoredItem> {
    let data = match item.get(DATA) {
        Some(AttributeValue::B(raw)) => sealed_text(raw.as_ref()),
        // Plain and framed data, and sealed data written before it was stored as bytes.
        Some(AttributeValue::S(text)) => text.clone(),
        None => String::new(),
        Some(_) => {
            return Err(Error::MalformedItem(
                "`data` is neither a string nor binary".into(),
            ));
        }
    };
    let updated_at = read_number(item, UPDATED_AT)?.unwrap_or(0);
    let lock = match (read_number(item, LOCKED_AT)?, item.get(LOCK_OWNER)) {
        (Some(locked_at_ms), Some(AttributeValue::S(owner))) => Some(StoredLock {
            owner: owner.clone(),
            locked_at_ms,
        }),
        // The gem's lock carries only `locked_at`.
        (Some(locked_at_ms), None) => Some(StoredLock {
            owner: String::new(),
            locked_at_ms,
        }),
        _ => None,
    };
    Ok(StoredItem {
        data,
        created_at: read_number(item, CREATED_AT)?.unwrap_or(updated_at),
        updated_at,
        expire_at: read_number(item, EXPIRE_AT)?,
        version: read_number(item, VERSION)?.map(|v| v.max(0) as u64),
        max_stale: read_number(item, MAX_STALE)?.map(|v| v.max(0) as u64),
        user_hash: match item.get(USER_HASH) {
            None => None,
            Some(AttributeValue::S(hash)) => Some(hash.clone()),
            Some(_) => {
                return Err(Error::MalformedItem(format!(
                    "`{USER_HASH}` is not a string"
                )));
            }
        },
        bound_at: read_number(item, BOUND_AT)?,
        lock,
    })
}

fn read_number(item: &Item, name: &str) -> Result<Option<i64>> {
    match item.get(name) {
        None => Ok(None),
        Some(AttributeValue::N(n)) => n
            .parse::<f64>()
            .map(|v| Some(v as i64))
            .map_err(|_| Error::MalformedItem(format!("`{name}` is not a number"))),
        Some(_) => Err(Error::MalformedItem(format!("`{name}` is not a number"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_round_trip() {
        let stored = StoredItem {
            data: "{}".into(),
            created_at: 10,
            updated_at: 20,
            expire_at: Some(30),
            version: Some(4),
            max_stale: Some(3600),
            user_hash: Some("h".into()),
            bound_at: Some(1_700_000_000_123),
            lock: None,
        };
        let item = to_item("session_id", "k", &stored);
        assert_eq!(item["session_id"], AttributeValue::S("k".into()));
        assert_eq!(from_item(&item).unwrap(), stored);
        let bare = to_item("session_id", "k", &StoredItem::default());
        assert!(!bare.contains_key(EXPIRE_AT) && !bare.contains_key(VERSION));
    }

    #[test]
    fn sealed_data_is_stored_as_its_raw_bytes_and_read_back_as_its_text() {
        let raw = [7u8; 40];
        let sealed = StoredItem {
            data: crate::store::payload::sealed_text(&raw),
            ..StoredItem::default()
        };
        let item = to_item("session_id", "k", &sealed);
        assert_eq!(item[DATA], AttributeValue::B(raw.to_vec().into()));
        assert_eq!(from_item(&item).unwrap(), sealed);
        for text in [r#"{"n":1}"#, "p1.AHsibiI6MX0", "s1.not base64!", ""] {
            let unsealed = StoredItem {
                data: text.into(),
                ..StoredItem::default()
            };
            let item = to_item("session_id", "k", &unsealed);
            assert_eq!(item[DATA], AttributeValue::S(text.into()), "{text}");
            assert_eq!(from_item(&item).unwrap(), unsealed);
        }
        let number = Item::from([(DATA.to_owned(), AttributeValue::N("1".into()))]);
        assert!(matches!(from_item(&number), Err(Error::MalformedItem(_))));
    }
}
