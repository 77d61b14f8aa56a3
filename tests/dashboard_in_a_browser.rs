//! The web dashboard in a real headless Chromium, driven through
//! chromedriver (WebDriver), against a real `neonhub serve` with a token:
//! it asks for the token and keeps it in session storage only, lists the
//! runs, filters them (the rows change, the URL reproduces the view), opens
//! a run with its steps, timeline and events, shows run inputs as text,
//! a run submitted through the API appears without a reload, and the report
//! and health pages show the figures. A second scenario opens a step and
//! sees its whole correlation (`GET /v1/runs/{id}/tree`) and the report's
//! chart (`GET /v1/reports/timeline`); a third cancels a run and resolves a
//! step in doubt from their pages.
//!
//! Needs `chromium` and `chromedriver` (Debian's `chromium` and
//! `chromium-driver`, installed by `tests/install-tools`); without them the tests
//! fail saying so.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use neonhub_test_support::http::TestServer;
use neonhub_test_support::service::ServeProcess;
use neonhub_test_support::twilio::live_twilio;
use neonhub_test_support::{tools, wait_until_within};
use serde_json::{Value, json};

const TOKEN: &str = "tok-dash-7c41e9";
/// How long one thing may take to show in the browser.
const SHOW: Duration = Duration::from_secs(20);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// chromedriver on a free port, killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    async fn start() -> Driver {
        let exe = tools::required(
            "NEONHUB_CHROMEDRIVER",
            "chromedriver",
            Some("/usr/bin/chromedriver"),
        );
        let port = free_port();
        let child = Command::new(exe)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let http = reqwest::Client::new();
        let status = format!("{}/status", driver.url);
        wait_until_within("chromedriver to listen", SHOW, || async {
            http.get(&status)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await;
        driver
    }

    /// A new headless Chromium session with a fresh profile in `profile`.
    async fn browser(&self, profile: &Path) -> Client {
        let chromium = tools::required("NEONHUB_CHROMIUM", "chromium", Some("/usr/bin/chromium"));
        let options = json!({
            "binary": chromium,
            "args": [
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--window-size=1400,1000",
                format!("--user-data-dir={}", profile.display()),
            ],
        });
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("goog:chromeOptions".to_owned(), options);
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .expect("a WebDriver session with headless Chromium")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The API of the served `neonhub`, with the token.
struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    async fn submit(&self, body: Value, wait: bool) -> Value {
        let response = self
            .http
            .post(format!("{}/v1/runs?wait={wait}", self.base))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());
        response.json().await.unwrap()
    }

    async fn get(&self, path: &str) -> Value {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.json().await.unwrap()
    }

    /// The run ids of `GET /v1/runs?query`, sorted.
    async fn ids(&self, query: &str) -> Vec<String> {
        self.page(&format!("limit=200&{query}")).await.0
    }

    /// The run ids (sorted) and the next cursor of `GET /v1/runs?query`.
    async fn page(&self, query: &str) -> (Vec<String>, Option<String>) {
        let page = self.get(&format!("/v1/runs?{query}")).await;
        let mut ids: Vec<String> = page["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["run_id"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        (ids, page["next_cursor"].as_str().map(str::to_owned))
    }
}

/// Runs `script` in the page; `null` if it failed (the page was changing).
async fn eval(browser: &Client, script: &str) -> Value {
    browser
        .execute(script, Vec::new())
        .await
        .unwrap_or(Value::Null)
}

/// Polls `script` until it answers something other than `null`; that answer.
async fn wait_for_script(browser: &Client, what: &str, script: &str) -> Value {
    let mut answer = Value::Null;
    let shown = tokio::time::timeout(SHOW, async {
        loop {
            answer = eval(browser, script).await;
            if !answer.is_null() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(shown.is_ok(), "timed out waiting for {what}");
    answer
}

/// The run ids of the rows of the runs table, sorted.
async fn shown_ids(browser: &Client) -> Vec<String> {
    let ids = eval(
        browser,
        "return [...document.querySelectorAll('#runs-body tr[data-run-id]')]\
         .map(tr => tr.dataset.runId)",
    )
    .await;
    let mut ids: Vec<String> = ids
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

/// Waits until the runs table shows exactly `want` (sorted).
async fn wait_for_rows(browser: &Client, what: &str, want: &[String]) {
    let mut last = Vec::new();
    let result = tokio::time::timeout(SHOW, async {
        loop {
            last = shown_ids(browser).await;
            if last == want {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(
        result.is_ok(),
        "{what}: the table shows {last:?}, expected {want:?}"
    );
}

/// Loads the dashboard at `base/hash` and gives the token when asked.
async fn open_with_token(browser: &Client, base: &str, hash: &str) {
    browser.goto(&format!("{base}/{hash}")).await.unwrap();
    let input = browser
        .wait()
        .at_most(SHOW)
        .for_element(Locator::Css("#token-dialog[open] #token-input"))
        .await
        .expect("the dashboard asks for the token");
    input.send_keys(TOKEN).await.unwrap();
    click(browser, "#token-submit").await;
}

/// Clicks the element `css` finds.
/// Types `text` into the field `css` once it is shown (`what` names it).
/// The page redraws when an event of its run arrives, but never under a
/// focused field: a field found just before a redraw is stale, so it is
/// found again and typed into whole.
async fn type_into(browser: &Client, css: &str, what: &str, text: &str) {
    let typed = tokio::time::timeout(SHOW, async {
        loop {
            let field = browser
                .wait()
                .at_most(SHOW)
                .for_element(Locator::Css(css))
                .await
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            match field.send_keys(text).await {
                Ok(()) => return,
                Err(e) if e.is_stale_element_reference() => continue,
                Err(e) => panic!("typing into {css}: {e}"),
            }
        }
    })
    .await;
    assert!(typed.is_ok(), "{css} kept being redrawn: {what}");
}

async fn click(browser: &Client, css: &str) {
    browser
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"))
        .click()
        .await
        .unwrap();
}

/// `serve` with a token, chromedriver, and a browser session, with some
/// runs: an email (a gmail step), two sms (a twilio step; one to an invalid
/// number fails) and an echo.
struct Scene {
    serve: ServeProcess,
    api: Api,
    driver: Driver,
    browser: Client,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
    email: Value,
}

impl Scene {
    async fn start() -> Scene {
        let data = tempfile::tempdir().unwrap();
        let profile = tempfile::tempdir().unwrap();
        let serve = ServeProcess::spawn(data.path(), &["--token", TOKEN]);
        let api = Api {
            http: reqwest::Client::new(),
            base: serve.base.clone(),
        };
        let email = api
            .submit(
                json!({"agent": "email", "input": {"to": "a@example.com", "topic": "spring"}}),
                true,
            )
            .await;
        assert_eq!(email["status"], "succeeded", "{email}");
        for body in [
            json!({"agent": "sms", "input": {"to": "+15550100", "topic": "the sale"}}),
            json!({"agent": "sms", "input": {"to": "not a number", "topic": "x"}}),
            json!({"agent": "echo", "input": {"note": "<img src=x onerror=alert(1)>"}}),
        ] {
            api.submit(body, true).await;
        }
        let driver = Driver::start().await;
        let browser = driver.browser(profile.path()).await;
        Scene {
            serve,
            api,
            driver,
            browser,
            _dirs: (data, profile),
            email,
        }
    }

    /// Loads the dashboard and gives the token when asked.
    async fn open_with_token(&self, hash: &str) {
        open_with_token(&self.browser, &self.serve.base, hash).await;
    }

    async fn finish(self) {
        self.browser.close().await.unwrap();
        drop(self.driver);
        let (code, _) = self.serve.terminate();
        assert_eq!(code, Some(0));
    }
}

#[actix_rt::test]
async fn the_dashboard_lists_filters_opens_and_follows_runs() {
    let scene = Scene::start().await;
    let base = scene.serve.base.clone();
    let http = reqwest::Client::new();

    // The page and its files need no token and are locked down; the API does.
    let page = http.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'self'"), "{csp}");
    let etag = page.headers()["etag"].to_str().unwrap().to_owned();
    let again = http
        .get(format!("{base}/"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    let script = http
        .get(format!("{base}/assets/app.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(script.status(), 200);
    assert!(
        script.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    for (path, status) in [("/assets/nothing.js", 404), ("/v1/runs", 401)] {
        let response = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(response.status(), status, "{path}");
    }

    // It asks for the token, keeps it in session storage only, lists every run.
    scene.open_with_token("").await;
    let all = scene.api.ids("").await;
    wait_for_rows(&scene.browser, "every run", &all).await;
    wait_until_within("the projection's lag in the header", SHOW, || async {
        let lag = eval(
            &scene.browser,
            "return document.getElementById('lag').textContent",
        )
        .await;
        lag.as_str().is_some_and(|l| l.starts_with("lag: 0 events"))
    })
    .await;
    let storage = eval(
        &scene.browser,
        "return {session: sessionStorage.getItem('neonhub.token'), \
         local: localStorage.length, url: location.href}",
    )
    .await;
    assert_eq!(storage["session"], TOKEN, "{storage}");
    assert_eq!(storage["local"], 0, "{storage}");
    assert!(!storage["url"].as_str().unwrap().contains(TOKEN));

    // A run's input is shown as text, never as markup.
    let markup = eval(
        &scene.browser,
        "return {imgs: document.querySelectorAll('main img').length, \
         text: document.getElementById('runs-body').textContent}",
    )
    .await;
    assert_eq!(markup["imgs"], 0, "{markup}");
    assert!(
        markup["text"].as_str().unwrap().contains("<img src=x"),
        "{markup}"
    );

    // Three a page: the next page is the one `next_cursor` names.
    scene
        .browser
        .goto(&format!("{base}/#/runs?limit=3"))
        .await
        .unwrap();
    let (first, cursor) = scene.api.page("limit=3").await;
    wait_for_rows(&scene.browser, "the first page of 3", &first).await;
    click(&scene.browser, "#next-page").await;
    let cursor = cursor.expect("more than 3 runs");
    let (second, _) = scene.api.page(&format!("limit=3&cursor={cursor}")).await;
    assert_eq!(second.len(), 3, "{second:?}");
    wait_for_rows(&scene.browser, "the second page of 3", &second).await;

    // Filter by kind, then by status: the rows change to what the API says.
    let kind = scene
        .browser
        .find(Locator::Css("#filter-kind"))
        .await
        .unwrap();
    kind.select_by_value("connector").await.unwrap();
    let connectors = scene.api.ids("kind=connector").await;
    assert!(
        !connectors.is_empty() && connectors.len() < all.len(),
        "{connectors:?}"
    );
    wait_for_rows(&scene.browser, "kind=connector", &connectors).await;
    let status = scene
        .browser
        .find(Locator::Css("#filter-status"))
        .await
        .unwrap();
    status.select_by_value("failed").await.unwrap();
    let failed = scene.api.ids("kind=connector&status=failed").await;
    assert!(
        !failed.is_empty() && failed.len() < connectors.len(),
        "{failed:?}"
    );
    wait_for_rows(&scene.browser, "kind=connector&status=failed", &failed).await;
    // The URL holds the filters: loading it again shows the same rows.
    let url = scene.browser.current_url().await.unwrap();
    let fragment = url.fragment().unwrap_or_default().to_owned();
    assert!(
        fragment.contains("kind=connector") && fragment.contains("status=failed"),
        "{url}"
    );
    scene.browser.refresh().await.unwrap();
    wait_for_rows(&scene.browser, "the same URL reloaded", &failed).await;

    // Open the email run: its steps, a bar per attempt, its events.
    scene
        .browser
        .find(Locator::Css("#clear-filters"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_rows(&scene.browser, "the filters cleared", &all).await;
    let email_id = scene.email["run_id"].as_str().unwrap().to_owned();
    scene
        .browser
        .find(Locator::Css(&format!(
            "#runs-body tr[data-run-id='{email_id}'] a[href^='#/run/']"
        )))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let detail = scene.api.get(&format!("/v1/runs/{email_id}")).await;
    let children: Vec<String> = detail["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["run_id"].as_str().unwrap().to_owned())
        .collect();
    assert!(!children.is_empty(), "{detail}");
    let script = "if (document.querySelector('#main').dataset.loaded !== 'run') return null; \
        return {tree: [...document.querySelectorAll('#tree li[data-run-id]')].map(li => li.dataset.runId), \
        bars: document.querySelectorAll('#timeline rect.bar').length, \
        events: [...document.querySelectorAll('#events-table tr[data-type]')].map(tr => tr.dataset.type), \
        id: document.getElementById('run-id').textContent}";
    let shown = wait_for_script(&scene.browser, "the run page", script).await;
    assert_eq!(shown["id"], email_id.as_str(), "{shown}");
    let tree: Vec<&str> = shown["tree"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(tree.contains(&email_id.as_str()), "{shown}");
    for child in &children {
        assert!(tree.contains(&child.as_str()), "step {child}: {shown}");
    }
    assert!(
        shown["bars"].as_u64().unwrap() >= tree.len() as u64,
        "a bar per attempt: {shown}"
    );
    let events = shown["events"].as_array().unwrap();
    assert_eq!(
        events.first().and_then(Value::as_str),
        Some("run.started.v1"),
        "{shown}"
    );
    assert_eq!(
        events.last().and_then(Value::as_str),
        Some("run.succeeded.v1"),
        "{shown}"
    );

    // Back to the list: a run submitted through the API appears live.
    scene
        .browser
        .find(Locator::Css("#nav-runs"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_rows(&scene.browser, "the runs again", &all).await;
    eval(&scene.browser, "window.notReloaded = true; return true").await;
    let live = scene
        .api
        .submit(json!({"agent": "echo", "input": {"live": true}}), false)
        .await;
    let live_id = live["run_id"].as_str().unwrap().to_owned();
    let selector = format!("#runs-body tr[data-run-id='{live_id}']");
    wait_until_within("the new run's row", SHOW, || async {
        scene.browser.find(Locator::Css(&selector)).await.is_ok()
    })
    .await;
    let kept = eval(&scene.browser, "return window.notReloaded === true").await;
    assert_eq!(kept, Value::Bool(true), "the page was reloaded");

    // The report per agent and connector, and the health page.
    scene
        .browser
        .find(Locator::Css("#nav-report"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let report = wait_for_script(
        &scene.browser,
        "the report table",
        "const row = document.querySelector('#report-table tr[data-target=\"sms\"][data-kind=\"agent\"]'); \
         return row ? [...row.cells].map(c => c.textContent) : null",
    )
    .await;
    // Two sms runs, one failed: 50 %.
    assert_eq!(report[2], "2", "{report}");
    assert_eq!(report[6], "50.0 %", "{report}");
    scene
        .browser
        .find(Locator::Css("#nav-health"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let health = wait_for_script(
        &scene.browser,
        "the health page",
        "const gmail = document.querySelector('#connectors-table tr[data-connector=\"gmail\"]'); \
         const lag = document.getElementById('projection-lag'); \
         return gmail && lag ? {breaker: gmail.dataset.breaker, lag: lag.textContent} : null",
    )
    .await;
    assert_eq!(health["breaker"], "closed", "{health}");
    assert_eq!(health["lag"], "0 events", "{health}");
    scene.finish().await;
}

/// Needs `GET /v1/runs/{id}/tree` and `GET /v1/reports/timeline` (the
/// `reporting` branch): without them the page shows only the step and its
/// own steps, and the report no chart.
#[actix_rt::test]
async fn a_step_shows_its_whole_correlation_and_the_report_a_chart() {
    let scene = Scene::start().await;
    let email_id = scene.email["run_id"].as_str().unwrap().to_owned();
    let detail = scene.api.get(&format!("/v1/runs/{email_id}")).await;
    let step = detail["children"][0]["run_id"].as_str().unwrap().to_owned();
    scene.open_with_token(&format!("#/run/{step}")).await;
    let script = "if (document.querySelector('#main').dataset.loaded !== 'run') return null; \
        const tree = document.getElementById('tree'); \
        return {source: tree.dataset.source, \
        runs: [...tree.querySelectorAll('li[data-run-id]')].map(li => li.dataset.runId)}";
    let shown = wait_for_script(&scene.browser, "the step's page", script).await;
    assert_eq!(
        shown["source"], "tree",
        "the page fell back to the step alone: the server has no GET /v1/runs/{{id}}/tree ({shown})"
    );
    let runs = shown["runs"].as_array().unwrap();
    assert_eq!(
        runs.first().and_then(Value::as_str),
        Some(email_id.as_str()),
        "the root first: {shown}"
    );
    assert!(runs.iter().any(|r| r == step.as_str()), "{shown}");

    // The report's chart: a bar for the hour of these runs.
    scene
        .browser
        .find(Locator::Css("#nav-report"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let chart = wait_for_script(
        &scene.browser,
        "the timeline chart",
        "const chart = document.getElementById('chart'); \
         if (!chart || (!chart.querySelector('svg') && /Loading/.test(chart.textContent))) return null; \
         return {text: chart.textContent, \
         runs: [...chart.querySelectorAll('g.bucket')].reduce((n, g) => n + Number(g.dataset.runs), 0)}",
    )
    .await;
    let all = scene.api.ids("").await;
    assert_eq!(
        chart["runs"].as_u64(),
        Some(all.len() as u64),
        "the chart counts every run: {chart}"
    );
    scene.finish().await;
}

/// The operator's actions from a run's page, against live Twilio pointed at
/// a local server (the first send is answered late and cut off on the wire;
/// the second gets a 500 and its run ends in doubt):
/// the cancel button ends a running run `cancelled` with the reason typed,
/// and "It was sent" on the step in doubt resumes its run, which succeeds
/// without sending again.
#[actix_rt::test]
async fn an_operator_cancels_a_run_and_resolves_a_step_from_its_page() {
    let vendor = TestServer::start_delaying({
        let sends = std::sync::atomic::AtomicUsize::new(0);
        move |request| {
            if request.method == "GET" {
                return (200, json!({"messages": []}).to_string(), Duration::ZERO);
            }
            match sends.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
                // Under the connector's 10 s timeout: still on the wire
                // while the page is opened and the button clicked.
                0 => (
                    201,
                    json!({"sid": "SM1", "status": "queued"}).to_string(),
                    Duration::from_secs(8),
                ),
                1 => (500, "{}".to_owned(), Duration::ZERO),
                _ => (
                    201,
                    json!({"sid": "SM2", "status": "queued"}).to_string(),
                    Duration::ZERO,
                ),
            }
        }
    });
    let posts = || vendor.count(|request| request.method == "POST");
    let data = tempfile::tempdir().unwrap();
    let profile = tempfile::tempdir().unwrap();
    let serve = ServeProcess::spawn_with(
        data.path(),
        &["--token", TOKEN],
        live_twilio(&vendor.base_url),
    );
    let api = Api {
        http: reqwest::Client::new(),
        base: serve.base.clone(),
    };
    let driver = Driver::start().await;
    let browser = driver.browser(profile.path()).await;

    // Cancel a run whose SMS is on the wire, from its page.
    let running = api
        .submit(
            json!({"agent": "sms", "input": {"to": "+15550001111", "topic": "cancel me"}}),
            false,
        )
        .await;
    let running_id = running["run_id"].as_str().unwrap().to_owned();
    wait_until_within("the SMS to reach Twilio", SHOW, || {
        let hits = posts();
        async move { hits == 1 }
    })
    .await;
    open_with_token(&browser, &serve.base, &format!("#/run/{running_id}")).await;
    type_into(
        &browser,
        "#cancel-reason",
        "a cancel button on a running run's page",
        "wrong number",
    )
    .await;
    click(&browser, "#cancel-run").await;
    browser.accept_alert().await.expect("asked to confirm");
    let summary = wait_for_script(
        &browser,
        "the page to show the run cancelled",
        "const s = document.getElementById('run-summary'); \
         return s && /cancelled/.test(s.textContent) ? s.textContent : null",
    )
    .await;
    assert!(
        summary.as_str().unwrap().contains("wrong number"),
        "{summary}"
    );
    let run = api.get(&format!("/v1/runs/{running_id}")).await;
    assert_eq!(run["error"]["kind"], "cancelled", "{run}");

    // A send answered with a 500 ends in doubt; settle it from the page.
    let doubt = api
        .submit(
            json!({"agent": "sms", "input": {"to": "+15550001111", "topic": "did it go?"}}),
            true,
        )
        .await;
    assert_eq!(doubt["error"]["kind"], "in_doubt", "{doubt}");
    assert_eq!(posts(), 2);
    let doubt_id = doubt["run_id"].as_str().unwrap().to_owned();
    browser
        .goto(&format!("{}/#/run/{doubt_id}", serve.base))
        .await
        .unwrap();
    type_into(
        &browser,
        "#tree .resolve .decided-by",
        "a resolve form on the step in doubt",
        "dana",
    )
    .await;
    click(&browser, "#tree .resolve .resolve-sent").await;
    wait_for_script(
        &browser,
        "the page to show the run succeeded",
        "const s = document.querySelector('#run-summary .status'); \
         return s && s.textContent === 'succeeded' ? true : null",
    )
    .await;
    let run = api.get(&format!("/v1/runs/{doubt_id}")).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(posts(), 2, "the SMS was sent again");
    let step = run["children"][0]["run_id"].as_str().unwrap().to_owned();
    let events = api.get(&format!("/v1/runs/{step}/events")).await;
    let decided = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "step.resolved.v1")
        .unwrap_or_else(|| panic!("no decision recorded: {events}"));
    assert_eq!(decided["data"]["decided_by"], "dana", "{decided}");
    assert_eq!(decided["data"]["outcome"], "sent", "{decided}");

    browser.close().await.unwrap();
    drop(driver);
    let (code, _) = serve.terminate();
    assert_eq!(code, Some(0));
}

/// A page left for another gives its event feed's connection back. The
/// browser keeps at most six connections to one server, and kept the feeds
/// of pages it had left (in its back/forward cache): the sixth load of the
/// dashboard in one tab found no connection for its API calls and hung for
/// about a minute.
#[actix_rt::test]
async fn leaving_the_dashboard_again_and_again_never_hangs_it() {
    let scene = Scene::start().await;
    scene.open_with_token("#/runs").await;
    let want = scene.api.ids("").await;
    wait_for_rows(&scene.browser, "the runs", &want).await;
    for load in 1..=8 {
        scene.browser.goto("about:blank").await.unwrap();
        scene
            .browser
            .goto(&format!("{}/#/runs", scene.serve.base))
            .await
            .unwrap();
        wait_for_rows(&scene.browser, &format!("the runs, load {load}"), &want).await;
    }
    scene.finish().await;
}
