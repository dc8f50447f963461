//! Outside workers: the reference worker (`examples/worker.py`, a real
//! process) runs operations of pool `ci`; a scripted fake speaking raw
//! GraphQL plays the worker that goes silent, comes back late, or races
//! fifteen others for the same queue.

use std::process::Stdio;

use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::helpers::{HTTP_SERVER, TestApp, free_port, steps};

/// Milliseconds of a lease in the tests that wait for one to run out.
const SHORT_LEASE_MS: u64 = 600;

/// The reference worker, as a child process in its own process group.
struct ReferenceWorker {
    child: tokio::process::Child,
}

impl ReferenceWorker {
    fn start(app: &TestApp, token: &str, id: &str) -> Self {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/worker.py");
        let work_dir = app.dir.path().join(format!("worker-{id}"));
        let child = tokio::process::Command::new("python3")
            .arg(script)
            .args(["--url", &format!("{}/graphql", app.address), "--token", token, "--pool", "ci"])
            .args(["--worker-id", id, "--poll", "0.05", "--work-dir"])
            .arg(work_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .expect("python3 runs the reference worker");
        Self { child }
    }

    /// SIGKILL, now: the worker says nothing more.
    async fn kill(mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id().unwrap() as i32);
        nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
        self.child.wait().await.unwrap();
    }

    /// SIGTERM: the worker stops its instances and exits.
    async fn stop(mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id().unwrap() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        self.child.wait().await.unwrap();
    }
}

/// A server (with `lease_ms` leases), an environment, a worker token and a
/// service of pool `ci` built by `build`.
async fn pool(lease_ms: u64, build: &str) -> (TestApp, String, String, String) {
    let app = TestApp::spawn_configured(|args| args.worker_lease_ms = lease_ms).await;
    let env = app.create_environment("production").await;
    let token = app.worker_token("ci-worker").await;
    let svc = app
        .create_service(
            &env,
            json!({ "name": "api", "kind": "APPLICATION", "executor": "ci", "buildCommand": build,
                    "startCommand": "echo serving $COMMIT; exec sleep 60", "healthCheck": { "graceMs": 50 },
                    "stopGraceMs": 200 }),
        )
        .await;
    (app, env, token, svc)
}

/// A call of the protocol as `token`: the whole reply.
async fn call(app: &TestApp, token: &str, query: &str, variables: Value) -> Value {
    app.post_as(Some(token), query, variables).await
}

fn code(body: &Value) -> Option<&str> {
    body["errors"][0]["extensions"]["code"].as_str()
}

const CLAIM: &str = "mutation($w: String!) { claimOperation(input: { pool: \"ci\", workerId: $w }) { id expiresAt cancelRequested operation { id status commit steps { kind } } service { id spec { executor } } } }";
const START: &str =
    "mutation($l: ID!, $s: Int!) { startStep(input: { leaseId: $l, step: $s }) { id operation { status } } }";

