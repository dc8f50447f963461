//! Who may do what: every root field of the schema run as every role, as a
//! worker and a monitoring token, with a revoked token and with none,
//! against the documented matrix (README, "Who may do what"); objects of
//! another organization read exactly as missing ones; every attempt is in
//! the audit log.

use std::collections::BTreeMap;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::helpers::TestApp;

/// Who a request comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Who {
    Owner,
    Admin,
    Developer,
    Viewer,
    Worker,
    Monitoring,
}

use Who::*;

const CALLERS: [Who; 6] = [Owner, Admin, Developer, Viewer, Worker, Monitoring];
const MEMBERS: &[Who] = &[Owner, Admin, Developer, Viewer];
const OPERATORS: &[Who] = &[Owner, Admin, Developer];
const ADMINS: &[Who] = &[Owner, Admin];
const APPENDERS: &[Who] = &[Owner, Admin, Developer, Worker];
const WORKERS: &[Who] = &[Worker];
const AGENTS: &[Who] = &[Monitoring];
/// A field anyone may call, token or not: its name must also be in
/// `opsgraph::graphql::guard::PUBLIC_FIELDS` (and its resolver call
/// `guard::public`): the status page's reads.
const PUBLIC: &[Who] = &CALLERS;

/// One root field: how to call it, and who may.
struct Row {
    root: &'static str,
    field: &'static str,
    document: &'static str,
    allowed: &'static [Who],
}

const fn row(
    root: &'static str,
    field: &'static str,
    document: &'static str,
    allowed: &'static [Who],
) -> Row {
    Row { root, field, document, allowed }
}

