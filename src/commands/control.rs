//! `neonhub runs cancel|resolve`: ask the running `neonhub serve`, which
//! executes the runs (and holds the embedded log), over its HTTP API.

use serde_json::{Value, json};

use super::print_json;
use crate::cli::{CancelArgs, ResolveArgs, ServerArgs};
use crate::error::{Error, Result};

pub(super) async fn cancel(args: CancelArgs) -> Result<()> {
    let body = json!({ "reason": args.reason });
    let run_id = args.run_id.to_string();
    let answer = post(&args.server, &["v1", "runs", &run_id, "cancel"], &body).await?;
    print_json(&answer);
    Ok(())
}

pub(super) async fn resolve(args: ResolveArgs) -> Result<()> {
    let outcome = if args.sent { "sent" } else { "not_sent" };
    let body = json!({ "outcome": outcome, "decided_by": args.by, "reason": args.reason });
    let run_id = args.run_id.to_string();
    let path = ["v1", "runs", &run_id, "steps", &args.step, "resolve"];
    print_json(&post(&args.server, &path, &body).await?);
    Ok(())
}

/// The URL of `segments` (each escaped as one path segment: a step key
/// such as `twilio.send_sms#1` keeps its `#`) on the server.
fn url(server: &str, segments: &[&str]) -> Result<reqwest::Url> {
    let bad = || {
        Error::Usage(format!(
            "--server {server:?} is not an http(s) base URL such as http://127.0.0.1:4000"
        ))
    };
    let mut url = reqwest::Url::parse(server).map_err(|_| bad())?;
    url.path_segments_mut()
        .map_err(|()| bad())?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

/// POSTs `body` to `segments` on the server; its answer, or its error message.
async fn post(server: &ServerArgs, segments: &[&str], body: &Value) -> Result<Value> {
    let url = url(&server.server, segments)?;
    let mut request = reqwest::Client::new().post(url).json(body);
    if let Some(token) = &server.token {
        request = request.bearer_auth(token.expose());
    }
    let response = request.send().await.map_err(|e| {
        Error::Usage(format!(
            "could not reach neonhub serve at {}: {}; is it running? (--server or NEONHUB_SERVER)",
            server.server,
            e.without_url()
        ))
    })?;
    let status = response.status();
    let answer: Value = response.json().await.unwrap_or(Value::Null);
    if status.is_success() {
        return Ok(answer);
    }
    let message = answer["error"]["message"]
        .as_str()
        .map_or_else(|| format!("the server answered {status}"), str::to_owned);
    Err(Error::Usage(message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_key_is_one_escaped_path_segment() {
        let built = url("http://127.0.0.1:4000/", &["v1", "a/b c#1", "resolve"]).unwrap();
        assert_eq!(
            built.as_str(),
            "http://127.0.0.1:4000/v1/a%2Fb%20c%231/resolve"
        );
        assert!(url("localhost:4000", &["v1"]).is_err());
    }
}
