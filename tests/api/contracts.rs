//! The public contract: the SDL file matches the code, and every
//! playground example runs against a seeded server without errors.

use std::path::Path;

use serde_json::{Value, json};

use crate::helpers::TestApp;

#[test]
fn schema_graphql_matches_the_code() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema.graphql");
    let stored = std::fs::read_to_string(&path).unwrap_or_default();
    let generated = opsgraph::graphql::sdl();
    assert!(
        stored == generated,
        "schema.graphql differs from the schema the code builds; regenerate it with\n\n    \
         cargo run -- export-schema > schema.graphql\n\nand review the diff: it is the public contract."
    );
}

#[test]
fn every_query_mutation_and_subscription_has_a_playground_example() {
    use async_graphql::parser::types::{TypeKind, TypeSystemDefinition};
    let sdl = opsgraph::graphql::sdl();
    let document = async_graphql::parser::parse_schema(&sdl).expect("the SDL parses");
    let examples: String = playground().into_iter().map(|(_, text)| text).collect();
    let mut checked = 0;
    for definition in document.definitions {
        let TypeSystemDefinition::Type(ty) = definition else { continue };
        let root = ty.node.name.node.as_str();
        let TypeKind::Object(object) = &ty.node.kind else { continue };
        if !["Query", "Mutation", "Subscription"].contains(&root) {
            continue;
        }
        for field in &object.fields {
            let name = field.node.name.node.as_str();
            let used = examples.contains(&format!("{name}(")) || examples.contains(&format!("{name} {{"));
            assert!(used, "no playground example uses {root}.{name}");
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} root fields found");
}

/// Every `playground/*.graphql` file, sorted by name.
fn playground() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("playground");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "graphql"))
        .map(|p| {
            (p.file_stem().unwrap().to_string_lossy().into_owned(), std::fs::read_to_string(&p).unwrap())
        })
        .collect();
    files.sort();
    files
}

/// The tokens of the examples that say they need one.
struct Tokens {
    worker: String,
    monitoring: String,
}

/// The variables the examples use, from a seeded server, and the tokens
/// of the examples that need a WORKER or MONITORING token.
async fn seed(app: &TestApp) -> (Value, Tokens) {
    let env = app.create_environment("production").await;
    let service = |name: &str, build: &str| {
        json!({ "name": name, "kind": "APPLICATION", "buildCommand": build,
                "startCommand": "echo started $COMMIT; exec sleep 60", "healthCheck": { "graceMs": 50 }, "stopGraceMs": 500 })
    };
    let web = app.create_service(&env, service("web", "echo build")).await;
    let done = app.deploy(&web, "c1").await;
    assert_eq!(app.wait_final(&done).await["status"], "DEPLOYMENT_OK");
    let scratch = app.create_service(&env, service("scratch", "true")).await;
    let slow = app.create_service(&env, service("slow", "exec sleep 60")).await;
    app.deploy(&slow, "s1").await;
    let queued = app.deploy(&slow, "s2").await;
    // A campaign over a service never deployed: skipped, completed at once.
    let campaign = app
        .gql(
            "mutation($s: ID!) { startMaintenance(input: { serviceIds: [$s], description: \"seed\", concurrency: 1 }) { id } }",
            json!({ "s": scratch }),
        )
        .await;
    let page = seed_status_page(app).await;
    let member = app
        .gql("mutation { addMember(input: { name: \"grace\", role: VIEWER }) { id } }", json!({}))
        .await["addMember"]["id"]
        .clone();
    let token = app
        .gql(
            "mutation($m: ID!) { createToken(input: { name: \"laptop\", memberId: $m }) { token { id } } }",
            json!({ "m": member }),
        )
        .await["createToken"]["token"]["id"]
        .clone();
    let day = chrono::Duration::days(1);
    let now = chrono::Utc::now();
    let mut variables = json!({
        "environmentId": env, "serviceId": web, "operationId": done,
        "queuedOperationId": queued, "scratchServiceId": scratch,
        "maintenanceId": campaign["startMaintenance"]["id"],
        "memberId": member, "tokenId": token,
        "from": (now - day).to_rfc3339(), "to": (now + day).to_rfc3339(),
    });
    variables.as_object_mut().unwrap().extend(page.as_object().unwrap().clone());
    let (leases, worker) = seed_workers(app, &env).await;
    variables.as_object_mut().unwrap().extend(leases.as_object().unwrap().clone());
    let monitoring = app.agent_token("MONITORING", "agent").await;
    (variables, Tokens { worker, monitoring })
}