/// The matrix. Arguments name objects that exist (`$svc`, `$job`, …) where
/// the call is harmless, and ids that do not (`…_999999`) where it would
/// destroy what later rows need: an allowed caller then gets `NOT_FOUND`,
/// a refused one `FORBIDDEN` (the check comes before any lookup).
const ROWS: &[Row] = &[
    row("Query", "node", "query($svc: ID!) { node(id: $svc) { id } }", MEMBERS),
    row("Query", "recovery", "query { recovery { queued } }", MEMBERS),
    row("Query", "maintenanceCampaign", "query($mnt: ID!) { maintenanceCampaign(id: $mnt) { id } }", MEMBERS),
    row("Query", "maintenanceCampaigns", "query { maintenanceCampaigns { id } }", MEMBERS),
    row("Query", "viewer", "query { viewer { role member { name } } }", MEMBERS),
    row("Query", "environments", "query { environments { nodes { id } } }", MEMBERS),
    row("Query", "environment", "query($env: ID!) { environment(id: $env) { id } }", MEMBERS),
    row("Query", "service", "query($svc: ID!) { service(id: $svc) { id } }", MEMBERS),
    row("Query", "operation", "query($op: ID!) { operation(id: $op) { id } }", MEMBERS),
    row("Query", "activity", "query($svc: ID!) { activity(serviceId: $svc) { nodes { id } } }", MEMBERS),
    row(
        "Query",
        "activityReport",
        "query($env: ID!, $from: DateTime!, $to: DateTime!) { activityReport(environmentId: $env, from: $from, to: $to) { summary { total } } }",
        MEMBERS,
    ),
    row("Query", "operations", "query { operations { nodes { id } } }", MEMBERS),
    row("Query", "members", "query { members { nodes { id role } } }", MEMBERS),
    row("Query", "tokens", "query { tokens { nodes { id prefix } } }", MEMBERS),
    row("Query", "auditLog", "query { auditLog { nodes { seq } } }", ADMINS),
    row(
        "Mutation",
        "createEnvironment",
        "mutation($unique: String!) { createEnvironment(input: { name: $unique }) { id } }",
        ADMINS,
    ),
    row(
        "Mutation",
        "updateEnvironment",
        "mutation($env: ID!) { updateEnvironment(input: { environmentId: $env, logRetentionDays: 30 }) { id } }",
        ADMINS,
    ),
    row(
        "Mutation",
        "createService",
        "mutation($env: ID!, $unique: String!) { createService(input: { environmentId: $env, name: $unique, kind: JOB }) { id } }",
        ADMINS,
    ),
    row(
        "Mutation",
        "updateService",
        "mutation($job: ID!) { updateService(input: { serviceId: $job, stopGraceMs: 500 }) { id } }",
        ADMINS,
    ),
    row(
        "Mutation",
        "deploy",
        "mutation($job: ID!) { deploy(input: { serviceId: $job, commit: \"a1\" }) { id } }",
        OPERATORS,
    ),
    row(
        "Mutation",
        "redeploy",
        "mutation($job: ID!) { redeploy(input: { serviceId: $job }) { id } }",
        OPERATORS,
    ),
    row(
        "Mutation",
        "unpinCommit",
        "mutation($job: ID!) { unpinCommit(input: { serviceId: $job }) { id } }",
        OPERATORS,
    ),
    row(
        "Mutation",
        "restart",
        "mutation($job: ID!) { restart(input: { serviceId: $job }) { id } }",
        OPERATORS,
    ),
    row(
        "Mutation",
        "scale",
        "mutation($job: ID!) { scale(input: { serviceId: $job, instances: 1 }) { id } }",
        OPERATORS,
    ),
    row("Mutation", "stop", "mutation($job: ID!) { stop(input: { serviceId: $job }) { id } }", OPERATORS),
    row("Mutation", "start", "mutation($job: ID!) { start(input: { serviceId: $job }) { id } }", OPERATORS),
    row(
        "Mutation",
        "deleteService",
        "mutation { deleteService(input: { serviceId: \"svc_999999\" }) { id } }",
        ADMINS,
    ),
    row(
        "Mutation",
        "cancelOperation",
        "mutation($op: ID!) { cancelOperation(input: { operationId: $op }) { id } }",
        OPERATORS,
    ),
    row(
        "Mutation",
        "startMaintenance",
        "mutation($job: ID!) { startMaintenance(input: { serviceIds: [$job], description: \"matrix\", concurrency: 1 }) { id } }",
        ADMINS,
    ),
    row(
        "Mutation",
        "appendLogs",
        "mutation($queued: ID!) { appendLogs(operationId: $queued, lines: [\"from the matrix\"]) { lastSeq } }",
        APPENDERS,
    ),
    row(
        "Mutation",
        "createToken",
        "mutation($unique: String!) { createToken(input: { name: $unique }) { secret } }",
        MEMBERS,
    ),
    row(
        "Mutation",
        "revokeToken",
        "mutation { revokeToken(input: { tokenId: \"tok_999999\" }) { id } }",
        MEMBERS,
    ),
    row(
        "Mutation",
        "addMember",
        "mutation($unique: String!) { addMember(input: { name: $unique, role: VIEWER }) { id } }",
        ADMINS,
    ),
    row(
        "Mutation",
        "changeMemberRole",
        "mutation { changeMemberRole(input: { memberId: \"mem_999999\", role: VIEWER }) { id } }",
        ADMINS,
    ),
    row(
        "Mutation",
        "removeMember",
        "mutation { removeMember(input: { memberId: \"mem_999999\" }) { id } }",
        ADMINS,
    ),
    row("Query", "statusPage", "query { statusPage { status } }", PUBLIC),
    row("Query", "incidents", "query { incidents(first: 5) { nodes { id } } }", PUBLIC),
    row("Query", "incident", "query { incident(id: \"inc_999999\") { id } }", PUBLIC),
    row("Query", "maintenances", "query { maintenances(first: 5) { nodes { id } } }", PUBLIC),
    row("Query", "maintenance", "query { maintenance(id: \"mw_999999\") { id } }", PUBLIC),
    row(
        "Mutation",
        "createComponent",
        "mutation($unique: String!) { createComponent(input: { name: $unique }) { id } }",
        ADMINS,
    ),
    row(
        "Mutation",
        "setComponentStatus",
        "mutation { setComponentStatus(input: { componentId: \"cmp_999999\", status: DOWN }) { id } }",
        ADMINS,
    ),
    row(
        "Mutation",
        "createIncident",
        "mutation($unique: String!) { createIncident(input: { title: $unique, message: \"matrix\", publish: false }) { id } }",
        ADMINS,
    ),
    row(
        "Mutation",
        "postIncidentUpdate",
        "mutation { postIncidentUpdate(input: { incidentId: \"inc_999999\", message: \"matrix\" }) { id } }",
        ADMINS,
    ),
    row(
        "Mutation",
        "resolveIncident",
        "mutation { resolveIncident(input: { incidentId: \"inc_999999\", message: \"matrix\" }) { id } }",
        ADMINS,
    ),
    row(
        "Mutation",
        "correctIncidentUpdate",
        "mutation { correctIncidentUpdate(input: { incidentId: \"inc_999999\", number: 1, message: \"matrix\" }) { number } }",
        ADMINS,
    ),
    row(
        "Mutation",
        "publishIncident",
        "mutation { publishIncident(input: { incidentId: \"inc_999999\" }) { id } }",
        ADMINS,
    ),
    row(
        "Mutation",
        "editIncidentSummary",
        "mutation { editIncidentSummary(input: { incidentId: \"inc_999999\", text: \"matrix\" }) { id } }",
        ADMINS,
    ),
    row(
        "Mutation",
        "publishIncidentSummary",
        "mutation { publishIncidentSummary(input: { incidentId: \"inc_999999\" }) { id } }",
        ADMINS,
    ),
    row(
        "Mutation",
        "scheduleMaintenance",
        "mutation($unique: String!, $to: DateTime!, $later: DateTime!) { scheduleMaintenance(input: { title: $unique, startsAt: $to, endsAt: $later }) { id } }",
        ADMINS,
    ),
    row(
        "Mutation",
        "postMaintenanceUpdate",
        "mutation { postMaintenanceUpdate(input: { maintenanceId: \"mw_999999\", message: \"matrix\" }) { id } }",
        ADMINS,
    ),
    row(
        "Mutation",
        "claimOperation",
        "mutation { claimOperation(input: { pool: \"matrix\", workerId: \"matrix\" }) { id } }",
        WORKERS,
    ),
    row(
        "Mutation",
        "renewLease",
        "mutation { renewLease(input: { leaseId: \"lease_999999_1\" }) { id } }",
        WORKERS,
    ),
    row(
        "Mutation",
        "startStep",
        "mutation { startStep(input: { leaseId: \"lease_999999_1\", step: 0 }) { id } }",
        WORKERS,
    ),
    row(
        "Mutation",
        "finishStep",
        "mutation { finishStep(input: { leaseId: \"lease_999999_1\", step: 0, status: SUCCEEDED }) { id } }",
        WORKERS,
    ),
    row(
        "Mutation",
        "completeOperation",
        "mutation { completeOperation(input: { leaseId: \"lease_999999_1\", outcome: FAILED }) { id } }",
        WORKERS,
    ),
    row(
        "Subscription",
        "workerCommands",
        "subscription { workerCommands(workerId: \"matrix\") { kind } }",
        WORKERS,
    ),
    row(
        "Mutation",
        "reportInstances",
        "mutation { reportInstances(input: { serviceId: \"svc_999999\", instances: [] }) { action } }",
        AGENTS,
    ),
    row(
        "Mutation",
        "reportProbe",
        "mutation { reportProbe(input: { serviceId: \"svc_999999\", instance: \"i\", probe: TCP, ok: true }) { action } }",
        AGENTS,
    ),
    row("Subscription", "incidentUpdates", "subscription { incidentUpdates { cursor } }", PUBLIC),
    row(
        "Subscription",
        "operationEvents",
        "subscription($env: ID!) { operationEvents(environmentId: $env) { kind } }",
        MEMBERS,
    ),
    row(
        "Subscription",
        "statusChanges",
        "subscription($env: ID!) { statusChanges(environmentId: $env) { kind } }",
        MEMBERS,
    ),
    row("Subscription", "recoveryProgress", "subscription { recoveryProgress { queued } }", MEMBERS),
    row(
        "Subscription",
        "maintenanceProgress",
        "subscription($mnt: ID!) { maintenanceProgress(id: $mnt) { status } }",
        MEMBERS,
    ),
    row(
        "Subscription",
        "operationLogs",
        "subscription($op: ID!) { operationLogs(operationId: $op) { lastSeq } }",
        MEMBERS,
    ),
    row(
        "Subscription",
        "serviceLogs",
        "subscription($svc: ID!) { serviceLogs(serviceId: $svc) { lastSeq } }",
        MEMBERS,
    ),
];

