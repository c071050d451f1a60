//! Rotating session-api's signing secret in Secrets Manager (moto) while an instance is warm:
//! nobody is logged out, the warm instance reads the secret again once (single-flight, at
//! most once per interval, all three versions), and a failure to read it is logged and
//! counted while the instance keeps the keys it has.

use std::time::Duration;

use aws_config::SdkConfig;
use dynamodb_session_store::ops::StoreOps as _;
use dynamodb_session_store::{Config, SessionLayer, SessionStore};
use integration_tests::capture::Captured;
use integration_tests::secrets::{SecretCalls, instrumented_client, moto_sdk_config};
use integration_tests::{TestTable, api};
use serde_json::json;
use session_api::{Clients, SECRET_ARN_VARIABLE, SecretsManagerSource};

const V1: &str = "first-generated-secret-0123456789abcdef0123456789";
const V2: &str = "second-generated-secret-0123456789abcdef012345678";
const V3: &str = "third-generated-secret-0123456789abcdef0123456789";

/// The labels `n` complete reads of the secret ask for, sorted as [`SecretCalls::take`]
/// returns them.
fn reads(n: usize) -> Vec<String> {
    ["AWSCURRENT", "AWSPENDING", "AWSPREVIOUS"]
        .iter()
        .flat_map(|label| std::iter::repeat_n(label.to_string(), n))
        .collect()
}

/// One complete read of the secret: all three labels.
fn one_read() -> Vec<String> {
    reads(1)
}

/// A table, a secret holding `V1`, and the environment session-api would get.
struct Setup {
    aws: SdkConfig,
    table: TestTable,
    secrets: aws_sdk_secretsmanager::Client,
    name: String,
    arn: String,
    env: Vec<(String, String)>,
}

impl Setup {
    async fn new(test: &str) -> Option<Setup> {
        let Some(aws) = moto_sdk_config() else {
            eprintln!("skipped: needs the local moto server for Secrets Manager");
            return None;
        };
        let table = TestTable::new(test).await;
        let secrets = aws_sdk_secretsmanager::Client::new(&aws);
        let name = format!("signing-secret-of-{}", table.name);
        let arn = secrets
            .create_secret()
            .name(&name)
            .secret_string(V1)
            .send()
            .await
            .unwrap()
            .arn
            .unwrap();
        let env = vec![
            (
                "AWS_DYNAMO_DB_SESSION_TABLE_NAME".to_owned(),
                table.name.clone(),
            ),
            (SECRET_ARN_VARIABLE.to_owned(), arn.clone()),
        ];
        Some(Setup {
            aws,
            table,
            secrets,
            name,
            arn,
            env,
        })
    }

    /// A cold start of session-api whose Secrets Manager calls go through `calls`.
    async fn instance(&self, calls: &SecretCalls) -> SessionLayer {
        let clients = Clients {
            dynamodb: self.table.client.clone(),
            secrets_manager: instrumented_client(&self.aws, calls),
        };
        session_api::layer_with(clients, self.env.clone())
            .await
            .expect("session-api starts")
    }

    /// A cold start after the rotation, with plain clients.
    async fn fresh_instance(&self) -> SessionLayer {
        session_api::layer_from_env(&self.aws, self.env.clone())
            .await
            .expect("session-api starts")
    }

    /// A new version with `labels` (AWSCURRENT moves the old current one to AWSPREVIOUS).
    async fn put(&self, value: &str, labels: &[&str]) {
        self.secrets
            .put_secret_value()
            .secret_id(&self.arn)
            .secret_string(value)
            .set_version_stages(Some(labels.iter().map(|l| (*l).to_owned()).collect()))
            .send()
            .await
            .unwrap();
    }
}

