//! `medlink serve`'s router, called in-process with `tower::ServiceExt::oneshot` (no ports):
//! every route, status and limit, bad input, the API key, metrics, the OpenAPI document.

use std::collections::BTreeSet;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use medlink::server::{router, AppState, IndexSpec, Limits, ServerConfig};
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::common::{encoder, hpo_index, sample_index};

fn state_with(config: ServerConfig) -> AppState {
    AppState::with_indexes(
        config,
        vec![IndexSpec {
            name: "cardio".into(),
            index: sample_index(),
            encoder: encoder(),
            annotate_types: Vec::new(),
        }],
    )
    .unwrap()
}

fn app() -> Router {
    router(state_with(ServerConfig::default()))
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("{e}: {}", self.text))
    }

    /// Asserts the status and the JSON error shape, and returns the error code.
    fn error(&self, status: StatusCode) -> String {
        assert_eq!(self.status, status, "{}", self.text);
        let json = self.json();
        assert!(json["error"]["message"].is_string(), "{}", self.text);
        json["error"]["code"].as_str().unwrap().to_string()
    }
}

async fn send(app: &Router, request: Request<Body>) -> Answer {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        text: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

async fn get(app: &Router, uri: &str) -> Answer {
    send(app, Request::get(uri).body(Body::empty()).unwrap()).await
}

async fn post(app: &Router, uri: &str, body: impl Into<Body>) -> Answer {
    send(
        app,
        Request::post(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.into())
            .unwrap(),
    )
    .await
}

async fn link(app: &Router, body: Value) -> Answer {
    post(app, "/v1/link", body.to_string()).await
}

#[tokio::test]
async fn health_and_readiness() {
    let app = app();
    let a = get(&app, "/healthz").await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json()["status"], "ok");
    assert_eq!(get(&app, "/readyz").await.status, StatusCode::OK);

    // Before the indexes are loaded: alive, not ready, /v1 answers 503 with Retry-After.
    let loading = router(AppState::new(ServerConfig::default()).unwrap());
    assert_eq!(get(&loading, "/healthz").await.status, StatusCode::OK);
    let a = get(&loading, "/readyz").await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(a.json()["status"], "loading");
    let a = link(&loading, json!({"mentions": [{"mention": "heart attack"}]})).await;
    assert_eq!(a.error(StatusCode::SERVICE_UNAVAILABLE), "not_ready");
    assert!(a.headers.contains_key(header::RETRY_AFTER));
}

