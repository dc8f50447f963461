//! The status page: an incident's life with its timeline and a correction,
//! a maintenance window through its states, what the public sees (GraphQL
//! without any special header, `/status`, `/status/feed.atom`), the
//! `incidentUpdates` feed, and an incident that opens by itself when many
//! instances die at once.

use serde_json::{Value, json};

use crate::helpers::TestApp;

const PAGE: &str = "{ statusPage { status
  components { id name status ownStatus }
  groups { name status components { name } }
  activeIncidents { id title status }
  upcomingMaintenances { id status } } }";

const INCIDENT: &str = "query($i: ID!) { incident(id: $i, includeDrafts: true) {
  id title status impact publishedAt resolvedAt
  components { component { name } status }
  updates { number status message author corrections { previousMessage reason author }
            componentChanges { component { name } status } }
  summary { durationMs peakImpact text editedBy publishedAt } } }";

const POST: &str = "mutation($i: ID!, $m: String!, $s: IncidentStatus, $c: [ComponentStatusInput!]! = []) {
  postIncidentUpdate(input: { incidentId: $i, message: $m, status: $s, components: $c }) { id status } }";

pub(crate) async fn component(app: &TestApp, name: &str, group: Option<&str>) -> String {
    let data = app
        .gql(
            "mutation($n: String!, $g: String) { createComponent(input: { name: $n, group: $g, serviceKinds: [APPLICATION] }) { id status } }",
            json!({ "n": name, "g": group }),
        )
        .await;
    assert_eq!(data["createComponent"]["status"], "OPERATIONAL");
    data["createComponent"]["id"].as_str().unwrap().to_owned()
}

async fn open_incident(app: &TestApp, title: &str, component: &str, status: &str, publish: bool) -> String {
    let data = app
        .gql(
            "mutation($t: String!, $c: ID!, $s: ComponentStatus!, $p: Boolean!) { createIncident(input: {
               title: $t, impact: MAJOR, message: \"We are investigating.\",
               components: [{ componentId: $c, status: $s }], publish: $p }) { id status } }",
            json!({ "t": title, "c": component, "s": status, "p": publish }),
        )
        .await;
    assert_eq!(data["createIncident"]["status"], "INVESTIGATING");
    data["createIncident"]["id"].as_str().unwrap().to_owned()
}

async fn page(app: &TestApp) -> Value {
    app.gql(PAGE, json!({})).await["statusPage"].clone()
}

async fn incident(app: &TestApp, id: &str) -> Value {
    app.gql(INCIDENT, json!({ "i": id })).await["incident"].clone()
}

pub(crate) async fn get(app: &TestApp, path: &str) -> (u16, String, String) {
    let response = app.client.get(format!("{}{path}", app.address)).send().await.unwrap();
    let status = response.status().as_u16();
    let kind = response.headers()["content-type"].to_str().unwrap().to_owned();
    (status, kind, response.text().await.unwrap())
}

