//! The validating webhook through the real server: every rule's fixture, its verdict, message
//! and warnings. Fixtures are discovered: each `tests/fixtures/validate/X.json` review has its
//! expectation beside it in `X.expect.json`, and one without the other is a failure.

mod common;

use common::*;
use serde_json::Value;

/// The fixture names (`X` for `X.json`), each checked to have an expectation and vice versa.
fn fixture_names() -> Vec<String> {
    let dir = fixture_path("validate");
    let mut reviews = Vec::new();
    let mut expects = Vec::new();
    for entry in std::fs::read_dir(&dir)
        .expect("validate fixtures")
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(stem) = name.strip_suffix(".expect.json") {
            expects.push(stem.to_owned());
        } else if let Some(stem) = name.strip_suffix(".json") {
            reviews.push(stem.to_owned());
        }
    }
    reviews.sort();
    expects.sort();
    assert_eq!(
        reviews, expects,
        "every review needs an X.expect.json, and every expectation its review"
    );
    reviews
}

/// What is wrong with one response, given what its expectation says.
fn mismatches(file: &str, want: &Value, uid: &Value, response: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut expect = |ok: bool, what: String| {
        if !ok {
            out.push(format!("{file}: {what}"));
        }
    };
    expect(response["uid"] == *uid, "uid not echoed".into());
    expect(
        response["allowed"] == want["allowed"],
        format!("allowed: {response}"),
    );
    expect(
        response.get("patch").is_none(),
        "validation never patches".into(),
    );
    if let Some(code) = want["code"].as_u64() {
        expect(
            response["status"]["code"] == code,
            format!("code: {response}"),
        );
    }
    let message = response["status"]["message"].as_str().unwrap_or_default();
    for part in want["message_contains"].as_array().into_iter().flatten() {
        let part = part.as_str().unwrap_or_default();
        expect(
            message.contains(part),
            format!("message {message:?} lacks {part:?}"),
        );
    }
    let warnings: Vec<&str> = response["warnings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    expect(
        warnings.iter().all(|w| w.chars().count() <= 120),
        format!("warning over 120 chars: {warnings:?}"),
    );
    let joined = warnings.join(" ");
    let wanted = want["warnings_contain"].as_array();
    for part in wanted.into_iter().flatten() {
        let part = part.as_str().unwrap_or_default();
        expect(
            joined.contains(part),
            format!("warnings {joined:?} lack {part:?}"),
        );
    }
    if wanted.is_some_and(Vec::is_empty) && want["allowed"] == true {
        expect(
            warnings.is_empty(),
            format!("unexpected warnings {warnings:?}"),
        );
    }
    out
}

#[tokio::test]
async fn every_validation_fixture_gets_its_verdict_message_and_warnings() {
    let server = TestServer::start().await;
    let mut client = server.client(Proto::Http2).await;
    let names = fixture_names();
    assert!(
        names.len() >= 17,
        "one fixture per rule and outcome: {names:?}"
    );
    let mut failures = Vec::new();
    for name in &names {
        let body = fixture(&format!("validate/{name}.json"));
        let want: Value = serde_json::from_slice(&fixture(&format!("validate/{name}.expect.json")))
            .unwrap_or_else(|e| panic!("{name}.expect.json: {e}"));
        let uid =
            serde_json::from_slice::<Value>(&body).expect("fixture")["request"]["uid"].clone();
        let response = admission_response(&client.post("/validate", body).await);
        failures.extend(mismatches(name, &want, &uid, &response));
    }
    assert!(failures.is_empty(), "{failures:#?}");
    let metrics = server.app().metrics.render();
    assert!(
        metrics.contains(r#"revhook_validate_unknown_kind_total{kind="ConfigMap"} 1"#),
        "{metrics}"
    );
}
