//! A connector's rate limits: one for the whole connector and one per key
//! where the vendor counts per key (a sending number, a channel, a user),
//! each a token bucket (governor's GCRA). A call over a limit waits for its
//! permit, up to its run's deadline: it fails `rate_limited` only when the
//! permit cannot come before then, or when too many calls already wait.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::{NotUntil, Quota, RateLimiter};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};

/// At most `burst` calls at once, refilled by one every `replenish_every`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Calls that may go out back to back.
    pub burst: NonZeroU32,
    /// The time in which one more call is allowed.
    pub replenish_every: Duration,
}

impl RateLimit {
    /// `per_second` calls per second, with bursts of as many.
    pub fn per_second(per_second: NonZeroU32) -> Self {
        Self::per(per_second, Duration::from_secs(1))
    }

    /// `calls` per `period`, with bursts of as many as fall in one second
    /// (at least one).
    pub fn per(calls: NonZeroU32, period: Duration) -> Self {
        let replenish_every = (period / calls.get()).max(Duration::from_nanos(1));
        let in_a_second = Duration::from_secs(1).as_nanos() / replenish_every.as_nanos().max(1);
        let burst = u32::try_from(in_a_second)
            .ok()
            .and_then(NonZeroU32::new)
            .unwrap_or(NonZeroU32::MIN)
            .min(calls);
        Self {
            burst,
            replenish_every,
        }
    }

    /// `n` per minute, all of them usable at once: a tokens-per-minute
    /// budget, charged by each call's estimated tokens.
    pub fn per_minute_whole(n: NonZeroU32) -> Self {
        Self {
            burst: n,
            replenish_every: (Duration::from_secs(60) / n.get()).max(Duration::from_nanos(1)),
        }
    }

    fn quota(self) -> Quota {
        Quota::with_period(self.replenish_every.max(Duration::from_nanos(1)))
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(self.burst)
    }
}

impl FromStr for RateLimit {
    type Err = Error;

    /// `N/s`, `N/min` or `N/h` (e.g. `1/s`, `150/min`).
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::Config(format!("a rate is N/s, N/min or N/h (e.g. 1/s), not {s:?}"));
        let (calls, period) = s.trim().split_once('/').ok_or_else(bad)?;
        let calls: NonZeroU32 = calls.trim().parse().map_err(|_| bad())?;
        let period = match period.trim() {
            "s" => Duration::from_secs(1),
            "min" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            _ => return Err(bad()),
        };
        Ok(Self::per(calls, period))
    }
}

/// What every limiter of the process waited, for a summary (`neonhub
/// demo`) without a metrics recorder.
struct Waits {
    calls: std::sync::atomic::AtomicU64,
    waited: std::sync::atomic::AtomicU64,
    micros: std::sync::atomic::AtomicU64,
}

static WAITS: Waits = Waits {
    calls: std::sync::atomic::AtomicU64::new(0),
    waited: std::sync::atomic::AtomicU64::new(0),
    micros: std::sync::atomic::AtomicU64::new(0),
};

impl Waits {
    fn record(&self, waited: Duration) {
        use std::sync::atomic::Ordering::Relaxed;
        self.calls.fetch_add(1, Relaxed);
        // Less than a millisecond is the checks themselves, not a wait.
        if waited >= Duration::from_millis(1) {
            self.waited.fetch_add(1, Relaxed);
            self.micros.fetch_add(
                u64::try_from(waited.as_micros()).unwrap_or(u64::MAX),
                Relaxed,
            );
        }
    }
}

/// The connector calls of this process that passed a rate limiter, how
/// many of them waited for their turn (a millisecond or more), and how
/// long those waited in all.
pub fn rate_limit_waits() -> (u64, u64, Duration) {
    use std::sync::atomic::Ordering::Relaxed;
    (
        WAITS.calls.load(Relaxed),
        WAITS.waited.load(Relaxed),
        Duration::from_micros(WAITS.micros.load(Relaxed)),
    )
}

