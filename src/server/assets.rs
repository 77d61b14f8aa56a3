//! The web dashboard: its static files (`src/server/dashboard/`), built
//! into the binary and served at `GET /` and `GET /assets/{file}` without
//! the token (the API calls they make carry it), each with an ETag and a
//! strict Content-Security-Policy.

use std::sync::OnceLock;

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};

use super::errors::{ApiError, ErrorCode};

/// Scripts, styles, images and connections from this origin only; no
/// inline script or style, no plugins, no framing, no foreign form targets.
const CSP: &str = "default-src 'self'; base-uri 'none'; object-src 'none'; \
                   frame-ancestors 'none'; form-action 'self'";

/// One file of the dashboard.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $content_type:literal) => {
        Asset {
            name: $name,
            content_type: $content_type,
            body: include_bytes!(concat!("dashboard/", $name)),
        }
    };
}

/// Every file; `index.html` is served at `/`, the others under `/assets/`.
const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("app.js", "text/javascript; charset=utf-8"),
    asset!("api.js", "text/javascript; charset=utf-8"),
    asset!("dom.js", "text/javascript; charset=utf-8"),
    asset!("health.js", "text/javascript; charset=utf-8"),
    asset!("live.js", "text/javascript; charset=utf-8"),
    asset!("metrics.js", "text/javascript; charset=utf-8"),
    asset!("report.js", "text/javascript; charset=utf-8"),
    asset!("run.js", "text/javascript; charset=utf-8"),
    asset!("runs.js", "text/javascript; charset=utf-8"),
    asset!("sse.js", "text/javascript; charset=utf-8"),
    asset!("icon.svg", "image/svg+xml"),
];

/// The path prefix of the dashboard's files.
const PREFIX: &str = "/assets/";

/// Whether `path` is one of the dashboard's files, open without the token.
pub(crate) fn is_public(path: &str) -> bool {
    path == "/" || path.starts_with(PREFIX)
}

/// Each asset's ETag (a strong one: a BLAKE3 prefix of its bytes), in the
/// order of [`ASSETS`].
fn etags() -> &'static [String] {
    static ETAGS: OnceLock<Vec<String>> = OnceLock::new();
    ETAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| format!("\"{}\"", &blake3::hash(a.body).to_hex()[..20]))
            .collect()
    })
}

/// `GET /`: the dashboard's page.
pub(crate) async fn index(req: HttpRequest) -> HttpResponse {
    serve(&req, 0)
}

/// `GET /assets/{file}`: a 404 `not_found` for a file it does not have.
pub(crate) async fn asset(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let name = req.match_info().get("file").unwrap_or_default();
    ASSETS
        .iter()
        .position(|a| a.name == name && a.name != "index.html")
        .map(|i| serve(&req, i))
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::NotFound,
                format!("the dashboard has no file {name:?}"),
            )
        })
}

/// The asset `i`, or a 304 when the client's `If-None-Match` holds its
/// ETag. `no-cache`: the browser keeps it and asks again each time, so a
/// new binary's files are never mixed with an old one's.
fn serve(req: &HttpRequest, i: usize) -> HttpResponse {
    let asset = &ASSETS[i];
    let etag = &etags()[i];
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| {
            tags.split(',')
                .map(|t| t.trim().trim_start_matches("W/"))
                .any(|t| t == etag || t == "*")
        });
    let mut response = if fresh {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((header::ETAG, etag.as_str()))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"));
    if fresh {
        return response.finish();
    }
    response.content_type(asset.content_type).body(asset.body)
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    #[test]
    fn every_asset_the_page_names_is_served() {
        let index = std::str::from_utf8(ASSETS[0].body).unwrap();
        for asset in &ASSETS[1..] {
            assert!(asset.name.contains('.'), "{}", asset.name);
        }
        for linked in ["/assets/app.css", "/assets/app.js", "/assets/icon.svg"] {
            assert!(index.contains(linked), "{linked}");
            let name = linked.trim_start_matches(PREFIX);
            assert!(ASSETS.iter().any(|a| a.name == name), "{name}");
        }
        // Every module imported by another is built in.
        for asset in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            let text = std::str::from_utf8(asset.body).unwrap();
            for line in text.lines().filter(|l| l.starts_with("import ")) {
                let module = line
                    .rsplit_once("from './")
                    .map(|(_, m)| m.trim_end_matches("';"))
                    .unwrap_or_else(|| panic!("{}: {line}", asset.name));
                assert!(
                    ASSETS.iter().any(|a| a.name == module),
                    "{} imports {module}, which is not served",
                    asset.name
                );
            }
        }
    }

    #[test]
    fn the_page_has_no_inline_script_or_style() {
        let index = std::str::from_utf8(ASSETS[0].body).unwrap();
        assert!(!index.contains("<script>"), "inline script");
        assert!(!index.contains("<style"), "inline style");
        assert!(!index.contains(" style="), "style attribute");
        assert!(!index.contains("http://") && !index.contains("https://"));
    }

    #[test]
    fn a_matching_etag_is_a_304() {
        let req = TestRequest::default().to_http_request();
        let first = serve(&req, 1);
        assert_eq!(first.status(), 200);
        let etag = first
            .headers()
            .get(header::ETAG)
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        let req = TestRequest::default()
            .insert_header((header::IF_NONE_MATCH, format!("W/\"x\", {etag}")))
            .to_http_request();
        assert_eq!(serve(&req, 1).status(), 304);
        let req = TestRequest::default()
            .insert_header((header::IF_NONE_MATCH, "\"other\""))
            .to_http_request();
        assert_eq!(serve(&req, 1).status(), 200);
        assert!(is_public("/") && is_public("/assets/app.js"));
        assert!(!is_public("/v1/runs") && !is_public("/metrics") && !is_public("/index.html"));
    }
}