/// Every root field the schema has, as `Root.field`.
fn schema_roots() -> Vec<String> {
    use async_graphql::parser::types::{TypeKind, TypeSystemDefinition};
    let document = async_graphql::parser::parse_schema(opsgraph::graphql::sdl()).expect("the SDL parses");
    let mut roots = Vec::new();
    for definition in document.definitions {
        let TypeSystemDefinition::Type(ty) = definition else { continue };
        let root = ty.node.name.node.to_string();
        let TypeKind::Object(object) = &ty.node.kind else { continue };
        if ["Query", "Mutation", "Subscription"].contains(&root.as_str()) {
            roots.extend(object.fields.iter().map(|f| format!("{root}.{}", f.node.name.node)));
        }
    }
    roots
}

#[test]
fn every_root_field_of_the_schema_has_a_row_in_the_access_matrix() {
    let rows: Vec<String> = ROWS.iter().map(|r| format!("{}.{}", r.root, r.field)).collect();
    let roots = schema_roots();
    let missing: Vec<&String> = roots.iter().filter(|f| !rows.contains(f)).collect();
    assert!(
        missing.is_empty(),
        "root fields without a row in tests/api/access.rs ROWS (classify them: guard(ctx, Action::…) in the \
         resolver, a row here, and the README's matrix): {missing:?}"
    );
    let stale: Vec<&String> = rows.iter().filter(|r| !roots.contains(r)).collect();
    assert!(stale.is_empty(), "rows for fields the schema does not have: {stale:?}");
    for row in ROWS {
        assert!(
            row.document.contains(&format!("{}(", row.field))
                || row.document.contains(&format!("{} {{", row.field))
        );
    }
    for row in ROWS {
        let listed = opsgraph::graphql::guard::PUBLIC_FIELDS.contains(&row.field);
        assert_eq!(
            listed,
            row.allowed == PUBLIC,
            "{}: rows allowed to PUBLIC and PUBLIC_FIELDS must agree",
            row.field
        );
    }
}

/// A server with a token per caller, a revoked token, and the objects the
/// rows name.
struct World {
    app: TestApp,
    tokens: BTreeMap<Who, String>,
    revoked: String,
    variables: Value,
}

