//! What to write once the handler has answered: at most one write per request, each
//! honouring the concurrency mode, and never a write after a failed read.
//!
//! | what the handler did | write |
//! |---|---|
//! | nothing, or only read (touch not due) | none (or only the lock's release) |
//! | answered 5xx, failed, panicked, ran out of time | none; the lock is released |
//! | stored data in a new session | PutItem (conditional on the id being unused) |
//! | changed data | UpdateItem (conditional per mode) |
//! | read only, touch due | UpdateItem of `updated_at`/`expire_at` |
//! | renewed, or changed a session signed by a rotated-out secret | one transaction: new item + delete of the old one (conditional on the version or lock) |
//! | emptied (no data and no user left) or destroyed | DeleteItem (conditional per mode) |
//!
//! A session bound to a user ([`Session::set_user`]) or given its own lifetime
//! ([`Session::set_max_stale`]) is never empty, even with no data: a login as a client's
//! first request creates the session and sends its cookie.
//!
//! When a write fails, who decides the answer depends on what the write carried:
//!
//! | the write carried | on failure |
//! |---|---|
//! | what the handler asked for: `destroy`, emptying with `clear`, `renew`, `set_user`, `set_max_stale`, a revocation, a data change, a new session's data | always the layer's error answer (503 + `Retry-After` for throttling and the deadline, 409 for a conflict, 500 otherwise); never the handler's 2xx, never a `Set-Cookie` |
//! | implicit work: a touch that only pushes `expire_at`, a move off a rotated-out secret of a session only read, a read-only request's lock release | the error handler's policy (`raise_errors: false` lets the handler's answer through) |
//!
//! A read that fails is the error handler's to decide as well (implicit work); nothing is
//! written over a session whose read failed. Every error answered is logged once (through
//! the service's [`Report`](super::Report)).

use super::{CookieUpdate, Failure, Inner, Load, Outcome, Session, State};
use crate::error::Error;
use crate::error_handler::ErrorAction;
use crate::store::SessionRecord;

impl Session {
    /// Makes the one write the request needs after the handler answered; `server_error`:
    /// it answered with a server error, so nothing it did is kept.
    pub(crate) async fn finish(&self, server_error: bool) -> Outcome {
        finish(&self.inner, server_error).await
    }

    /// The handler failed, panicked or ran out of time: nothing is written, the lock is
    /// released, and the failure the session met (if any) says how to answer.
    pub(crate) async fn abandon(&self) -> Option<Failure> {
        let inner = &self.inner;
        let mut state = inner.state.lock().await;
        state.closed = true;
        release(inner, &mut state).await;
        state.raised.or(state.returned)
    }

    /// Logs `error`, met by the request outside the session, as the session logs its own.
    pub(crate) async fn report(&self, error: &Error, what: &str) {
        let state = self.inner.state.lock().await;
        state.reporter.report(error, Failure::of(error), what);
    }
}

async fn finish(inner: &Inner, server_error: bool) -> Outcome {
    let mut state = inner.state.lock().await;
    state.closed = true;
    let mut outcome = Outcome {
        read: state.load != Load::NotLoaded,
        failure: state.raised.or(state.explicit_failed),
        cookie: None,
    };
    if outcome.failure.is_some() || server_error {
        release(inner, &mut state).await;
        return outcome;
    }
    let emptied = state.changed && state.data.is_empty() && !bound_or_own_lifetime(&state);
    if state.destroy || emptied {
        end(inner, &mut state, &mut outcome).await;
        return outcome;
    }
    if state.load != Load::Loaded {
        // Untouched (no call at all) or a failed read (never written over).
        return outcome;
    }
    // Anything the handler asked for (data, a renewal, a binding, a lifetime): its answer
    // must not claim it happened if it did not. Only a touch that pushes `expire_at` (or a
    // read-only request's lock release) is implicit work.
    let explicit =
        state.changed || state.renew || state.user.is_some() || state.max_stale.is_some();
    match write(inner, &mut state).await {
        Ok(Some(cookie)) => outcome.cookie = Some(cookie),
        Ok(None) => {}
        Err(error) => {
            if explicit {
                raise(&state, &error, &mut outcome);
            } else {
                failed(inner, &state, &error, &mut outcome);
            }
            release(inner, &mut state).await;
        }
    }
    outcome
}

/// Whether the session, after what the handler did, is bound to a user or has its own
/// lifetime: then it is kept even with no data.
fn bound_or_own_lifetime(state: &State) -> bool {
    let stored = state.stored.as_ref().map(|(_, record)| record);
    let user = match &state.user {
        Some(user) => user.is_some(),
        None => stored.is_some_and(|r| r.user.is_some()),
    };
    let max_stale = match state.max_stale {
        Some(max_stale) => max_stale.is_some(),
        None => stored.is_some_and(|r| r.max_stale.is_some()),
    };
    user || max_stale
}

