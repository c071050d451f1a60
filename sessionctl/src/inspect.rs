//! `sessionctl inspect`: a cookie's session as stored, its data opened with the cookie.

use std::time::Duration;

use dynamodb_session_store::SessionStore;
use dynamodb_session_store::backend::StoredItem;
use dynamodb_session_store::ops::StoreOps as _;
use dynamodb_session_store::store::EndedBy;
use serde_json::json;

use crate::context::{Context, Lifetimes, cookie_value};
use crate::output::{Failure, limit, now, now_ms, relative, span, timestamp};

/// Verify a cookie and show its session: times, expiry, lock, user and data
///
/// The cookie is checked against the current and the previous secret keys; its session's
/// item is read consistently, without taking its lock, and its data is opened with the
/// cookie (sealed data opens only with it). Neither the table key nor a secret is ever
/// printed. Exits 1 when the cookie does not verify or no session is stored for it.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The cookie: its value (which may start with `-`), `name=value`, or `-` to read it from
    /// standard input
    #[arg(value_name = "COOKIE", allow_hyphen_values = true)]
    cookie: String,
    #[command(flatten)]
    lifetimes: Lifetimes,
}

pub async fn run(context: &Context, args: Args) -> Result<(), Failure> {
    let cookie = cookie_value(&args.cookie)?;
    let store = context.store(|b| args.lifetimes.apply(b)).await?;
    let id = verify(&store, &cookie)?;
    let item = store.inspect(&id).await?.ok_or_else(|| {
        Failure::Failed(
            "no session is stored for this cookie: it ended, was revoked or collected, or was \
             never saved"
                .into(),
        )
    })?;
    let (data, user) = store.open_data(&id, &item.data)?;
    let config = store.config();
    let (now, now_ms) = (now(), now_ms());
    let expired = item.is_expired(config, now);
    let ends = item.ends_at(config).map(|(at, by)| (at, ended_by(by)));
    let previous = id.signed_with_previous_key();
    let handle = store.session_handle(&id);
    let max_stale = item.max_stale_in_force(config);
    let lock_holds = item.lock.as_ref().map(|_| item.is_locked(config, now_ms));

    context.output.result(
        || {
            let mut text = String::new();
            let mut row = |name: &str, value: String| {
                text.push_str(&format!("{name:<11} {value}\n"));
            };
            row(
                "cookie",
                if previous {
                    "verified with a previous secret key (the session moves to a new id, \
                     signed with the current key, on its next write)"
                        .into()
                } else {
                    "verified with the current secret key".into()
                },
            );
            row("handle", format!("{handle} (as GET /sessions shows it)"));
            row(
                "state",
                if expired {
                    "expired (the store treats it as absent; `sessionctl gc` or TTL removes \
                     it)"
                    .into()
                } else {
                    "live".into()
                },
            );
            row("created", at(item.created_at, now));
            row("last write", at(item.updated_at, now));
            row(
                if expired { "ended" } else { "ends" },
                ends.map_or_else(
                    || "never (no limit applies)".into(),
                    |(t, why)| format!("{}: {why}", at(t, now)),
                ),
            );
            row(
                "expire_at",
                item.expire_at.map_or_else(
                    || "none (TTL never deletes it)".into(),
                    |t| format!("{} (stored, for DynamoDB's TTL)", timestamp(t)),
                ),
            );
            row(
                "max_stale",
                match item.max_stale {
                    Some(own) => format!("{} (the session's own)", span(own)),
                    None => format!("{} (configured)", limit(max_stale)),
                },
            );
            row("max age", limit(config.max_age));
            row(
                "lock",
                lock_text(&item, lock_holds, config.lock_expiry_time, now_ms),
            );
            row(
                "version",
                item.version
                    .map_or_else(|| "none".into(), |v| v.to_string()),
            );
            row("user", user.clone().unwrap_or_else(|| "none".into()));
            let pretty = serde_json::to_string_pretty(&data).expect("session data serializes");
            row("data", pretty.replace('\n', "\n            "));
            text
        },
        || {
            json!({
                "verified_with": if previous { "previous" } else { "current" },
                "handle": handle,
                "state": if expired { "expired" } else { "live" },
                "created_at": item.created_at,
                "updated_at": item.updated_at,
                "expire_at": item.expire_at,
                "ends_at": ends.map(|(t, _)| t),
                "max_stale_secs": max_stale.map(|d| d.as_secs()),
                "own_max_stale_secs": item.max_stale,
                "max_age_secs": config.max_age.map(|d| d.as_secs()),
                "lock": item.lock.as_ref().map(|lock| json!({
                    "locked_at_ms": lock.locked_at_ms,
                    "holds": lock_holds,
                })),
                "version": item.version,
                "user": user,
                "data": data,
            })
        },
    );
    Ok(())
}

/// The cookie's session id, or exit 1.
pub fn verify(
    store: &SessionStore,
    cookie: &str,
) -> Result<dynamodb_session_store::SessionId, Failure> {
    store.verify_cookie(cookie).ok_or_else(|| {
        Failure::Failed(
            "the cookie does not verify with the current or a previous secret key: it is \
             forged, truncated, or signed with another secret"
                .into(),
        )
    })
}

fn at(t: i64, now: i64) -> String {
    format!("{} ({})", timestamp(t), relative(t, now))
}

/// Which limit ends the session, in words.
fn ended_by(by: EndedBy) -> &'static str {
    match by {
        EndedBy::ExpireAt => "its expire_at",
        EndedBy::MaxAge => "max_age after creation",
        EndedBy::MaxStale => "max_stale after the last write",
    }
}

fn lock_text(item: &StoredItem, holds: Option<bool>, expiry: Duration, now_ms: i64) -> String {
    let Some(lock) = &item.lock else {
        return "none".into();
    };
    let age_ms = now_ms.saturating_sub(lock.locked_at_ms).max(0);
    if holds == Some(true) {
        format!(
            "held, taken {age_ms} ms ago (breakable after {} ms)",
            expiry.as_millis()
        )
    } else {
        format!(
            "stale, taken {} ago (older than {} ms: the next request breaks it)",
            span(u64::try_from(age_ms / 1000).unwrap_or(0)),
            expiry.as_millis()
        )
    }
}
