//! The update expression of a [`Changes`]: every attribute it sets or removes.

use aws_sdk_dynamodb::types::AttributeValue;

use super::item::{self, number, unsigned};
use crate::attributes::{
    CREATED_AT, DATA, EXPIRE_AT, LOCK_OWNER, LOCKED_AT, MAX_STALE, UPDATED_AT, USER_HASH, VERSION,
};
use crate::expression::Expression;
use crate::store::backend::{Changes, Guard};

/// The `SET`/`REMOVE` clauses of `changes`, and the lock's release when the write is made
/// under this request's lock; the guard's condition is added by the caller.
pub(super) fn update_expression(changes: &Changes, guard: &Guard) -> Expression {
    let mut e = Expression::default();
    if let Some(data) = &changes.data {
        e.name("#data", DATA)
            .value(":data", item::data_value(data))
            .set("#data = :data");
    }
    if let Some(updated_at) = changes.updated_at {
        e.name("#updated", UPDATED_AT)
            .value(":now", number(updated_at))
            .set("#updated = :now");
    }
    match (changes.created_at, changes.updated_at) {
        (Some(created_at), _) => {
            e.name("#created", CREATED_AT)
                .value(":created", number(created_at))
                .set("#created = :created");
        }
        (None, Some(_)) => {
            // Items the Ruby gem wrote may lack `created_at`.
            e.name("#created", CREATED_AT)
                .set("#created = if_not_exists(#created, :now)");
        }
        (None, None) => {}
    }
    match changes.expire_at {
        Some(Some(t)) => {
            e.name("#expire", EXPIRE_AT)
                .value(":expire", number(t))
                .set("#expire = :expire");
        }
        Some(None) => {
            e.name("#expire", EXPIRE_AT).remove("#expire");
        }
        None => {}
    }
    match changes.max_stale {
        Some(Some(seconds)) => {
            e.name("#session_max_stale", MAX_STALE)
                .value(":session_max_stale", unsigned(seconds))
                .set("#session_max_stale = :session_max_stale");
        }
        Some(None) => {
            e.name("#session_max_stale", MAX_STALE)
                .remove("#session_max_stale");
        }
        None => {}
    }
    match &changes.user_hash {
        Some(Some(hash)) => {
            e.name("#user", USER_HASH)
                .value(":user", AttributeValue::S(hash.clone()))
                .set("#user = :user");
        }
        Some(None) => {
            e.name("#user", USER_HASH).remove("#user");
        }
        None => {}
    }
    match changes.bound_at {
        Some(Some(ms)) => {
            e.name("#bound", item::BOUND_AT)
                .value(":bound", number(ms))
                .set("#bound = :bound");
        }
        Some(None) => {
            e.name("#bound", item::BOUND_AT).remove("#bound");
        }
        None => {}
    }
    if changes.bump_version {
        e.name("#version", VERSION)
            .value(":zero", unsigned(0))
            .value(":one", unsigned(1))
            .set("#version = if_not_exists(#version, :zero) + :one");
    }
    if let Guard::Lock(_) = guard {
        // The write that ends the request also releases its lock.
        e.name("#locked", LOCKED_AT)
            .name("#owner", LOCK_OWNER)
            .remove("#locked")
            .remove("#owner");
    }
    e
}