/// Deletes a destroyed or emptied session and expires its cookie.
async fn end(inner: &Inner, state: &mut State, outcome: &mut Outcome) {
    if state.load == Load::Failed && !state.destroy {
        // Emptied after a failed read: what the handler emptied is not what is stored.
        return;
    }
    let Some(cookie_id) = state.cookie_id.clone().flatten() else {
        // A session that was never stored has nothing to delete and no cookie to expire.
        return;
    };
    let store = inner.work_store();
    let deleted = match (&state.stored, state.load) {
        // Conditional on the lock or version read, per mode.
        (Some((id, record)), _) => store.destroy(id, record).await,
        // The cookie named no live session.
        (None, Load::Loaded) => Ok(()),
        // A logout without a read (no concurrency control), or after a read the error
        // policy let pass: the application asked to end the session, and nothing of it is
        // worth keeping, so it is honoured unconditionally.
        (None, _) => store.delete(&cookie_id).await,
    };
    match deleted {
        Ok(()) => {
            state.stored = None;
            outcome.cookie = Some(CookieUpdate::Remove);
        }
        Err(error) => {
            // A logout or an emptying is explicit: its failure is always answered.
            raise(state, &error, outcome);
            release(inner, state).await;
        }
    }
}

/// The one write of a loaded session that goes on: create, move, save, touch, or only the
/// release of its lock. Returns the cookie to send.
async fn write(inner: &Inner, state: &mut State) -> Result<Option<CookieUpdate>, Error> {
    let store = inner.work_store();
    let max_stale = state.max_stale.take();
    let user = state.user.take();
    let Some((id, record)) = state.stored.take() else {
        if !state.changed {
            return Ok(None);
        }
        let user = user.flatten();
        let (id, record) = store
            .create_with(
                state.next_id.take(),
                &state.data,
                max_stale.flatten(),
                user.as_deref(),
            )
            .await?;
        let cookie = issue(inner, &id, &record, true);
        state.stored = Some((id, record));
        return Ok(Some(cookie));
    };
    let record = SessionRecord {
        data: state.data.clone(),
        max_stale: max_stale.unwrap_or(record.max_stale),
        user: user.unwrap_or(record.user),
        ..record
    };
    let touch_due = store.touch_due(&record);
    let must_move = state.renew || (id.signed_with_previous_key() && (state.changed || touch_due));
    // Each branch is one write, and each releases a held lock.
    let written = if must_move {
        store
            .renew_to(&id, &record, state.next_id.take())
            .await
            .map(|(id, r)| Some((id, r, true)))
    } else if state.changed {
        store
            .save(&id, &record)
            .await
            .map(|r| Some((id.clone(), r, false)))
    } else if touch_due {
        store
            .touch(&id, &record)
            .await
            .map(|r| Some((id.clone(), r, false)))
    } else {
        store.release(&id, &record).await.map(|()| None)
    };
    match written {
        Ok(Some((id, record, new_id))) => {
            let cookie = issue(inner, &id, &record, new_id);
            state.stored = Some((id, record));
            Ok(Some(cookie))
        }
        Ok(None) => Ok(None),
        Err(error) => {
            // Kept so the lock it may hold is released.
            state.stored = Some((id, record));
            Err(error)
        }
    }
}

fn issue(
    inner: &Inner,
    id: &crate::keys::SessionId,
    record: &SessionRecord,
    new_id: bool,
) -> CookieUpdate {
    CookieUpdate::Issue {
        value: inner.store.cookie_value(id),
        expire_at: record.expire_at,
        written_at: record.updated_at,
        new_id,
        own_lifetime: record.max_stale.is_some(),
    }
}

/// Releases the lock this request holds, if any; a failure only delays the next request
/// until the lock expires, so it is logged, not raised.
async fn release(inner: &Inner, state: &mut State) {
    let Some((id, record)) = state.stored.take() else {
        return;
    };
    if let Err(error) = inner.cleanup_store().release(&id, &record).await {
        tracing::warn!(%error, "could not release the session lock; it will expire");
    }
}

/// Implicit work failed: the error handler decides whether the response says so.
fn failed(inner: &Inner, state: &State, error: &Error, outcome: &mut Outcome) {
    if inner.policy(error) == ErrorAction::Raise {
        raise(state, error, outcome);
    }
}

/// The response becomes `error`'s answer, logged once.
fn raise(state: &State, error: &Error, outcome: &mut Outcome) {
    let failure = Failure::of(error);
    state.reporter.report(
        error,
        failure,
        "the session's write failed; answering with an error",
    );
    outcome.failure = Some(failure);
}
