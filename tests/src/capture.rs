//! Capturing every log line a test produces, at every level, to check what logs say — and
//! what they never say.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use tracing::subscriber::{Interest, Subscriber};
use tracing::{Dispatch, Event, Metadata, span};

/// A buffer every log line is written to.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    /// Everything captured so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// A subscriber that writes every event, down to TRACE and without colours, here.
    /// Install it globally (`set_global_default`), for a thread (`set_default`) or for a
    /// closure (`with_default`).
    pub fn subscriber(&self) -> impl tracing::Subscriber + Send + Sync + 'static {
        keep_every_callsite_asking();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(self.clone())
            .with_ansi(false)
            .finish()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// tracing caches each callsite's interest for the whole process, computed when the callsite
/// is first hit. While at most one dispatcher is registered (this test's own, say), that is
/// asked of the *hitting* thread's subscriber: a test thread with none caches "never", and a
/// test capturing on its own thread then misses the line for good (seen as a rotation test
/// that, under the whole e2e binary, did not see an error it logged). A dispatcher that lives
/// as long as the process makes every registration see at least two, so interest is combined
/// over all of them, and it answers "sometimes": each event then asks its own thread's
/// subscriber whether it is enabled.
fn keep_every_callsite_asking() {
    static ANCHOR: OnceLock<Dispatch> = OnceLock::new();
    ANCHOR.get_or_init(|| Dispatch::new(AlwaysAsk));
}

/// Records nothing; keeps callsites from being cached as "never" (see above).
struct AlwaysAsk;

impl Subscriber for AlwaysAsk {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        Interest::sometimes()
    }
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        false
    }
    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(1)
    }
    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}
    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}
    fn event(&self, _: &Event<'_>) {}
    fn enter(&self, _: &span::Id) {}
    fn exit(&self, _: &span::Id) {}
}

#[cfg(test)]
mod tests {
    use rusty_fork::rusty_fork_test;

    use super::Captured;

    // Each in a process of its own: the cache is process-wide, and the case needs a process
    // in which this test's subscriber is the only one.
    rusty_fork_test! {
        #[test]
        fn a_line_first_hit_on_a_thread_without_a_subscriber_is_still_captured() {
            fn log_it() {
                tracing::error!("the line under test");
            }
            let logs = Captured::default();
            let _guard = tracing::subscriber::set_default(logs.subscriber());
            std::thread::spawn(log_it).join().unwrap();
            log_it();
            assert!(logs.text().contains("the line under test"), "captured: {:?}", logs.text());
        }
    }
}