pub(crate) fn statuses(incident: &Value) -> Vec<&str> {
    incident["updates"].as_array().unwrap().iter().map(|u| u["status"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn an_incident_lives_through_its_updates_a_correction_and_its_resolution() {
    let app = TestApp::spawn().await;
    let api = component(&app, "API", Some("Platform")).await;
    let logs = component(&app, "Logs", Some("Platform")).await;
    let inc = open_incident(&app, "Elevated API errors", &api, "DOWN", true).await;

    let shown = page(&app).await;
    assert_eq!(shown["status"], "DOWN");
    assert_eq!(
        shown["components"][0],
        json!({ "id": api, "name": "API", "status": "DOWN", "ownStatus": "OPERATIONAL" })
    );
    assert_eq!(
        shown["activeIncidents"],
        json!([{ "id": inc, "title": "Elevated API errors", "status": "INVESTIGATING" }])
    );

    let vars = |m: &str, s: Option<&str>, c: Value| json!({ "i": inc, "m": m, "s": s, "c": c });
    app.gql(POST, vars("A load balancer node fails.", Some("IDENTIFIED"), json!([]))).await;
    let degraded =
        json!([{ "componentId": api, "status": "DEGRADED" }, { "componentId": logs, "status": "DEGRADED" }]);
    app.gql(POST, vars("Recovery at 30%.", Some("MONITORING"), degraded)).await;
    app.gql(POST, vars("Recovery at 80%.", None, json!([]))).await;
    app.assert_error(
        POST,
        vars("Again?", Some("INVESTIGATING"), json!([])),
        "INVALID_TRANSITION",
        "cannot go back",
    )
    .await;
    let twice = json!([{ "componentId": api, "status": "DOWN" }, { "componentId": api, "status": "DOWN" }]);
    app.assert_error(POST, vars("x", None, twice), "BAD_USER_INPUT", "given twice").await;
    app.assert_error(POST, vars("  ", None, json!([])), "BAD_USER_INPUT", "message").await;
    let shown = page(&app).await;
    assert_eq!(
        (shown["components"][0]["status"].clone(), shown["components"][1]["status"].clone()),
        (json!("DEGRADED"), json!("DEGRADED"))
    );

    let correct = "mutation($i: ID!, $n: Int!, $m: String!) { correctIncidentUpdate(input: {
        incidentId: $i, number: $n, message: $m, reason: \"wrong figure\" }) { number message corrections { previousMessage reason author } } }";
    let corrected = app.gql(correct, json!({ "i": inc, "n": 3, "m": "Recovery at 40%." })).await;
    assert_eq!(
        corrected["correctIncidentUpdate"],
        json!({ "number": 3, "message": "Recovery at 40%.",
                "corrections": [{ "previousMessage": "Recovery at 30%.", "reason": "wrong figure", "author": "owner" }] })
    );
    app.assert_error(correct, json!({ "i": inc, "n": 9, "m": "x" }), "NOT_FOUND", "9").await;

    let resolve = "mutation($i: ID!) { resolveIncident(input: { incidentId: $i, message: \"All is well.\" }) { status resolvedAt } }";
    let resolved = app.gql(resolve, json!({ "i": inc })).await;
    assert_eq!(resolved["resolveIncident"]["status"], "RESOLVED");
    app.assert_error(resolve, json!({ "i": inc }), "INVALID_TRANSITION", "resolved").await;
    // A correction is still possible after resolution, and is recorded too.
    app.gql(correct, json!({ "i": inc, "n": 1, "m": "We are investigating API errors." })).await;

    let full = incident(&app, &inc).await;
    assert_eq!(statuses(&full), ["INVESTIGATING", "IDENTIFIED", "MONITORING", "MONITORING", "RESOLVED"]);
    let messages: Vec<&str> =
        full["updates"].as_array().unwrap().iter().map(|u| u["message"].as_str().unwrap()).collect();
    assert_eq!(messages[0], "We are investigating API errors.");
    assert_eq!(full["updates"][0]["corrections"][0]["previousMessage"], "We are investigating.");
    assert_eq!(
        full["updates"][2]["componentChanges"],
        json!([
        { "component": { "name": "API" }, "status": "DEGRADED" }, { "component": { "name": "Logs" }, "status": "DEGRADED" }])
    );
    assert_eq!(full["components"][0]["status"], "OPERATIONAL", "resolving gives the components back");
    let summary = &full["summary"];
    assert!(summary["durationMs"].as_i64().unwrap() >= 0);
    assert_eq!(summary["peakImpact"], "components down");
    assert!(summary["text"].as_str().unwrap().starts_with("Elevated API errors."), "{summary}");

    let shown = page(&app).await;
    assert_eq!(shown["status"], "OPERATIONAL");
    assert_eq!(shown["activeIncidents"], json!([]));
    let history = app
        .gql("query($c: ID!) { node(id: $c) { ... on Component { history(first: 10) { nodes { from to incident { id } } } } } }", json!({ "c": api }))
        .await;
    assert_eq!(
        history["node"]["history"]["nodes"],
        json!([{ "from": "DEGRADED", "to": "OPERATIONAL", "incident": { "id": inc } },
               { "from": "DOWN", "to": "DEGRADED", "incident": { "id": inc } },
               { "from": "OPERATIONAL", "to": "DOWN", "incident": { "id": inc } }])
    );
    app.stop().await;
}

#[tokio::test]
async fn bad_input_writes_nothing() {
    let app = TestApp::spawn().await;
    let api = component(&app, "API", None).await;
    app.assert_error(
        "mutation { createComponent(input: { name: \"API\" }) { id } }",
        json!({}),
        "CONFLICT",
        "already exists",
    )
    .await;
    let create = "mutation($t: String!, $c: ID!) { createIncident(input: { title: $t, message: \"m\", components: [{ componentId: $c, status: DOWN }] }) { id } }";
    app.assert_error(create, json!({ "t": "", "c": api }), "BAD_USER_INPUT", "title").await;
    app.assert_error(create, json!({ "t": "t", "c": "cmp_99" }), "NOT_FOUND", "cmp_99").await;
    app.assert_error(create, json!({ "t": "t", "c": "svc_1" }), "BAD_USER_INPUT", "not a Component id").await;
    let list = app.gql("{ incidents(includeDrafts: true) { nodes { id } } }", json!({})).await;
    assert_eq!(list["incidents"]["nodes"], json!([]));
    assert_eq!(page(&app).await["components"][0]["status"], "OPERATIONAL");
    let set = "mutation($c: ID!) { setComponentStatus(input: { componentId: $c, status: DOWN }) { status ownStatus } }";
    assert_eq!(
        app.gql(set, json!({ "c": api })).await["setComponentStatus"],
        json!({ "status": "DOWN", "ownStatus": "DOWN" })
    );
    app.stop().await;
}

#[tokio::test]
async fn a_maintenance_window_moves_through_its_states() {
    let app = TestApp::spawn().await;
    let db = component(&app, "Databases", None).await;
    let now = chrono::Utc::now();
    let schedule = "mutation($c: ID!, $s: DateTime!, $e: DateTime!) { scheduleMaintenance(input: {
        title: \"Database upgrades\", description: \"Each database restarts once.\", components: [$c],
        startsAt: $s, endsAt: $e }) { id status components { name } updates { number status message } } }";
    let at = |h: i64| (now + chrono::Duration::hours(h)).to_rfc3339();
    app.assert_error(
        schedule,
        json!({ "c": db, "s": at(2), "e": at(1) }),
        "BAD_USER_INPUT",
        "after startsAt",
    )
    .await;
    app.assert_error(
        schedule,
        json!({ "c": db, "s": at(-3), "e": at(-2) }),
        "BAD_USER_INPUT",
        "already over",
    )
    .await;
    let window =
        app.gql(schedule, json!({ "c": db, "s": at(1), "e": at(3) })).await["scheduleMaintenance"].clone();
    assert_eq!(window["status"], "SCHEDULED");
    assert_eq!(window["components"], json!([{ "name": "Databases" }]));
    assert_eq!(
        window["updates"],
        json!([{ "number": 1, "status": "SCHEDULED", "message": "Each database restarts once." }])
    );
    let id = window["id"].as_str().unwrap();
    assert_eq!(page(&app).await["upcomingMaintenances"], json!([{ "id": id, "status": "SCHEDULED" }]));

    let post = "mutation($w: ID!, $m: String!, $s: MaintenanceStatus) { postMaintenanceUpdate(input: {
        maintenanceId: $w, message: $m, status: $s }) { status startedAt finishedAt } }";
    app.assert_error(
        post,
        json!({ "w": id, "m": "done", "s": "COMPLETED" }),
        "INVALID_TRANSITION",
        "SCHEDULED",
    )
    .await;
    let started = app.gql(post, json!({ "w": id, "m": "Started.", "s": "IN_PROGRESS" })).await;
    assert!(started["postMaintenanceUpdate"]["startedAt"].is_string());
    app.gql(post, json!({ "w": id, "m": "Half of the databases are done.", "s": null })).await;
    let done = app.gql(post, json!({ "w": id, "m": "All done.", "s": "COMPLETED" })).await;
    assert_eq!(done["postMaintenanceUpdate"]["status"], "COMPLETED");
    assert!(done["postMaintenanceUpdate"]["finishedAt"].is_string());
    app.assert_error(post, json!({ "w": id, "m": "again", "s": null }), "INVALID_TRANSITION", "COMPLETED")
        .await;

    let read = app
        .gql(
            "query($w: ID!) { maintenance(id: $w) { status updates { status message } } }",
            json!({ "w": id }),
        )
        .await;
    let states: Vec<&str> = read["maintenance"]["updates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["status"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["SCHEDULED", "IN_PROGRESS", "IN_PROGRESS", "COMPLETED"]);
    assert_eq!(page(&app).await["upcomingMaintenances"], json!([]));
    let listed = app.gql("{ maintenances(statuses: [COMPLETED]) { nodes { id } } }", json!({})).await;
    assert_eq!(listed["maintenances"]["nodes"], json!([{ "id": id }]));
    app.stop().await;
}

