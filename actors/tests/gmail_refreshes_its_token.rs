//! Given Gmail configured with a client id, a client secret and a refresh
//! token, and a local server standing in for Google's token endpoint and
//! the Gmail API, when calls are made, then: the first gets an access token
//! first (`grant_type=refresh_token` with the client's credentials); later
//! calls reuse it while it lives; a token with less than a minute left is
//! refreshed before the next call; a 401 gets exactly one refresh and one
//! more try; a token endpoint that refuses (`invalid_grant`) is a permanent
//! failure with nothing sent; and no credential appears in any error.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use neonhub_actors::{Connector, ConnectorsConfig, Gmail};
use neonhub_test_support::http::{Seen, TestServer};
use serde_json::json;

const CLIENT_SECRET: &str = "GOCSPX-refresh-test-secret";
const REFRESH_TOKEN: &str = "1//0refresh-test-token";

/// What the fake Google hands out and accepts.
#[derive(Default)]
struct Google {
    /// Access tokens Gmail accepts.
    valid: Mutex<HashSet<String>>,
    /// Tokens issued so far.
    issued: AtomicU64,
    /// `expires_in` of the next tokens.
    lifetime: AtomicU64,
    /// Whether the token endpoint refuses (`invalid_grant`).
    refuse: Mutex<bool>,
    /// Whether Gmail refuses every token.
    reject_all: Mutex<bool>,
}

fn fake_google(google: Arc<Google>) -> TestServer {
    TestServer::start(move |req: &Seen| {
        if req.path == "/token" {
            if *google.refuse.lock().unwrap() {
                let echo = format!("invalid_grant for {}", req.body);
                return (
                    400,
                    json!({"error": "invalid_grant", "error_description": echo}).to_string(),
                );
            }
            let n = google.issued.fetch_add(1, Ordering::SeqCst) + 1;
            let token = format!("ya29.issued-{n}");
            google.valid.lock().unwrap().insert(token.clone());
            let lifetime = google.lifetime.load(Ordering::SeqCst);
            let answer = json!({"access_token": token, "expires_in": lifetime,
                                "scope": "https://www.googleapis.com/auth/gmail.send",
                                "token_type": "Bearer"});
            return (200, answer.to_string());
        }
        let bearer = req.authorization.clone().unwrap_or_default();
        let token = bearer.strip_prefix("Bearer ").unwrap_or_default();
        if *google.reject_all.lock().unwrap() || !google.valid.lock().unwrap().contains(token) {
            let echo = format!("Request had invalid authentication credentials: {bearer}");
            let answer =
                json!({"error": {"code": 401, "message": echo, "status": "UNAUTHENTICATED"}});
            return (401, answer.to_string());
        }
        (200, json!({"emailAddress": "me@example.com"}).to_string())
    })
}

