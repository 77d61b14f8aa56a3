//! Diagnostics on stderr, with clients kept from flooding them.
//!
//! actix-http logs, at ERROR, every connection that ends on the client's
//! error: a request that does not parse (a bad `Content-Length`), a head
//! over its own limits (answered 400 or 431 before any route sees it, with
//! the JSON body `server::errors::http_layer_error_body` gives), a reset. Any client could fill the log that way. Those
//! lines are dropped here; each is counted in
//! `neonhub_http_client_errors_total`, and one WARN a minute at most says
//! how many there were and shows the latest.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

use crate::error::{Error, Result};

/// The most often a WARN about clients' connection errors is written.
const WARN_EVERY: Duration = Duration::from_secs(60);
/// The counter of connections ended on a client's error.
pub(crate) const CLIENT_ERRORS: &str = "neonhub_http_client_errors_total";

/// Sends diagnostics to stderr, filtered by `filter` (`warn`, `info`,
/// `neonhub=debug`, ...).
///
/// # Errors
/// [`Error::Usage`] for a filter that does not parse.
pub fn init_logging(filter: &str) -> Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .map_err(|e| Error::Usage(format!("--log-level {filter:?}: {e}")))?;
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(ClientErrors::default())
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .try_init();
    Ok(())
}

/// Turns actix-http's per-connection ERROR lines into a counter and a
/// WARN a minute at most.
#[derive(Default)]
struct ClientErrors {
    state: Mutex<Unreported>,
}

/// Client errors since the last WARN.
#[derive(Default)]
struct Unreported {
    count: u64,
    last_warned: Option<Instant>,
}

impl<S: Subscriber> Layer<S> for ClientErrors {
    fn event_enabled(&self, event: &Event<'_>, _: Context<'_, S>) -> bool {
        let meta = event.metadata();
        if *meta.level() != Level::ERROR || !meta.target().starts_with("actix_http::h1") {
            return true;
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        let Some(reason) = message.0.strip_prefix("stream error: ") else {
            return true;
        };
        metrics::counter!(CLIENT_ERRORS).increment(1);
        let now = Instant::now();
        let report = {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            state.count += 1;
            let due = state
                .last_warned
                .is_none_or(|at| now.duration_since(at) >= WARN_EVERY);
            due.then(|| {
                state.last_warned = Some(now);
                std::mem::take(&mut state.count)
            })
        };
        if let Some(count) = report {
            tracing::warn!(
                target: "neonhub::http",
                "{count} connection(s) ended on a client's error since the last such line \
                 (counted in {CLIENT_ERRORS}); the latest: {reason}"
            );
        }
        false
    }
}

/// The `message` field of an event, as text.
struct Message(String);

impl Visit for Message {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            value.clone_into(&mut self.0);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}