/// One limit as configured: the vendor's default, none, or a rate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Limit {
    /// The vendor's published limit for a live connector; none for a mock
    /// (which calls no vendor).
    #[default]
    Default,
    /// No limit.
    Off,
    /// This rate.
    Rate(RateLimit),
}

impl Limit {
    /// The limit in force: `vendor` for [`Limit::Default`] on a `live`
    /// connector.
    pub fn resolve(self, vendor: Option<RateLimit>, live: bool) -> Option<RateLimit> {
        match self {
            Limit::Default if live => vendor,
            Limit::Default | Limit::Off => None,
            Limit::Rate(rate) => Some(rate),
        }
    }
}

impl FromStr for Limit {
    type Err = Error;

    /// `default`, `off`, or a rate (`N/s`, `N/min`, `N/h`).
    fn from_str(s: &str) -> Result<Self> {
        match s.trim() {
            "default" => Ok(Limit::Default),
            "off" => Ok(Limit::Off),
            rate => rate.parse().map(Limit::Rate),
        }
    }
}

/// The limits of one built-in connector.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnectorLimits {
    /// Calls of the whole connector (an account, a workspace, a project).
    pub connector: Limit,
    /// Calls per key: Twilio per sending number, Slack per channel, Gmail
    /// per user.
    pub per_key: Limit,
}

/// The rate limits of the built-in connectors, as the binary configures
/// them (flags and `NEONHUB_*_RATE*` variables).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimitsConfig {
    /// Gmail.
    pub gmail: ConnectorLimits,
    /// Slack.
    pub slack: ConnectorLimits,
    /// Twilio.
    pub twilio: ConnectorLimits,
    /// The language-model connector (`llm`): its requests, and per key
    /// the requests for one model.
    pub llm: ConnectorLimits,
    /// Calls that may wait for a permit at once, per connector; one more
    /// fails `rate_limited` at once.
    pub max_waiting: usize,
}

impl Default for RateLimitsConfig {
    fn default() -> Self {
        Self {
            gmail: ConnectorLimits::default(),
            slack: ConnectorLimits::default(),
            twilio: ConnectorLimits::default(),
            llm: ConnectorLimits::default(),
            max_waiting: DEFAULT_MAX_WAITING,
        }
    }
}

/// The default bound on calls waiting for a permit, per connector.
pub const DEFAULT_MAX_WAITING: usize = 4096;

/// The vendors' published limits, the defaults of live connectors.
pub(crate) mod vendor {
    use std::num::NonZeroU32;
    use std::time::Duration;

    use super::RateLimit;

    const fn rate(calls: u32, period: Duration) -> Option<RateLimit> {
        match NonZeroU32::new(calls) {
            Some(calls) => Some(RateLimit {
                burst: NonZeroU32::MIN,
                replenish_every: Duration::from_nanos(
                    period.as_nanos() as u64 / calls.get() as u64,
                ),
            }),
            None => None,
        }
    }

    /// Twilio: a US/Canada long code sends one message segment per second
    /// ("Understanding Twilio Rate Limits and Message Queues",
    /// <https://help.twilio.com/articles/115002943027>); more queue at
    /// Twilio and expire after 4 hours, so we pace them here.
    pub(crate) const TWILIO_PER_NUMBER: Option<RateLimit> = rate(1, Duration::from_secs(1));
    /// Twilio: 100 concurrent API requests per account by default
    /// (<https://www.twilio.com/docs/usage/rest-api-best-practices>); at
    /// about a second each, 100 a second.
    pub(crate) const TWILIO_ACCOUNT: Option<RateLimit> = rate(100, Duration::from_secs(1));
    /// Slack: `chat.postMessage` allows one message per second per channel,
    /// short bursts tolerated (<https://api.slack.com/methods/chat.postMessage#rate_limiting>,
    /// <https://api.slack.com/apis/rate-limits>).
    pub(crate) const SLACK_PER_CHANNEL: Option<RateLimit> = rate(1, Duration::from_secs(1));
    /// Slack: Web API Tier 4 methods allow 100+ calls a minute per
    /// workspace (<https://api.slack.com/apis/rate-limits#tiers>), the most
    /// generous tier of the methods we call.
    pub(crate) const SLACK_WORKSPACE: Option<RateLimit> = rate(100, Duration::from_secs(60));
    /// Gmail: 250 quota units per user per second, and `messages.send`
    /// costs 100 (<https://developers.google.com/workspace/gmail/api/reference/quota>):
    /// 2.5 sends a second.
    pub(crate) const GMAIL_PER_USER: Option<RateLimit> = rate(5, Duration::from_secs(2));
    /// Gmail: 1,200,000 quota units per project per minute (same page):
    /// 200 sends a second.
    pub(crate) const GMAIL_PROJECT: Option<RateLimit> = rate(200, Duration::from_secs(1));
}

