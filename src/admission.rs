//! AdmissionReview `admission.k8s.io/v1` on the wire.
//!
//! Own serde types rather than `kube::core::admission`: the request side borrows from the
//! body and skips what no rule reads, and the response writes `patch` as base64, which is
//! what the API server's Go types expect (kube-rs serializes it as an array of numbers).

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::core::json::push_json_str;
use crate::core::pod::PodIn;
use crate::core::request::{PodRequestIn, Request, RequestIn};
use crate::core::verdict::Verdict;

#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("body is not an AdmissionReview: {0}")]
    NotJson(#[from] serde_json::Error),
    #[error("body is not UTF-8 JSON: {0}")]
    NotUtf8(#[from] std::str::Utf8Error),
    #[error("unsupported AdmissionReview apiVersion {0:?} (want admission.k8s.io/v1)")]
    ApiVersion(String),
    #[error("kind {0:?} is not AdmissionReview")]
    Kind(String),
    #[error("AdmissionReview has no request")]
    NoRequest,
}

/// An AdmissionReview whose `request.object` deserializes as `O`: raw JSON for the generic
/// path, or a Pod parsed in the same pass (the mutating webhook's path: one scan of the body
/// instead of two).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", bound(deserialize = "O: Deserialize<'de>"))]
pub struct Review<'a, O> {
    #[serde(borrow, default, deserialize_with = "crate::core::pod::borrowed_opt")]
    pub api_version: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "crate::core::pod::borrowed_opt")]
    pub kind: Option<Cow<'a, str>>,
    #[serde(default)]
    pub request: Option<Request<'a, O>>,
}

/// Decodes a review whose object parses as a Pod. Anything else (another kind with an
/// incompatible shape, a malformed body) is an error: callers fall back to [`decode`], which
/// also gives the right error for a malformed body.
pub fn decode_pod(body: &[u8]) -> Result<PodRequestIn<'_>, ReviewError> {
    let review: Review<'_, PodIn<'_>> = serde_json::from_str(utf8(body)?)?;
    check_type(review.api_version.as_deref(), review.kind.as_deref())?;
    review.request.ok_or(ReviewError::NoRequest)
}

/// The body as text, checked once as a whole: parsing from `&str` then skips checking each
/// string on its own, a tenth of the decoding time.
fn utf8(body: &[u8]) -> Result<&str, ReviewError> {
    Ok(std::str::from_utf8(body)?)
}

fn check_type(api_version: Option<&str>, kind: Option<&str>) -> Result<(), ReviewError> {
    match api_version {
        Some("admission.k8s.io/v1") => {}
        other => return Err(ReviewError::ApiVersion(other.unwrap_or("").to_owned())),
    }
    match kind {
        Some("AdmissionReview") => Ok(()),
        other => Err(ReviewError::Kind(other.unwrap_or("").to_owned())),
    }
}

/// Decodes an AdmissionReview v1 and returns its request.
pub fn decode(body: &[u8]) -> Result<RequestIn<'_>, ReviewError> {
    let review: Review<'_, &RawValue> = serde_json::from_str(utf8(body)?)?;
    check_type(review.api_version.as_deref(), review.kind.as_deref())?;
    review.request.ok_or(ReviewError::NoRequest)
}

