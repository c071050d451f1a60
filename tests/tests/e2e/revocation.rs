//! "Sign out everywhere" has no escape, on the local DynamoDB and on `MemoryStore` with a
//! user index that shows writes late: a thief renewing in a loop while the owner signs out
//! everywhere keeps no session, a locked or changing session does not stop the sign-out, and
//! the session kept and a login after the sign-out still open.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dynamodb_session_store::{
    Concurrency, Config, ConfigBuilder, Error, MemoryStore, SessionId, SessionRecord, SessionStore,
};
use integration_tests::{SECRET, TestTable, data};
use serde_json::json;

/// How long the in-memory index hides a write: longer than a sign-out's passes take, so a
/// renewed session is never found through the index there.
const INDEX_DELAY: Duration = Duration::from_millis(200);

fn memory_store(configure: impl FnOnce(ConfigBuilder) -> ConfigBuilder) -> SessionStore {
    SessionStore::with_backend(
        configure(Config::builder().secret_key(SECRET))
            .build()
            .unwrap(),
        MemoryStore::with_index_delay(INDEX_DELAY),
    )
    .unwrap()
}

/// A new session bound to `user`, as after a login.
async fn bound(store: &SessionStore, user: &str) -> (SessionId, SessionRecord) {
    let (id, mut record) = store.create(&data(json!({"who": user}))).await.unwrap();
    record.user = Some(user.to_owned());
    let record = store.save(&id, &record).await.unwrap();
    (id, record)
}

/// One round: the owner signs out everywhere while a thief renews their copy in a loop.
/// Returns how many renewals the thief made during it.
async fn one_race(store: &SessionStore, user: &str) -> u64 {
    let (owner, _) = bound(store, user).await;
    let (thief, _) = bound(store, user).await;
    // The index shows the thief's first session; the renewals it makes from here on it shows
    // late (in memory) or at once (the local DynamoDB's index is consistent).
    tokio::time::sleep(INDEX_DELAY).await;
    let held = Arc::new(Mutex::new(vec![thief.clone()]));
    let stop = Arc::new(AtomicBool::new(false));
    let renewals = Arc::new(AtomicU64::new(0));
    let running = {
        let (store, held, stop, renewals) =
            (store.clone(), held.clone(), stop.clone(), renewals.clone());
        tokio::spawn(async move {
            let mut id = thief;
            while !stop.load(Ordering::SeqCst) {
                let Some(record) = store.load(&id).await.unwrap() else {
                    return;
                };
                match store.renew(&id, &record).await {
                    Ok((next, _)) => {
                        held.lock().unwrap().push(next.clone());
                        renewals.fetch_add(1, Ordering::SeqCst);
                        id = next;
                    }
                    // Deleted under it by the sign-out.
                    Err(Error::ConditionalCheckFailed | Error::VersionConflict) => return,
                    Err(other) => panic!("{other:?}"),
                }
            }
        })
    };
    // Let the thief get going, so the sign-out meets renewals in flight.
    while renewals.load(Ordering::SeqCst) < 2 && !running.is_finished() {
        tokio::task::yield_now().await;
    }
    store
        .revoke_user_sessions(user, Some(&owner))
        .await
        .unwrap();
    stop.store(true, Ordering::SeqCst);
    running.await.unwrap();
    let held = held.lock().unwrap().clone();
    for id in held {
        assert_eq!(
            store.load(&id).await.unwrap(),
            None,
            "a thief's session survived"
        );
    }
    assert!(
        store.load(&owner).await.unwrap().is_some(),
        "the session kept opens"
    );
    renewals.load(Ordering::SeqCst)
}

