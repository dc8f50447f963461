//! `--demo`: services that really run, with a history of every outcome;
//! and the pages and files the browser loads, all from the server itself.

use serde_json::json;

use crate::helpers::TestApp;

#[tokio::test]
async fn the_demo_seeds_running_services_with_a_history_of_every_outcome() {
    let app = TestApp::spawn_demo().await;
    let data = app
        .gql(
            "{ environments { nodes { name services { nodes { name runningStatus { value } instances { status port } } } } }
               operations(first: 100) { nodes { status type serviceName rollback trigger { kind source reason } } } }",
            json!({}),
        )
        .await;
    let envs = data["environments"]["nodes"].as_array().unwrap();
    let names: Vec<_> = envs.iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["production", "staging"]);
    for env in envs {
        for svc in env["services"]["nodes"].as_array().unwrap() {
            assert_eq!(svc["runningStatus"]["value"], "RUNNING", "{svc}");
        }
    }
    // web answers on the port of one of its instances.
    let web = &envs[0]["services"]["nodes"][0];
    assert_eq!(web["name"], "web");
    let port = web["instances"][0]["port"].as_u64().unwrap();
    let body = reqwest::get(format!("http://127.0.0.1:{port}/")).await.unwrap().text().await.unwrap();
    assert_eq!(body, "hello from 8b2d4e7\n");

    let ops = data["operations"]["nodes"].as_array().unwrap();
    let has = |status: &str| ops.iter().any(|o| o["status"] == status);
    for status in ["DEPLOYMENT_OK", "BUILDING_ERROR", "DEPLOYMENT_ERROR", "CANCELLED"] {
        assert!(has(status), "a {status} operation in {ops:#?}");
    }
    let rolled_back = ops.iter().find(|o| o["status"] == "DEPLOYMENT_ERROR").unwrap();
    assert_eq!(rolled_back["rollback"], "SUCCEEDED");
    let platform = ops.iter().find(|o| o["trigger"]["kind"] == "PLATFORM").expect("a platform redeploy");
    assert_eq!(
        (platform["type"].as_str(), platform["serviceName"].as_str(), platform["trigger"]["reason"].as_str()),
        (Some("REDEPLOY"), Some("worker"), Some("UNREACHABLE"))
    );
    assert!(ops.iter().all(|o| o["status"] != "QUEUED"), "the history is complete");
    app.stop().await;
}

#[tokio::test]
async fn the_demo_adds_nothing_to_an_organization_that_has_environments() {
    let app = TestApp::spawn().await;
    app.create_environment("mine").await;
    let dir = app.dir.clone();
    app.stop().await;
    let app = TestApp::spawn_with_demo_in(dir).await;
    let data = app.gql("{ environments { nodes { name } } operations { nodes { id } } }", json!({})).await;
    assert_eq!(data["environments"]["nodes"], json!([{ "name": "mine" }]));
    assert_eq!(data["operations"]["nodes"], json!([]));
    app.stop().await;
}

#[tokio::test]
async fn graphiql_and_the_console_load_only_what_the_server_serves() {
    let app = TestApp::spawn().await;
    for page in ["/", "/console"] {
        let response = app.client.get(format!("{}{page}", app.address)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{page}");
        let html = response.text().await.unwrap();
        let sources: Vec<&str> =
            html.split(['"', '\'']).filter(|s| s.ends_with(".js") || s.ends_with(".css")).collect();
        assert!(sources.len() >= 2, "{page} loads its scripts: {html}");
        for source in sources {
            assert!(source.starts_with("/assets/"), "{page} loads {source} from elsewhere");
            let asset = app.client.get(format!("{}{source}", app.address)).send().await.unwrap();
            assert_eq!(asset.status(), 200, "{source}");
            let kind = asset.headers()["content-type"].to_str().unwrap().to_owned();
            let expected = if source.ends_with(".js") { "text/javascript" } else { "text/css" };
            assert!(kind.starts_with(expected), "{source} is served as {kind}");
            let body = asset.text().await.unwrap();
            assert!(
                !body.contains("unpkg.com") && !body.contains("cdn.jsdelivr"),
                "{source} points at a CDN"
            );
        }
    }
    let missing = app.client.get(format!("{}/assets/console/nope.js", app.address)).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    app.stop().await;
}
