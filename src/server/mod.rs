//! The HTTP API (actix-web): the `/v1` routes, `/metrics`, `/healthz`,
//! `/readyz`, its OpenAPI description (`/openapi.json`), the web dashboard
//! (`/`, `/assets/`), the optional bearer token, the HTTP metrics, and a
//! graceful stop that refuses new work with 503 while in-flight requests
//! finish.

mod assets;
mod auth;
mod body;
mod errors;
pub(crate) mod openapi;
mod query;
mod responses;
mod routes;
mod sse;
mod telemetry;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use actix::Addr;
use actix_web::body::MessageBody;
use actix_web::dev::{ServerHandle, ServiceRequest, ServiceResponse};
use actix_web::middleware::{Next, from_fn};
use actix_web::{App, HttpServer, web};
use neonhub_actors::Orchestrator;
use neonhub_events::{Codec, Position, SharedStore};
use neonhub_projections::RunMetrics;
use tokio::sync::watch;

use self::openapi::{EmptyIsAbsent, HeadLimits, Security};
use crate::config::{ServeConfig, Token};
use crate::error::{Error, Result};
use crate::service::{Catalog, Service};

/// The route table: `METHOD "path" => handler`, one line per route. It
/// registers the routes ([`register`]), lists them ([`ROUTES`]) and
/// builds the OpenAPI description from their handlers' `#[utoipa::path]`
/// ([`ApiDoc`]), so a route is described as soon as it is served (a
/// handler without `#[utoipa::path]` does not compile, and the test
/// `the_description_lists_exactly_the_routes` checks the method and path
/// each one states). `get` routes answer `HEAD` too ([`get`]).
macro_rules! route_table {
    ($($method:ident $path:literal => $($handler:ident)::+,)*) => {
        /// Each route's method and path, in the table's order.
        pub(crate) const ROUTES: &[(&str, &str)] = &[$((stringify!($method), $path)),*];

        /// Registers the table's routes.
        fn register(config: &mut web::ServiceConfig) {
            $(config.route($path, $method().to($($handler)::+));)*
        }

        /// The OpenAPI description of the table's routes.
        #[derive(utoipa::OpenApi)]
        #[openapi(
            info(
                title = "neonhub",
                description = "The HTTP API of `neonhub serve`: submit runs of agents, read \
                    them, their events and reports, follow the event log, cancel runs and \
                    resolve steps in doubt. Errors are `{\"error\": {\"code\", \"message\"}}` \
                    with a stable `code`. Query parameters are strict: one a route does not \
                    take, or one given twice, is 400 naming it; an empty value counts as absent. \
                    Every `GET` route answers `HEAD` too (the same status and headers, no body). \
                    A known path with a method it does not take is 405 with `Allow`.",
            ),
            paths($($($handler)::+),*),
            // Named only by a query parameter, which utoipa does not
            // collect from (the other names are reached from bodies).
            components(schemas(openapi::SortName)),
            modifiers(&Security, &EmptyIsAbsent, &HeadLimits),
            security(("bearer" = [])),
            tags(
                (name = "runs", description = "Runs of agents and connectors."),
                (name = "events", description = "The event log."),
                (name = "reports", description = "Figures per agent and connector."),
                (name = "operations", description = "Health, readiness, metrics, this description."),
            ),
        )]
        pub(crate) struct ApiDoc;
    };
}

route_table! {
    post "/v1/runs" => routes::submit_run,
    get "/v1/runs" => routes::list_runs,
    get "/v1/runs/{run_id}" => routes::get_run,
    get "/v1/runs/{run_id}/events" => routes::run_events,
    get "/v1/runs/{run_id}/tree" => routes::run_tree,
    post "/v1/runs/{run_id}/cancel" => routes::cancel_run,
    post "/v1/runs/{run_id}/steps" => routes::call_step,
    post "/v1/runs/{run_id}/steps/{key}/resolve" => routes::resolve_step,
    get "/v1/reports/agents" => routes::report,
    get "/v1/reports/timeline" => routes::timeline,
    get "/v1/events" => sse::feed,
    get "/v1/agents" => routes::agents,
    get "/metrics" => routes::metrics,
    get "/healthz" => routes::healthz,
    get "/readyz" => routes::readyz,
    get "/openapi.json" => openapi::document,
}