#[tokio::test]
async fn the_public_page_shows_nothing_that_was_not_published() {
    let app = TestApp::spawn().await;
    let api = component(&app, "API", None).await;
    let draft = open_incident(&app, "Secret trouble in acme-billing", &api, "DOWN", false).await;
    let public_feed = "subscription { incidentUpdates { cursor kind incident { id } message } }";
    let mut feed = app.subscribe(public_feed, json!({})).await;

    let shown = page(&app).await;
    assert_eq!(
        (shown["status"].clone(), shown["activeIncidents"].clone()),
        (json!("OPERATIONAL"), json!([]))
    );
    assert_eq!(app.gql("{ incidents { nodes { id } } }", json!({})).await["incidents"]["nodes"], json!([]));
    let one = app
        .gql("query($i: ID!) { incident(id: $i) { id } node(id: $i) { id } }", json!({ "i": draft }))
        .await;
    assert_eq!(one, json!({ "incident": null, "node": null }));
    for path in ["/status", "/status/feed.atom"] {
        let (code, _, body) = get(&app, path).await;
        assert_eq!(code, 200);
        assert!(!body.contains("acme-billing") && !body.contains(&draft), "{path} leaks the draft: {body}");
    }
    let drafts = app.gql("{ incidents(includeDrafts: true) { nodes { id publishedAt } } }", json!({})).await;
    assert_eq!(drafts["incidents"]["nodes"], json!([{ "id": draft, "publishedAt": null }]));

    // Once published, it shows everywhere, with its timeline, and the
    // public feed says so (the draft's own events stay out of it).
    app.gql("mutation($i: ID!) { publishIncident(input: { incidentId: $i }) { id } }", json!({ "i": draft }))
        .await;
    let event = feed.next().await.unwrap()["incidentUpdates"].clone();
    assert_eq!(event["kind"], "INCIDENT_PUBLISHED");
    assert_eq!(event["incident"]["id"], draft);
    let next = feed.next().await.unwrap()["incidentUpdates"].clone();
    assert_eq!(next["kind"], "COMPONENT_CHANGED");
    assert_eq!(page(&app).await["components"][0]["status"], "DOWN");
    let (_, kind, html) = get(&app, "/status").await;
    assert!(kind.starts_with("text/html"));
    assert!(
        html.contains("Secret trouble in acme-billing") && html.contains("We are investigating."),
        "{html}"
    );
    app.assert_error(
        "mutation($i: ID!) { publishIncident(input: { incidentId: $i }) { id } }",
        json!({ "i": draft }),
        "INVALID_TRANSITION",
        "already published",
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn incident_updates_replay_then_stream_live_and_resume_after_a_cursor() {
    let app = TestApp::spawn().await;
    let api = component(&app, "API", None).await;
    let inc = open_incident(&app, "Slow deploys", &api, "DEGRADED", true).await;
    let query = "subscription($a: String) { incidentUpdates(after: $a) { cursor kind updateNumber message status incident { id } component { name } } }";
    let mut sub = app.subscribe(query, json!({ "a": null })).await;
    let opened = sub.next().await.unwrap()["incidentUpdates"].clone();
    assert_eq!(
        (opened["kind"].clone(), opened["updateNumber"].clone()),
        (json!("INCIDENT_OPENED"), json!(1))
    );
    let changed = sub.next().await.unwrap()["incidentUpdates"].clone();
    assert_eq!(
        (changed["kind"].clone(), changed["status"].clone()),
        (json!("COMPONENT_CHANGED"), json!("DEGRADED"))
    );
    assert_eq!(changed["component"]["name"], "API");

    app.gql(POST, json!({ "i": inc, "m": "Builders are back.", "s": "MONITORING", "c": [] })).await;
    let live = sub.next().await.unwrap()["incidentUpdates"].clone();
    assert_eq!(live["kind"], "INCIDENT_UPDATED");
    assert_eq!(
        (live["message"].clone(), live["status"].clone()),
        (json!("Builders are back."), json!("MONITORING"))
    );

    // Resuming after the first event replays the rest, nothing twice.
    let mut resumed = app.subscribe(query, json!({ "a": opened["cursor"] })).await;
    let first = resumed.next().await.unwrap()["incidentUpdates"].clone();
    assert_eq!(first["cursor"], changed["cursor"]);
    assert_eq!(resumed.next().await.unwrap()["incidentUpdates"]["cursor"], live["cursor"]);
    app.stop().await;
}

#[tokio::test]
async fn the_atom_feed_is_well_formed_xml_with_an_entry_per_published_incident_and_window() {
    let app = TestApp::spawn().await;
    let api = component(&app, "API & <Edge>", None).await;
    let shown = open_incident(&app, "Errors on \"eu\" <edge>", &api, "DOWN", true).await;
    open_incident(&app, "Hidden draft", &api, "DOWN", false).await;
    let resolve = "mutation($i: ID!) { resolveIncident(input: { incidentId: $i }) { id } }";
    app.gql(resolve, json!({ "i": shown })).await;
    let now = chrono::Utc::now();
    let window = app
        .gql(
            "mutation($s: DateTime!, $e: DateTime!) { scheduleMaintenance(input: { title: \"Kernel patch\", startsAt: $s, endsAt: $e }) { id } }",
            json!({ "s": (now + chrono::Duration::hours(1)).to_rfc3339(), "e": (now + chrono::Duration::hours(2)).to_rfc3339() }),
        )
        .await["scheduleMaintenance"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let (code, kind, body) = get(&app, "/status/feed.atom").await;
    assert_eq!(code, 200);
    assert!(kind.starts_with("application/atom+xml"), "{kind}");
    let doc =
        roxmltree::Document::parse(&body).unwrap_or_else(|e| panic!("not well-formed XML ({e}): {body}"));
    let feed = doc.root_element();
    assert_eq!(feed.tag_name().name(), "feed");
    assert_eq!(feed.tag_name().namespace(), Some("http://www.w3.org/2005/Atom"));
    let child = |node: roxmltree::Node, name: &str| {
        node.children()
            .find(|c| c.tag_name().name() == name)
            .and_then(|c| c.text())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(child(feed, "id"), "urn:opsgraph:status");
    chrono::DateTime::parse_from_rfc3339(&child(feed, "updated")).expect("feed updated is RFC 3339");
    let entries: Vec<_> = feed.children().filter(|c| c.tag_name().name() == "entry").collect();
    let mut ids: Vec<String> = entries.iter().map(|e| child(*e, "id")).collect();
    ids.sort();
    assert_eq!(ids, [format!("urn:opsgraph:incident:{shown}"), format!("urn:opsgraph:maintenance:{window}")]);
    let incident = *entries.iter().find(|e| child(**e, "id").contains("incident")).unwrap();
    assert_eq!(child(incident, "title"), "[Resolved] Errors on \"eu\" <edge>");
    chrono::DateTime::parse_from_rfc3339(&child(incident, "updated")).expect("entry updated is RFC 3339");
    let content = child(incident, "content");
    assert!(
        content.contains("This incident has been resolved.") && content.contains("We are investigating."),
        "{content}"
    );
    assert!(!body.contains("Hidden draft"));

    let (_, _, html) = get(&app, "/status").await;
    assert!(html.contains("API &amp; &lt;Edge&gt;") && !html.contains("<Edge>"), "the page escapes names");
    assert!(html.contains("name=\"viewport\""), "readable on a phone");
    app.stop().await;
}

#[tokio::test]
async fn the_status_page_and_its_feed_survive_a_restart() {
    let app = TestApp::spawn().await;
    let api = component(&app, "API", None).await;
    let inc = open_incident(&app, "Slow API", &api, "DEGRADED", true).await;
    let dir = app.dir.clone();
    app.stop().await;

    let app = TestApp::spawn_in(dir).await;
    let shown = page(&app).await;
    assert_eq!(shown["status"], "DEGRADED");
    assert_eq!(shown["activeIncidents"][0]["id"], inc);
    let query = "subscription { incidentUpdates { kind incident { id } } }";
    let mut feed = app.subscribe(query, json!({})).await;
    let first = feed.next().await.unwrap()["incidentUpdates"].clone();
    assert_eq!(first, json!({ "kind": "INCIDENT_OPENED", "incident": { "id": inc } }));
    app.stop().await;
}