/// The cookie's value, without its name.
fn value(cookie: &str) -> &str {
    cookie.split_once('=').unwrap().1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cookie_from_a_rotated_instance_opens_on_a_warm_one_after_one_read_of_the_secret() {
    let Some(setup) = Setup::new("rotation_warm").await else {
        return;
    };
    let calls = SecretCalls::default();
    let warm = setup.instance(&calls).await;
    assert_eq!(
        calls.take(),
        one_read(),
        "the cold start reads all three labels"
    );
    let old = api::get(&warm, "/counter", None).await.cookie();

    // The rotation: V2 becomes AWSCURRENT (V1 AWSPREVIOUS), and the next one, V3, is staged.
    setup.put(V2, &["AWSCURRENT"]).await;
    setup.put(V3, &["AWSPENDING"]).await;
    let rotated = setup.fresh_instance().await;
    let mut issued = Vec::new();
    for _ in 0..6 {
        issued.push(api::get(&rotated, "/counter", None).await.cookie());
    }
    assert!(
        warm.store().verify_cookie(value(&issued[0])).is_none(),
        "the warm instance does not know the new secret yet"
    );

    // Many concurrent requests with the new cookies: every one opens its session, after a
    // single read of the secret.
    let mut requests = tokio::task::JoinSet::new();
    for cookie in issued.iter().chain(&issued).chain(&issued) {
        let (warm, cookie) = (warm.clone(), cookie.clone());
        requests.spawn(async move { api::get(&warm, "/session", Some(&cookie)).await });
    }
    let mut answered = 0;
    while let Some(reply) = requests.join_next().await {
        let reply = reply.unwrap();
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body, json!({"count": 1}), "the session opened");
        answered += 1;
    }
    assert_eq!(answered, 18);
    assert_eq!(calls.take(), one_read(), "exactly one read of the secret");

    // AWSPENDING was read too: a cookie signed with it opens without another read.
    let next = session_api::layer_with(
        Clients::new(&setup.aws),
        vec![
            (
                "AWS_DYNAMO_DB_SESSION_TABLE_NAME".to_owned(),
                setup.table.name.clone(),
            ),
            ("AWS_DYNAMO_DB_SESSION_SECRET_KEY".to_owned(), V3.to_owned()),
        ],
    )
    .await
    .unwrap();
    let pending = api::get(&next, "/counter", None).await.cookie();
    let reply = api::get(&warm, "/session", Some(&pending)).await;
    assert_eq!(reply.body, json!({"count": 1}));
    assert_eq!(calls.take(), Vec::<String>::new());

    // The warm instance's own cookie, signed with the old secret, still opens its session
    // (now as the previous secret) and moves to an id signed with the new one.
    let reply = api::get(&warm, "/counter", Some(&old)).await;
    assert_eq!(reply.body, json!({"count": 2}), "nobody is logged out");
    let moved = reply.cookie();
    assert_ne!(moved, old);
    assert_eq!(
        api::get(&rotated, "/session", Some(&moved)).await.body,
        json!({"count": 2}),
        "the moved session opens on the rotated instance too"
    );

    // Forged cookies within the interval cause no more reads.
    for cookie in &issued {
        let (kept, last) = cookie.split_at(cookie.len() - 1);
        let forged = format!("{kept}{}", if last == "A" { "B" } else { "A" });
        let reply = api::get(&warm, "/session", Some(&forged)).await;
        assert_eq!(reply.body, json!({}), "a forged cookie opens nothing");
    }
    assert_eq!(
        calls.take(),
        Vec::<String>::new(),
        "throttled: no further read"
    );
    assert_eq!(warm.store().secret_refresh_failures(), 0);
}

/// Lines at `level` from session-api or the library.
fn ours<'a>(logs: &'a str, level: &str) -> Vec<&'a str> {
    logs.lines()
        .filter(|line| line.contains(level))
        .filter(|line| line.contains("session_api") || line.contains("dynamodb_session_store"))
        .collect()
}

