//! A local HTTP server for live-mode connector tests: it records every
//! request (method, path, query, auth header, content type, body) and
//! answers with what the test's responder says.

use std::sync::{Arc, Mutex};
use std::time::Duration;

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
}

type Responder = Arc<dyn Fn(&Seen) -> (u16, String, Duration) + Send + Sync>;

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
        Self::start_timed(move |request| {
            let (status, answer) = responder(request);
            (status, answer, delay)
        })
    }

    /// Like [`Self::start`], but the responder also says how long after its
    /// request arrived each answer goes out (the request counts in
    /// [`Self::hits`] at once): some answers at once, some late, some (a
    /// delay longer than the test) never.
    pub fn start_timed(
        responder: impl Fn(&Seen) -> (u16, String, Duration) + Send + Sync + 'static,
    ) -> Self {
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
                    };
                    let (status, answer, delay) = responder(&request);
                    seen.lock().unwrap().push(request);
                    if !delay.is_zero() {
                        actix_web::rt::time::sleep(delay).await;
                    }
                    HttpResponse::build(
                        actix_web::http::StatusCode::from_u16(status).expect("status"),
                    )
                    .content_type("application/json")
                    .body(answer)
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

    /// Stops the server.
    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}