/// The limits of each built-in connector, as configured over its vendor's
/// defaults: (the connector's, per key).
pub(crate) mod vendor_limits {
    use super::{ConnectorLimits, RateLimit, vendor};

    type Pair = (Option<RateLimit>, Option<RateLimit>);

    fn resolve(limits: &ConnectorLimits, defaults: Pair, live: bool) -> Pair {
        (
            limits.connector.resolve(defaults.0, live),
            limits.per_key.resolve(defaults.1, live),
        )
    }

    pub(crate) fn gmail(limits: &ConnectorLimits, live: bool) -> Pair {
        let defaults = (vendor::GMAIL_PROJECT, vendor::GMAIL_PER_USER);
        resolve(limits, defaults, live)
    }

    pub(crate) fn slack(limits: &ConnectorLimits, live: bool) -> Pair {
        let defaults = (vendor::SLACK_WORKSPACE, vendor::SLACK_PER_CHANNEL);
        resolve(limits, defaults, live)
    }

    pub(crate) fn twilio(limits: &ConnectorLimits, live: bool) -> Pair {
        let defaults = (vendor::TWILIO_ACCOUNT, vendor::TWILIO_PER_NUMBER);
        resolve(limits, defaults, live)
    }

    /// A language model's limits depend on the account's tier and the
    /// model (and a local server has none): no default, only what is
    /// configured.
    pub(crate) fn llm(limits: &ConnectorLimits, live: bool) -> Pair {
        resolve(limits, (None, None), live)
    }
}

/// Why a call got no permit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The permit would come only after the run's deadline.
    Deadline { wait: Duration },
    /// Too many calls already wait.
    Queue { waiting: usize },
    /// The calling attempt was cut off while waiting.
    Cancelled,
    /// The run's deadline came while the call queued behind others.
    Turn,
}

/// Tokio's clock, so a runtime with paused time (tests) paces as it sleeps.
#[derive(Clone, Copy, Debug, Default)]
struct TokioClock;

impl Clock for TokioClock {
    type Instant = std::time::Instant;

    fn now(&self) -> std::time::Instant {
        Instant::now().into_std()
    }
}

type Direct = RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<std::time::Instant>>;
type Keyed = RateLimiter<
    String,
    DefaultKeyedStateStore<String>,
    TokioClock,
    NoOpMiddleware<std::time::Instant>,
>;

/// Keys above this many make the keyed limiter forget the idle ones.
const MAX_KEYS: usize = 10_000;

/// The limits of one connector.
pub(crate) struct Limiter {
    name: String,
    connector: Option<Direct>,
    per_key: Option<Keyed>,
    /// A budget of tokens (a language model's tokens per minute), charged
    /// by each call's estimate, and its whole size.
    tokens: Option<(Direct, NonZeroU32)>,
    waiting: AtomicUsize,
    max_waiting: usize,
    /// Whose turn it is to wait for a permit, for the connector's limit and
    /// for each key's: callers queue in arrival order (tokio's `Mutex` is
    /// fair), and only the first of the queue waits on governor. Without
    /// it waiters raced for each permit, and an unlucky one could be passed
    /// over until its deadline: 3 of 10,000 SMS through 10 numbers failed
    /// `rate_limited` with at most 20 s of queue against a 30 s deadline.
    turns: Turns,
}

