//! The validating webhook through the real server: every rule's fixture, its verdict, message
//! and warnings (expectations in `tests/fixtures/validate/expected.json`).

mod common;

use common::*;
use serde_json::Value;

#[tokio::test]
async fn every_validation_fixture_gets_its_verdict_message_and_warnings() {
    let server = TestServer::start().await;
    let mut client = server.client(Proto::Http2).await;
    let expected: serde_json::Map<String, Value> =
        serde_json::from_slice(&fixture("validate/expected.json")).expect("expected.json");
    assert!(expected.len() >= 15, "one fixture per rule and outcome");
    for (file, want) in &expected {
        let body = fixture(&format!("validate/{file}"));
        let uid =
            serde_json::from_slice::<Value>(&body).expect("fixture")["request"]["uid"].clone();
        let response = admission_response(&client.post("/validate", body).await);
        assert_eq!(response["uid"], uid, "{file}: uid echoed");
        assert_eq!(response["allowed"], want["allowed"], "{file}: {response}");
        assert!(
            response.get("patch").is_none(),
            "{file}: validation never patches"
        );
        if let Some(code) = want["code"].as_u64() {
            assert_eq!(response["status"]["code"], code, "{file}: {response}");
        }
        let message = response["status"]["message"].as_str().unwrap_or_default();
        for part in want["message_contains"].as_array().into_iter().flatten() {
            let part = part.as_str().expect("string");
            assert!(
                message.contains(part),
                "{file}: message {message:?} lacks {part:?}"
            );
        }
        let warnings: Vec<&str> = response["warnings"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        assert!(
            warnings.iter().all(|w| w.chars().count() <= 120),
            "{file}: {warnings:?}"
        );
        let joined = warnings.join(" ");
        for part in want["warnings_contain"].as_array().into_iter().flatten() {
            let part = part.as_str().expect("string");
            assert!(
                joined.contains(part),
                "{file}: warnings {joined:?} lack {part:?}"
            );
        }
        if want["warnings_contain"]
            .as_array()
            .is_some_and(Vec::is_empty)
            && want["allowed"] == true
        {
            assert!(
                warnings.is_empty(),
                "{file}: unexpected warnings {warnings:?}"
            );
        }
    }
    let metrics = server.app().metrics.render();
    assert!(
        metrics.contains(r#"revhook_validate_unknown_kind_total{kind="ConfigMap"} 1"#),
        "{metrics}"
    );
}