impl World {
    async fn build() -> Self {
        let app = TestApp::spawn().await;
        let env = app.create_environment("production").await;
        let web = app
            .create_service(
                &env,
                json!({ "name": "web", "kind": "APPLICATION", "startCommand": "echo started; exec sleep 60",
                        "healthCheck": { "graceMs": 50 }, "stopGraceMs": 200 }),
            )
            .await;
        let done = app.deploy(&web, "c1").await;
        assert_eq!(app.wait_final(&done).await["status"], "DEPLOYMENT_OK");
        let job = app.create_service(&env, json!({ "name": "job", "kind": "JOB" })).await;
        let slow = app
            .create_service(&env, json!({ "name": "slow", "kind": "JOB", "buildCommand": "exec sleep 60" }))
            .await;
        app.deploy(&slow, "s1").await;
        let queued = app.deploy(&slow, "s2").await;
        let campaign = app
            .gql(
                "mutation($s: ID!) { startMaintenance(input: { serviceIds: [$s], description: \"seed\", concurrency: 1 }) { id } }",
                json!({ "s": job }),
            )
            .await["startMaintenance"]["id"]
            .clone();
        let mut tokens = BTreeMap::new();
        tokens.insert(Owner, app.token.clone());
        tokens.insert(Admin, app.token_for("ada", "ADMIN").await);
        tokens.insert(Developer, app.token_for("dev", "DEVELOPER").await);
        tokens.insert(Viewer, app.token_for("vera", "VIEWER").await);
        tokens.insert(Worker, app.agent_token("WORKER", "agent").await);
        tokens.insert(Monitoring, app.agent_token("MONITORING", "agent").await);
        let revoked = app.token_for("gone", "OWNER").await;
        let id = app.gql_as(&revoked, "{ viewer { tokenId } }", json!({})).await["viewer"]["tokenId"].clone();
        app.gql("mutation($t: ID!) { revokeToken(input: { tokenId: $t }) { id } }", json!({ "t": id })).await;
        let day = chrono::Duration::days(1);
        let now = chrono::Utc::now();
        let variables = json!({
            "env": env, "svc": web, "job": job, "op": done, "queued": queued, "mnt": campaign,
            "from": (now - day).to_rfc3339(), "to": (now + day).to_rfc3339(),
            "later": (now + day + day).to_rfc3339(), "unique": "anonymous",
        });
        Self { app, tokens, revoked, variables }
    }
}

/// The code of the first error of a response, or `None` when it has none.
fn code(body: &Value) -> Option<String> {
    body["errors"][0]["extensions"]["code"].as_str().map(str::to_owned)
}

/// POSTs `document` with `token` and `request_id`; the first error code.
async fn post(
    app: &TestApp,
    token: Option<&str>,
    document: &str,
    variables: &Value,
    request_id: &str,
) -> Value {
    let mut request =
        app.anonymous.post(format!("{}/graphql", app.address)).header("x-request-id", request_id);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.json(&json!({ "query": document, "variables": variables })).send().await.unwrap();
    assert_eq!(response.headers()["x-request-id"], request_id, "the reply carries the request id");
    response.json().await.unwrap()
}

/// What a subscription does for `token`: `Err(code)` of its first error,
/// or `Ok` once it sends data (or nothing within a short wait: errors of
/// the check come first, at once). A refused `connection_init` is
/// `Err("CLOSED 4403")`.
async fn subscribe(
    app: &TestApp,
    token: Option<&str>,
    document: &str,
    variables: &Value,
) -> Result<(), String> {
    let mut request = format!("ws://127.0.0.1:{}/graphql", app.port).into_client_request().unwrap();
    request.headers_mut().insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let payload = token.map_or(json!({}), |t| json!({ "authorization": format!("Bearer {t}") }));
    socket
        .send(Message::text(json!({ "type": "connection_init", "payload": payload }).to_string()))
        .await
        .unwrap();
    let subscribe =
        json!({ "id": "1", "type": "subscribe", "payload": { "query": document, "variables": variables } });
    socket.send(Message::text(subscribe.to_string())).await.unwrap();
    let outcome = tokio::time::timeout(std::time::Duration::from_secs(3), async {
        while let Some(message) = socket.next().await {
            match message {
                Ok(Message::Text(text)) => {
                    let message: Value = serde_json::from_str(&text).unwrap();
                    match message["type"].as_str() {
                        Some("next") => return code(&message["payload"]).map_or(Ok(()), Err),
                        Some("complete") => return Ok(()),
                        _ => {}
                    }
                }
                Ok(Message::Close(Some(frame))) => return Err(format!("CLOSED {}", u16::from(frame.code))),
                Ok(_) => {}
                Err(e) => return Err(format!("socket error {e}")),
            }
        }
        Err("closed without a frame".to_owned())
    })
    .await;
    outcome.unwrap_or(Ok(()))
}