/// Serializes the AdmissionReview response for `uid` in one pass.
pub fn encode(uid: &str, verdict: &Verdict) -> Vec<u8> {
    let mut out = String::with_capacity(encoded_len(uid, verdict));
    out.push_str(
        r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"#,
    );
    push_json_str(&mut out, uid);
    out.push_str(if verdict.allowed {
        r#","allowed":true"#
    } else {
        r#","allowed":false"#
    });
    if let Some(patch) = &verdict.patch {
        out.push_str(r#","patchType":"JSONPatch","patch":""#);
        // SIMD base64: the patch is most of the response and this is most of its cost.
        base64_simd::STANDARD.encode_append(patch.as_bytes(), &mut out);
        out.push('"');
    }
    if let Some(status) = &verdict.status {
        out.push_str(r#","status":{"code":"#);
        out.push_str(&status.code.to_string());
        out.push_str(r#","reason":"#);
        push_json_str(&mut out, &status.reason);
        out.push_str(r#","message":"#);
        push_json_str(&mut out, &status.message);
        out.push('}');
    }
    if !verdict.warnings.is_empty() {
        out.push_str(r#","warnings":["#);
        for (i, w) in verdict.warnings.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_json_str(&mut out, w);
        }
        out.push(']');
    }
    out.push_str("}}");
    out.into_bytes()
}

/// Room for the response: growing the buffer once the patch is in would copy all of it.
/// Escapes in the uid, reason, message or warnings may go past it, rarely and by little.
fn encoded_len(uid: &str, verdict: &Verdict) -> usize {
    const FIXED: usize = 256;
    let patch = verdict
        .patch
        .as_ref()
        .map_or(0, |p| p.len().div_ceil(3) * 4);
    let status = verdict
        .status
        .as_ref()
        .map_or(0, |s| s.reason.len() + s.message.len() + 64);
    let warnings: usize = verdict.warnings.iter().map(|w| w.len() + 3).sum();
    FIXED + uid.len() + patch + status + warnings
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::verdict::{Deny, Skip};

    const REVIEW: &str = r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview",
        "request":{"uid":"abc-1","kind":{"group":"","version":"v1","kind":"Pod"},
        "resource":{"group":"","version":"v1","resource":"pods"},"namespace":"shop",
        "operation":"CREATE","object":{"metadata":{"name":"p"}},"oldObject":null,"dryRun":false}}"#;

    #[test]
    fn decodes_v1_requests() {
        let req = decode(REVIEW.as_bytes()).expect("decodes");
        assert_eq!(req.uid, "abc-1");
        assert_eq!(req.kind.kind, "Pod");
        assert_eq!(req.namespace(), "shop");
        assert_eq!(req.object(), Some(r#"{"metadata":{"name":"p"}}"#));
        assert_eq!(req.old_object(), None);
    }

    #[test]
    fn rejects_what_is_not_a_v1_review() {
        assert!(matches!(decode(b"nope"), Err(ReviewError::NotJson(_))));
        let latin1 = b"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"Caf\xe9\"}";
        assert!(matches!(decode(latin1), Err(ReviewError::NotUtf8(_))));
        assert!(matches!(decode_pod(latin1), Err(ReviewError::NotUtf8(_))));
        assert!(matches!(
            decode(br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview"}"#),
            Err(ReviewError::ApiVersion(_))
        ));
        assert!(matches!(
            decode(br#"{"apiVersion":"admission.k8s.io/v1","kind":"Pod"}"#),
            Err(ReviewError::Kind(_))
        ));
        assert!(matches!(
            decode(br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#),
            Err(ReviewError::NoRequest)
        ));
        assert!(matches!(
            decode(br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":5}}"#),
            Err(ReviewError::NotJson(_))
        ));
    }

    use base64::Engine as _;

    #[test]
    fn encodes_patch_as_base64_with_patch_type_and_echoes_uid() {
        let v = Verdict::inject("r", r#"[{"op":"add","path":"/a","value":1}]"#.into());
        let out: serde_json::Value = serde_json::from_slice(&encode("u\"1", &v)).expect("json");
        assert_eq!(out["response"]["uid"], "u\"1");
        assert_eq!(out["response"]["patchType"], "JSONPatch");
        let b64 = out["response"]["patch"].as_str().expect("string patch");
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .expect("base64");
        assert_eq!(raw, br#"[{"op":"add","path":"/a","value":1}]"#);
    }

    #[test]
    fn the_response_fits_the_room_made_for_it() {
        let mut v =
            Verdict::deny(Deny::Stale, "m".repeat(700)).with_warnings(vec!["w".repeat(100); 3]);
        v.patch = Some("p".repeat(9_001));
        let uid = "4b6c9a43-2f0e-4d7b-9d3e-1f5c2a7e8b01";
        let out = encode(uid, &v);
        assert!(out.len() <= encoded_len(uid, &v), "{} bytes", out.len());
        assert_eq!(out.capacity(), encoded_len(uid, &v), "the buffer grew");
    }

    #[test]
    fn allowed_without_patch_has_no_patch_type() {
        let out: serde_json::Value =
            serde_json::from_slice(&encode("u", &Verdict::skip(Skip::NotSelected))).expect("json");
        assert_eq!(out["response"]["allowed"], true);
        assert!(out["response"].get("patchType").is_none());
        assert!(out["response"].get("patch").is_none());
    }

    #[test]
    fn denial_carries_status_and_warnings() {
        let v = Verdict::deny(Deny::Conflict, "no \"way\"".into())
            .with_warnings(vec!["careful".into()]);
        let out: serde_json::Value = serde_json::from_slice(&encode("u", &v)).expect("json");
        assert_eq!(out["response"]["allowed"], false);
        assert_eq!(out["response"]["status"]["code"], 403);
        assert_eq!(out["response"]["status"]["message"], "no \"way\"");
        assert_eq!(out["response"]["warnings"][0], "careful");
    }
}
