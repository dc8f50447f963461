//! Deploy on push: `POST /hooks/github/{serviceId}`, and roll backs that
//! stick.

use serde_json::{Value, json};

use crate::helpers::{TestApp, push_event};

const SECRET: &str = "correct horse battery staple";

const DELIVERIES: &str = "query($s: ID!) { service(id: $s) { webhookSecretSet pin { commit } webhookDeliveries(first: 10) { nodes { outcome message operation { id } } } } }";

/// An environment with a quick service deploying from `main`.
async fn hooked(app: &TestApp) -> String {
    let env = app.create_environment("prod").await;
    app.create_service(
        &env,
        json!({ "name": "site", "kind": "APPLICATION", "buildCommand": "true", "startCommand": "exec sleep 120",
                "healthCheck": { "graceMs": 50 }, "stopGraceMs": 500, "branch": "main", "webhookSecret": SECRET }),
    )
    .await
}

async fn deliveries(app: &TestApp, svc: &str) -> Value {
    app.gql(DELIVERIES, json!({ "s": svc })).await["service"].clone()
}

#[tokio::test]
async fn a_signed_push_deploys_its_head_commit_as_the_pusher_and_other_branches_are_ignored() {
    let app = TestApp::spawn().await;
    let svc = hooked(&app).await;

    let (status, body) = app.push(&svc, Some(SECRET), &push_event("main", "4f2c9e1", "octocat"), "d-1").await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["outcome"], "DEPLOYED");
    let op = app.wait_final(body["operationId"].as_str().unwrap()).await;
    assert_eq!(op["status"], "DEPLOYMENT_OK");
    assert_eq!(op["type"], "DEPLOY");
    assert_eq!(op["commit"], "4f2c9e1");
    assert_eq!(
        op["trigger"],
        json!({ "kind": "USER", "source": "GITHUB", "reason": null, "author": { "name": "octocat" } })
    );

    // GitHub retries a delivery with the same id: nothing is queued twice.
    let (status, again) =
        app.push(&svc, Some(SECRET), &push_event("main", "4f2c9e1", "octocat"), "d-1").await;
    assert_eq!((status, &again["operationId"]), (201, &body["operationId"]));

    let (status, ignored) =
        app.push(&svc, Some(SECRET), &push_event("feature/x", "77aa", "octocat"), "d-2").await;
    assert_eq!(status, 202);
    assert_eq!(ignored["outcome"], "IGNORED");
    assert_eq!(
        ignored["message"],
        "push to refs/heads/feature/x ignored: the service deploys from branch main"
    );
    assert_eq!(app.timeline(&svc).await.len(), 1, "one deploy, however many deliveries");

    let service = deliveries(&app, &svc).await;
    assert_eq!(service["webhookSecretSet"], true);
    let outcomes: Vec<&Value> =
        service["webhookDeliveries"]["nodes"].as_array().unwrap().iter().map(|d| &d["outcome"]).collect();
    assert_eq!(outcomes, ["IGNORED", "DEPLOYED", "DEPLOYED"]);
    // The secret can never be read back.
    assert_eq!(
        app.error_code("query($s: ID!) { service(id: $s) { webhookSecret } }", json!({ "s": svc })).await,
        "BAD_USER_INPUT"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_bad_or_missing_signature_is_refused_with_401_and_recorded() {
    let app = TestApp::spawn().await;
    let svc = hooked(&app).await;
    let event = push_event("main", "4f2c9e1", "mallory");

    let (status, wrong) = app.push(&svc, Some("not the right secret"), &event, "d-1").await;
    assert_eq!(status, 401);
    assert_eq!(wrong["error"]["code"], "UNAUTHENTICATED");
    let (status, missing) = app.push(&svc, None, &event, "d-2").await;
    assert_eq!(status, 401);
    assert_eq!(missing["error"]["message"], "missing X-Hub-Signature-256 header");

    assert!(app.timeline(&svc).await.is_empty(), "nothing was queued");
    let service = deliveries(&app, &svc).await;
    let nodes = service["webhookDeliveries"]["nodes"].as_array().unwrap().clone();
    assert_eq!(nodes.len(), 2);
    assert!(nodes.iter().all(|d| d["outcome"] == "REFUSED" && d["operation"].is_null()), "{nodes:#?}");
    assert!(nodes[1]["message"].as_str().unwrap().contains("does not match"), "{nodes:#?}");

    // Without a secret, every push is refused.
    app.gql(
        "mutation($s: ID!) { updateService(input: { serviceId: $s, webhookSecret: null }) { id } }",
        json!({ "s": svc }),
    )
    .await;
    let (status, _) = app.push(&svc, Some(SECRET), &event, "d-3").await;
    assert_eq!(status, 401);
    assert_eq!(deliveries(&app, &svc).await["webhookSecretSet"], false);
    let unknown =
        app.client.post(format!("{}/hooks/github/svc_999", app.address)).body("{}").send().await.unwrap();
    assert_eq!(unknown.status(), 404);
    app.stop().await;
}

#[tokio::test]
async fn a_push_of_a_pinned_commit_is_skipped_until_a_newer_commit_arrives() {
    let app = TestApp::spawn().await;
    let svc = hooked(&app).await;
    let mut deliveries_sent = 0;
    let mut push = |commit: &'static str| {
        deliveries_sent += 1;
        let (app, svc, delivery) = (&app, svc.clone(), format!("d-{deliveries_sent}"));
        async move { app.push(&svc, Some(SECRET), &push_event("main", commit, "octocat"), &delivery).await }
    };
    let (_, first) = push("c1").await;
    let first = first["operationId"].as_str().unwrap().to_owned();
    app.wait_final(&first).await;
    let (_, second) = push("c2").await;
    app.wait_final(second["operationId"].as_str().unwrap()).await;

    // c2 is bad: a person rolls back to c1, which pins c2.
    let rollback = app
        .gql("mutation($o: ID!) { redeploy(input: { operationId: $o }) { id } }", json!({ "o": first }))
        .await;
    app.wait_final(rollback["redeploy"]["id"].as_str().unwrap()).await;
    assert_eq!(deliveries(&app, &svc).await["pin"]["commit"], "c2");

    let (status, skipped) = push("c2").await;
    assert_eq!(status, 202, "{skipped}");
    assert_eq!(skipped["outcome"], "SKIPPED");
    assert!(
        skipped["message"]
            .as_str()
            .unwrap()
            .starts_with("commit c2 is pinned: owner rolled back from c2 to c1"),
        "{skipped}"
    );
    assert_eq!(app.timeline(&svc).await.len(), 3, "the pinned commit was not deployed");

    // A newer commit deploys, and lifts the pin: c2 may deploy again later.
    let (status, newer) = push("c3").await;
    assert_eq!(status, 201);
    assert_eq!(app.wait_final(newer["operationId"].as_str().unwrap()).await["status"], "DEPLOYMENT_OK");
    assert_eq!(deliveries(&app, &svc).await["pin"], Value::Null);
    let (status, again) = push("c2").await;
    assert_eq!((status, &again["outcome"]), (201, &json!("DEPLOYED")));
    app.wait_final(again["operationId"].as_str().unwrap()).await;
    let commits: Vec<Value> = app.timeline(&svc).await.iter().map(|o| o["commit"].clone()).collect();
    assert_eq!(commits, ["c2", "c3", "c1", "c2", "c1"]);
    app.stop().await;
}