#[tokio::test]
async fn every_root_field_answers_each_caller_as_the_matrix_says_and_every_attempt_is_audited() {
    let world = World::build().await;
    let app = &world.app;
    let mut failures = Vec::new();
    let mut attempts = Vec::new();
    for (n, row) in ROWS.iter().enumerate() {
        for who in CALLERS {
            let mut variables = world.variables.clone();
            variables["unique"] = json!(format!("m{n}-{who:?}").to_lowercase());
            let token = Some(world.tokens[&who].as_str());
            let expected_allowed = row.allowed.contains(&who);
            let got = if row.root == "Subscription" {
                subscribe(app, token, row.document, &variables).await.err()
            } else {
                let request_id = format!("matrix-{}-{who:?}", row.field);
                let body = post(app, token, row.document, &variables, &request_id).await;
                if row.root == "Mutation" {
                    attempts.push((request_id, row.field, expected_allowed));
                }
                code(&body)
            };
            let refused = matches!(got.as_deref(), Some("FORBIDDEN" | "UNAUTHENTICATED"));
            if expected_allowed == refused || (!expected_allowed && got.as_deref() != Some("FORBIDDEN")) {
                failures.push(format!("{}.{} as {who:?}: got {got:?}", row.root, row.field));
            }
        }
        // No token, and a revoked token: refused before anything else.
        for (label, token) in [("no token", None), ("a revoked token", Some(world.revoked.as_str()))] {
            let got = if row.root == "Subscription" {
                subscribe(app, token, row.document, &world.variables).await.err()
            } else {
                code(&post(app, token, row.document, &world.variables, "anonymous").await)
            };
            let public = opsgraph::graphql::guard::PUBLIC_FIELDS.contains(&row.field);
            let expected = if row.root == "Subscription" { "CLOSED 4403" } else { "UNAUTHENTICATED" };
            // A public query answers anyone (a subscription still needs an
            // acknowledged connection).
            if public && row.root != "Subscription" {
                if matches!(got.as_deref(), Some("FORBIDDEN" | "UNAUTHENTICATED")) {
                    failures.push(format!("public {}.{} with {label}: got {got:?}", row.root, row.field));
                }
            } else if got.as_deref() != Some(expected) {
                failures.push(format!("{}.{} with {label}: got {got:?}", row.root, row.field));
            }
        }
    }
    assert!(failures.is_empty(), "answers that differ from the matrix:\n{}", failures.join("\n"));

    // Every authenticated mutation attempt is on record, once, with its
    // outcome; unauthenticated ones have no organization to be recorded in.
    let records = audit_log(app).await;
    let by_request: BTreeMap<&str, Vec<&Value>> = records.iter().fold(BTreeMap::new(), |mut map, r| {
        map.entry(r["requestId"].as_str().unwrap()).or_default().push(r);
        map
    });
    for (request_id, field, allowed) in &attempts {
        let found = by_request.get(request_id.as_str()).cloned().unwrap_or_default();
        assert_eq!(found.len(), 1, "{request_id}: one audit record, got {found:#?}");
        let record = found[0];
        assert_eq!(record["action"], *field, "{record:#}");
        if !allowed {
            assert_eq!(record["outcome"], "FORBIDDEN", "{record:#}");
        }
    }
    assert!(!by_request.contains_key("anonymous"), "unauthenticated attempts are not attributed to anyone");
    world.app.stop().await;
}

/// Every audit record, newest first, read page by page as the owner.
pub async fn audit_log(app: &TestApp) -> Vec<Value> {
    let mut records = Vec::new();
    let mut after = Value::Null;
    loop {
        let data = app
            .gql(
                "query($after: String) { auditLog(first: 100, after: $after) { nodes { seq at actor member { name } tokenName action target outcome succeeded requestId } pageInfo { hasNextPage endCursor } } }",
                json!({ "after": after }),
            )
            .await;
        let log = &data["auditLog"];
        records.extend(log["nodes"].as_array().unwrap().iter().cloned());
        if log["pageInfo"]["hasNextPage"] != true {
            return records;
        }
        after = log["pageInfo"]["endCursor"].clone();
    }
}

