//! The console and GraphiQL in a real browser: headless Chromium, driven
//! over the DevTools protocol (`cdp.rs`), against a real server seeded with
//! the demo. What a person would do and see: open the console with a
//! token, deploy and watch the log and the status, lose the connection and
//! get every line once, cancel, download the report, use it from the
//! keyboard and on a phone; and GraphiQL, offline, with the token in its
//! headers. Screenshots of every page land in
//! `<target dir>/browser-screenshots/`.

use std::path::PathBuf;

use serde_json::{Value, json};

use crate::cdp::Browser;
use crate::helpers::TestApp;

/// The token the browser signs in with: the owner token the server
/// printed on its first start.
fn console_token(app: &TestApp) -> String {
    app.token.clone()
}

/// Where the screenshots go: `<target dir>/browser-screenshots/`.
fn screenshots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().join("browser-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Clicks the element `selector` finds (optionally the one whose text
/// contains `text`), as a pointer would.
fn click(selector: &str, text: Option<&str>) -> String {
    let text = serde_json::to_string(&text).unwrap();
    let selector = serde_json::to_string(selector).unwrap();
    format!(
        "(() => {{ const t = {text}; const el = [...document.querySelectorAll({selector})]\
         .find((e) => t === null || e.textContent.includes(t)); if (!el) return false; el.click(); return true; }})()"
    )
}

/// The `data-seq` of every log line shown, in order.
const SHOWN_SEQS: &str =
    "[...document.querySelectorAll('#log [data-seq]')].map((e) => Number(e.dataset.seq))";
const STATUS: &str = "document.querySelector('#operation-status [data-status]')?.dataset.status";

#[tokio::test]
async fn the_console_deploys_follows_the_log_cancels_and_downloads_the_report_in_a_real_browser() {
    let app = TestApp::spawn_demo().await;
    let token = console_token(&app);
    let shots = screenshots();
    let downloads = tempfile::tempdir().unwrap();
    let mut browser = Browser::launch(downloads.path()).await;
    let base = app.address.clone();

    // GraphiQL, with the token from the address in its headers.
    browser.goto(&format!("{base}/?token={token}")).await;
    browser.wait_until("GraphiQL to start", "document.querySelector('.graphiql-execute-button')").await;
    assert_eq!(browser.eval("location.search").await, "", "the token left the address");
    assert_eq!(browser.eval("localStorage.getItem('opsgraph.token')").await, token.as_str());
    let headers = browser.wait_until("the headers editor", "document.querySelector('.graphiql-editor-tool .graphiql-editor:not(.hidden)')?.innerText || [...document.querySelectorAll('.graphiql-editor')].map(e => e.innerText).join('\\n')").await;
    assert!(headers.as_str().unwrap().contains(&format!("Bearer {token}")), "headers: {headers}");
    browser.eval(&click(".graphiql-execute-button", None)).await;
    browser
        .wait_until(
            "the query's answer",
            "document.querySelector('.result-window')?.innerText.includes('production')",
        )
        .await;
    // A subscription from GraphiQL goes over the WebSocket with the token.
    let subscription = "subscription { operationLogs(operationId: \"op_1\") { lastSeq lines { text } } }";
    browser
        .eval(&format!(
            "document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror.setValue({})",
            serde_json::to_string(subscription).unwrap()
        ))
        .await;
    browser.eval(&click(".graphiql-execute-button", None)).await;
    browser
        .wait_until(
            "the subscription's log lines",
            "document.querySelector('.result-window .CodeMirror')?.CodeMirror.getValue().includes('finished: DEPLOYMENT_OK')",
        )
        .await;
    browser.screenshot(&shots.join("01-graphiql.png")).await;

    // The console: the environments with their dots and labels.
    browser.goto(&format!("{base}/console?token={token}")).await;
    browser
        .wait_until("the environments", "document.querySelectorAll('[data-environment]').length === 2")
        .await;
    assert_eq!(browser.eval("location.search").await, "", "the token left the address");
    let production = browser
        .eval("document.querySelector('[data-environment] h2').textContent + ' ' + document.querySelector('[data-environment] [data-running]').dataset.running")
        .await;
    assert_eq!(production, "production RUNNING");
    browser
        .wait_until("the live connection", "document.getElementById('connection').dataset.state === 'live'")
        .await;
    browser.screenshot(&shots.join("02-environments.png")).await;

    // An environment: services, instances, and the demo's history.
    browser.eval(&click("[data-environment] h2 a", Some("production"))).await;
    browser
        .wait_until("the timeline", "document.querySelectorAll('.timeline [data-operation]').length >= 5")
        .await;
    let outcomes = browser
        .eval("[...document.querySelectorAll('.timeline [data-outcome]')].map((e) => e.dataset.outcome)")
        .await;
    for outcome in ["SUCCEEDED", "FAILED", "CANCELLED"] {
        assert!(outcomes.as_array().unwrap().contains(&json!(outcome)), "{outcome} in {outcomes}");
    }
    let text = browser.eval("document.querySelector('.timeline').innerText").await;
    assert!(text.as_str().unwrap().contains("platform (UNREACHABLE)"), "{text}");
    let web_instances = browser.eval("document.querySelectorAll('[data-service] h3').length").await;
    assert_eq!(web_instances, 3, "web, api and worker");
    browser.screenshot(&shots.join("03-environment.png")).await;

    // Deploy a commit to web from its card and watch it.
    let web = service_id(&app, "production", "web").await;
    browser.eval(&format!("document.getElementById('commit-{web}').focus()")).await;
    browser.type_text("9d3b1f0").await;
    browser.eval(&click(&format!("#deploy-{web}"), None)).await;
    let deploy = browser
        .wait_until("the operation page", "location.hash.match(/^#\\/operations\\/(op_\\d+)$/)?.[1]")
        .await;
    let deploy = deploy.as_str().unwrap().to_owned();
    browser
        .wait_until(
            "the build's lines",
            "document.getElementById('log').innerText.includes('compiling module 1 of 4')",
        )
        .await;
    browser.wait_until("DEPLOYMENT_OK", &format!("{STATUS} === 'DEPLOYMENT_OK'")).await;
    browser
        .wait_until("the complete log", "document.getElementById('log').dataset.complete === 'true'")
        .await;
    let log = browser.eval("document.getElementById('log').innerText").await;
    for line in ["building web at 9d3b1f0", "48 tests passed", "finished: DEPLOYMENT_OK"] {
        assert!(log.as_str().unwrap().contains(line), "`{line}` in the log:\n{log}");
    }
    assert_every_line_once(&mut browser, &app, &deploy).await;
    let steps = browser
        .eval("[...document.querySelectorAll('[data-step-status]')].map((e) => e.dataset.stepStatus)")
        .await;
    assert!(steps.as_array().unwrap().iter().all(|s| s == "SUCCEEDED"), "{steps}");
    browser.screenshot(&shots.join("04-operation-deployed.png")).await;

    // A long build on api: lose the connection mid-log, then cancel it.
    let api = service_id(&app, "production", "api").await;
    let slow = "i=1; while [ $i -le 300 ]; do echo \"compiling unit $i\"; sleep 0.1; i=$((i+1)); done";
    app.gql(
        "mutation($s: ID!, $b: String!) { updateService(input: { serviceId: $s, buildCommand: $b }) { id } }",
        json!({ "s": api, "b": slow }),
    )
    .await;
    browser.goto(&format!("{base}/console#/environments/{}", env_id(&app, "production").await)).await;
    browser.wait_until("the services", &format!("document.getElementById('redeploy-{api}')")).await;
    browser.eval(&click(&format!("#redeploy-{api}"), None)).await;
    let cancelled = browser
        .wait_until("the operation page", "location.hash.match(/^#\\/operations\\/(op_\\d+)$/)?.[1]")
        .await;
    let cancelled = cancelled.as_str().unwrap().to_owned();
    browser
        .wait_until(
            "the first units",
            "document.getElementById('log').innerText.includes('compiling unit 3')",
        )
        .await;
    let before = browser.eval(&format!("{SHOWN_SEQS}.length")).await.as_u64().unwrap();
    browser.eval("Console.socket.drop()").await;
    browser
        .wait_until("a reconnect", "Console.socket.connects >= 2 && Console.socket.state === 'live'")
        .await;
    browser.wait_until("lines after the reconnect", &format!("{SHOWN_SEQS}.length >= {} ", before + 5)).await;
    assert_eq!(browser.eval(STATUS).await, "BUILDING");
    browser.eval(&click("#cancel", None)).await;
    browser.wait_until("CANCELLED", &format!("{STATUS} === 'CANCELLED'")).await;
    browser
        .wait_until("the complete log", "document.getElementById('log').dataset.complete === 'true'")
        .await;
    assert_every_line_once(&mut browser, &app, &cancelled).await;
    let log = browser.eval("document.getElementById('log').innerText").await;
    let log = log.as_str().unwrap();
    assert!(log.contains("cancel requested by") && !log.contains("forced"), "a plain cancel:\n{log}");
    assert_eq!(app.operation(&cancelled).await["status"], "CANCELLED");
    browser.screenshot(&shots.join("05-operation-cancelled.png")).await;

    // The activity report of the period, downloaded as CSV.
    browser.eval(&click(".crumbs a", Some("production"))).await;
    browser
        .wait_until("the report link", "document.getElementById('report-csv')?.getAttribute('href')")
        .await;
    browser.eval(&click("#report-csv", None)).await;
    let done = browser
        .wait_event("the CSV download", |e| {
            e["method"] == "Browser.downloadProgress" && e["params"]["state"] == "completed"
        })
        .await;
    let file = std::fs::read_dir(downloads.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "csv"))
        .unwrap_or_else(|| panic!("no CSV among the downloads ({done})"));
    let csv = std::fs::read_to_string(&file).unwrap();
    let rows: Vec<Vec<&str>> =
        csv.split("\r\n").filter(|l| !l.is_empty()).map(|l| l.split(',').collect()).collect();
    assert_eq!(rows[0][..3], ["operation_id", "queued_at", "started_at"], "{csv}");
    let status_of = |op: &str| rows.iter().find(|r| r[0] == op).map(|r| r[7].to_owned());
    assert_eq!(status_of(&deploy).as_deref(), Some("DEPLOYMENT_OK"), "{csv}");
    assert_eq!(status_of(&cancelled).as_deref(), Some("CANCELLED"), "{csv}");
    assert!(rows.iter().any(|r| r[7] == "BUILDING_ERROR"), "{csv}");
    assert!(rows.iter().any(|r| r[11] == "UNREACHABLE"), "{csv}");
    let total = report_total(&app).await;
    assert_eq!(rows.len() as u64 - 1, total, "one row per operation of the period:\n{csv}");

    // The keyboard alone: Tab to web's Redeploy button, Enter.
    browser.eval("document.activeElement.blur(); window.scrollTo(0, 0)").await;
    let mut reached = false;
    for _ in 0..80 {
        browser.press("Tab", false).await;
        if browser.eval(&format!("document.activeElement.id === 'redeploy-{web}'")).await == true {
            reached = true;
            break;
        }
    }
    assert!(reached, "Tab reaches web's Redeploy button");
    let outline = browser.eval("getComputedStyle(document.activeElement).outlineStyle").await;
    assert_ne!(outline, "none", "the focused button shows its focus");
    browser.press("Enter", false).await;
    let redeploy = browser
        .wait_until("the redeploy's page", "location.hash.match(/^#\\/operations\\/(op_\\d+)$/)?.[1]")
        .await;
    browser.wait_until("DEPLOYMENT_OK", &format!("{STATUS} === 'DEPLOYMENT_OK'")).await;
    let op = app.operation(redeploy.as_str().unwrap()).await;
    assert_eq!((op["type"].as_str(), op["trigger"]["source"].as_str()), (Some("REDEPLOY"), Some("CONSOLE")));

    // The status page (another branch builds the server's side).
    browser.eval(&click("header nav a", Some("Status"))).await;
    if schema_has_status_page(&app).await {
        browser.wait_until("the status page", "document.querySelector('#status-page .status-item')").await;
    } else {
        let notice =
            browser.wait_until("the notice", "document.getElementById('status-missing')?.innerText").await;
        assert!(notice.as_str().unwrap().contains("does not serve a status page yet"), "{notice}");
    }
    browser.screenshot(&shots.join("06-status.png")).await;

    // A phone: one column, nothing wider than the screen.
    browser.viewport(390, 844, true).await;
    browser.goto(&format!("{base}/console#/environments/{}", env_id(&app, "production").await)).await;
    browser
        .wait_until("the timeline", "document.querySelectorAll('.timeline [data-operation]').length >= 5")
        .await;
    let overflow = browser.eval("document.documentElement.scrollWidth - window.innerWidth").await;
    assert!(overflow.as_i64().unwrap() <= 0, "the page is {overflow} px wider than the phone");
    browser.screenshot_up_to(&shots.join("07-phone-environment.png"), 1688.0).await;
    browser.goto(&format!("{base}/console#/operations/{deploy}")).await;
    browser.wait_until("the log", "document.getElementById('log').dataset.complete === 'true'").await;
    let overflow = browser.eval("document.documentElement.scrollWidth - window.innerWidth").await;
    assert!(overflow.as_i64().unwrap() <= 0, "the page is {overflow} px wider than the phone");
    browser.screenshot_up_to(&shots.join("08-phone-operation.png"), 1688.0).await;

    // What went over the wire: the token on every request and in every
    // connection_init, nothing from any other host, no error in the page.
    let events = std::mem::take(&mut browser.events);
    browser.close().await;
    assert_credentials_and_no_cdn(&events, &app, &token);
    let errors: Vec<_> = events.iter().filter(|e| e["method"] == "Runtime.exceptionThrown").collect();
    assert!(errors.is_empty(), "the page threw: {errors:#?}");
    app.stop().await;
}

