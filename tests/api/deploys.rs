//! Deploys that succeed, fail at build, fail at health check; databases.

use serde_json::json;

use crate::helpers::{HTTP_SERVER, TestApp, free_port, steps};

const SERVICE: &str = r#"query($id: ID!) {
  service(id: $id) {
    currentCommit deploymentStatus runningStatus { value }
    instances { id status commit port current }
  }
}"#;

async fn fetch(app: &TestApp, port: u16) -> Option<String> {
    let response = app.client.get(format!("http://127.0.0.1:{port}/")).send().await.ok()?;
    response.text().await.ok()
}

async fn web_service(app: &TestApp, instances: i64) -> (String, String, u16) {
    let env = app.create_environment("production").await;
    let port = free_port();
    let svc = app
        .create_service(
            &env,
            json!({
                "name": "web", "kind": "APPLICATION",
                "buildCommand": "echo building $COMMIT; echo 'warning: slow disk' >&2",
                "releaseCommand": "echo migrating database for $COMMIT",
                "startCommand": format!("if [ \"$COMMIT\" = broken ]; then exec sleep 60; fi; {HTTP_SERVER}"),
                "port": port, "instances": instances,
                "healthCheck": { "timeoutMs": 1500, "graceMs": 100 }, "stopGraceMs": 2000
            }),
        )
        .await;
    (env, svc, port)
}

#[tokio::test]
async fn a_deploy_that_succeeds_runs_every_step_and_leaves_instances_serving() {
    let app = TestApp::spawn().await;
    let (_, svc, port) = web_service(&app, 2).await;

    let op = app.deploy(&svc, "c1").await;
    let op = app.wait_final(&op).await;

    assert_eq!(op["status"], "DEPLOYMENT_OK", "{op:#}");
    assert_eq!(op["rollback"], "NOT_NEEDED");
    assert_eq!(op["trigger"]["kind"], "USER");
    assert_eq!(op["trigger"]["source"], "API");
    assert_eq!(op["trigger"]["author"]["name"], "owner");
    assert!(op["startedAt"].is_string() && op["finishedAt"].is_string());
    let kinds: Vec<_> = steps(&op).into_iter().map(|(k, s)| format!("{k} {s}")).collect();
    assert_eq!(
        kinds,
        [
            "BUILD SUCCEEDED",
            "RELEASE SUCCEEDED",
            "START_INSTANCES SUCCEEDED",
            "HEALTH_CHECK SUCCEEDED",
            "SWITCH SUCCEEDED",
            "STOP_OLD_INSTANCES SUCCEEDED"
        ]
    );

    let log = app.log_lines(op["id"].as_str().unwrap()).await;
    for expected in [
        "SYSTEM queued DEPLOY of commit c1, asked by owner via API",
        "STDOUT building c1",
        "STDERR warning: slow disk",
        "STDOUT migrating database for c1",
        "SYSTEM step build: succeeded (build command exited with status 0)",
        "SYSTEM finished: DEPLOYMENT_OK",
    ] {
        assert!(log.iter().any(|l| l == expected), "missing `{expected}` in {log:#?}");
    }

    let svc = app.gql(SERVICE, json!({ "id": svc })).await["service"].clone();
    assert_eq!(svc["currentCommit"], "c1");
    assert_eq!(svc["deploymentStatus"], "DEPLOYMENT_OK");
    assert_eq!(svc["runningStatus"]["value"], "RUNNING");
    let instances = svc["instances"].as_array().unwrap();
    assert_eq!(instances.len(), 2, "{svc:#}");
    for inst in instances {
        assert_eq!(inst["status"], "RUNNING");
        assert_eq!(inst["current"], true);
        let port = inst["port"].as_u64().unwrap() as u16;
        assert_eq!(fetch(&app, port).await.as_deref(), Some("c1"));
    }
    assert!(instances.iter().any(|i| i["port"] == port), "the first instance takes the spec's port");
    app.stop().await;
    assert_eq!(fetch_raw(port).await, None, "no instance survives the server");
}

