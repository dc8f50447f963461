//! Usage metrics with real processes: monitoring samples a running
//! instance and `Service.metrics` serves the samples in buckets.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use serde_json::{Value, json};

use crate::helpers::{PATIENCE, TestApp};

const METRICS: &str = "query($s: ID!, $from: DateTime!, $to: DateTime!, $r: Int!) {
  service(id: $s) { metrics(from: $from, to: $to, resolution: $r) {
    from to resolution
    service { at samples cpuPercent { avg max } memoryBytes { avg max } diskBytes { avg max } }
    instances { instanceId points { at samples cpuPercent { avg max } memoryBytes { max } diskBytes { max } } } } } }";

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn time(value: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(value.as_str().unwrap()).unwrap().with_timezone(&Utc)
}

#[tokio::test]
async fn metrics_of_a_running_service_are_sampled_and_served_in_buckets() {
    let app = TestApp::spawn_configured(|args| args.metrics_interval_ms = 100).await;
    let env = app.create_environment("production").await;
    let start = "head -c 200000 /dev/zero > \"$DATA_DIR/blob\"; exec sh -c 'while :; do :; done'";
    let svc = app
        .create_service(
            &env,
            json!({ "name": "busy", "kind": "APPLICATION", "startCommand": start,
                    "healthCheck": { "graceMs": 50 }, "stopGraceMs": 300 }),
        )
        .await;
    // Millisecond precision: what the API keeps of a time.
    let from = (Utc::now() - chrono::Duration::seconds(1)).trunc_subsecs(3);
    let to = from + chrono::Duration::seconds(60);
    let op = app.deploy(&svc, "c1").await;
    assert_eq!(app.wait_final(&op).await["status"], "DEPLOYMENT_OK");
    let vars = json!({ "s": svc, "from": rfc3339(from), "to": rfc3339(to), "r": 1 });

    // Poll the API until a sample with a CPU figure is stored (the first
    // pass that sees the instance only takes its CPU baseline).
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let metrics = loop {
        let metrics = app.gql(METRICS, vars.clone()).await["service"]["metrics"].clone();
        let sampled = metrics["service"].as_array().unwrap().iter().any(|p| p["samples"] != 0);
        if sampled {
            break metrics;
        }
        assert!(tokio::time::Instant::now() < deadline, "no sample in time: {metrics:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(metrics["resolution"], 1);
    assert_eq!(time(&metrics["from"]), from);

    // Every bucket of the period, one second apart from `from`.
    let points = metrics["service"].as_array().unwrap();
    assert_eq!(points.len(), 60);
    for (i, point) in points.iter().enumerate() {
        let expected = from + chrono::Duration::seconds(i as i64);
        assert_eq!(time(&point["at"]), expected, "bucket {i}");
        assert_eq!(point["cpuPercent"].is_null(), point["samples"] == 0, "{point}");
    }
    let sampled: Vec<&Value> = points.iter().filter(|p| p["samples"] != 0).collect();
    let busy = sampled.iter().map(|p| p["cpuPercent"]["max"].as_f64().unwrap()).fold(0.0, f64::max);
    assert!(busy > 5.0, "a burning instance uses CPU: {sampled:#?}");
    for point in &sampled {
        assert!(point["memoryBytes"]["max"].as_f64().unwrap() > 0.0, "{point}");
        assert!(point["diskBytes"]["max"].as_f64().unwrap() >= 200_000.0, "{point}");
        let (avg, max) =
            (point["cpuPercent"]["avg"].as_f64().unwrap(), point["cpuPercent"]["max"].as_f64().unwrap());
        assert!(avg <= max, "{point}");
    }

    // One series for the one instance, on the same grid.
    let instance =
        app.gql("query($s: ID!) { service(id: $s) { instances { id } } }", json!({ "s": svc })).await;
    let instances = metrics["instances"].as_array().unwrap();
    assert_eq!(instances.len(), 1, "{metrics:#}");
    assert_eq!(instances[0]["instanceId"], instance["service"]["instances"][0]["id"]);
    for point in instances[0]["points"].as_array().unwrap() {
        let offset = time(&point["at"]) - from;
        assert_eq!(offset.num_milliseconds() % 1_000, 0, "{point}");
        assert!(point["samples"].as_u64().unwrap() > 0, "only buckets with samples: {point}");
    }

    // The same period at a coarser resolution: fewer, wider buckets.
    let coarse =
        app.gql(METRICS, json!({ "s": svc, "from": rfc3339(from), "to": rfc3339(to), "r": 7 })).await;
    let coarse = coarse["service"]["metrics"]["service"].as_array().unwrap().clone();
    assert_eq!(coarse.len(), 9, "60 s by 7 s, the last bucket cut at `to`");
    app.stop().await;
}

#[tokio::test]
async fn a_bad_period_or_resolution_is_bad_user_input_that_says_why() {
    let app = TestApp::spawn().await;
    let env = app.create_environment("production").await;
    let svc = app.create_service(&env, json!({ "name": "idle", "kind": "APPLICATION" })).await;
    let now = Utc::now();
    let day = chrono::Duration::days(1);
    for (from, to, resolution, mentions) in [
        (now, now, 60, "later than `from`"),
        (now, now - day, 60, "later than `from`"),
        (now - day, now, 0, "resolution"),
        (now - day, now, 86_401, "resolution"),
        (now - day, now, 60, "1440 buckets"),
    ] {
        let vars = json!({ "s": svc, "from": rfc3339(from), "to": rfc3339(to), "r": resolution });
        app.assert_error(METRICS, vars, "BAD_USER_INPUT", mentions).await;
    }
    let empty =
        app.gql(METRICS, json!({ "s": svc, "from": rfc3339(now - day), "to": rfc3339(now), "r": 300 })).await;
    let points = empty["service"]["metrics"]["service"].as_array().unwrap();
    assert_eq!(points.len(), 288, "every bucket, even with nothing sampled");
    assert!(points.iter().all(|p| p["samples"] == 0 && p["cpuPercent"].is_null()));
    app.stop().await;
}