async fn a_racing_thief_keeps_nothing(store: SessionStore, rounds: usize, test: &str) {
    let mut renewals = 0;
    for round in 0..rounds {
        // A user per round: markers of earlier rounds play no part.
        renewals += one_race(&store, &format!("{test}-user-{round}")).await;
    }
    assert!(
        renewals >= 2 * rounds as u64,
        "the thief renewed during every round ({renewals} in {rounds})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_racing_thief_keeps_nothing_in_memory_with_a_late_index() {
    a_racing_thief_keeps_nothing(memory_store(|c| c), 40, "memory").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_racing_thief_keeps_nothing_on_dynamodb() {
    let table = TestTable::new("thief").await;
    a_racing_thief_keeps_nothing(table.store(|c| c), 20, "dynamo").await;
}

/// Sessions the index does not show yet are ended by the marker on their first use.
#[tokio::test]
async fn sessions_the_index_does_not_show_yet_do_not_open() {
    let store = memory_store(|c| c);
    let (kept, _) = bound(&store, "ann").await;
    let (unseen, _) = bound(&store, "ann").await;
    // Both were just written: the index shows neither.
    assert_eq!(
        store
            .revoke_user_sessions("ann", Some(&kept))
            .await
            .unwrap(),
        0
    );
    assert_eq!(store.load(&unseen).await.unwrap(), None);
    assert!(store.load(&kept).await.unwrap().is_some());
}

/// A locked or changing session is ended anyway, and its holder's next write fails.
async fn busy_sessions_do_not_stop_a_sign_out(
    make: impl Fn(Concurrency) -> SessionStore,
    test: &str,
) {
    for mode in [Concurrency::Pessimistic, Concurrency::Optimistic] {
        let store = make(mode);
        let user = format!("{test}-{mode:?}");
        let (busy, _) = bound(&store, &user).await;
        // Held: locked under pessimistic locking, and written since under both modes.
        let mut held = store.load(&busy).await.unwrap().unwrap();
        held.data.insert("n".into(), json!(1));
        if mode == Concurrency::Optimistic {
            let mut other = held.clone();
            other.data.insert("n".into(), json!(2));
            store.save(&busy, &other).await.unwrap();
        }
        // Let the in-memory index show it.
        tokio::time::sleep(INDEX_DELAY).await;
        assert_eq!(
            store.revoke_user_sessions(&user, None).await.unwrap(),
            1,
            "{mode:?}"
        );
        let err = store.save(&busy, &held).await.unwrap_err();
        assert!(
            matches!(err, Error::ConditionalCheckFailed),
            "{mode:?}: {err:?}"
        );
        assert_eq!(store.load(&busy).await.unwrap(), None, "{mode:?}");
    }
}

#[tokio::test]
async fn busy_sessions_do_not_stop_a_sign_out_in_memory() {
    busy_sessions_do_not_stop_a_sign_out(|mode| memory_store(|c| c.concurrency(mode)), "memory")
        .await;
}

#[tokio::test]
async fn busy_sessions_do_not_stop_a_sign_out_on_dynamodb() {
    let table = TestTable::new("busy_revoke").await;
    busy_sessions_do_not_stop_a_sign_out(|mode| table.store(|c| c.concurrency(mode)), "dynamo")
        .await;
}

/// The sign-out ends what was bound before it, not what is bound after: the session kept
/// goes on being saved and renewed, and a new login opens.
async fn what_is_bound_after_a_sign_out_opens(store: SessionStore) {
    let (kept, _) = bound(&store, "ann").await;
    let (old, _) = bound(&store, "ann").await;
    store
        .revoke_user_sessions("ann", Some(&kept))
        .await
        .unwrap();
    assert_eq!(store.load(&old).await.unwrap(), None);
    let mut record = store.load(&kept).await.unwrap().unwrap();
    record.data.insert("after".into(), json!(true));
    store.save(&kept, &record).await.unwrap();
    let record = store.load(&kept).await.unwrap().unwrap();
    let (renewed, _) = store.renew(&kept, &record).await.unwrap();
    assert_eq!(
        store.load(&renewed).await.unwrap().unwrap().data["after"],
        true
    );
    tokio::time::sleep(Duration::from_millis(5)).await;
    let (again, _) = bound(&store, "ann").await;
    assert!(
        store.load(&again).await.unwrap().is_some(),
        "a new login opens"
    );
}

#[tokio::test]
async fn what_is_bound_after_a_sign_out_opens_in_memory() {
    what_is_bound_after_a_sign_out_opens(memory_store(|c| c)).await;
}

#[tokio::test]
async fn what_is_bound_after_a_sign_out_opens_on_dynamodb() {
    let table = TestTable::new("after_revoke").await;
    what_is_bound_after_a_sign_out_opens(table.store(|c| c)).await;
}