#[tokio::test]
async fn link_answers_each_mention_in_order() {
    let app = app();
    let a = link(
        &app,
        json!({
            "mentions": [
                {"id": "a", "mention": "heart attack"},
                {"id": 2, "mention": "high blood pressure"},
                {"mention": "VTC", "context": "She had ventricular tachycardia (VTC) twice."}
            ],
            "k": 3
        }),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let json = a.json();
    assert_eq!(json["index"], "cardio");
    let results = json["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(results[0]["id"], "a");
    assert_eq!(results[1]["id"], 2);
    let first = &results[0]["candidates"][0];
    assert_eq!(first["id"], "CARD:0003");
    assert_eq!(first["name"], "Myocardial infarction");
    assert_eq!(first["matched_name"], "heart attack");
    assert_eq!(first["exact"], true);
    for key in ["score", "dense", "lexical", "bonus", "source"] {
        assert!(first.get(key).is_some(), "candidate lacks {key}: {first}");
    }
    assert_eq!(results[0]["candidates"].as_array().unwrap().len(), 3);
    assert_eq!(results[1]["candidates"][0]["id"], "CARD:0012");
    // A short form defined in its context is linked by its long form.
    assert_eq!(results[2]["expanded_from"], "VTC");
    assert_eq!(results[2]["candidates"][0]["id"], "CARD:0007");
}

#[tokio::test]
async fn one_bad_mention_gets_its_own_error_entry() {
    let app = app();
    let a = link(
        &app,
        json!({"mentions": [
            {"mention": "heart attack"},
            {"mention": "  !!  "},
            {"mention": "x".repeat(1001)},
            {"mention": "angina", "context": "y".repeat(100_001)}
        ]}),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let results = a.json()["results"].as_array().unwrap().clone();
    assert_eq!(results[0]["candidates"][0]["id"], "CARD:0003");
    for bad in &results[1..] {
        assert_eq!(bad["error"]["code"], "invalid_mention", "{bad}");
        assert!(bad.get("candidates").is_none());
    }
    assert!(results[2]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("limit is 1000"));
    assert!(!a.text.contains("xxxxxxxx"), "errors never quote mentions");
}

#[tokio::test]
async fn bad_link_requests_get_the_right_4xx() {
    let app = app();
    let cases: Vec<(&str, Body, StatusCode, &str)> = vec![
        (
            "malformed JSON",
            Body::from("{\"mentions\": [{\"mention\": \"x\"}"),
            StatusCode::BAD_REQUEST,
            "bad_json",
        ),
        (
            "not JSON",
            Body::from("mention=big head"),
            StatusCode::BAD_REQUEST,
            "bad_json",
        ),
        (
            "invalid UTF-8",
            Body::from(b"{\"mentions\": [{\"mention\": \"\xff\xfe\"}]}".to_vec()),
            StatusCode::BAD_REQUEST,
            "bad_json",
        ),
        (
            "wrong type for mentions",
            Body::from(r#"{"mentions": "heart attack"}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            "wrong type for k",
            Body::from(r#"{"mentions": [{"mention": "a"}], "k": "five"}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            "mention is a number",
            Body::from(r#"{"mentions": [{"mention": 3}]}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            "unknown field",
            Body::from(r#"{"mentions": [{"mention": "a"}], "kk": 5}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            "missing mentions",
            Body::from("{}"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            "empty batch",
            Body::from(r#"{"mentions": []}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            "k = 0",
            Body::from(r#"{"mentions": [{"mention": "angina"}], "k": 0}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            "k = 101",
            Body::from(r#"{"mentions": [{"mention": "angina"}], "k": 101}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            "bad mode",
            Body::from(r#"{"mentions": [{"mention": "angina"}], "mode": "magic"}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            "alpha out of range",
            Body::from(r#"{"mentions": [{"mention": "angina"}], "alpha": 2}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            "unknown type filter",
            Body::from(r#"{"mentions": [{"mention": "angina"}], "types": ["no such type"]}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            "unknown index",
            Body::from(r#"{"mentions": [{"mention": "angina"}], "index": "nope"}"#),
            StatusCode::NOT_FOUND,
            "unknown_index",
        ),
    ];
    for (name, body, status, code) in cases {
        let a = post(&app, "/v1/link", body).await;
        assert_eq!(a.status, status, "{name}: {}", a.text);
        assert_eq!(a.error(status), code, "{name}");
    }

    let many: Vec<Value> = (0..10_000).map(|_| json!({"mention": "angina"})).collect();
    let a = link(&app, json!({ "mentions": many })).await;
    assert_eq!(a.error(StatusCode::PAYLOAD_TOO_LARGE), "too_many_mentions");

    let huge = vec![b' '; 100 * 1024 * 1024];
    let a = post(&app, "/v1/link", huge).await;
    assert_eq!(a.error(StatusCode::PAYLOAD_TOO_LARGE), "payload_too_large");

    // The server keeps serving after all of that.
    let a = link(&app, json!({"mentions": [{"mention": "angina"}]})).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.json()["results"][0]["candidates"][0]["id"], "CARD:0004");
}

#[tokio::test]
async fn annotate_finds_links_and_expands_mentions() {
    let app = app();
    let text = "He had a heart attack and high blood pressure; atrial fibrillation (AF) was seen, then AF recurred.";
    let a = post(
        &app,
        "/v1/annotate",
        json!({"texts": [text, "Nothing here."], "k": 3}).to_string(),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let json = a.json();
    let results = json["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert!(results[1]["mentions"].as_array().unwrap().is_empty());
    let mentions = results[0]["mentions"].as_array().unwrap();
    let found: Vec<(String, String)> = mentions
        .iter()
        .map(|m| {
            (
                m["text"].as_str().unwrap().to_string(),
                m["candidates"][0]["id"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let chars: Vec<char> = text.chars().collect();
    for m in mentions {
        let (start, end) = (
            m["start"].as_u64().unwrap() as usize,
            m["end"].as_u64().unwrap() as usize,
        );
        let covered: String = chars[start..end].iter().collect();
        assert_eq!(
            covered,
            m["text"].as_str().unwrap(),
            "offsets are characters"
        );
        assert!(m["type"].is_string());
    }
    for (mention, id) in [
        ("heart attack", "CARD:0003"),
        ("high blood pressure", "CARD:0012"),
        ("atrial fibrillation", "CARD:0006"),
    ] {
        assert!(
            found.contains(&(mention.to_string(), id.to_string())),
            "{mention} -> {id} missing: {found:?}"
        );
    }
    assert!(
        found
            .iter()
            .filter(|(m, id)| m == "AF" && id == "CARD:0006")
            .count()
            >= 1,
        "{found:?}"
    );
    // Dictionary linking: the same top concepts, each match keeping only its own concepts.
    let d = post(
        &app,
        "/v1/annotate",
        json!({"texts": [text], "k": 3, "linking": "dictionary"}).to_string(),
    )
    .await;
    assert_eq!(d.status, StatusCode::OK, "{}", d.text);
    let by_dictionary = d.json()["results"][0]["mentions"].clone();
    let top: Vec<(String, String)> = by_dictionary
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            assert_eq!(m["candidates"].as_array().unwrap().len(), 1, "{m}");
            (
                m["text"].as_str().unwrap().to_string(),
                m["candidates"][0]["id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(top, found);

    for (body, status, code) in [
        (
            json!({"texts": ["x"], "linking": "model"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            json!({"texts": []}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            json!({"texts": "one"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            json!({"text": ["one"]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            json!({"texts": ["a"], "k": 0}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            json!({"texts": ["a"], "k": 101}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            json!({"texts": ["a"], "index": "nope"}),
            StatusCode::NOT_FOUND,
            "unknown_index",
        ),
        (
            json!({"texts": ["a".repeat(100_001)]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            json!({"texts": vec!["a"; 10_000]}),
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_many_texts",
        ),
    ] {
        let a = post(&app, "/v1/annotate", body.to_string()).await;
        assert_eq!(a.error(status), code, "{body}");
    }
    let a = post(&app, "/v1/annotate", "{\"texts\": [\"x").await;
    assert_eq!(a.error(StatusCode::BAD_REQUEST), "bad_json");
    let a = post(&app, "/v1/annotate", b"{\"texts\": [\"\xff\"]}".to_vec()).await;
    assert_eq!(a.error(StatusCode::BAD_REQUEST), "bad_json");
}

#[tokio::test]
async fn search_answers_and_validates() {
    let app = app();
    let a = get(&app, "/v1/search?q=heart%20attack&k=2").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let json = a.json();
    assert_eq!(json["query"], "heart attack");
    assert_eq!(json["candidates"][0]["id"], "CARD:0003");
    assert_eq!(json["candidates"].as_array().unwrap().len(), 2);

    // Filters: type and repeated source.
    let a = get(&app, "/v1/search?q=slow%20heart&type=finding&k=5").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let ids: Vec<String> = a.json()["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, ["CARD:0008"]);
    let source = sample_index().dictionary.sources()[0].name.clone();
    let a = get(
        &app,
        &format!("/v1/search?q=angina&source={source}&source={source}"),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let a = get(&app, "/v1/search?q=angina&source=OTHER").await;
    assert_eq!(a.error(StatusCode::UNPROCESSABLE_ENTITY), "invalid_request");

    for (uri, status, code) in [
        (
            "/v1/search",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            "/v1/search?q=",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            "/v1/search?q=a&k=0",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            "/v1/search?q=a&k=101",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            "/v1/search?q=a&k=-1",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            "/v1/search?q=a&kk=3",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            "/v1/search?q=a&index=nope",
            StatusCode::NOT_FOUND,
            "unknown_index",
        ),
        (
            "/v1/search?q=%FF%FE",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
    ] {
        let a = get(&app, uri).await;
        assert_eq!(a.error(status), code, "{uri}");
    }
    let long = format!("/v1/search?q={}", "a".repeat(1001));
    assert_eq!(
        get(&app, &long)
            .await
            .error(StatusCode::UNPROCESSABLE_ENTITY),
        "invalid_request"
    );
}

#[tokio::test]
async fn concept_view_has_parents_children_and_xrefs() {
    let app = app();
    let a = get(&app, "/v1/concepts/CARD:0002").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let c = a.json();
    assert_eq!(c["name"], "Coronary artery disease");
    assert!(c["definition"].as_str().unwrap().starts_with("Narrowing"));
    assert_eq!(c["types"], json!(["disorder"]));
    assert_eq!(
        c["parents"],
        json!([{"id": "CARD:0001", "name": "Heart disease"}])
    );
    let children: BTreeSet<&str> = c["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(children, BTreeSet::from(["CARD:0003", "CARD:0004"]));
    assert!(c["xrefs"]
        .as_array()
        .unwrap()
        .contains(&json!("MESH:D003324")));
    assert!(c["synonyms"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["text"] == "CAD"));

    let a = get(&app, "/v1/concepts/CARD:9999").await;
    assert_eq!(a.error(StatusCode::NOT_FOUND), "unknown_concept");
    let a = get(&app, "/v1/concepts/CARD:0001?index=nope").await;
    assert_eq!(a.error(StatusCode::NOT_FOUND), "unknown_index");
    let a = get(&app, "/v1/concepts/CARD:0001?bogus=1").await;
    assert_eq!(a.error(StatusCode::UNPROCESSABLE_ENTITY), "invalid_request");
}

#[tokio::test]
async fn indexes_lists_sources_and_types() {
    let a = get(&app(), "/v1/indexes").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let json = a.json();
    let cardio = &json["indexes"][0];
    assert_eq!(cardio["name"], "cardio");
    assert_eq!(cardio["default"], true);
    assert_eq!(cardio["concepts"], 12);
    assert_eq!(cardio["types"][0], "disorder");
    assert_eq!(cardio["sources"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn api_key_guards_every_v1_route_only() {
    let app = router(state_with(ServerConfig {
        api_key: Some("s3cret-key".into()),
        ..ServerConfig::default()
    }));
    let body = json!({"mentions": [{"mention": "angina"}]}).to_string();
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("Bearer s3cret-ke"),
        Some("s3cret-key"),
    ] {
        let mut request = Request::post("/v1/link");
        if let Some(auth) = auth {
            request = request.header(header::AUTHORIZATION, auth);
        }
        let a = send(&app, request.body(Body::from(body.clone())).unwrap()).await;
        assert_eq!(
            a.error(StatusCode::UNAUTHORIZED),
            "unauthorized",
            "{auth:?}"
        );
        assert_eq!(a.headers[header::WWW_AUTHENTICATE], "Bearer");
    }
    for uri in [
        "/v1/search?q=angina",
        "/v1/concepts/CARD:0001",
        "/v1/indexes",
    ] {
        assert_eq!(
            get(&app, uri).await.status,
            StatusCode::UNAUTHORIZED,
            "{uri}"
        );
    }
    let a = send(
        &app,
        Request::post("/v1/link")
            .header(header::AUTHORIZATION, "Bearer s3cret-key")
            .body(Body::from(body))
            .unwrap(),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    for open in ["/", "/healthz", "/readyz", "/metrics", "/openapi.json"] {
        assert_eq!(get(&app, open).await.status, StatusCode::OK, "{open}");
    }
}

#[tokio::test]
async fn concurrency_limit_is_429_and_full_queue_is_503() {
    let state = state_with(ServerConfig::default());
    let app = router(state.clone());
    // Hold every concurrency permit: the next /v1 request is refused at once.
    let held = state
        .concurrency
        .clone()
        .try_acquire_many_owned(Limits::default().max_concurrent as u32)
        .unwrap();
    let a = get(&app, "/v1/search?q=angina").await;
    assert_eq!(a.error(StatusCode::TOO_MANY_REQUESTS), "too_many_requests");
    drop(held);
    assert_eq!(
        get(&app, "/v1/search?q=angina").await.status,
        StatusCode::OK
    );

    // Fill the encoder queue: the request is refused before any work, with Retry-After.
    let served = state.indexes.get().unwrap().get(None).unwrap();
    let full = served.queue.admit(served.queue.capacity()).unwrap();
    let a = link(&app, json!({"mentions": [{"mention": "angina"}]})).await;
    assert_eq!(a.error(StatusCode::SERVICE_UNAVAILABLE), "overloaded");
    assert_eq!(a.headers[header::RETRY_AFTER], "1");
    drop(full);
    let a = link(&app, json!({"mentions": [{"mention": "angina"}]})).await;
    assert_eq!(a.status, StatusCode::OK);
}

#[tokio::test]
async fn requests_wait_for_a_working_slot_instead_of_sharing_the_cores() {
    let state = state_with(ServerConfig {
        limits: Limits {
            max_active: 1,
            ..Limits::default()
        },
        ..ServerConfig::default()
    });
    let app = router(state.clone());
    // The one slot is taken: a link request waits (no 429, no 503) until it is free.
    let held = state.active.clone().try_acquire_owned().unwrap();
    let waiting = tokio::spawn({
        let app = app.clone();
        async move { link(&app, json!({"mentions": [{"mention": "angina"}]})).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "the request ran without a slot");
    let metrics = get(&app, "/metrics").await.text;
    assert!(
        metrics.contains("medlink_batch_size_count 0"),
        "encoded without a slot:\n{metrics}"
    );
    // Routes without CPU work do not wait for one.
    assert_eq!(
        get(&app, "/v1/concepts/CARD:0001").await.status,
        StatusCode::OK
    );
    drop(held);
    let a = tokio::time::timeout(Duration::from_secs(60), waiting)
        .await
        .expect("the request ran once the slot was free")
        .unwrap();
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(
        state.active.available_permits(),
        1,
        "the slot was given back"
    );
    // Zero slots is refused when the state is made.
    assert!(AppState::new(ServerConfig {
        limits: Limits {
            max_active: 0,
            ..Limits::default()
        },
        ..ServerConfig::default()
    })
    .is_err());
}

#[tokio::test]
async fn slow_requests_time_out_with_503() {
    let app = router(state_with(ServerConfig {
        limits: Limits {
            request_timeout: Duration::from_nanos(1),
            ..Limits::default()
        },
        ..ServerConfig::default()
    }));
    let a = link(&app, json!({"mentions": [{"mention": "angina"}]})).await;
    assert_eq!(a.error(StatusCode::SERVICE_UNAVAILABLE), "timeout");
    assert!(a.headers.contains_key(header::RETRY_AFTER));
}

#[tokio::test]
async fn limits_are_configurable() {
    let app = router(state_with(ServerConfig {
        limits: Limits {
            max_body_bytes: 200,
            max_mentions: 2,
            max_mention_chars: 10,
            max_text_chars: 20,
            ..Limits::default()
        },
        ..ServerConfig::default()
    }));
    let a = link(
        &app,
        json!({"mentions": [{"mention": "a"}, {"mention": "b"}, {"mention": "c"}]}),
    )
    .await;
    assert_eq!(a.error(StatusCode::PAYLOAD_TOO_LARGE), "too_many_mentions");
    let a = post(
        &app,
        "/v1/link",
        format!(
            "{{\"mentions\": [{{\"mention\": \"{}\"}}]}}",
            "a".repeat(300)
        ),
    )
    .await;
    assert_eq!(a.error(StatusCode::PAYLOAD_TOO_LARGE), "payload_too_large");
    let a = link(
        &app,
        json!({"mentions": [{"mention": "cardiopathy"}, {"mention": "MI", "context": "z".repeat(21)}]}),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let results = &a.json()["results"];
    assert_eq!(results[0]["error"]["code"], "invalid_mention");
    assert_eq!(results[1]["error"]["code"], "invalid_mention");
    assert!(get(&app, "/v1/search?q=cardiopathy")
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY)
        .contains("invalid"));
    // Invalid limits are refused when the state is made.
    assert!(AppState::new(ServerConfig {
        limits: Limits {
            max_mentions: 10,
            max_queued_mentions: 5,
            ..Limits::default()
        },
        ..ServerConfig::default()
    })
    .is_err());
}

#[tokio::test]
async fn unknown_routes_and_methods_get_json_errors() {
    let app = app();
    assert_eq!(
        get(&app, "/v2/link").await.error(StatusCode::NOT_FOUND),
        "no_route"
    );
    assert_eq!(
        get(&app, "/v1/link")
            .await
            .error(StatusCode::METHOD_NOT_ALLOWED),
        "method_not_allowed"
    );
    let a = send(
        &app,
        Request::delete("/v1/search").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(
        a.error(StatusCode::METHOD_NOT_ALLOWED),
        "method_not_allowed"
    );
}

#[tokio::test]
async fn request_ids_are_echoed_or_made() {
    let app = app();
    let a = send(
        &app,
        Request::get("/healthz")
            .header("x-request-id", "abc-123")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(a.headers["x-request-id"], "abc-123");
    let a = send(
        &app,
        Request::get("/healthz")
            .header("x-request-id", "bad id with spaces")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert!(a.headers["x-request-id"]
        .to_str()
        .unwrap()
        .starts_with("req-"));
    assert!(get(&app, "/healthz")
        .await
        .headers
        .contains_key("x-request-id"));
}

#[tokio::test]
async fn cors_is_off_unless_an_origin_is_given() {
    let preflight = || {
        Request::builder()
            .method(Method::OPTIONS)
            .uri("/v1/link")
            .header(header::ORIGIN, "https://example.org")
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .body(Body::empty())
            .unwrap()
    };
    let a = send(&app(), preflight()).await;
    assert!(!a.headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN));
    let app = router(state_with(ServerConfig {
        cors_origins: vec!["https://example.org".into()],
        ..ServerConfig::default()
    }));
    let a = send(&app, preflight()).await;
    assert_eq!(
        a.headers[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://example.org"
    );
}

#[tokio::test]
async fn metrics_count_requests_batches_and_queue() {
    let app = app();
    link(
        &app,
        json!({"mentions": [{"mention": "angina"}, {"mention": "MI"}]}),
    )
    .await;
    get(&app, "/v1/search?q=angina&k=0").await;
    get(&app, "/v1/concepts/CARD:0001").await;
    let a = get(&app, "/metrics").await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    for needle in [
        "medlink_requests_total{route=\"/v1/link\",status=\"200\"} 1",
        "medlink_requests_total{route=\"/v1/search\",status=\"422\"} 1",
        "medlink_requests_total{route=\"/v1/concepts/{id}\",status=\"200\"} 1",
        "medlink_request_duration_seconds_bucket{route=\"/v1/link\",le=\"+Inf\"} 1",
        "medlink_batch_size_count",
        "medlink_batch_duration_seconds_count",
        "medlink_queue_depth 0",
        "medlink_requests_in_flight 1",
    ] {
        assert!(a.text.contains(needle), "missing {needle}:\n{}", a.text);
    }
}

#[tokio::test]
async fn the_page_is_served() {
    let a = get(&app(), "/").await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(a.text.contains("<title>medlink</title>"));
    assert!(a.text.contains("/v1/search"));
}

/// The OpenAPI document lists exactly the router's routes, and each of them answers.
#[tokio::test]
async fn openapi_document_matches_the_routes() {
    let app = app();
    let a = get(&app, "/openapi.json").await;
    assert_eq!(a.status, StatusCode::OK);
    let doc = a.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    let mut documented = BTreeSet::new();
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            documented.insert((method.to_uppercase(), path.clone()));
        }
    }
    let expected: BTreeSet<(String, String)> = [
        ("POST", "/v1/link"),
        ("POST", "/v1/annotate"),
        ("GET", "/v1/search"),
        ("GET", "/v1/concepts/{id}"),
        ("GET", "/v1/indexes"),
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/metrics"),
        ("GET", "/openapi.json"),
        ("GET", "/"),
    ]
    .iter()
    .map(|(m, p)| (m.to_string(), p.to_string()))
    .collect();
    assert_eq!(documented, expected);
    // Every documented route exists in the router: neither the 404 fallback nor a 405.
    for (method, path) in &documented {
        let uri = path.replace("{id}", "CARD:0001");
        let request = Request::builder()
            .method(method.as_str())
            .uri(&uri)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from("{}"))
            .unwrap();
        let a = send(&app, request).await;
        assert_ne!(a.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        if a.status == StatusCode::NOT_FOUND {
            assert_ne!(a.json()["error"]["code"], "no_route", "{method} {path}");
        }
    }
    // The error shape and the request/response schemas are in the document.
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for name in [
        "ErrorResponse",
        "LinkRequest",
        "LinkResponse",
        "CandidateDto",
        "ConceptResponse",
    ] {
        assert!(schemas.contains_key(name), "schema {name} missing");
    }
    assert!(paths["/v1/link"]["post"]["responses"]["413"].is_object());
    assert!(doc["components"]["securitySchemes"]["api_key"].is_object());
}

/// One HTTP/1.1 exchange over a fresh connection: (status, body).
fn http(addr: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// The real binary: listens on a loopback port, answers, logs route / status / request id but
/// never bodies, query strings or mention text (even at trace level), and exits 0 on SIGTERM.
#[test]
fn serve_binary_logs_no_mention_text_and_stops_on_sigterm() {
    use std::io::BufRead;
    let index_dir = sample_index().dir.clone();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_medlink"))
        .env("MEDLINK_CACHE", crate::common::cache_dir())
        .env("RUST_LOG", "trace")
        .args(["serve", "--addr", "127.0.0.1:0", "--index"])
        .arg(format!("cardio={}", index_dir.display()))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut log = String::new();
    let mut addr = None;
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while std::time::Instant::now() < deadline {
        let Ok(line) = lines_rx.recv_timeout(Duration::from_secs(1)) else {
            continue;
        };
        log.push_str(&line);
        log.push('\n');
        if let Some(rest) = line.split("listening on http://").nth(1) {
            addr = rest.split('/').next().map(str::to_string);
        }
        if line.contains("ready in") {
            break;
        }
    }
    let addr = addr.unwrap_or_else(|| panic!("the server did not start:\n{log}"));
    let (status, body) = http(
        &addr,
        "POST",
        "/v1/link",
        r#"{"mentions": [{"mention": "zebrasecret angina"}]}"#,
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("CARD:0004"), "{body}");
    let (status, _) = http(&addr, "POST", "/v1/link", r#"{"mentions": ["zebrasecret"#);
    assert_eq!(status, 400);
    let (status, _) = http(
        &addr,
        "POST",
        "/v1/link",
        r#"{"mentions": [{"mention": "zebrasecret"}], "k": 0}"#,
    );
    assert_eq!(status, 422);
    let (status, _) = http(&addr, "GET", "/v1/search?q=zebrasecret", "");
    assert_eq!(status, 200);
    let (status, _) = http(&addr, "GET", "/healthz", "");
    assert_eq!(status, 200);

    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let exit = child.wait().unwrap();
    while let Ok(line) = lines_rx.recv_timeout(Duration::from_secs(2)) {
        log.push_str(&line);
        log.push('\n');
    }
    assert!(exit.success(), "exit {exit:?}:\n{log}");
    assert!(log.contains("route=\"/v1/link\""), "{log}");
    assert!(log.contains("status=422"), "{log}");
    assert!(log.contains("shutdown signal received"), "{log}");
    assert!(
        !log.contains("zebrasecret"),
        "mention text in the log:\n{log}"
    );
}

/// The acceptance query on the real HPO index.
#[tokio::test]
async fn big_head_is_macrocephaly_on_hpo() {
    let app = router(
        AppState::with_indexes(
            ServerConfig::default(),
            vec![IndexSpec {
                name: "hpo".into(),
                index: hpo_index(),
                encoder: encoder(),
                annotate_types: vec!["Phenotypic abnormality".into()],
            }],
        )
        .unwrap(),
    );
    let a = get(&app, "/v1/search?q=big%20head&k=5").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(
        a.json()["candidates"][0]["name"],
        "Macrocephaly",
        "{}",
        a.text
    );
    let a = get(&app, "/v1/concepts/HP:0000256").await;
    let c = a.json();
    assert_eq!(c["name"], "Macrocephaly");
    assert!(!c["children"].as_array().unwrap().is_empty());
    assert!(!c["parents"].as_array().unwrap().is_empty());
    assert!(c["xrefs"]
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x.as_str().unwrap().starts_with("UMLS:")));
    let a = post(
        &app,
        "/v1/annotate",
        json!({"texts": ["The boy had a big head and recurrent seizures."]}).to_string(),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let ids: Vec<String> = a.json()["results"][0]["mentions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["candidates"][0]["id"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(ids.contains(&"HP:0000256".to_string()), "{}", a.text);
}