/// The log shown is the stored log: every `seq` once, in order, none
/// missing (also across the dropped connection).
async fn assert_every_line_once(browser: &mut Browser, app: &TestApp, op: &str) {
    let shown: Vec<u64> = serde_json::from_value(browser.eval(SHOWN_SEQS).await).expect("a list of numbers");
    let ndjson = app
        .client
        .get(format!("{}/operations/{op}/logs?format=ndjson", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let stored: Vec<u64> = ndjson
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["seq"].as_u64().expect("a seq"))
        .collect();
    assert!(stored.len() > 5, "the log has lines: {ndjson}");
    assert_eq!(shown, stored, "the page shows each stored line once, in order");
}

fn assert_credentials_and_no_cdn(events: &[Value], app: &TestApp, token: &str) {
    let bearer = format!("Bearer {token}");
    let mut posts = 0;
    for event in events.iter().filter(|e| e["method"] == "Network.requestWillBeSent") {
        let request = &event["params"]["request"];
        let url = request["url"].as_str().unwrap();
        assert!(
            url.starts_with(&app.address)
                || url.starts_with("data:")
                || url.starts_with("blob:")
                || url == "about:blank",
            "the page loaded {url} from outside the server"
        );
        if url.ends_with("/graphql") && request["method"] == "POST" {
            posts += 1;
            let auth = request["headers"]
                .as_object()
                .unwrap()
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("authorization"));
            assert_eq!(auth.map(|(_, v)| v.as_str().unwrap()), Some(bearer.as_str()), "{request:#}");
        }
        if url.contains("/reports/") {
            let auth = request["headers"]
                .as_object()
                .unwrap()
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("authorization"));
            assert_eq!(auth.map(|(_, v)| v.as_str().unwrap()), Some(bearer.as_str()), "{request:#}");
        }
    }
    assert!(posts >= 5, "only {posts} GraphQL requests seen");
    let inits: Vec<Value> = events
        .iter()
        .filter(|e| e["method"] == "Network.webSocketFrameSent")
        .filter_map(|e| serde_json::from_str::<Value>(e["params"]["response"]["payloadData"].as_str()?).ok())
        .filter(|m| m["type"] == "connection_init")
        .collect();
    assert!(inits.len() >= 2, "a connection_init per connection, reconnects included: {inits:?}");
    for init in inits {
        assert_eq!(init["payload"]["authorization"], bearer.as_str(), "{init}");
    }
}