async fn fetch_raw(port: u16) -> Option<String> {
    let client = reqwest::Client::new();
    client.get(format!("http://127.0.0.1:{port}/")).send().await.ok()?.text().await.ok()
}

#[tokio::test]
async fn a_failing_build_ends_in_building_error_with_its_stderr_in_the_log() {
    let app = TestApp::spawn().await;
    let env = app.create_environment("staging").await;
    let svc = app
        .create_service(
            &env,
            json!({
                "name": "api", "kind": "APPLICATION",
                "buildCommand": "echo compiling; echo 'error[E0308]: mismatched types' >&2; exit 2",
                "startCommand": "sleep 60"
            }),
        )
        .await;

    let op = app.deploy(&svc, "c1").await;
    let op = app.wait_final(&op).await;

    assert_eq!(op["status"], "BUILDING_ERROR");
    assert_eq!(op["rollback"], "NOT_NEEDED");
    let got = steps(&op);
    assert_eq!(got[0], ("BUILD".into(), "FAILED".into()));
    assert!(got[1..].iter().all(|(_, s)| s == "SKIPPED"), "{got:?}");
    let log = app.log_lines(op["id"].as_str().unwrap()).await;
    assert!(log.contains(&"STDERR error[E0308]: mismatched types".to_owned()), "{log:#?}");
    assert!(
        log.contains(&"SYSTEM step build: failed (build command exited with status 2)".to_owned()),
        "{log:#?}"
    );
    let svc = app
        .gql("query($id: ID!) { service(id: $id) { currentCommit instances { id } } }", json!({ "id": svc }))
        .await;
    assert_eq!(svc["service"]["currentCommit"], serde_json::Value::Null);
    assert_eq!(svc["service"]["instances"], json!([]));
    app.stop().await;
}

#[tokio::test]
async fn a_failing_health_check_rolls_back_and_the_old_instances_keep_serving() {
    let app = TestApp::spawn().await;
    let (_, svc, _) = web_service(&app, 1).await;
    let first = app.deploy(&svc, "c1").await;
    assert_eq!(app.wait_final(&first).await["status"], "DEPLOYMENT_OK");
    let before = app.gql(SERVICE, json!({ "id": svc })).await["service"]["instances"].clone();

    let op = app.deploy(&svc, "broken").await;
    let op = app.wait_final(&op).await;

    assert_eq!(op["status"], "DEPLOYMENT_ERROR", "{op:#}");
    assert_eq!(op["rollback"], "SUCCEEDED");
    let got = steps(&op);
    assert!(got.contains(&("HEALTH_CHECK".into(), "FAILED".into())), "{got:?}");
    assert!(got.contains(&("START_INSTANCES".into(), "ROLLED_BACK".into())), "{got:?}");
    assert!(got.contains(&("RELEASE".into(), "SUCCEEDED".into())), "{got:?}");
    let log = app.log_lines(op["id"].as_str().unwrap()).await;
    assert!(log.iter().any(|l| l.contains("did not accept a connection on port")), "{log:#?}");
    assert!(
        log.iter().any(|l| l.contains("release command's effects (such as a migration) are not undone")),
        "{log:#?}"
    );

    let after = app.gql(SERVICE, json!({ "id": svc })).await["service"].clone();
    assert_eq!(after["currentCommit"], "c1");
    assert_eq!(after["instances"], before, "the old instance is untouched");
    let port = before[0]["port"].as_u64().unwrap() as u16;
    assert_eq!(fetch(&app, port).await.as_deref(), Some("c1"));
    app.stop().await;
}

