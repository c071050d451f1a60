//! The item layout: attribute names shared by the store, the table and the collector.
//!
//! | attribute | type | meaning |
//! |---|---|---|
//! | `<table_key>` | S | keyed hash of the session id (never the cookie value) |
//! | [`DATA`] | B or S | the session data: sealed bytes (B), or unsealed text (S: JSON by default), or sealed text as written before sealed data was stored as bytes (S) |
//! | [`CREATED_AT`] | N | Unix seconds of the first save |
//! | [`UPDATED_AT`] | N | Unix seconds of the last write |
//! | [`EXPIRE_AT`] | N | Unix seconds after which the session is dead: the TTL attribute |
//! | [`VERSION`] | N | bumped by every data write; guards renewals and optimistic saves |
//! | [`MAX_STALE`] | N | this session's own `max_stale` in seconds ("remember me"), if set |
//! | [`USER_HASH`] | S | keyed hash of the user the session is bound to (never the user id); the key of the [`USER_INDEX`] |
//! | [`LOCKED_AT`] / [`LOCK_OWNER`] | N / S | pessimistic locking, while a request holds the lock |

use aws_sdk_dynamodb::types::AttributeValue;

/// The serialized session data.
pub const DATA: &str = "data";
/// Unix seconds of creation.
pub const CREATED_AT: &str = "created_at";
/// Unix seconds of the last write.
pub const UPDATED_AT: &str = "updated_at";
/// Unix seconds after which the session is dead; DynamoDB's TTL reads it.
pub const EXPIRE_AT: &str = "expire_at";
/// A counter every data write increments.
pub const VERSION: &str = "version";
/// The session's own `max_stale`, in seconds, when it has one.
pub const MAX_STALE: &str = "max_stale";
/// The keyed hash of the user a session is bound to.
pub const USER_HASH: &str = "user_hash";
/// The global secondary index on [`USER_HASH`] (keys only): a user's sessions.
pub const USER_INDEX: &str = "user_hash-index";
/// Unix milliseconds at which the lock was taken.
pub const LOCKED_AT: &str = "locked_at";
/// The token of the request holding the lock.
pub const LOCK_OWNER: &str = "lock_owner";

/// On the collector's checkpoint item ([`CHECKPOINT_KEY`](crate::gc::CHECKPOINT_KEY)): Unix
/// seconds at which its current pass started.
pub const GC_PASS_STARTED_AT: &str = "gc_pass_started_at";

/// The size DynamoDB counts for `item` — against its 400 KB item limit, and in whole KB per
/// write unit — by its documented rules: each attribute's name in UTF-8 bytes plus its value;
/// a string by its UTF-8 bytes, a binary by its raw length, a number by one byte per two
/// significant digits (in pairs either side of the decimal point) plus one, a boolean or null
/// one byte, a list or map three bytes plus one per element and the elements, a set the sum
/// of its elements.
///
/// # Examples
///
/// ```
/// use std::collections::HashMap;
/// use aws_sdk_dynamodb::types::AttributeValue;
/// use dynamodb_session_store::attributes::item_size;
///
/// let item = HashMap::from([
///     ("session_id".to_owned(), AttributeValue::S("k".repeat(43))),
///     ("version".to_owned(), AttributeValue::N("1".into())),
/// ]);
/// assert_eq!(item_size(&item), 10 + 43 + 7 + 2);
/// ```
pub fn item_size(item: &std::collections::HashMap<String, AttributeValue>) -> usize {
    item.iter()
        .map(|(name, value)| name.len() + value_size(value))
        .sum()
}

fn value_size(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(s) => s.len(),
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::N(n) => number_size(n),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::Ss(set) => set.iter().map(String::len).sum(),
        AttributeValue::Bs(set) => set.iter().map(|b| b.as_ref().len()).sum(),
        AttributeValue::Ns(set) => set.iter().map(|n| number_size(n)).sum(),
        AttributeValue::L(list) => 3 + list.iter().map(|v| 1 + value_size(v)).sum::<usize>(),
        AttributeValue::M(map) => {
            3 + map
                .iter()
                .map(|(name, v)| 1 + name.len() + value_size(v))
                .sum::<usize>()
        }
        // A type newer than this SDK: counted as its debug text, an overestimate.
        other => format!("{other:?}").len(),
    }
}

/// DynamoDB stores a number as base-100 digits with leading and trailing zero pairs dropped,
/// and one byte of exponent and sign.
fn number_size(n: &str) -> usize {
    let digits = n.trim_start_matches(['-', '+']);
    let digits = digits.split(['e', 'E']).next().unwrap_or_default();
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    // Pairs are aligned on the decimal point: pad the integer part on the left and the
    // fraction on the right to whole pairs.
    let int = format!("{}{int}", if int.len() % 2 == 1 { "0" } else { "" });
    let frac = format!("{frac}{}", if frac.len() % 2 == 1 { "0" } else { "" });
    let all = format!("{int}{frac}");
    let pairs: Vec<&[u8]> = all.as_bytes().chunks(2).collect();
    let first = pairs.iter().position(|p| p != b"00");
    let last = pairs.iter().rposition(|p| p != b"00");
    match (first, last) {
        (Some(first), Some(last)) => last - first + 2,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_count_base_100_digits_between_the_outer_zero_pairs() {
        for (n, size) in [
            ("1", 2),
            ("0", 1),
            ("1700000000", 2),
            ("1700000123", 6),
            ("1700000000123", 8),
            ("-12.5", 3),
            ("0.001", 2),
        ] {
            assert_eq!(number_size(n), size, "{n}");
        }
    }

    #[test]
    fn nested_values_carry_their_overheads() {
        let item = std::collections::HashMap::from([
            ("b".to_owned(), AttributeValue::B(vec![0; 5].into())),
            (
                "l".to_owned(),
                AttributeValue::L(vec![
                    AttributeValue::Bool(true),
                    AttributeValue::S("ab".into()),
                ]),
            ),
            (
                "m".to_owned(),
                AttributeValue::M([("k".to_owned(), AttributeValue::Null(true))].into()),
            ),
        ]);
        assert_eq!(
            item_size(&item),
            (1 + 5) + (1 + 3 + 2 + 3) + (1 + 3 + 1 + 1 + 1)
        );
    }
}
