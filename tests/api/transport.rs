//! GraphQL over HTTP by its specification, and the limits on every input:
//! each limit with a request just under it and one just over.

use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::TestApp;

const CREATE: &str = r#"mutation { createEnvironment(input: { name: "staging" }) { id } }"#;

async fn environment_count(app: &TestApp) -> usize {
    let data = app.gql("{ environments { nodes { id } } }", json!({})).await;
    data["environments"]["nodes"].as_array().unwrap().len()
}

/// POSTs `body` as is with `content_type`; returns status and JSON body.
async fn post_raw(app: &TestApp, content_type: Option<&str>, body: String) -> (StatusCode, Value) {
    let mut request = app.client.post(format!("{}/graphql", app.address)).body(body);
    if let Some(content_type) = content_type {
        request = request.header(CONTENT_TYPE, content_type);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

fn code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"].as_str().unwrap_or_else(|| panic!("no error code in {body:#}"))
}

#[tokio::test]
async fn a_form_or_text_post_of_a_mutation_is_refused_with_415_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let body = json!({ "query": CREATE }).to_string();
    for content_type in [Some("application/x-www-form-urlencoded"), Some("text/plain"), None] {
        let (status, reply) = post_raw(&app, content_type, body.clone()).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{content_type:?}: {reply:#}");
        assert_eq!(code(&reply), "BAD_USER_INPUT");
        assert!(reply["errors"][0]["message"].as_str().unwrap().contains("application/json"), "{reply:#}");
    }
    assert_eq!(environment_count(&app).await, 0, "nothing was created");
    let (status, _) = post_raw(&app, Some("application/json; charset=utf-8"), body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(environment_count(&app).await, 1);
    app.stop().await;
}

#[tokio::test]
async fn the_reply_type_and_status_follow_the_accept_header() {
    let app = TestApp::spawn().await;
    let send = |accept: &'static str, query: &'static str| {
        let request = app
            .client
            .post(format!("{}/graphql", app.address))
            .header(ACCEPT, accept)
            .json(&json!({ "query": query }));
        async move {
            let response = request.send().await.unwrap();
            let media = response.headers()[CONTENT_TYPE].to_str().unwrap().to_owned();
            (response.status(), media, response.json::<Value>().await.unwrap())
        }
    };
    let modern = "application/graphql-response+json";
    // A request that cannot start: 400 and no `data` with the new type…
    let (status, media, body) = send(modern, "{ environments { nodes { id }").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(media.starts_with(modern), "{media}");
    assert!(body.get("data").is_none() && code(&body) == "BAD_USER_INPUT", "{body:#}");
    // …and 200 with `application/json`, as legacy clients expect.
    let (status, media, body) = send("application/json", "{ environments { nodes { id }").await;
    assert_eq!(status, StatusCode::OK);
    assert!(media.starts_with("application/json"), "{media}");
    assert_eq!(code(&body), "BAD_USER_INPUT");
    // A request that ran is a 200 either way, errors in fields included.
    let (status, _, body) =
        send(modern, r#"{ environments { nodes { id } } operation(id: "op_1") { id } }"#).await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
    assert_eq!(body["data"]["environments"]["nodes"], json!([]));
    let (status, media, body) = send("text/html", "{ environments { nodes { id } } }").await;
    assert_eq!(status, StatusCode::NOT_ACCEPTABLE, "{body:#}");
    assert!(media.starts_with("application/json"), "{media}");
    app.stop().await;
}

#[tokio::test]
async fn batches_are_refused_unless_configured_and_then_bounded() {
    let app = TestApp::spawn().await;
    let batch = |n: usize| Value::Array(vec![json!({ "query": "{ environments { nodes { id } } }" }); n]);
    let (status, body) = post_raw(&app, Some("application/json"), batch(2).to_string()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(code(&body), "BAD_USER_INPUT");
    assert_eq!(body["errors"][0]["message"], "batched requests are not accepted by this server");
    app.stop().await;

    let app = TestApp::spawn_configured(|args| args.limits.max_batch = 2).await;
    let (status, body) = post_raw(&app, Some("application/json"), batch(2).to_string()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.as_array().unwrap().len(), 2, "{body:#}");
    assert_eq!(body[1]["data"]["environments"]["nodes"], json!([]));
    let (status, body) = post_raw(&app, Some("application/json"), batch(3).to_string()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(code(&body), "LIMIT_EXCEEDED");
    app.stop().await;
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_with_413_declared_or_streamed() {
    let app = TestApp::spawn_configured(|args| args.limits.max_body_bytes = 1_000).await;
    let padded = |len: usize| {
        let body = json!({ "query": CREATE, "variables": { "pad": "" } }).to_string();
        json!({ "query": CREATE, "variables": { "pad": "x".repeat(len - body.len()) } }).to_string()
    };
    let (status, body) = post_raw(&app, Some("application/json"), padded(1_000)).await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
    let (status, body) = post_raw(&app, Some("application/json"), padded(1_001)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(code(&body), "LIMIT_EXCEEDED");
    // Without a length (chunked): refused once the limit is passed.
    let body = padded(1_001);
    let request = format!(
        "POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await.unwrap();
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    assert!(reply.contains("LIMIT_EXCEEDED"), "{reply}");
    assert_eq!(environment_count(&app).await, 1, "only the request under the limit ran");
    app.stop().await;
}

#[tokio::test]
async fn depth_complexity_aliases_and_directives_are_bounded_before_anything_runs() {
    let app = TestApp::spawn_configured(|args| {
        args.limits.max_query_depth = 5;
        args.limits.max_query_complexity = 20_201;
        args.limits.max_aliases = 3;
        args.limits.max_directives = 2;
    })
    .await;
    app.create_environment("production").await;
    // Depth: environments > nodes > services > nodes > name is 5.
    app.gql("{ environments { nodes { services { nodes { name } } } } }", json!({})).await;
    let body = app
        .post("{ environments { nodes { services { nodes { environment { name } } } } } }", json!({}))
        .await;
    assert_eq!(code(&body), "LIMIT_EXCEEDED");
    assert_eq!(body["errors"][0]["message"], "the query nests fields 6 levels deep; the depth limit is 5");
    // Complexity: 1 + 100 × (1 + 1 + 100 × (1 + 1)) = 20,201 fields at most.
    let at_limit = "{ environments(first: 100) { nodes { services(first: 100) { nodes { name } } } } }";
    app.gql(at_limit, json!({})).await;
    let over = "{ environments(first: 100) { nodes { services(first: 100) { nodes { name id } } } } }";
    let body = app.post(over, json!({})).await;
    assert_eq!(code(&body), "LIMIT_EXCEEDED");
    assert_eq!(
        body["errors"][0]["message"],
        "the query may resolve 30201 fields; the complexity limit is 20201"
    );
    // Aliases and directives.
    app.gql(
        "{ a: environments { nodes { id } } b: viewer { member { name } } c: viewer { member { name } } }",
        json!({}),
    )
    .await;
    let body = app.post("{ a: viewer { member { name } } b: viewer { member { name } } c: viewer { member { name } } d: viewer { member { name } } }", json!({})).await;
    assert_eq!(code(&body), "LIMIT_EXCEEDED");
    assert_eq!(body["errors"][0]["message"], "the query has aliases: 4; the aliases limit is 3");
    app.gql("{ viewer { member { name @skip(if: false) } __typename @include(if: true) } }", json!({})).await;
    let body = app
        .post("{ viewer { member { name @skip(if: false) } __typename @include(if: true) } environments @skip(if: true) { nodes { id } } }", json!({}))
        .await;
    assert_eq!(code(&body), "LIMIT_EXCEEDED");
    assert_eq!(body["errors"][0]["message"], "the query has directives: 3; the directives limit is 2");
    app.stop().await;
}

#[tokio::test]
async fn page_sizes_and_string_lengths_are_bounded() {
    let app = TestApp::spawn_configured(|args| args.limits.max_string_bytes = 16).await;
    app.gql("{ environments(first: 100) { nodes { id } } }", json!({})).await;
    let body = app.post("{ environments(first: 101) { nodes { id } } }", json!({})).await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body:#}");
    let create = "mutation($name: String!) { createEnvironment(input: { name: $name }) { id } }";
    app.gql(create, json!({ "name": "a".repeat(16) })).await;
    let body = app.post(create, json!({ "name": "b".repeat(17) })).await;
    assert_eq!(code(&body), "LIMIT_EXCEEDED");
    assert_eq!(
        body["errors"][0]["message"],
        "a string of 17 bytes was sent; the string length limit is 16 bytes"
    );
    let literal =
        format!(r#"mutation {{ createEnvironment(input: {{ name: "{}" }}) {{ id }} }}"#, "c".repeat(17));
    assert_eq!(app.error_code(&literal, json!({})).await, "LIMIT_EXCEEDED");
    assert_eq!(environment_count(&app).await, 1, "only the name within the limit was created");
    app.stop().await;
}

#[tokio::test]
async fn a_caller_past_its_rate_is_answered_429_rate_limited() {
    // One request a second, bursts of two: ten requests in a row cannot
    // all pass unless eight seconds go by.
    let app = TestApp::spawn_configured(|args| args.limits.rate_limit = 1).await;
    let mut statuses = Vec::new();
    for _ in 0..10 {
        let response = app
            .client
            .post(format!("{}/graphql", app.address))
            .json(&json!({ "query": "{ viewer { member { name } } }" }))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(code(&body), "RATE_LIMITED");
        }
        statuses.push(status);
    }
    assert_eq!(&statuses[..2], [StatusCode::OK, StatusCode::OK]);
    assert!(statuses.contains(&StatusCode::TOO_MANY_REQUESTS), "{statuses:?}");
    app.stop().await;
}

#[tokio::test]
async fn without_introspection_errors_suggest_no_field_names() {
    let app = TestApp::spawn().await;
    let body = app.post("{ environmnts { nodes { id } } }", json!({})).await;
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("Did you mean"), "{body:#}");
    app.stop().await;

    let app = TestApp::spawn_configured(|args| args.limits.no_introspection = true).await;
    let body = app.post("{ environmnts { nodes { id } } }", json!({})).await;
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(!message.contains("Did you mean") && !message.contains("environments"), "{message}");
    let body = app.post("{ __schema { types { name } } }", json!({})).await;
    assert_eq!(body["data"]["__schema"], Value::Null, "the schema is not described: {body:#}");
    app.stop().await;
}

#[tokio::test]
async fn every_error_carries_the_request_id_of_its_reply() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .post(format!("{}/graphql", app.address))
        .json(&json!({ "query": r#"mutation { cancelOperation(input: { operationId: "op_404" }) { id } }"# }))
        .send()
        .await
        .unwrap();
    let id = response.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    assert!(id.starts_with("req_"), "{id}");
    let error = &body["errors"][0];
    assert_eq!(error["extensions"], json!({ "code": "NOT_FOUND", "requestId": id }), "{body:#}");
    // Each request has its own id.
    let response =
        app.client.post(format!("{}/graphql", app.address)).json(&json!({ "query": "{" })).send().await;
    let other = response.unwrap().headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_ne!(id, other);
    app.stop().await;
}

/// A small generator of documents: fragments of valid syntax, field names
/// of the schema and junk, shuffled by a seeded xorshift.
struct Documents(u64);

impl Documents {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }

    fn document(&mut self) -> String {
        const PIECES: &[&str] = &[
            "{",
            "}",
            "(",
            ")",
            "[",
            "]",
            ":",
            "$x",
            "...",
            "@skip(if: true)",
            "query",
            "mutation",
            "subscription",
            "fragment F on Query",
            "environments",
            "environment",
            "service",
            "operation",
            "nodes",
            "edges",
            "node",
            "id",
            "name",
            "first: 100",
            "first: -1",
            "last: 2147483648",
            "after: \"zz\"",
            "id: \"svc_1\"",
            "id: \"\\u0000\"",
            "input: {}",
            "createEnvironment",
            "deploy",
            "cancelOperation",
            "appendLogs",
            "logs",
            "runningStatus",
            "__typename",
            "__schema",
            "types",
            "\"",
            "#",
            ",",
            "1e999",
            "null",
            "true",
            "ÿ",
            "\u{feff}",
            "a: viewer",
            "viewer",
        ];
        let len = 1 + self.next() % 24;
        (0..len).map(|_| self.pick(PIECES)).collect::<Vec<_>>().join(" ")
    }

    fn variables(&mut self) -> Value {
        match self.next() % 5 {
            0 => json!(null),
            1 => json!({ "x": self.next() }),
            2 => json!({ "x": "a".repeat((self.next() % 64) as usize) }),
            3 => json!([1, 2]),
            _ => json!({ "x": { "y": [null, -1.5, "z"] } }),
        }
    }
}

#[tokio::test]
async fn generated_documents_get_no_5xx_and_no_internal_detail() {
    let app = TestApp::spawn_configured(|args| args.limits.rate_limit = 0).await;
    app.create_environment("production").await;
    let seed =
        std::env::var("OPSGRAPH_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed_1234_u64);
    let rounds = std::env::var("OPSGRAPH_FUZZ_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(400);
    let mut documents = Documents(seed);
    for round in 0..rounds {
        let (query, variables) = (documents.document(), documents.variables());
        let response = app
            .client
            .post(format!("{}/graphql", app.address))
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        let context = format!("seed {seed:#x}, round {round}: {query} / {variables} → {status} {text}");
        assert!(status.is_success() || status.is_client_error(), "{context}");
        assert!(!text.contains("internal error") && !text.contains("panicked"), "{context}");
        let body: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {context}"));
        if let Some(errors) = body["errors"].as_array() {
            assert!(errors.iter().all(|e| e["extensions"]["code"].is_string()), "{context}");
        }
    }
    app.stop().await;
}
