//! Scaling out on usage with real processes: a service whose instance
//! burns CPU grows by one instance per window up to its maximum, with the
//! evidence in each `SCALE`'s log, and no further.

use serde_json::{Value, json};

use crate::helpers::TestApp;

#[tokio::test]
async fn a_cpu_burning_service_is_scaled_out_one_instance_at_a_time_up_to_its_maximum() {
    let app = TestApp::spawn().await;
    let env = app.create_environment("production").await;
    // The instance's shell only waits; its child burns a core: monitoring
    // must count the whole process tree to see it.
    let start = "sh -c 'while :; do :; done' & wait";
    let svc = app
        .create_service(
            &env,
            json!({ "name": "hot", "kind": "APPLICATION", "startCommand": start,
                    "healthCheck": { "graceMs": 50 }, "stopGraceMs": 300,
                    "monitoring": { "intervalMs": 100, "cpuThresholdPercent": 5, "scaleWindowMs": 400,
                                    "maxInstances": 3 } }),
        )
        .await;
    let op = app.deploy(&svc, "c1").await;
    assert_eq!(app.wait_final(&op).await["status"], "DEPLOYMENT_OK");

    // Once at its maximum and still hot for a window, the service log says
    // it is not scaled further: by then every scale-out has been queued.
    let line = app.wait_service_line(&svc, "the service already runs its maximum").await;
    assert!(line.contains("maximum of 3 instances: not scaled"), "{line}");

    let query = "query($s: ID!) { service(id: $s) {
        spec { instances monitoring { cpuThresholdPercent memoryThresholdMb scaleWindowMs maxInstances } }
        instances { id status current }
        operations(first: 10) { nodes { id type status targetInstances trigger { kind source reason author { name } } } } } }";
    let service = app.gql(query, json!({ "s": svc })).await["service"].clone();
    assert_eq!(
        service["spec"],
        json!({ "instances": 3, "monitoring": { "cpuThresholdPercent": 5, "memoryThresholdMb": null,
                                                "scaleWindowMs": 400, "maxInstances": 3 } })
    );
    let current: Vec<&Value> =
        service["instances"].as_array().unwrap().iter().filter(|i| i["current"] == true).collect();
    assert_eq!(current.len(), 3, "{service:#}");
    assert!(current.iter().all(|i| i["status"] == "RUNNING"), "{service:#}");
    let mut scales: Vec<Value> = service["operations"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["type"] == "SCALE")
        .cloned()
        .collect();
    scales.reverse();
    assert_eq!(scales.len(), 2, "one instance per scale-out, and none past the maximum: {scales:#?}");
    for (scale, target) in scales.iter().zip([2, 3]) {
        assert_eq!(scale["status"], "DEPLOYMENT_OK");
        assert_eq!(scale["targetInstances"], target);
        assert_eq!(
            scale["trigger"],
            json!({ "kind": "PLATFORM", "source": "MONITORING", "reason": "SCALING", "author": null })
        );
    }

    // The evidence: which instance, what CPU against which threshold, for
    // how long, and the step.
    let log = app.log_lines(scales[0]["id"].as_str().unwrap()).await;
    let first_instance = current[0]["id"].as_str().unwrap();
    let has = |text: &str| log.iter().any(|l| l.starts_with("SYSTEM") && l.contains(text));
    assert!(
        has(&format!("monitoring: instance {first_instance} stayed above its usage threshold for")),
        "{log:#?}"
    );
    assert!(has("the whole window of 400 ms"), "{log:#?}");
    assert!(has(&format!("monitoring: CPU of instance {first_instance}: ")), "{log:#?}");
    assert!(has("of one core (threshold 5%)"), "{log:#?}");
    assert!(has("scaling out: from 1 to 2 instances (maximum 3)"), "{log:#?}");
    let log = app.log_lines(scales[1]["id"].as_str().unwrap()).await;
    assert!(log.iter().any(|l| l.contains("scaling out: from 2 to 3 instances (maximum 3)")), "{log:#?}");
    app.stop().await;
}

#[tokio::test]
async fn scaling_settings_out_of_range_are_bad_user_input_naming_the_field() {
    let app = TestApp::spawn().await;
    let env = app.create_environment("production").await;
    let create = "mutation($input: CreateServiceInput!) { createService(input: $input) { id } }";
    for (kind, monitoring, field) in [
        ("APPLICATION", json!({ "cpuThresholdPercent": -1 }), "cpuThresholdPercent"),
        ("APPLICATION", json!({ "memoryThresholdMb": 2_000_000 }), "memoryThresholdMb"),
        ("APPLICATION", json!({ "scaleWindowMs": -5 }), "scaleWindowMs"),
        ("APPLICATION", json!({ "maxInstances": 65 }), "maxInstances"),
        ("DATABASE", json!({ "cpuThresholdPercent": 80, "maxInstances": 2 }), "maxInstances"),
    ] {
        let input = json!({ "environmentId": env, "name": "svc", "kind": kind, "monitoring": monitoring });
        app.assert_error(create, json!({ "input": input }), "BAD_USER_INPUT", field).await;
    }
    app.stop().await;
}