#[tokio::test]
async fn a_deploy_runs_entirely_on_the_reference_worker() {
    let (app, env, token, svc) = pool(30_000, "echo building $COMMIT; echo a warning >&2").await;
    let service =
        app.gql("query($s: ID!) { service(id: $s) { spec { executor } } }", json!({ "s": svc })).await;
    assert_eq!(service["service"]["spec"]["executor"], "ci");
    let worker = ReferenceWorker::start(&app, &token, "ref-1");
    let op = app.deploy(&svc, "c1").await;
    let done = app.wait_final(&op).await;
    assert_eq!(done["status"], "DEPLOYMENT_OK", "{done:#}");
    assert!(steps(&done).iter().all(|(_, status)| status == "SUCCEEDED"), "{done:#}");
    let lines = app.log_lines(&op).await;
    let has = |text: &str| lines.iter().any(|l| l.contains(text));
    assert!(has("claimed by worker `ref-1` of pool `ci`"), "{lines:#?}");
    assert!(lines.contains(&"STDOUT building c1".to_owned()), "the build's output: {lines:#?}");
    assert!(lines.contains(&"STDERR a warning".to_owned()), "{lines:#?}");
    assert!(has("step build: succeeded (build command succeeded) [worker `ref-1`]"), "{lines:#?}");
    assert!(has("finished: DEPLOYMENT_OK"), "{lines:#?}");
    // The service now runs the commit; its deployment status says so.
    let service = app
        .gql("query($s: ID!) { service(id: $s) { currentCommit deploymentStatus } }", json!({ "s": svc }))
        .await;
    assert_eq!(service["service"], json!({ "currentCommit": "c1", "deploymentStatus": "DEPLOYMENT_OK" }));
    // Nothing local ran it: no instance of this server's executor.
    let instances =
        app.gql("query($s: ID!) { service(id: $s) { instances { id } } }", json!({ "s": svc })).await;
    assert_eq!(instances["service"]["instances"], json!([]));
    let _ = env;
    worker.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn a_worker_killed_mid_step_is_declared_lost_and_its_operation_ends_with_rollback_failed() {
    let (app, env, token, svc) = pool(SHORT_LEASE_MS, "echo building; sleep 30").await;
    let worker = ReferenceWorker::start(&app, &token, "ref-1");
    let op = app.deploy(&svc, "c1").await;
    app.wait_step(&env, &op, "BUILD", "RUNNING").await;
    worker.kill().await;
    let done = app.wait_final(&op).await;
    assert_eq!(done["status"], "BUILDING_ERROR", "{done:#}");
    assert_eq!(done["rollback"], "FAILED", "unknown: the worker may have left anything behind");
    assert_eq!(steps(&done)[0], ("BUILD".to_owned(), "FAILED".to_owned()));
    let lines = app.log_lines(&op).await;
    let lost = lines
        .iter()
        .find(|l| l.contains("worker `ref-1` was lost"))
        .expect("a line says the worker was lost");
    assert!(lost.starts_with("SYSTEM") && lost.contains("running step: build"), "{lost}");
    app.stop().await;
}

#[tokio::test]
async fn a_worker_lost_before_its_first_step_leaves_the_operation_to_another_and_its_late_calls_are_refused()
{
    let (app, env, token, svc) = pool(SHORT_LEASE_MS, "echo building $COMMIT").await;
    let op = app.deploy(&svc, "c1").await;
    // The fake claims, then goes silent before its first step.
    let claim = call(&app, &token, CLAIM, json!({ "w": "fake-1" })).await;
    let lease = claim["data"]["claimOperation"]["id"].as_str().expect("a lease").to_owned();
    assert_eq!(claim["data"]["claimOperation"]["operation"]["id"], op.as_str());
    assert_eq!(
        claim["data"]["claimOperation"]["operation"]["status"], "QUEUED",
        "nothing runs before a step"
    );
    // Claiming again before it lapses: the same lease (a retry).
    let again = call(&app, &token, CLAIM, json!({ "w": "fake-1" })).await;
    assert_eq!(again["data"]["claimOperation"]["id"], lease.as_str());
    // Another worker finds nothing while fake-1 holds it.
    let other = call(&app, &token, CLAIM, json!({ "w": "fake-2" })).await;
    assert_eq!(other["data"]["claimOperation"], Value::Null, "{other}");

    let worker = ReferenceWorker::start(&app, &token, "ref-2");
    let done = app.wait_final(&op).await;
    assert_eq!(done["status"], "DEPLOYMENT_OK", "{done:#}");
    let lines = app.log_lines(&op).await;
    let at = |text: &str| {
        lines.iter().position(|l| l.contains(text)).unwrap_or_else(|| panic!("{text}: {lines:#?}"))
    };
    assert!(at("worker `fake-1` was lost before its first step") < at("claimed by worker `ref-2`"));
    assert!(
        lines.iter().any(|l| l.contains(&format!("{}_2", lease.strip_suffix("_1").unwrap()))),
        "a second claim"
    );

    // fake-1 comes back: every call under its old lease is refused and
    // changes nothing.
    for (query, variables) in [
        ("mutation($l: ID!) { renewLease(input: { leaseId: $l }) { id } }", json!({ "l": lease })),
        (START, json!({ "l": lease, "s": 0 })),
        (
            "mutation($l: ID!) { completeOperation(input: { leaseId: $l, outcome: FAILED }) { id } }",
            json!({ "l": lease }),
        ),
    ] {
        let body = call(&app, &token, query, variables).await;
        assert_eq!(code(&body), Some("CONFLICT"), "{body}");
    }
    assert_eq!(app.operation(&op).await["status"], "DEPLOYMENT_OK");
    let _ = env;
    worker.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn a_cancel_reaches_the_worker_which_stops_rolls_back_and_completes_it_as_cancelled() {
    let (app, env, token, svc) = pool(30_000, "echo building; sleep 30").await;
    // The fake listens for commands as `ref-1`, the reference worker's id.
    let mut commands = app
        .subscribe_as(
            &token,
            "subscription { workerCommands(workerId: \"ref-1\") { kind lease { id operation { id status } } } }",
            json!({}),
        )
        .await;
    let worker = ReferenceWorker::start(&app, &token, "ref-1");
    let op = app.deploy(&svc, "c1").await;
    app.wait_step(&env, &op, "BUILD", "RUNNING").await;
    app.gql(
        "mutation($o: ID!) { cancelOperation(input: { operationId: $o }) { status } }",
        json!({ "o": op }),
    )
    .await;
    let command = commands.next().await.expect("a command");
    assert_eq!(command["workerCommands"]["kind"], "CANCEL");
    assert_eq!(command["workerCommands"]["lease"]["operation"], json!({ "id": op, "status": "CANCELLING" }));
    let done = app.wait_final(&op).await;
    assert_eq!(done["status"], "CANCELLED", "{done:#}");
    assert_eq!(steps(&done)[0], ("BUILD".to_owned(), "CANCELLED".to_owned()));
    let lines = app.log_lines(&op).await;
    assert!(
        lines.iter().any(|l| l.contains("step build: cancelled (stopped by the cancel) [worker `ref-1`]")),
        "{lines:#?}"
    );
    assert!(lines.iter().any(|l| l.contains("finished: CANCELLED")), "{lines:#?}");
    worker.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn sixteen_workers_claiming_at_once_never_hold_the_same_operation() {
    let app = TestApp::spawn().await;
    let env = app.create_environment("production").await;
    let token = app.worker_token("ci-worker").await;
    // Six services with two operations each: only the six heads may run.
    let mut heads = Vec::new();
    for n in 0..6 {
        let svc = app
            .create_service(&env, json!({ "name": format!("job{n}"), "kind": "JOB", "executor": "ci" }))
            .await;
        heads.push(app.deploy(&svc, "a").await);
        app.deploy(&svc, "b").await;
    }
    let claims = join_all((0..16).map(|n| {
        let (app, token) = (&app, &token);
        async move { call(app, token, CLAIM, json!({ "w": format!("w{n}") })).await }
    }))
    .await;
    let mut held: Vec<String> = claims
        .iter()
        .filter_map(|c| c["data"]["claimOperation"]["operation"]["id"].as_str().map(str::to_owned))
        .collect();
    assert!(claims.iter().all(|c| c.get("errors").is_none()), "{claims:#?}");
    held.sort();
    let mut expected = heads.clone();
    expected.sort();
    assert_eq!(held, expected, "each head once, nothing behind a head, no operation twice");

    // Out of order, or not yet: refused with a code naming why.
    let lease = claims.iter().find_map(|c| c["data"]["claimOperation"]["id"].as_str()).unwrap();
    let body = call(&app, &token, START, json!({ "l": lease, "s": 1 })).await;
    assert_eq!(code(&body), Some("CONFLICT"), "step 1 before step 0: {body}");
    let complete = "mutation($l: ID!, $o: WorkerOutcome!) { completeOperation(input: { leaseId: $l, outcome: $o }) { id } }";
    let body = call(&app, &token, complete, json!({ "l": lease, "o": "SUCCEEDED" })).await;
    assert_eq!(code(&body), Some("INVALID_TRANSITION"), "{body}");
    let body = call(&app, &token, START, json!({ "l": "lease_x", "s": 0 })).await;
    assert_eq!(code(&body), Some("BAD_USER_INPUT"), "{body}");
    // A started step retried after a lost reply: the same answer, one line.
    let first = call(&app, &token, START, json!({ "l": lease, "s": 0 })).await;
    let retry = call(&app, &token, START, json!({ "l": lease, "s": 0 })).await;
    assert_eq!(first["data"], retry["data"]);
    assert_eq!(first["data"]["startStep"]["operation"]["status"], "BUILDING");
    let op = lease.trim_start_matches("lease_").split('_').next().unwrap();
    let started =
        app.log_lines(&format!("op_{op}")).await.iter().filter(|l| l.contains("started [worker")).count();
    assert_eq!(started, 1);
    // A people's token may not claim; the executor of a busy service stays.
    let body = app.post(CLAIM, json!({ "w": "me" })).await;
    assert_eq!(code(&body), Some("FORBIDDEN"), "{body}");
    let svc = app.operation(&heads[0]).await["service"]["id"].clone();
    app.assert_error(
        "mutation($s: ID!) { updateService(input: { serviceId: $s, executor: \"local\" }) { id } }",
        json!({ "s": svc }),
        "CONFLICT",
        "executor",
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn a_leased_operation_survives_a_server_restart_and_its_worker_finishes_it() {
    let (app, _env, token, svc) = pool(30_000, "true").await;
    let op = app.deploy(&svc, "c1").await;
    let claim = call(&app, &token, CLAIM, json!({ "w": "fake-1" })).await;
    let lease = claim["data"]["claimOperation"]["id"].as_str().unwrap().to_owned();
    let steps_planned = claim["data"]["claimOperation"]["operation"]["steps"].as_array().unwrap().len();
    call(&app, &token, START, json!({ "l": lease, "s": 0 })).await;
    let dir = app.dir.clone();
    app.stop().await;
    let app = TestApp::spawn_in(dir).await;
    // Start-up recovery left it to its worker.
    assert_eq!(app.operation(&op).await["status"], "BUILDING");
    let finish = "mutation($l: ID!, $s: Int!) { finishStep(input: { leaseId: $l, step: $s, status: SUCCEEDED }) { id } }";
    for step in 0..steps_planned {
        if step > 0 {
            let body = call(&app, &token, START, json!({ "l": lease, "s": step })).await;
            assert!(body.get("errors").is_none(), "{body}");
        }
        let body = call(&app, &token, finish, json!({ "l": lease, "s": step })).await;
        assert!(body.get("errors").is_none(), "{body}");
    }
    let complete = "mutation($l: ID!) { completeOperation(input: { leaseId: $l, outcome: SUCCEEDED }) { operation { status } } }";
    let first = call(&app, &token, complete, json!({ "l": lease })).await;
    let retry = call(&app, &token, complete, json!({ "l": lease })).await;
    assert_eq!(first["data"]["completeOperation"]["operation"]["status"], "DEPLOYMENT_OK", "{first}");
    assert_eq!(first["data"], retry["data"], "a retried completion answers the same");
    app.stop().await;
}

#[tokio::test]
async fn a_monitoring_agents_failed_probe_makes_the_platform_redeploy_a_pool_service() {
    let (app, env, token, svc) = pool(30_000, "echo building $COMMIT").await;
    let worker = ReferenceWorker::start(&app, &token, "ref-1");
    let first = app.deploy(&svc, "c1").await;
    assert_eq!(app.wait_final(&first).await["status"], "DEPLOYMENT_OK");
    let agent = app.agent_token("MONITORING", "agent-eu").await;
    let probe = "mutation($s: ID!, $ok: Boolean!) { reportProbe(input: { serviceId: $s, instance: \"web-1\", probe: HEALTH, ok: $ok, detail: \"no answer in 2000 ms\" }) { action reason } }";
    let healthy = call(&app, &agent, probe, json!({ "s": svc, "ok": true })).await;
    assert_eq!(healthy["data"]["reportProbe"], json!({ "action": "NONE", "reason": null }), "{healthy}");

    let mut events = app
        .subscribe(
            "subscription($e: ID!) { operationEvents(environmentId: $e) { operation { id type trigger { kind source reason } } } }",
            json!({ "e": env }),
        )
        .await;
    let failed = call(&app, &agent, probe, json!({ "s": svc, "ok": false })).await;
    assert_eq!(
        failed["data"]["reportProbe"],
        json!({ "action": "REDEPLOY_QUEUED", "reason": "TIMEOUT" }),
        "{failed}"
    );
    let redeploy = loop {
        let event = events.next().await.expect("an event");
        let op = &event["operationEvents"]["operation"];
        if op["type"] == "REDEPLOY" {
            break op.clone();
        }
    };
    assert_eq!(
        redeploy["trigger"],
        json!({ "kind": "PLATFORM", "source": "MONITORING", "reason": "TIMEOUT" })
    );
    // Reported again while it recovers: noted, nothing more.
    let again = call(&app, &agent, probe, json!({ "s": svc, "ok": false })).await;
    assert_eq!(again["data"]["reportProbe"]["action"], "ALREADY_RECOVERING", "{again}");
    let op = redeploy["id"].as_str().unwrap();
    assert_eq!(app.wait_final(op).await["status"], "DEPLOYMENT_OK", "the pool's worker ran the redeploy");
    let lines = app.log_lines(op).await;
    assert!(
        lines.iter().any(
            |l| l.contains("monitoring agent `agent-eu`: instance web-1: TIMEOUT (no answer in 2000 ms)")
        ),
        "the evidence: {lines:#?}"
    );
    assert!(lines.iter().any(|l| l.contains("claimed by worker `ref-1`")), "{lines:#?}");

    // An instance reported in ERROR counts as UNREACHABLE; instances all
    // RUNNING are nothing to act on; a local service is not theirs.
    let other =
        app.create_service(&env, json!({ "name": "api2", "kind": "APPLICATION", "executor": "ci" })).await;
    let report = "mutation($s: ID!, $st: ReportedInstanceStatus!) { reportInstances(input: { serviceId: $s, instances: [{ name: \"web-1\", status: RUNNING }, { name: \"web-2\", status: $st }] }) { action reason } }";
    let body = call(&app, &agent, report, json!({ "s": other, "st": "RUNNING" })).await;
    assert_eq!(body["data"]["reportInstances"], json!({ "action": "NONE", "reason": null }), "{body}");
    let body = call(&app, &agent, report, json!({ "s": other, "st": "ERROR" })).await;
    assert_eq!(
        body["data"]["reportInstances"],
        json!({ "action": "REDEPLOY_QUEUED", "reason": "UNREACHABLE" }),
        "{body}"
    );
    let local = app.create_service(&env, json!({ "name": "local", "kind": "APPLICATION" })).await;
    let body = call(&app, &agent, report, json!({ "s": local, "st": "ERROR" })).await;
    assert_eq!(code(&body), Some("CONFLICT"), "{body}");
    worker.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn the_reference_worker_starts_new_instances_beside_the_serving_ones_and_scales() {
    let app = TestApp::spawn().await;
    let env = app.create_environment("production").await;
    let token = app.worker_token("ci-worker").await;
    let port = free_port();
    let svc = app
        .create_service(
            &env,
            json!({ "name": "web", "kind": "APPLICATION", "executor": "ci", "startCommand": HTTP_SERVER,
                    "port": port, "healthCheck": { "graceMs": 300 }, "stopGraceMs": 200 }),
        )
        .await;
    let worker = ReferenceWorker::start(&app, &token, "ref-1");
    let body = |port: u16| async move {
        reqwest::get(format!("http://127.0.0.1:{port}/")).await.ok()?.text().await.ok()
    };
    for commit in ["c1", "c2"] {
        let op = app.deploy(&svc, commit).await;
        assert_eq!(app.wait_final(&op).await["status"], "DEPLOYMENT_OK", "{commit}");
    }
    // c2 started beside c1 (on the next port) before c1 stopped.
    assert_eq!(body(port + 1).await.as_deref(), Some("c2"));
    assert_eq!(body(port).await, None, "the old instance is stopped");
    let scale = |n: u32| {
        let svc = svc.clone();
        let app = &app;
        async move {
            let data = app
                .gql(
                    "mutation($s: ID!, $n: Int!) { scale(input: { serviceId: $s, instances: $n }) { id } }",
                    json!({ "s": svc, "n": n }),
                )
                .await;
            app.wait_final(data["scale"]["id"].as_str().unwrap()).await
        }
    };
    assert_eq!(scale(2).await["status"], "DEPLOYMENT_OK");
    assert_eq!(body(port).await.as_deref(), Some("c2"), "the second instance took the free port");
    assert_eq!(body(port + 1).await.as_deref(), Some("c2"));
    assert_eq!(scale(1).await["status"], "DEPLOYMENT_OK");
    let serving = [body(port).await, body(port + 1).await].into_iter().flatten().count();
    assert_eq!(serving, 1, "scaling down stops only the instances beyond the target");
    worker.stop().await;
    app.stop().await;
}

/// A worker process that claims one operation of pool `ci` as `id`, prints
/// its lease id, then hangs before its first step.
const CLAIM_AND_HANG: &str = r#"
import json, sys, time, urllib.request
url, token, worker = sys.argv[1:4]
query = 'mutation($w: String!) { claimOperation(input: { pool: "ci", workerId: $w }) { id } }'
request = urllib.request.Request(url, method="POST", headers={"content-type": "application/json", "authorization": "Bearer " + token},
    data=json.dumps({"query": query, "variables": {"w": worker}}).encode())
print(json.loads(urllib.request.urlopen(request).read())["data"]["claimOperation"]["id"], flush=True)
time.sleep(600)
"#;

#[tokio::test]
async fn a_worker_process_killed_before_its_first_step_leaves_its_operation_to_another_worker() {
    use tokio::io::AsyncBufReadExt;
    let (app, _env, token, svc) = pool(SHORT_LEASE_MS, "echo building $COMMIT").await;
    let op = app.deploy(&svc, "c1").await;
    let mut doomed = tokio::process::Command::new("python3")
        .args(["-c", CLAIM_AND_HANG, &format!("{}/graphql", app.address), &token, "doomed-1"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 runs");
    let mut lines = tokio::io::BufReader::new(doomed.stdout.take().unwrap()).lines();
    let lease = lines.next_line().await.unwrap().expect("the lease it claimed");
    assert!(lease.starts_with(&format!("lease_{}_", op.trim_start_matches("op_"))), "{lease}");
    doomed.kill().await.unwrap();

    let worker = ReferenceWorker::start(&app, &token, "ref-2");
    let done = app.wait_final(&op).await;
    assert_eq!(done["status"], "DEPLOYMENT_OK", "{done:#}");
    let lines = app.log_lines(&op).await;
    let at = |text: &str| {
        lines.iter().position(|l| l.contains(text)).unwrap_or_else(|| panic!("{text}: {lines:#?}"))
    };
    assert!(at("claimed by worker `doomed-1`") < at("worker `doomed-1` was lost before its first step"));
    assert!(at("worker `doomed-1` was lost before its first step") < at("claimed by worker `ref-2`"));
    assert!(lines.iter().all(|l| !l.contains("started [worker `doomed-1`]")), "{lines:#?}");
    worker.stop().await;
    app.stop().await;
}