#[actix::test]
async fn the_access_token_is_refreshed_before_it_expires_and_once_on_a_401() {
    let google = Arc::new(Google::default());
    google.lifetime.store(3599, Ordering::SeqCst);
    let server = fake_google(Arc::clone(&google));
    let config = ConnectorsConfig::from_vars(|name| match name {
        "NEONHUB_GMAIL_CLIENT_ID" => Some("client-1.apps.googleusercontent.com".to_owned()),
        "NEONHUB_GMAIL_CLIENT_SECRET" => Some(CLIENT_SECRET.to_owned()),
        "NEONHUB_GMAIL_REFRESH_TOKEN" => Some(REFRESH_TOKEN.to_owned()),
        "NEONHUB_GMAIL_TOKEN_URL" => Some(format!("{}/token", server.base_url)),
        "NEONHUB_GMAIL_BASE_URL" => Some(format!("{}/gmail/v1", server.base_url)),
        _ => None,
    })
    .unwrap();
    let gmail = Gmail::from_config(&config).unwrap();
    assert!(gmail.is_live());
    let tokens = || server.count(|s| s.path == "/token");
    let last_bearer = || server.seen().last().unwrap().authorization.clone();
    let nothing = json!({});
    let profile = || gmail.call("get_profile", &nothing);

    // The first call gets a token first.
    profile().await.unwrap();
    assert_eq!(tokens(), 1);
    let request = &server.seen()[0];
    let form: Vec<(String, String)> = serde_urlencoded::from_str(&request.body).unwrap();
    let form: std::collections::HashMap<_, _> = form.into_iter().collect();
    assert_eq!(form["grant_type"], "refresh_token");
    assert_eq!(form["client_id"], "client-1.apps.googleusercontent.com");
    assert_eq!(form["client_secret"], CLIENT_SECRET);
    assert_eq!(form["refresh_token"], REFRESH_TOKEN);
    assert_eq!(last_bearer().as_deref(), Some("Bearer ya29.issued-1"));

    // A living token is reused.
    profile().await.unwrap();
    assert_eq!(tokens(), 1);

    // A token Gmail no longer takes: one refresh, one more try.
    google.valid.lock().unwrap().clear();
    profile().await.unwrap();
    assert_eq!(tokens(), 2);
    assert_eq!(server.count(|s| s.path.ends_with("/profile")), 4);
    assert_eq!(last_bearer().as_deref(), Some("Bearer ya29.issued-2"));

    // A token with less than a minute left is refreshed before the call:
    // no request goes out with it.
    google.lifetime.store(30, Ordering::SeqCst);
    google.valid.lock().unwrap().clear();
    profile().await.unwrap(); // 401, then ya29.issued-3 (30 s left)
    assert_eq!(tokens(), 3);
    let before = server.count(|s| s.path.ends_with("/profile"));
    profile().await.unwrap();
    assert_eq!(tokens(), 4, "refreshed before it expired");
    assert_eq!(
        server.count(|s| s.path.ends_with("/profile")),
        before + 1,
        "no request with the old token"
    );
    assert_eq!(last_bearer().as_deref(), Some("Bearer ya29.issued-4"));

    // Gmail refusing every token: one refresh, one more try, then a
    // permanent failure that quotes no token. (First a token with an hour
    // left, so that only the 401 refreshes it.)
    google.lifetime.store(3599, Ordering::SeqCst);
    profile().await.unwrap();
    assert_eq!(tokens(), 5);
    google.lifetime.store(30, Ordering::SeqCst);
    *google.reject_all.lock().unwrap() = true;
    let (issued, calls) = (tokens(), server.count(|s| s.path.ends_with("/profile")));
    let error = profile().await.unwrap_err();
    assert_eq!(tokens(), issued + 1, "exactly one refresh");
    assert_eq!(server.count(|s| s.path.ends_with("/profile")), calls + 2);
    assert!(!error.is_retryable(), "{error}");
    assert!(error.message().contains("401"), "{error}");
    assert!(!error.message().contains("issued-"), "{error}");
    *google.reject_all.lock().unwrap() = false;

    // The token endpoint refusing (the token in hand has 30 s left, so it
    // is asked before the send): permanent, nothing sent to Gmail, and
    // neither the client secret nor the refresh token in the message.
    *google.refuse.lock().unwrap() = true;
    let sends = server.count(|s| s.path.ends_with("/messages/send"));
    let error = gmail
        .call(
            "send",
            &json!({"to": "a@example.com", "subject": "s", "body": "b"}),
        )
        .await
        .unwrap_err();
    assert!(!error.is_retryable(), "{error}");
    assert!(!error.may_have_had_effect(), "{error}");
    assert!(error.message().contains("invalid_grant"), "{error}");
    assert_eq!(
        server.count(|s| s.path.ends_with("/messages/send")),
        sends,
        "nothing sent"
    );
    let printed = format!("{error} {error:?} {config:?}");
    for secret in [
        CLIENT_SECRET,
        "refresh-test-secret",
        REFRESH_TOKEN,
        "refresh-test-token",
        "0refresh-test",
    ] {
        assert!(!printed.contains(secret), "{secret} in {printed}");
    }
    server.stop().await;
}