#[tokio::test]
async fn a_database_deploy_hands_its_data_directory_over_and_logs_the_downtime() {
    let app = TestApp::spawn().await;
    let env = app.create_environment("production").await;
    let svc = app
        .create_service(
            &env,
            json!({
                "name": "db", "kind": "DATABASE",
                "startCommand": "echo $COMMIT >> \"$DATA_DIR/versions\"; cat \"$DATA_DIR/versions\"; exec sleep 60",
                "healthCheck": { "graceMs": 200 }, "stopGraceMs": 1000
            }),
        )
        .await;
    for commit in ["v1", "v2"] {
        let op = app.deploy(&svc, commit).await;
        let op = app.wait_final(&op).await;
        assert_eq!(op["status"], "DEPLOYMENT_OK", "{op:#}");
        let kinds: Vec<_> = steps(&op).into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            kinds,
            [
                "BUILD",
                "RELEASE",
                "PREPARE_INSTANCE",
                "STOP_OLD_INSTANCES",
                "HAND_OVER_DATA",
                "START_INSTANCES",
                "HEALTH_CHECK",
                "SWITCH"
            ]
        );
        let log = app.log_lines(op["id"].as_str().unwrap()).await;
        assert!(
            log.iter().any(|l| l.starts_with("SYSTEM downtime during the data directory hand-over: ")),
            "{log:#?}"
        );
    }
    let svc_logs = app
        .client
        .get(format!("{}/graphql", app.address))
        .query(&[("query", format!("{{ service(id: \"{svc}\") {{ instances {{ commit status }} }} }}"))])
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    assert_eq!(svc_logs["data"]["service"]["instances"], json!([{ "commit": "v2", "status": "RUNNING" }]));
    app.stop().await;
}

#[tokio::test]
async fn a_database_cannot_have_more_than_one_instance() {
    let app = TestApp::spawn().await;
    let env = app.create_environment("production").await;
    let code = app
        .error_code(
            "mutation($e: ID!) { createService(input: { environmentId: $e, name: \"db\", kind: DATABASE, instances: 2 }) { id } }",
            json!({ "e": env }),
        )
        .await;
    assert_eq!(code, "BAD_USER_INPUT");
    app.stop().await;
}

#[tokio::test]
async fn a_job_that_finishes_at_once_is_completed() {
    let app = TestApp::spawn().await;
    let env = app.create_environment("production").await;
    let svc = app
        .create_service(&env, json!({ "name": "migrate", "kind": "JOB", "startCommand": "echo done", "healthCheck": { "graceMs": 2000 } }))
        .await;
    let op = app.deploy(&svc, "c1").await;
    assert_eq!(app.wait_final(&op).await["status"], "DEPLOYMENT_OK");
    let svc = app.gql(SERVICE, json!({ "id": svc })).await["service"].clone();
    assert_eq!(svc["runningStatus"]["value"], "COMPLETED");
    assert_eq!(svc["instances"][0]["status"], "COMPLETED");
    app.stop().await;
}

#[tokio::test]
async fn an_instance_that_cannot_start_rolls_back_the_ones_that_did() {
    let app = TestApp::spawn().await;
    let env = app.create_environment("production").await;
    // Only one port is left at or above 65535: the second instance fails.
    let svc = app
        .create_service(
            &env,
            json!({ "name": "web", "kind": "APPLICATION", "startCommand": "exec sleep 60", "port": 65535, "instances": 2,
                    "healthCheck": { "timeoutMs": 500 }, "stopGraceMs": 500 }),
        )
        .await;
    let op = app.deploy(&svc, "c1").await;
    let op = app.wait_final(&op).await;
    assert_eq!(op["status"], "DEPLOYMENT_ERROR", "{op:#}");
    assert_eq!(op["rollback"], "SUCCEEDED");
    assert!(steps(&op).contains(&("START_INSTANCES".into(), "FAILED".into())));
    let log = app.log_lines(op["id"].as_str().unwrap()).await;
    assert!(log.iter().any(|l| l.contains("no free port at or above 65535")), "{log:#?}");
    assert!(
        log.iter().any(|l| l.starts_with("SYSTEM rollback of start new instances: rolled back")),
        "{log:#?}"
    );
    let svc = app.gql(SERVICE, json!({ "id": svc })).await["service"].clone();
    assert_eq!(svc["instances"], json!([]), "no instance is left behind");
    app.stop().await;
}