#[tokio::test]
async fn another_organizations_objects_read_exactly_as_missing_ones() {
    let app = TestApp::spawn().await;
    let env = app.create_environment("production").await;
    let svc = app.create_service(&env, json!({ "name": "api", "kind": "JOB" })).await;
    let op = app.deploy(&svc, "c1").await;
    app.wait_final(&op).await;
    let dir = app.dir.clone();
    app.stop().await;
    // A second organization and its owner, from the command line's code.
    let db = dir.path().join("opsgraph.redb");
    let org = opsgraph::app::create_organization_offline(&db, "acme").await.unwrap();
    let args = opsgraph::config::TokenCreateArgs {
        db: db.clone(),
        org: org.to_string(),
        role: Some("OWNER".into()),
        kind: "PERSONAL".into(),
        name: "acme owner".into(),
        expires_in_days: None,
    };
    let other = opsgraph::app::create_token_offline(args).await.unwrap();
    let app = TestApp::spawn_in(dir).await;

    let viewer = app.gql_as(&other, "{ viewer { organization { id name } role } }", json!({})).await;
    assert_eq!(
        viewer["viewer"],
        json!({ "organization": { "id": org.to_string(), "name": "acme" }, "role": "OWNER" })
    );
    // Lookups answer null, as for an id nobody has.
    for (query, id) in [
        ("query($id: ID!) { node(id: $id) { id } }", &svc),
        ("query($id: ID!) { node(id: $id) { id } }", &op),
        ("query($id: ID!) { service(id: $id) { id } }", &svc),
        ("query($id: ID!) { environment(id: $id) { id } }", &env),
        ("query($id: ID!) { operation(id: $id) { id } }", &op),
    ] {
        let theirs = app.post_as(Some(&other), query, json!({ "id": id })).await;
        let missing_id = format!("{}_999999", id.split('_').next().unwrap());
        let missing = app.post_as(Some(&other), query, json!({ "id": missing_id })).await;
        assert_eq!(theirs, missing, "{query} {id}");
        assert!(theirs.get("errors").is_none(), "{theirs}");
    }
    // Connections leave them out.
    let lists = app
        .gql_as(
            &other,
            "{ environments { nodes { id } } operations { nodes { id } } members { nodes { name } } }",
            json!({}),
        )
        .await;
    assert_eq!(lists["environments"]["nodes"], json!([]));
    assert_eq!(lists["operations"]["nodes"], json!([]));
    assert_eq!(lists["members"]["nodes"], json!([{ "name": "owner" }]));
    // Acting on them is NOT_FOUND, with the message a missing id gets.
    let deploy = "mutation($s: ID!) { deploy(input: { serviceId: $s, commit: \"x\" }) { id } }";
    let theirs = app.post_as(Some(&other), deploy, json!({ "s": svc })).await;
    assert_eq!(code(&theirs).as_deref(), Some("NOT_FOUND"), "{theirs}");
    assert_eq!(theirs["errors"][0]["message"], format!("Service {svc} not found"));
    let activity = "query($s: ID!) { activity(serviceId: $s) { nodes { id } } }";
    let theirs = app.post_as(Some(&other), activity, json!({ "s": svc })).await;
    let missing = app.post_as(Some(&other), activity, json!({ "s": "svc_999999" })).await;
    assert_eq!(theirs, missing);
    assert_eq!(theirs["data"]["activity"]["nodes"], json!([]), "{theirs}");
    let sub = subscribe(
        &app,
        Some(&other),
        "subscription($op: ID!) { operationLogs(operationId: $op) { lastSeq } }",
        &json!({ "op": op }),
    )
    .await;
    assert_eq!(sub, Err("NOT_FOUND".to_owned()));
    // Downloads too: 404 for theirs, as for a missing one.
    let download = |path: String| {
        let client = app.anonymous.clone();
        let other = other.clone();
        async move { client.get(path).bearer_auth(other).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(download(format!("{}/operations/{op}/logs", app.address)).await, 404);
    assert_eq!(download(format!("{}/services/{svc}/logs", app.address)).await, 404);
    let report = format!(
        "{}/reports/activity.csv?environment={env}&from=2020-01-01T00:00:00Z&to=2100-01-01T00:00:00Z",
        app.address
    );
    assert_eq!(download(report.clone()).await, 404);
    // The first organization's owner still sees everything.
    assert_eq!(app.operation(&op).await["status"], "DEPLOYMENT_OK");
    assert_eq!(app.client.get(report).send().await.unwrap().status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn downloads_need_a_token_and_the_audit_csv_needs_an_admin() {
    let app = TestApp::spawn().await;
    let env = app.create_environment("production").await;
    let svc = app.create_service(&env, json!({ "name": "api", "kind": "JOB" })).await;
    let op = app.deploy(&svc, "c1").await;
    app.wait_final(&op).await;
    let viewer = app.token_for("vera", "VIEWER").await;
    let status = |path: String, token: Option<String>| {
        let client = app.anonymous.clone();
        async move {
            let mut request = client.get(path);
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.text().await.unwrap())
        }
    };
    let logs = format!("{}/operations/{op}/logs", app.address);
    let (code, body) = status(logs.clone(), None).await;
    assert_eq!(code, 401);
    assert!(body.contains("UNAUTHENTICATED"), "{body}");
    assert_eq!(status(logs, Some(viewer.clone())).await.0, 200);
    let audit = format!("{}/reports/audit.csv", app.address);
    assert_eq!(status(audit.clone(), None).await.0, 401);
    let (code, body) = status(audit.clone(), Some(viewer)).await;
    assert_eq!((code, body.contains("FORBIDDEN")), (403, true), "{body}");
    let (code, csv) = status(audit, Some(app.token.clone())).await;
    assert_eq!(code, 200);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "id,at,actor,member_id,token_id,action,target,outcome,request_id");
    let deploy = lines.iter().find(|l| l.contains(",deploy,")).expect("the deploy is in the CSV");
    assert!(deploy.contains(&format!(",{op},SUCCEEDED,")), "{deploy}");
    assert!(deploy.contains("owner (token first owner token),mem_1,tok_1"), "{deploy}");
    // Open routes stay open: the GraphiQL page, health, webhooks (signed).
    for open in ["/", "/livez", "/readyz", "/metrics"] {
        assert_eq!(status(format!("{}{open}", app.address), None).await.0, 200, "{open}");
    }
    app.stop().await;
}

/// GraphiQL takes `?token=` in the browser (tests/api/browser.rs drives
/// it): the server writes nothing of the address into the page, so no
/// address can inject anything into it.
#[tokio::test]
async fn the_graphiql_page_is_the_same_whatever_its_address_carries() {
    let app = TestApp::spawn().await;
    let page = |query: &str| {
        let client = app.anonymous.clone();
        let url = format!("{}/{query}", app.address);
        async move { client.get(url).send().await.unwrap().text().await.unwrap() }
    };
    let plain = page("").await;
    assert!(plain.contains("graphiql") && !plain.contains("Bearer "), "the page loads without a token");
    assert_eq!(page(&format!("?token={}", app.token)).await, plain, "the token is not written into the page");
    let hostile = page("?token=%3C/script%3E%3Cscript%3Ealert(1)%3C/script%3E").await;
    assert_eq!(hostile, plain);
    assert!(!plain.contains(&app.token));
    app.stop().await;
}

#[tokio::test]
async fn members_roles_and_the_last_owner() {
    let app = TestApp::spawn().await;
    let admin = app.token_for("ada", "ADMIN").await;
    let members = app.gql("{ members { nodes { id name role } } }", json!({})).await;
    let owner_id = members["members"]["nodes"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(members["members"]["nodes"][0]["role"], "OWNER");

    let remove = "mutation($m: ID!) { removeMember(input: { memberId: $m }) { id } }";
    let demote =
        "mutation($m: ID!, $r: Role!) { changeMemberRole(input: { memberId: $m, role: $r }) { role } }";
    app.assert_error(remove, json!({ "m": owner_id }), "CONFLICT", "last owner").await;
    app.assert_error(demote, json!({ "m": owner_id, "r": "ADMIN" }), "CONFLICT", "last owner").await;
    // Only an owner handles owners.
    let body = app.post_as(Some(&admin), remove, json!({ "m": owner_id })).await;
    assert_eq!(code(&body).as_deref(), Some("FORBIDDEN"), "{body}");
    let add = "mutation($n: String!, $r: Role!) { addMember(input: { name: $n, role: $r }) { id role } }";
    let body = app.post_as(Some(&admin), add, json!({ "n": "eve", "r": "OWNER" })).await;
    assert_eq!(code(&body).as_deref(), Some("FORBIDDEN"), "{body}");

    // A developer promoted to admin may configure from its next request.
    let dev =
        app.gql_as(&admin, add, json!({ "n": "dev", "r": "DEVELOPER" })).await["addMember"]["id"].clone();
    let dev_token = {
        let data = app
            .gql_as(
                &admin,
                "mutation($m: ID!) { createToken(input: { name: \"dev\", memberId: $m }) { secret } }",
                json!({ "m": dev }),
            )
            .await;
        data["createToken"]["secret"].as_str().unwrap().to_owned()
    };
    let create_env = "mutation { createEnvironment(input: { name: \"staging\" }) { id } }";
    assert_eq!(
        code(&app.post_as(Some(&dev_token), create_env, json!({})).await).as_deref(),
        Some("FORBIDDEN")
    );
    app.gql_as(&admin, demote, json!({ "m": dev, "r": "ADMIN" })).await;
    app.gql_as(&dev_token, create_env, json!({})).await;

    // A second owner makes the first removable; a removed member's tokens stop.
    let second = app.gql(add, json!({ "n": "olga", "r": "OWNER" })).await["addMember"]["id"].clone();
    app.gql(remove, json!({ "m": dev })).await;
    let body = app.post_as(Some(&dev_token), "{ viewer { role } }", json!({})).await;
    assert_eq!(code(&body).as_deref(), Some("UNAUTHENTICATED"), "{body}");
    let olga = app.token_of(second.as_str().unwrap(), "olga").await;
    app.gql_as(&olga, remove, json!({ "m": owner_id })).await;
    let body = app.post(create_env, json!({})).await;
    assert_eq!(code(&body).as_deref(), Some("UNAUTHENTICATED"), "the removed owner's token: {body}");
    app.stop().await;
}

#[tokio::test]
async fn tokens_are_shown_once_listed_by_prefix_capped_expired_and_revoked() {
    let app = TestApp::spawn().await;
    let create = "mutation($n: String!, $r: Role, $at: DateTime) { createToken(input: { name: $n, role: $r, expiresAt: $at }) { secret token { id prefix role kind active } } }";
    let created = app.gql(create, json!({ "n": "ci", "r": "DEVELOPER" })).await["createToken"].clone();
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with(created["token"]["prefix"].as_str().unwrap()));
    assert_eq!(created["token"]["prefix"].as_str().unwrap().len(), 12);
    // Capped at DEVELOPER: deploys yes, configuration no.
    let viewer = app.gql_as(&secret, "{ viewer { role member { name } } }", json!({})).await;
    assert_eq!(viewer["viewer"], json!({ "role": "DEVELOPER", "member": { "name": "owner" } }));
    let body = app
        .post_as(Some(&secret), "mutation { createEnvironment(input: { name: \"x\" }) { id } }", json!({}))
        .await;
    assert_eq!(code(&body).as_deref(), Some("FORBIDDEN"));
    // Listed without the secret.
    let listed = app.post("{ tokens { nodes { id name prefix kind role active } } }", json!({})).await;
    assert!(!listed.to_string().contains(&secret), "a list never shows a secret");
    assert_eq!(listed["data"]["tokens"]["nodes"].as_array().unwrap().len(), 2);
    // A viewer lists only its own tokens and cannot revoke another's.
    let vera = app.token_for("vera", "VIEWER").await;
    let mut sub = app.subscribe_as(&vera, "subscription { recoveryProgress { queued } }", json!({})).await;
    assert_eq!(sub.next().await.expect("a viewer follows feeds")["recoveryProgress"]["queued"], 0);
    let own = app.gql_as(&vera, "{ tokens { nodes { name } } }", json!({})).await;
    assert_eq!(own["tokens"]["nodes"], json!([{ "name": "vera" }]));
    let revoke = "mutation($t: ID!) { revokeToken(input: { tokenId: $t }) { revokedAt active } }";
    let body = app.post_as(Some(&vera), revoke, json!({ "t": created["token"]["id"] })).await;
    assert_eq!(code(&body).as_deref(), Some("FORBIDDEN"), "{body}");
    // Expiry: refused in the past, honoured once reached.
    let past = (chrono::Utc::now() - chrono::Duration::seconds(5)).to_rfc3339();
    app.assert_error(create, json!({ "n": "old", "at": past }), "BAD_USER_INPUT", "future").await;
    let soon = (chrono::Utc::now() + chrono::Duration::milliseconds(800)).to_rfc3339();
    let short = app.gql(create, json!({ "n": "short", "at": soon })).await["createToken"]["secret"].clone();
    let short = short.as_str().unwrap();
    app.gql_as(short, "{ viewer { role } }", json!({})).await;
    tokio::time::sleep(std::time::Duration::from_millis(1_000)).await;
    let body = app.post_as(Some(short), "{ viewer { role } }", json!({})).await;
    assert_eq!(code(&body).as_deref(), Some("UNAUTHENTICATED"), "{body}");
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("expired"), "{body}");
    // Revoked: refused from the answer on.
    let revoked = app.gql(revoke, json!({ "t": created["token"]["id"] })).await;
    assert_eq!(revoked["revokeToken"]["active"], false);
    let body = app.post_as(Some(&secret), "{ viewer { role } }", json!({})).await;
    assert_eq!(code(&body).as_deref(), Some("UNAUTHENTICATED"), "{body}");
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("revoked"), "{body}");
    app.stop().await;
}