/// Operations of pool `ci` held by workers at each point of the protocol:
/// just claimed, with a step running, with a step failed, and cancelled
/// while its step ran.
async fn seed_workers(app: &TestApp, env: &str) -> (Value, String) {
    let worker = app.worker_token("ci-worker").await;
    let (mut leases, mut services) = (Vec::new(), Vec::new());
    for n in 1..=4 {
        let svc = app
            .create_service(env, json!({ "name": format!("pooled-{n}"), "kind": "JOB", "executor": "ci" }))
            .await;
        let op = app.deploy(&svc, "p1").await;
        let claim = "mutation($w: String!) { claimOperation(input: { pool: \"ci\", workerId: $w }) { id operation { id } } }";
        let body = app.post_as(Some(&worker), claim, json!({ "w": format!("worker-{n}") })).await;
        let lease = &body["data"]["claimOperation"];
        assert_eq!(lease["operation"]["id"], op.as_str(), "{body}");
        leases.push((lease["id"].as_str().unwrap().to_owned(), op));
        services.push(svc);
    }
    let call = |query: &'static str, lease: String| {
        let worker = worker.clone();
        async move {
            let body = app.post_as(Some(&worker), query, json!({ "l": lease })).await;
            assert!(body.get("errors").is_none(), "{body}");
        }
    };
    let start = "mutation($l: ID!) { startStep(input: { leaseId: $l, step: 0 }) { id } }";
    for (lease, _) in &leases[1..] {
        call(start, lease.clone()).await;
    }
    let fail = "mutation($l: ID!) { finishStep(input: { leaseId: $l, step: 0, status: FAILED, message: \"exit 1\" }) { id } }";
    call(fail, leases[2].0.clone()).await;
    app.gql(
        "mutation($o: ID!) { cancelOperation(input: { operationId: $o }) { id } }",
        json!({ "o": leases[3].1 }),
    )
    .await;
    let variables = json!({
        "leaseId": leases[0].0, "runningLeaseId": leases[1].0, "failedLeaseId": leases[2].0,
        "cancelledWorkerId": "worker-4", "pooledServiceId": services[0],
    });
    (variables, worker)
}

/// A component, an open incident, a draft, a resolved one and a scheduled
/// maintenance window.
async fn seed_status_page(app: &TestApp) -> Value {
    let component = app
        .gql("mutation { createComponent(input: { name: \"API\", group: \"Platform\" }) { id } }", json!({}))
        .await["createComponent"]["id"]
        .clone();
    let open = |publish: bool| {
        let query = "mutation($c: ID!, $p: Boolean!) { createIncident(input: { title: \"Errors\", message: \"Looking\",
                     components: [{ componentId: $c, status: DOWN }], publish: $p }) { id } }";
        app.gql(query, json!({ "c": component, "p": publish }))
    };
    let incident = open(true).await["createIncident"]["id"].clone();
    let draft = open(false).await["createIncident"]["id"].clone();
    let resolved = open(true).await["createIncident"]["id"].clone();
    app.gql(
        "mutation($i: ID!) { resolveIncident(input: { incidentId: $i }) { id } }",
        json!({ "i": resolved }),
    )
    .await;
    let now = chrono::Utc::now();
    let (starts, ends) = (now + chrono::Duration::hours(1), now + chrono::Duration::hours(3));
    let window = app
        .gql(
            "mutation($s: DateTime!, $e: DateTime!) { scheduleMaintenance(input: { title: \"Upgrade\", startsAt: $s, endsAt: $e }) { id } }",
            json!({ "s": starts.to_rfc3339(), "e": ends.to_rfc3339() }),
        )
        .await["scheduleMaintenance"]["id"]
        .clone();
    json!({
        "componentId": component, "incidentId": incident, "draftIncidentId": draft,
        "resolvedIncidentId": resolved, "scheduledMaintenanceId": window,
        "startsAt": starts.to_rfc3339(), "endsAt": ends.to_rfc3339(),
    })
}

