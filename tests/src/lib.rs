//! Test harness: a real DynamoDB-compatible server and one fresh table per test.
//!
//! When `AWS_ENDPOINT_URL_DYNAMODB` is unset, the first test of a test binary starts moto's
//! server (`scripts/moto_server.py`, with the Python from `MOTO_PYTHON`, the workspace's
//! `.venv`, or the `PATH`) on a free loopback port, and every test of that binary shares it;
//! the server dies with the test process.
//! When it is set (DynamoDB Local, or a real account), the suite runs there instead, with the
//! default AWS credential chain, and deletes the tables it made.

pub mod api;
pub mod capture;
pub mod conformance;
pub mod conformance_gc;
pub mod fault_proxy;
pub mod faulty;
pub mod omit;
pub mod secrets;
pub mod tables;

use std::io::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::interceptors::BeforeSerializationInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Credentials, Intercept, Region};
use aws_sdk_dynamodb::error::BoxError;
use dynamodb_session_store::table::SessionTable;
use dynamodb_session_store::{Config, ConfigBuilder, SessionStore};

/// A secret key for tests (32+ bytes).
pub const SECRET: &str = "test-secret-key-0123456789abcdef0123456789";
/// Another secret key for rotation tests.
pub const OTHER_SECRET: &str = "other-secret-key-abcdef0123456789abcdef01";

/// Where the DynamoDB-compatible server is.
#[derive(Debug, Clone)]
pub enum Endpoint {
    /// The moto server this process started.
    Moto(String),
    /// An endpoint given through `AWS_ENDPOINT_URL_DYNAMODB`.
    External,
}

struct MotoServer {
    url: String,
    // Held open for the life of the process: when it closes, the watchdog kills moto.
    _watchdog_stdin: Mutex<ChildStdin>,
    _watchdog: Mutex<Child>,
}

static ENDPOINT: OnceLock<Endpoint> = OnceLock::new();
static MOTO: OnceLock<MotoServer> = OnceLock::new();

/// The endpoint the suite runs against, starting moto on first use if needed.
pub fn endpoint() -> Endpoint {
    ENDPOINT
        .get_or_init(|| {
            if std::env::var_os("AWS_ENDPOINT_URL_DYNAMODB").is_some() {
                Endpoint::External
            } else {
                Endpoint::Moto(MOTO.get_or_init(start_moto).url.clone())
            }
        })
        .clone()
}

/// The workspace root (parent of this crate).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_owned()
}

/// The Python that has moto installed: `MOTO_PYTHON`, the workspace's `.venv`, or `python3`.
pub fn moto_python() -> PathBuf {
    if let Some(path) = std::env::var_os("MOTO_PYTHON") {
        return path.into();
    }
    let venv = workspace_root().join(".venv/bin/python");
    if venv.exists() {
        venv
    } else {
        PathBuf::from("python3")
    }
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral loopback port")
}

/// Waits until something accepts TCP connections on `addr`.
pub fn wait_for_port(addr: SocketAddr, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn start_moto() -> MotoServer {
    let port = free_port();
    let python = moto_python();
    // moto's server, with each request applied atomically as DynamoDB does (see the script).
    let launcher = workspace_root().join("scripts/moto_server.py");
    let log = std::env::temp_dir().join(format!("moto-{port}.log"));
    // A shell watchdog: it starts moto, then blocks reading stdin. Our end of the pipe closes
    // when this test process exits (however it exits), and the watchdog kills moto.
    let script = r#"
        "$0" "$3" -H 127.0.0.1 -p "$1" >"$2" 2>&1 &
        pid=$!
        read -r _ || true
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    "#;
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(&python)
        .arg(port.to_string())
        .arg(&log)
        .arg(&launcher)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", python.display()));
    let stdin = child.stdin.take().expect("piped stdin");
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    if !wait_for_port(addr, Duration::from_secs(30)) {
        let output = std::fs::read_to_string(&log).unwrap_or_default();
        panic!(
            "moto ({} {}) did not listen on {addr} within 30 s; is it installed \
             (./scripts/test makes a venv with it)? Its output:\n{output}",
            python.display(),
            launcher.display()
        );
    }
    MotoServer {
        url: format!("http://{addr}"),
        _watchdog_stdin: Mutex::new(stdin),
        _watchdog: Mutex::new(child),
    }
}

/// A DynamoDB client for the suite's endpoint. Build one per test: SDK clients keep
/// connections on the Tokio runtime that made them, and every test has its own runtime.
pub async fn client() -> Client {
    Client::from_conf(client_config().await.build())
}

/// The client configuration for the suite's endpoint, to add interceptors to.
pub async fn client_config() -> aws_sdk_dynamodb::config::Builder {
    match endpoint() {
        Endpoint::Moto(url) => aws_sdk_dynamodb::Config::builder()
            .behavior_version_latest()
            .endpoint_url(url)
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "tests")),
        Endpoint::External => (&aws_config::load_from_env().await).into(),
    }
}