/// What every handler sees.
pub(crate) struct AppState {
    store: SharedStore,
    codec: Codec,
    orchestrator: Addr<Orchestrator>,
    catalog: Arc<Catalog>,
    projection_path: PathBuf,
    run_metrics: RunMetrics,
    checkpoints: watch::Receiver<Position>,
    health: neonhub_projections::ProjectionHealth,
    token: Option<Token>,
    shutdown: watch::Receiver<bool>,
    body_timeout: std::time::Duration,
    /// One permit per event feed open.
    feed_slots: Arc<tokio::sync::Semaphore>,
    max_feed_clients: usize,
}

async fn count_request(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> std::result::Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let began = Instant::now();
    let method = req.method().clone();
    let response = next.call(req).await?;
    let route = response
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    telemetry::record_request(
        method_label(&method),
        &route,
        response.status().as_u16(),
        began.elapsed(),
    );
    Ok(response)
}

/// A request's method as a metrics label: the standard methods by name,
/// any other as `other` (method names are the client's to choose: one
/// series each would let traffic grow `/metrics` without bound).
fn method_label(method: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// The running HTTP API. Stop it with [`Server::stop`] (the `serve`
/// command does on SIGINT or SIGTERM).
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    handle: ServerHandle,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// Binds `config.listen` and starts serving `service` on
    /// `config.workers` threads.
    ///
    /// # Errors
    /// [`Error::Io`] when the address cannot be bound.
    ///
    /// # Panics
    /// Outside a running actix system.
    pub fn start(service: &Service, config: &ServeConfig) -> Result<Server> {
        telemetry::install();
        // Kept if set already (one body for every server of the process).
        let _ = actix_http::h1::set_own_error_body(errors::http_layer_error_body);
        let (shutdown, shutdown_rx) = watch::channel(false);
        let state = web::Data::new(AppState {
            store: Arc::clone(service.store()),
            codec: service.codec().clone(),
            orchestrator: service.orchestrator().clone(),
            catalog: Arc::clone(service.catalog()),
            projection_path: service.data().projection_path(),
            run_metrics: service.metrics().clone(),
            checkpoints: service.checkpoints(),
            health: service.projection_health().clone(),
            token: config.token.clone(),
            shutdown: shutdown_rx,
            body_timeout: config.body_timeout,
            feed_slots: Arc::new(tokio::sync::Semaphore::new(config.max_feed_clients)),
            max_feed_clients: config.max_feed_clients,
        });
        let max_body_bytes = config.max_body_bytes;
        let workers = config.workers.max(1);
        let max_connections = connection_limit(config.max_connections);
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(body::json_config(max_body_bytes))
                .wrap(from_fn(auth::require_token))
                .wrap(from_fn(auth::check_head))
                .wrap(from_fn(count_request))
                .configure(register)
                // The dashboard's static files: not part of the API nor of
                // its description.
                .route("/", get().to(assets::index))
                .route("/assets/{file}", get().to(assets::asset))
                .default_service(web::to(routes::not_found))
        })
        .workers(workers)
        // Per worker: the total stays at or under the limit.
        .max_connections((max_connections / workers).max(1))
        .backlog(4096)
        .max_connection_rate(1024)
        .disable_signals()
        .shutdown_timeout(config.shutdown_timeout.as_secs().max(1))
        .bind(config.listen)
        .map_err(|e| Error::io(format!("bind {}", config.listen), e))?;
        let addr = server
            .addrs()
            .first()
            .copied()
            .ok_or_else(|| Error::Service(format!("nothing bound on {}", config.listen)))?;
        let server = server.run();
        let handle = server.handle();
        let task = actix_web::rt::spawn(server);
        tracing::info!(%addr, auth = config.token.is_some(), "serving the HTTP API");
        Ok(Server {
            addr,
            handle,
            shutdown,
            task,
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Starts draining: from now on new runs and new event feeds get 503
    /// `shutting_down` and `/readyz` answers 503, so load balancers move
    /// away, while reads and the runs in flight go on. [`Server::stop`]
    /// drains first.
    pub fn drain(&self) {
        self.shutdown.send_replace(true);
    }

    /// Stops gracefully: drains (see [`Server::drain`]), closes the listener
    /// and idle connections, and lets in-flight requests finish (up to the
    /// shutdown timeout).
    ///
    /// # Errors
    /// [`Error::Service`] if the server had failed.
    pub async fn stop(self) -> Result<()> {
        self.drain();
        self.handle.stop(true).await;
        match self.task.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Error::io("the HTTP server", e)),
            Err(e) => Err(Error::Service(format!("the HTTP server task failed: {e}"))),
        }
    }
}