#[derive(Default)]
struct Turns {
    connector: Arc<tokio::sync::Mutex<()>>,
    tokens: Arc<tokio::sync::Mutex<()>>,
    keys: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Turns {
    /// The queue of `key`; forgets queues nobody is in once there are many.
    fn of(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        if keys.len() > MAX_KEYS {
            keys.retain(|_, turn| Arc::strong_count(turn) > 1);
        }
        Arc::clone(keys.entry(key.to_owned()).or_default())
    }
}

pub(crate) const WAIT_SECONDS: &str = "neonhub_rate_limit_wait_seconds";
pub(crate) const WAITING: &str = "neonhub_rate_limit_waiting";

impl Limiter {
    pub(crate) fn new(
        name: &str,
        connector: Option<RateLimit>,
        per_key: Option<RateLimit>,
        max_waiting: usize,
    ) -> Self {
        Self {
            name: name.to_owned(),
            connector: connector.map(|l| Direct::direct_with_clock(l.quota(), TokioClock)),
            per_key: per_key.map(|l| Keyed::dashmap_with_clock(l.quota(), TokioClock)),
            tokens: None,
            waiting: AtomicUsize::new(0),
            max_waiting,
            turns: Turns::default(),
        }
    }

    /// This limiter with a budget of tokens, `tokens` (see
    /// [`RateLimit::per_minute_whole`]).
    pub(crate) fn with_tokens(mut self, tokens: Option<RateLimit>) -> Self {
        self.tokens = tokens.map(|l| (Direct::direct_with_clock(l.quota(), TokioClock), l.burst));
        self
    }

    /// Waits for the caller's turn in `turn`'s queue, counted among the
    /// waiting calls while it queues, until `deadline`.
    async fn take_turn(
        &self,
        turn: Arc<tokio::sync::Mutex<()>>,
        deadline: Option<Instant>,
        cancel: &CancellationToken,
    ) -> std::result::Result<tokio::sync::OwnedMutexGuard<()>, Refused> {
        if let Ok(guard) = Arc::clone(&turn).try_lock_owned() {
            return Ok(guard);
        }
        let _queued = Waiting::enter(self)?;
        let until = async {
            match deadline {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            guard = turn.lock_owned() => Ok(guard),
            () = cancel.cancelled() => Err(Refused::Cancelled),
            () = until => Err(Refused::Turn),
        }
    }

    /// Takes a permit of `key` (if the connector limits per key), of the
    /// connector, and `tokens` of its token budget (if it has one), waiting
    /// for each while it comes before `deadline`; returns how long it
    /// waited.
    pub(crate) async fn acquire(
        &self,
        key: Option<&str>,
        tokens: Option<NonZeroU32>,
        deadline: Option<Instant>,
        cancel: &CancellationToken,
    ) -> std::result::Result<Duration, Refused> {
        let began = Instant::now();
        if let (Some(keyed), Some(key)) = (&self.per_key, key) {
            if keyed.len() > MAX_KEYS {
                keyed.retain_recent();
                keyed.shrink_to_fit();
            }
            let key = key.to_owned();
            let _turn = self
                .take_turn(self.turns.of(&key), deadline, cancel)
                .await?;
            self.wait(|| keyed.check_key(&key), deadline, cancel)
                .await?;
        }
        if let Some(direct) = &self.connector {
            let _turn = self
                .take_turn(Arc::clone(&self.turns.connector), deadline, cancel)
                .await?;
            self.wait(|| direct.check(), deadline, cancel).await?;
        }
        if let (Some((budget, size)), Some(tokens)) = (&self.tokens, tokens) {
            // A call bigger than the whole budget takes all of it.
            let n = tokens.min(*size);
            let _turn = self
                .take_turn(Arc::clone(&self.turns.tokens), deadline, cancel)
                .await?;
            self.wait(|| budget.check_n(n).unwrap_or(Ok(())), deadline, cancel)
                .await?;
        }
        let waited = began.elapsed();
        metrics::histogram!(WAIT_SECONDS, "connector" => self.name.clone())
            .record(waited.as_secs_f64());
        WAITS.record(waited);
        Ok(waited)
    }

    /// Checks until `check` gives a permit, sleeping as long as it says.
    async fn wait(
        &self,
        check: impl Fn() -> std::result::Result<(), NotUntil<std::time::Instant>>,
        deadline: Option<Instant>,
        cancel: &CancellationToken,
    ) -> std::result::Result<(), Refused> {
        let mut queued = None;
        loop {
            let Err(not_until) = check() else {
                return Ok(());
            };
            let wait = not_until.wait_time_from(TokioClock.now());
            if deadline.is_some_and(|deadline| Instant::now() + wait > deadline) {
                return Err(Refused::Deadline { wait });
            }
            if queued.is_none() {
                queued = Some(Waiting::enter(self)?);
            }
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = cancel.cancelled() => return Err(Refused::Cancelled),
            }
        }
    }
}

/// A call counted among the waiting ones while it lives.
struct Waiting<'a>(&'a Limiter);