#[tokio::test]
async fn every_playground_example_runs_without_errors() {
    let app = TestApp::spawn().await;
    let (variables, tokens) = seed(&app).await;
    let examples = playground();
    assert!(examples.len() >= 20, "found only {} examples", examples.len());
    let kind = |text: &str| {
        text.lines()
            .find(|l| !l.starts_with('#') && !l.trim().is_empty())
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .to_owned()
    };
    // Queries first, then mutations (deleting last), then subscriptions.
    let order = |(name, text): &(String, String)| match (kind(text).as_str(), name.as_str()) {
        ("query", _) => 0,
        ("mutation", "deleteService") => 2,
        ("mutation", _) => 1,
        _ => 3,
    };
    let mut examples = examples;
    examples.sort_by_key(|e| order(e));
    for (name, text) in &examples {
        let token = if text.contains("needs a WORKER token") {
            &tokens.worker
        } else if text.contains("needs a MONITORING token") {
            &tokens.monitoring
        } else {
            &app.token
        };
        if kind(text) == "subscription" {
            let mut sub = app.subscribe_as(token, text, variables.clone()).await;
            let first = sub.next().await.unwrap_or_else(|| panic!("{name}: the subscription sent nothing"));
            assert!(first.is_object(), "{name}: {first}");
        } else {
            let body = app.post_as(Some(token), text, variables.clone()).await;
            assert!(body.get("errors").is_none(), "{name}.graphql failed: {body:#}");
            assert!(body["data"].is_object(), "{name}: {body}");
        }
    }
    app.stop().await;
}

#[test]
fn every_type_field_argument_and_enum_value_is_documented() {
    use async_graphql::parser::types::{TypeKind, TypeSystemDefinition};
    let sdl = opsgraph::graphql::sdl();
    let document = async_graphql::parser::parse_schema(&sdl).expect("the SDL parses");
    let mut missing = Vec::new();
    for definition in document.definitions {
        let TypeSystemDefinition::Type(ty) = definition else { continue };
        let ty = ty.node;
        let name = ty.name.node.as_str();
        if ty.description.is_none() {
            missing.push(name.to_owned());
        }
        match &ty.kind {
            TypeKind::Object(o) => {
                for f in &o.fields {
                    let field = format!("{name}.{}", f.node.name.node);
                    if f.node.description.is_none() {
                        missing.push(field.clone());
                    }
                    for a in f.node.arguments.iter().filter(|a| a.node.description.is_none()) {
                        missing.push(format!("{field}({})", a.node.name.node));
                    }
                }
            }
            TypeKind::Interface(i) => {
                missing.extend(
                    i.fields
                        .iter()
                        .filter(|f| f.node.description.is_none())
                        .map(|f| format!("{name}.{}", f.node.name.node)),
                );
            }
            TypeKind::InputObject(i) => {
                missing.extend(
                    i.fields
                        .iter()
                        .filter(|f| f.node.description.is_none())
                        .map(|f| format!("{name}.{}", f.node.name.node)),
                );
            }
            TypeKind::Enum(e) => {
                missing.extend(
                    e.values
                        .iter()
                        .filter(|v| v.node.description.is_none())
                        .map(|v| format!("{name}.{}", v.node.value.node)),
                );
            }
            TypeKind::Scalar | TypeKind::Union(_) => {}
        }
    }
    assert!(missing.is_empty(), "undocumented in the schema: {missing:#?}");
}

#[tokio::test]
async fn the_legacy_graphql_ws_subprotocol_streams_subscriptions_too() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let app = TestApp::spawn().await;
    let env = app.create_environment("production").await;
    let svc = app
        .create_service(&env, json!({ "name": "job", "kind": "JOB", "buildCommand": "echo legacy" }))
        .await;
    let op = app.deploy(&svc, "c1").await;
    app.wait_final(&op).await;

    let mut request = format!("ws://127.0.0.1:{}/graphql", app.port).into_client_request().unwrap();
    request.headers_mut().insert("Sec-WebSocket-Protocol", "graphql-ws".parse().unwrap());
    let (mut socket, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(response.headers()["sec-websocket-protocol"], "graphql-ws");
    let init = json!({ "type": "connection_init", "payload": app.init_payload() });
    socket.send(Message::text(init.to_string())).await.unwrap();
    let query = "subscription($id: ID!) { operationLogs(operationId: $id) { lines { stream text } } }";
    let start =
        json!({ "id": "1", "type": "start", "payload": { "query": query, "variables": { "id": op } } });
    socket.send(Message::text(start.to_string())).await.unwrap();
    let mut lines = Vec::new();
    while let Some(Ok(message)) = socket.next().await {
        let Message::Text(text) = message else { continue };
        let message: Value = serde_json::from_str(&text).unwrap();
        match message["type"].as_str().unwrap() {
            "data" => {
                lines.extend(message["payload"]["data"]["operationLogs"]["lines"].as_array().unwrap().clone())
            }
            "complete" => break,
            "connection_ack" | "ka" => {}
            other => panic!("unexpected {other}: {message}"),
        }
    }
    assert!(lines.contains(&json!({ "stream": "STDOUT", "text": "legacy" })), "{lines:#?}");
    assert_eq!(lines.last().unwrap()["text"], "finished: DEPLOYMENT_OK");
    app.stop().await;
}