/// Files kept for the service's own use whatever the clients do: the
/// log's segments, index files and lock, the table, the archive.
const RESERVED_FILES: u64 = 256;
/// Files one connection may hold: its socket and a table read's SQLite
/// database, journal and shared-memory files.
const FILES_PER_CONNECTION: u64 = 4;
/// The most connections served at once by default.
const MAX_CONNECTIONS: u64 = 10_000;

/// How many connections to serve at once: `asked`, or by default what the
/// open-file limit allows, after raising its soft limit to the hard one.
/// Clients past it wait in the listen backlog: they can never take the
/// descriptors the log needs for a new segment, or a read for the table.
fn connection_limit(asked: Option<usize>) -> usize {
    let files = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(files) => files,
        Err(e) => {
            tracing::warn!("cannot read the open-file limit ({e}): assuming 1024");
            1024
        }
    };
    let allowed =
        (files.saturating_sub(RESERVED_FILES) / FILES_PER_CONNECTION).clamp(1, MAX_CONNECTIONS);
    let allowed = usize::try_from(allowed).unwrap_or(usize::MAX);
    match asked {
        Some(n) if n > allowed => {
            tracing::warn!(
                "--max-connections {n} is more than the open-file limit ({files}) allows: \
                 serving {allowed} connections at once (raise `ulimit -n` for more)"
            );
            allowed
        }
        Some(n) => n,
        None => allowed,
    }
}

/// A `POST` route.
fn post() -> actix_web::Route {
    web::post()
}

/// A `GET` route that answers `HEAD` too: the same status and headers, and
/// actix-web sends no body for a `HEAD` request.
fn get() -> actix_web::Route {
    web::route().guard(actix_web::guard::Any(actix_web::guard::Get()).or(actix_web::guard::Head()))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use utoipa::OpenApi as _;

    use super::*;

    /// Each handler's `#[utoipa::path]` states the method and path it is
    /// registered with, so the description lists exactly the routes.
    #[test]
    fn the_description_lists_exactly_the_routes() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let mut described = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                described.insert((method.clone(), path.clone()));
            }
        }
        let registered: BTreeSet<(String, String)> = ROUTES
            .iter()
            .map(|&(method, path)| (method.to_owned(), path.to_owned()))
            .collect();
        assert_eq!(described, registered);
        assert_eq!(
            registered.len(),
            ROUTES.len(),
            "a route is in the table twice"
        );
    }

    /// The bounds the description states are the ones the parameters check.
    #[test]
    fn the_described_bounds_are_the_checked_ones() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let bound = |path: &str, method: &str, name: &str| {
            let params = doc["paths"][path][method]["parameters"].as_array().unwrap();
            let param = params.iter().find(|p| p["name"] == name).unwrap();
            // The schema is `anyOf: [the value's, the empty string]`.
            let schema = &param["schema"]["anyOf"][0];
            (
                schema["minimum"].as_u64().unwrap(),
                schema["maximum"].as_u64().unwrap(),
            )
        };
        assert_eq!(
            bound("/v1/runs", "get", "limit"),
            (1, neonhub_projections::MAX_PAGE_SIZE as u64)
        );
        assert_eq!(
            bound("/v1/runs", "post", "timeout_ms"),
            (1, query::MAX_WAIT_MS)
        );
    }
}
