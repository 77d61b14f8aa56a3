//! A local HTTP server for live-mode connector tests: it records every
//! request (method, path, query, auth header, content type, body) and
//! answers with what the test's responder says, as late as it says, or
//! once the test opens a [`Gate`].

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};

/// One request the server received.
#[derive(Clone, Debug)]
pub struct Seen {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The query string, without the `?`.
    pub query: String,
    /// The `Authorization` header.
    pub authorization: Option<String>,
    /// The `Content-Type` header.
    pub content_type: Option<String>,
    /// The body, as text.
    pub body: String,
    /// The `Host` header.
    pub host: String,
    /// Every header, names lower-case, in arrival order.
    pub headers: Vec<(String, String)>,
    /// When it arrived.
    pub at: Instant,
}

/// One answer of [`TestServer::start_replying`].
#[derive(Clone, Debug, Default)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// The JSON body.
    pub body: String,
    /// Headers besides `Content-Type` (e.g. `Retry-After`).
    pub headers: Vec<(&'static str, String)>,
    /// How long after the request arrived it goes out.
    pub delay: Duration,
    /// If set, it goes out only once this gate is open (and `delay` after
    /// the request arrived).
    pub gate: Option<Gate>,
}

impl Reply {
    /// `status` with `body`, at once.
    pub fn new(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            body: body.into(),
            ..Self::default()
        }
    }

    /// With the header `name: value`.
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// Going out `delay` after the request arrived.
    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Going out only once `gate` is open: a vendor holding its answer
    /// for exactly as long as the test needs, with no real time waited.
    pub fn until(mut self, gate: &Gate) -> Self {
        self.gate = Some(gate.clone());
        self
    }
}

/// A gate a test opens to let held [`Reply`]s go out; once open it stays
/// open. Its clones share it.
#[derive(Clone, Debug)]
pub struct Gate {
    open: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Gate {
    /// A closed gate.
    pub fn new() -> Self {
        Self {
            open: Arc::new(tokio::sync::watch::Sender::new(false)),
        }
    }

    /// Opens the gate: every reply held by it, and every later one, goes
    /// out.
    pub fn open(&self) {
        self.open.send_replace(true);
    }

    /// Whether it is open.
    pub fn is_open(&self) -> bool {
        *self.open.borrow()
    }

    /// Waits until the gate is open.
    pub async fn opened(&self) {
        let mut open = self.open.subscribe();
        // The sender lives in `self`, so the channel cannot close.
        let _ = open.wait_for(|open| *open).await;
    }
}

impl Default for Gate {
    fn default() -> Self {
        Self::new()
    }
}

type Responder = Arc<dyn Fn(&Seen) -> Reply + Send + Sync>;

/// A running server; its base URL is `http://127.0.0.1:<port>`.
pub struct TestServer {
    /// `http://127.0.0.1:<port>`.
    pub base_url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    handle: actix_web::dev::ServerHandle,
}

impl TestServer {
    /// Starts a server answering each request with `responder(request)`:
    /// a status code and a JSON body. Call inside an actix system.
    pub fn start(responder: impl Fn(&Seen) -> (u16, String) + Send + Sync + 'static) -> Self {
        Self::start_slow(Duration::ZERO, responder)
    }

    /// Like [`Self::start`], but each answer goes out `delay` after its
    /// request arrived (the request counts in [`Self::hits`] at once): a
    /// vendor slower than the caller's timeout.
    pub fn start_slow(
        delay: Duration,
        responder: impl Fn(&Seen) -> (u16, String) + Send + Sync + 'static,
    ) -> Self {
        Self::start_delaying(move |request| {
            let (status, answer) = responder(request);
            (status, answer, delay)
        })
    }

    /// Like [`Self::start`], but the responder also says how long after
    /// the request arrived its answer goes out: a vendor slow on some
    /// requests (a send) and quick on others (a lookup).
    pub fn start_delaying(
        responder: impl Fn(&Seen) -> (u16, String, Duration) + Send + Sync + 'static,
    ) -> Self {
        Self::start_replying(move |request| {
            let (status, body, delay) = responder(request);
            Reply::new(status, body).after(delay)
        })
    }

    /// Like [`Self::start`], with the whole [`Reply`] (headers, delay) up
    /// to the responder.
    pub fn start_replying(responder: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let responder: Responder = Arc::new(responder);
        let state = (Arc::clone(&seen), responder);
        let server = HttpServer::new(move || {
            let (seen, responder) = state.clone();
            App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
                let seen = Arc::clone(&seen);
                let responder = Arc::clone(&responder);
                async move {
                    let header = |name: &str| {
                        req.headers()
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned)
                    };
                    let request = Seen {
                        method: req.method().to_string(),
                        path: req.path().to_owned(),
                        query: req.query_string().to_owned(),
                        authorization: header("authorization"),
                        content_type: header("content-type"),
                        body: String::from_utf8_lossy(&body).into_owned(),
                        host: header("host").unwrap_or_default(),
                        headers: req
                            .headers()
                            .iter()
                            .map(|(k, v)| {
                                (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned())
                            })
                            .collect(),
                        at: Instant::now(),
                    };
                    let reply = responder(&request);
                    seen.lock().unwrap().push(request);
                    if !reply.delay.is_zero() {
                        actix_web::rt::time::sleep(reply.delay).await;
                    }
                    if let Some(gate) = &reply.gate {
                        gate.opened().await;
                    }
                    let mut response = HttpResponse::build(
                        actix_web::http::StatusCode::from_u16(reply.status).expect("status"),
                    );
                    for (name, value) in reply.headers {
                        response.insert_header((name, value));
                    }
                    response.content_type("application/json").body(reply.body)
                }
            }))
        })
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .expect("bind a local port");
        let port = server.addrs()[0].port();
        let server = server.run();
        let handle = server.handle();
        actix::spawn(server);
        Self {
            base_url: format!("http://127.0.0.1:{port}"),
            seen,
            handle,
        }
    }

    /// The requests received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// How many requests were received.
    pub fn hits(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// How many of the requests received so far `matches`.
    pub fn count(&self, matches: impl Fn(&Seen) -> bool) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| matches(s))
            .count()
    }

    /// Stops the server.
    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}