// Current-thread runtime: the capturing subscriber is this thread's, and every task of the
// test runs on it.
#[tokio::test]
async fn an_access_denied_on_the_previous_version_is_logged_and_counted_and_the_keys_stay() {
    let logs = Captured::default();
    let _guard = tracing::subscriber::set_default(logs.subscriber());

    let Some(setup) = Setup::new("rotation_denied").await else {
        return;
    };
    let calls = SecretCalls::default();
    calls.deny(&["AWSPREVIOUS"]);

    // Cold start: the denial is logged at error level, and the function starts with the
    // current secret (see session_api::SecretsManagerSource for why).
    let warm = setup.instance(&calls).await;
    assert_eq!(calls.take(), one_read());
    let errors = ours(&logs.text(), "ERROR").join("\n");
    assert!(
        errors.contains("AWSPREVIOUS") && errors.contains("AccessDeniedException"),
        "the cold start's denial is logged:\n{errors}"
    );
    let old = api::get(&warm, "/counter", None).await.cookie();

    // A rotation; a cookie from the rotated instance makes the warm one read the secret
    // again, and the denial fails that read: logged, counted, keys kept.
    setup.put(V2, &["AWSCURRENT"]).await;
    let rotated = setup.fresh_instance().await;
    let new = api::get(&rotated, "/counter", None).await.cookie();
    let reply = api::get(&warm, "/session", Some(&new)).await;
    assert_eq!(calls.take(), one_read(), "the refresh read every label");
    assert_eq!(
        reply.body,
        json!({}),
        "without the new secret the cookie cannot be verified: a fresh, empty session"
    );
    assert_eq!(
        warm.store().secret_refresh_failures(),
        1,
        "the failure is counted"
    );
    let errors = ours(&logs.text(), "ERROR").join("\n");
    assert!(
        errors.contains("could not refresh the signing secrets")
            && errors.contains("reading the AWSPREVIOUS version of the session secret failed: AccessDeniedException"),
        "the refresh's denial is logged, not swallowed:\n{errors}"
    );
    assert_eq!(
        api::get(&warm, "/session", Some(&old)).await.body,
        json!({"count": 1}),
        "the keys in use stay: the warm instance's own cookies still open"
    );
    api::get(&warm, "/session", Some(&new)).await;
    assert_eq!(
        calls.take(),
        Vec::<String>::new(),
        "no second read within the interval"
    );
    assert_eq!(warm.store().secret_refresh_failures(), 1);

    // Neither the secret's values nor its id reach a log line of ours; the values reach
    // no line at all (the AWS SDK's own TRACE lines show the request, with the id).
    let text = logs.text();
    for value in [V1, V2] {
        assert!(!text.contains(value), "a secret value was logged");
    }
    for line in ours(&text, "") {
        assert!(
            !line.contains(&setup.arn) && !line.contains(&setup.name),
            "the secret's id was logged: {line}"
        );
    }
}

#[tokio::test]
async fn after_a_failed_refresh_the_next_interval_reads_again() {
    let Some(setup) = Setup::new("rotation_retry").await else {
        return;
    };
    let calls = SecretCalls::default();
    let source = SecretsManagerSource::new(instrumented_client(&setup.aws, &calls), &setup.arn);
    let first = source.fetch_all().await.unwrap();
    let interval = Duration::from_millis(300);
    let store = SessionStore::new(
        Config::builder()
            .table_name(&setup.table.name)
            .secret_key(first.current)
            .dynamo_db_client(setup.table.client.clone())
            .build()
            .unwrap(),
    )
    .unwrap()
    .with_secret_source(source, interval);
    let warm = SessionLayer::new(store);
    calls.take();

    setup.put(V2, &["AWSCURRENT"]).await;
    let new = api::get(&setup.fresh_instance().await, "/counter", None)
        .await
        .cookie();
    calls.deny(&["AWSPREVIOUS"]);
    assert_eq!(
        api::get(&warm, "/session", Some(&new)).await.body,
        json!({})
    );
    assert_eq!(warm.store().secret_refresh_failures(), 1);

    // The denial is lifted; once the interval has passed, the next unknown cookie reads the
    // secret again and opens its session.
    calls.deny(&[]);
    tokio::time::sleep(interval + Duration::from_millis(50)).await;
    assert_eq!(
        api::get(&warm, "/session", Some(&new)).await.body,
        json!({"count": 1})
    );
    assert_eq!(calls.take(), reads(2));
    assert_eq!(warm.store().secret_refresh_failures(), 1);
}