impl<'a> Waiting<'a> {
    fn enter(limiter: &'a Limiter) -> std::result::Result<Self, Refused> {
        let before = limiter.waiting.fetch_add(1, Ordering::AcqRel);
        if before >= limiter.max_waiting {
            limiter.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(Refused::Queue { waiting: before });
        }
        metrics::gauge!(WAITING, "connector" => limiter.name.clone()).increment(1.0);
        Ok(Self(limiter))
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::AcqRel);
        metrics::gauge!(WAITING, "connector" => self.0.name.clone()).decrement(1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(per_key: Option<RateLimit>, max_waiting: usize) -> Limiter {
        let connector = RateLimit {
            burst: NonZeroU32::new(3).unwrap(),
            replenish_every: Duration::from_secs(3600),
        };
        Limiter::new("test", Some(connector), per_key, max_waiting)
    }

    #[tokio::test]
    async fn allows_the_burst_then_refuses_a_permit_past_the_deadline() {
        let limiter = limiter(None, 10);
        let never = CancellationToken::new();
        let soon = Some(Instant::now() + Duration::from_secs(1));
        for _ in 0..3 {
            assert!(limiter.acquire(None, None, soon, &never).await.is_ok());
        }
        assert!(matches!(
            limiter.acquire(None, None, soon, &never).await,
            Err(Refused::Deadline { wait }) if wait > Duration::from_secs(3000)
        ));
    }

    #[tokio::test]
    async fn a_call_over_the_limit_waits_for_its_permit() {
        let limiter = Limiter::new(
            "test",
            Some(RateLimit::per_second(NonZeroU32::new(10).unwrap())),
            None,
            10,
        );
        let never = CancellationToken::new();
        for _ in 0..10 {
            limiter.acquire(None, None, None, &never).await.unwrap();
        }
        let waited = limiter.acquire(None, None, None, &never).await.unwrap();
        assert!(waited >= Duration::from_millis(90), "{waited:?}");
    }

    /// 300 calls on one key limited to 10/s with a 31 s deadline: in
    /// arrival order, the last gets its permit at 29 s, so none may fail,
    /// and none may pass another.
    #[tokio::test(start_paused = true)]
    async fn waiters_get_their_turn_in_arrival_order() {
        let limiter = Arc::new(Limiter::new(
            "test",
            None,
            Some(RateLimit::per_second(NonZeroU32::new(10).unwrap())),
            10_000,
        ));
        let deadline = Some(Instant::now() + Duration::from_secs(31));
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut calls = Vec::new();
        for i in 0..300 {
            let (limiter, order) = (Arc::clone(&limiter), Arc::clone(&order));
            calls.push(tokio::spawn(async move {
                let never = CancellationToken::new();
                let got = limiter.acquire(Some("+1"), None, deadline, &never).await;
                order.lock().unwrap().push(i);
                got
            }));
            // Each call arrives before the next.
            tokio::task::yield_now().await;
        }
        for call in calls {
            assert!(
                call.await.unwrap().is_ok(),
                "a call failed within its deadline"
            );
        }
        let order = order.lock().unwrap().clone();
        assert_eq!(
            order,
            (0..300).collect::<Vec<_>>(),
            "a later call passed an earlier one"
        );
    }

    #[tokio::test]
    async fn keys_have_limits_of_their_own() {
        let limiter = Limiter::new(
            "test",
            None,
            Some(RateLimit::per_second(NonZeroU32::MIN)),
            10,
        );
        let never = CancellationToken::new();
        let now = Some(Instant::now() + Duration::from_millis(10));
        assert!(limiter.acquire(Some("+1"), None, now, &never).await.is_ok());
        assert!(limiter.acquire(Some("+2"), None, now, &never).await.is_ok());
        assert!(matches!(
            limiter.acquire(Some("+1"), None, now, &never).await,
            Err(Refused::Deadline { .. })
        ));
    }

    #[tokio::test]
    async fn waiters_are_bounded() {
        let limiter = std::sync::Arc::new(Limiter::new(
            "test",
            Some(RateLimit::per_second(NonZeroU32::MIN)),
            None,
            1,
        ));
        let never = CancellationToken::new();
        limiter.acquire(None, None, None, &never).await.unwrap();
        let first = {
            let (limiter, never) = (std::sync::Arc::clone(&limiter), never.clone());
            tokio::spawn(async move { limiter.acquire(None, None, None, &never).await })
        };
        tokio::task::yield_now().await;
        assert_eq!(limiter.waiting.load(Ordering::Acquire), 1);
        assert_eq!(
            limiter.acquire(None, None, None, &never).await,
            Err(Refused::Queue { waiting: 1 })
        );
        assert!(first.await.unwrap().is_ok());
    }

    #[test]
    fn rates_parse() {
        let one: RateLimit = "1/s".parse().unwrap();
        assert_eq!(one.replenish_every, Duration::from_secs(1));
        let gmail: RateLimit = "150/min".parse().unwrap();
        assert_eq!(gmail.replenish_every, Duration::from_millis(400));
        assert_eq!(gmail.burst.get(), 2);
        assert!("0/s".parse::<RateLimit>().is_err());
        assert!("5/day".parse::<RateLimit>().is_err());
        assert_eq!("off".parse::<Limit>().unwrap(), Limit::Off);
        assert_eq!(
            "default"
                .parse::<Limit>()
                .unwrap()
                .resolve(vendor::SLACK_PER_CHANNEL, true),
            vendor::SLACK_PER_CHANNEL
        );
        assert_eq!(
            Limit::Default.resolve(vendor::SLACK_PER_CHANNEL, false),
            None
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_token_budget_is_charged_by_each_call_s_estimate() {
        let never = CancellationToken::new();
        let budget = RateLimit::per_minute_whole(NonZeroU32::new(1000).unwrap());
        let limiter = Limiter::new("llm", None, None, 10).with_tokens(Some(budget));
        let n = |n: u32| NonZeroU32::new(n);
        let waited = limiter.acquire(None, n(600), None, &never).await.unwrap();
        assert!(waited < Duration::from_millis(1), "{waited:?}");
        // 400 left: a call of 600 waits for 200 more, 12 s at 1000/min.
        let waited = limiter.acquire(None, n(600), None, &never).await.unwrap();
        assert!(
            waited >= Duration::from_secs(11) && waited <= Duration::from_secs(13),
            "{waited:?}"
        );
        // A call bigger than the budget takes all of it, not forever.
        let soon = Some(Instant::now() + Duration::from_secs(61));
        assert!(limiter.acquire(None, n(5000), soon, &never).await.is_ok());
    }
}