#[tokio::test]
async fn an_audit_record_names_the_actor_target_outcome_and_request_of_each_attempt() {
    let app = TestApp::spawn().await;
    let env = app.create_environment("production").await;
    let svc = app.create_service(&env, json!({ "name": "api", "kind": "JOB" })).await;
    let vera = app.token_for("vera", "VIEWER").await;
    let deploy = "mutation($s: ID!) { deploy(input: { serviceId: $s, commit: \"c1\" }) { id } }";
    let done = post(&app, Some(&app.token), deploy, &json!({ "s": svc }), "req-allowed").await;
    let op = done["data"]["deploy"]["id"].as_str().unwrap().to_owned();
    post(&app, Some(&vera), deploy, &json!({ "s": svc }), "req-refused").await;
    post(&app, Some(&app.token), deploy, &json!({ "s": "svc_4242" }), "req-missing").await;
    let records = audit_log(&app).await;
    let find =
        |id: &str| records.iter().find(|r| r["requestId"] == id).unwrap_or_else(|| panic!("{id}")).clone();
    let allowed = find("req-allowed");
    assert_eq!(
        (
            allowed["actor"].as_str(),
            allowed["action"].as_str(),
            allowed["target"].as_str(),
            allowed["outcome"].as_str()
        ),
        (Some("owner (token first owner token)"), Some("deploy"), Some(op.as_str()), Some("SUCCEEDED"))
    );
    let refused = find("req-refused");
    assert_eq!(refused["member"]["name"], "vera");
    assert_eq!(refused["tokenName"], "vera");
    assert_eq!(
        (refused["target"].as_str(), refused["outcome"].as_str()),
        (Some(svc.as_str()), Some("FORBIDDEN"))
    );
    assert_eq!(find("req-missing")["outcome"], "NOT_FOUND");
    assert!(records[0]["seq"].as_u64() > records[1]["seq"].as_u64(), "newest first");
    let only_refused = app
        .gql(
            "{ auditLog(filter: { succeeded: false, action: \"deploy\" }) { nodes { requestId } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        only_refused["auditLog"]["nodes"],
        json!([{ "requestId": "req-missing" }, { "requestId": "req-refused" }])
    );
    app.stop().await;
}