async fn env_id(app: &TestApp, name: &str) -> String {
    let data = app.gql("{ environments { nodes { id name } } }", json!({})).await;
    let env = data["environments"]["nodes"].as_array().unwrap().iter().find(|e| e["name"] == name).unwrap();
    env["id"].as_str().unwrap().to_owned()
}

async fn service_id(app: &TestApp, env: &str, name: &str) -> String {
    let env = env_id(app, env).await;
    let data = app
        .gql("query($e: ID!) { environment(id: $e) { services { nodes { id name } } } }", json!({ "e": env }))
        .await;
    let services = data["environment"]["services"]["nodes"].as_array().unwrap();
    services.iter().find(|s| s["name"] == name).unwrap()["id"].as_str().unwrap().to_owned()
}

/// How many operations the console's default period (the last 30 days to
/// tomorrow) holds in production, by the API.
async fn report_total(app: &TestApp) -> u64 {
    let env = env_id(app, "production").await;
    let today = chrono::Utc::now().date_naive();
    let day = |d: chrono::NaiveDate| format!("{d}T00:00:00Z");
    let data = app
        .gql(
            "query($e: ID!, $f: DateTime!, $t: DateTime!) { activityReport(environmentId: $e, from: $f, to: $t) { summary { total } } }",
            json!({ "e": env, "f": day(today - chrono::Days::new(30)), "t": day(today + chrono::Days::new(1)) }),
        )
        .await;
    data["activityReport"]["summary"]["total"].as_u64().unwrap()
}

async fn schema_has_status_page(app: &TestApp) -> bool {
    let data = app.gql("{ __type(name: \"Query\") { fields { name } } }", json!({})).await;
    data["__type"]["fields"].as_array().unwrap().iter().any(|f| f["name"] == "statusPage")
}