/// The DynamoDB operation an interceptor sees, from its input type (client-level
/// interceptors run before the operation's metadata is in the config bag).
pub fn operation_name(context: &BeforeSerializationInterceptorContextRef<'_>) -> &'static str {
    use aws_sdk_dynamodb::operation as op;
    let input = context.input();
    macro_rules! name_of {
        ($($module:ident :: $input:ident => $name:literal),* $(,)?) => {
            $(if input.downcast_ref::<op::$module::$input>().is_some() { return $name; })*
        };
    }
    name_of!(
        get_item::GetItemInput => "GetItem",
        put_item::PutItemInput => "PutItem",
        update_item::UpdateItemInput => "UpdateItem",
        delete_item::DeleteItemInput => "DeleteItem",
        scan::ScanInput => "Scan",
        batch_write_item::BatchWriteItemInput => "BatchWriteItem",
        batch_get_item::BatchGetItemInput => "BatchGetItem",
        transact_write_items::TransactWriteItemsInput => "TransactWriteItems",
        query::QueryInput => "Query",
        create_table::CreateTableInput => "CreateTable",
        describe_table::DescribeTableInput => "DescribeTable",
        delete_table::DeleteTableInput => "DeleteTable",
        update_table::UpdateTableInput => "UpdateTable",
        update_time_to_live::UpdateTimeToLiveInput => "UpdateTimeToLive",
        describe_time_to_live::DescribeTimeToLiveInput => "DescribeTimeToLive",
    );
    "other"
}

/// Counts the DynamoDB operations a client performs (once per operation, not per retry).
#[derive(Debug, Clone, Default)]
pub struct CallCounter(Arc<Mutex<Vec<String>>>);

impl CallCounter {
    /// The operations since the last `take`, in order, e.g. `["GetItem", "UpdateItem"]`.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "CallCounter"
    }

    fn read_before_execution(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.0
            .lock()
            .unwrap()
            .push(operation_name(context).to_owned());
        Ok(())
    }
}

/// Makes the named operations fail before they are sent, as a network failure would, while
/// every other operation reaches the server.
#[derive(Debug, Clone, Default)]
pub struct FailOperations(Arc<Mutex<Vec<&'static str>>>);

impl FailOperations {
    /// Fails these operations from now on (replacing the previous list).
    pub fn set(&self, operations: &[&'static str]) {
        *self.0.lock().unwrap() = operations.to_vec();
    }
}

impl Intercept for FailOperations {
    fn name(&self) -> &'static str {
        "FailOperations"
    }

    fn read_before_execution(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = operation_name(context);
        if self.0.lock().unwrap().contains(&operation) {
            return Err(format!("injected failure of {operation}").into());
        }
        Ok(())
    }
}

/// `len` characters that do not compress (a fixed pseudo-random sequence, the same on every
/// run): a session made of them is as large stored as it is serialized.
pub fn incompressible(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            // xorshift64*: fast, deterministic, and LZ4 finds nothing to repeat in it.
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let n = state.wrapping_mul(0x2545_F491_4F6C_DD1D);
            ALPHABET[(n >> 58) as usize] as char
        })
        .collect()
}

/// Unix seconds now, as the store's timestamps count them.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is past 1970")
        .as_secs() as i64
}

/// Session data from a JSON object (panics on any other JSON value).
pub fn data(value: serde_json::Value) -> dynamodb_session_store::SessionData {
    match value {
        serde_json::Value::Object(map) => map,
        other => panic!("session data must be a JSON object, not {other}"),
    }
}

/// A unique table name for one test.
pub fn table_name(test: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let safe: String = test
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(150)
        .collect();
    format!("sess-test-{safe}-{}-{n}", std::process::id())
}

/// One table for one test, deleted on drop when running against an external endpoint
/// (moto's state dies with the server).
pub struct TestTable {
    /// The client the table was made with.
    pub client: Client,
    /// The table's name.
    pub name: String,
}

impl TestTable {
    /// Creates a fresh session table (on-demand, TTL on `expire_at`) for `test`.
    pub async fn new(test: &str) -> TestTable {
        Self::with_client(test, client().await).await
    }

    /// Creates a fresh session table whose client counts its calls and can be made to fail
    /// chosen operations.
    pub async fn instrumented(test: &str) -> (TestTable, CallCounter, FailOperations) {
        let counter = CallCounter::default();
        let faults = FailOperations::default();
        let client = Client::from_conf(
            client_config()
                .await
                .interceptor(counter.clone())
                .interceptor(faults.clone())
                .build(),
        );
        let table = Self::with_client(test, client).await;
        counter.take();
        (table, counter, faults)
    }

    async fn with_client(test: &str, client: Client) -> TestTable {
        let name = table_name(test);
        SessionTable::new(&name)
            .create(&client)
            .await
            .unwrap_or_else(|e| panic!("create table {name}: {e:?}"));
        TestTable { client, name }
    }

    /// A config builder for this table with the test secret and client set.
    pub fn config(&self) -> ConfigBuilder {
        Config::builder()
            .table_name(&self.name)
            .secret_key(SECRET)
            .dynamo_db_client(self.client.clone())
    }

    /// A store on this table, configured by `configure`.
    pub fn store(&self, configure: impl FnOnce(ConfigBuilder) -> ConfigBuilder) -> SessionStore {
        SessionStore::new(configure(self.config()).build().expect("valid config"))
            .expect("store builds")
    }

    /// Every item in the table (a full scan: test tables are small).
    pub async fn items(
        &self,
    ) -> Vec<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .scan()
                .table_name(&self.name)
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .expect("scan");
            items.extend(out.items.unwrap_or_default());
            start = out.last_evaluated_key;
            if start.is_none() {
                return items;
            }
        }
    }
}

impl Drop for TestTable {
    fn drop(&mut self) {
        if matches!(endpoint(), Endpoint::Moto(_)) {
            return;
        }
        let name = self.name.clone();
        // Drop cannot await, and the test's runtime may be shutting down: use a thread
        // with its own runtime.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                let client = client().await;
                if let Err(e) = SessionTable::new(&name).delete(&client).await {
                    let _ = writeln!(std::io::stderr(), "could not delete test table {name}: {e}");
                }
            });
        })
        .join();
    }
}
