//! The end-to-end tests: the library, the layer and the three functions against the local
//! DynamoDB (moto, started once for the whole binary) and `MemoryStore`, one module per topic.
//!
//! They are one test binary because each binary links the whole AWS SDK: one link instead of
//! one per topic is most of what CI saves. A topic runs alone with its module path as the
//! filter, e.g. `cargo test -p integration-tests --test e2e -- faults::`.
//!
//! Three suites stay binaries of their own: `logs` installs the process-wide log subscriber,
//! which would capture (and slow) every other test here; `model` is the model checker, run
//! again at a random seed by `scripts/test` and by `scripts/fuzz`; `sessionctl` runs the real
//! binary and has an ignored test that `scripts/test` runs by name.

/// `#[tokio::test]`s for each named generic test function of the module (`fn name<B>()`),
/// in a submodule per fixture: `dynamodb` (`DynamoDb`, on the local DynamoDB) and `memory`
/// (`Memory`, on `MemoryStore`). The fixtures are the module's own or imported there.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod dynamodb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name::<super::DynamoDb>().await;
                }
            )*
        }
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name::<super::Memory>().await;
                }
            )*
        }
    };
}

mod concurrent;
mod config;
mod conformance;
mod deadline;
mod devices;
mod explicit_writes;
mod fail_safe;
mod faults;
mod gc;
mod gc_deadlines;
mod header;
mod hosts;
mod item_size;
mod locking;
mod lost_answers;
mod metrics;
mod revocation;
mod rotation;
mod sealing;
mod session_api;
mod session_table;
mod store;
mod table;
mod tower_sessions;
