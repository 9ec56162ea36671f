//! AdmissionReview `admission.k8s.io/v1` on the wire.
//!
//! Own serde types rather than `kube::core::admission`: the request side borrows from the
//! body and skips what no rule reads, and the response writes `patch` as base64, which is
//! what the API server's Go types expect (kube-rs serializes it as an array of numbers).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::inject::patch::push_json_str;

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
    #[serde(borrow, default, deserialize_with = "crate::inject::pod::borrowed_opt")]
    pub api_version: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "crate::inject::pod::borrowed_opt")]
    pub kind: Option<Cow<'a, str>>,
    #[serde(default)]
    pub request: Option<Request<'a, O>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct GroupVersionKind<'a> {
    #[serde(borrow, default)]
    pub group: Cow<'a, str>,
    #[serde(borrow, default)]
    pub version: Cow<'a, str>,
    #[serde(borrow)]
    pub kind: Cow<'a, str>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", bound(deserialize = "O: Deserialize<'de>"))]
pub struct Request<'a, O> {
    #[serde(borrow)]
    pub uid: Cow<'a, str>,
    #[serde(borrow)]
    pub kind: GroupVersionKind<'a>,
    #[serde(borrow, default, deserialize_with = "crate::inject::pod::borrowed_opt")]
    pub name: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "crate::inject::pod::borrowed_opt")]
    pub namespace: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub operation: Cow<'a, str>,
    #[serde(default)]
    pub object: Option<O>,
    #[serde(borrow, default)]
    pub old_object: Option<&'a RawValue>,
    #[serde(default)]
    pub dry_run: Option<bool>,
}

/// A request with its object as raw JSON (every webhook can read it).
pub type RequestIn<'a> = Request<'a, &'a RawValue>;

/// A request with its object parsed as a Pod while decoding.
pub type PodRequestIn<'a> = Request<'a, crate::inject::pod::PodIn<'a>>;

impl<O> Request<'_, O> {
    pub fn namespace(&self) -> &str {
        self.namespace.as_deref().unwrap_or_default()
    }

    pub fn old_object(&self) -> Option<&str> {
        self.old_object.map(RawValue::get).filter(|s| *s != "null")
    }
}

impl RequestIn<'_> {
    /// `object`, treating JSON `null` as absent.
    pub fn object(&self) -> Option<&str> {
        self.object.map(RawValue::get).filter(|s| *s != "null")
    }
}

/// Decodes a review whose object parses as a Pod. Anything else (another kind with an
/// incompatible shape, a malformed body) is an error: callers fall back to [`decode`], which
/// also gives the right error for a malformed body.
pub fn decode_pod(body: &[u8]) -> Result<PodRequestIn<'_>, ReviewError> {
    let review: Review<'_, crate::inject::pod::PodIn<'_>> = serde_json::from_str(utf8(body)?)?;
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

/// `response.status` of a denial.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    pub code: u16,
    pub reason: Cow<'static, str>,
    pub message: String,
}

/// What a rule decided for one request, before it is put on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    pub status: Option<Status>,
    /// A JSON Patch document (a JSON array), not yet base64-encoded.
    pub patch: Option<String>,
    pub warnings: Vec<String>,
    /// Short label for logs and metrics (`inject:asm-1-23`, `deny:stale`, `skip:...`).
    pub decision: Cow<'static, str>,
}

impl Verdict {
    pub fn allow(decision: impl Into<Cow<'static, str>>) -> Self {
        Verdict {
            allowed: true,
            status: None,
            patch: None,
            warnings: Vec::new(),
            decision: decision.into(),
        }
    }

    pub fn deny(
        code: u16,
        reason: &'static str,
        message: String,
        decision: impl Into<Cow<'static, str>>,
    ) -> Self {
        Verdict {
            allowed: false,
            status: Some(Status {
                code,
                reason: Cow::Borrowed(reason),
                message,
            }),
            patch: None,
            warnings: Vec::new(),
            decision: decision.into(),
        }
    }

    pub fn with_warnings(mut self, warnings: Vec<String>) -> Self {
        for w in warnings {
            self.warnings.extend(fit_warning(&w));
        }
        self
    }

    /// Short outcome label for metrics: allowed, patched, denied.
    pub fn outcome(&self) -> &'static str {
        match (self.allowed, self.patch.is_some()) {
            (false, _) => "denied",
            (true, true) => "patched",
            (true, false) => "allowed",
        }
    }
}

/// The API server truncates warnings past 120 characters: split a long message at `; ` or
/// `. ` boundaries (words as a last resort) into pieces that each fit.
pub fn fit_warning(message: &str) -> Vec<String> {
    const MAX: usize = 120;
    if message.chars().count() <= MAX {
        return vec![message.to_owned()];
    }
    let mut out = Vec::new();
    let mut current = String::new();
    for word in message.split(' ') {
        let extra = if current.is_empty() { 0 } else { 1 };
        let boundary = current.ends_with(';') || current.ends_with('.');
        let too_long = current.chars().count() + extra + word.chars().count() > MAX;
        if !current.is_empty() && (too_long || (boundary && current.chars().count() > MAX / 2)) {
            out.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push(' ');
        }
        // A single word longer than MAX is cut, not dropped.
        let mut w = word;
        while w.chars().count() > MAX {
            let cut = w.char_indices().nth(MAX).map_or(w.len(), |(i, _)| i);
            out.push(w[..cut].to_owned());
            w = &w[cut..];
        }
        current.push_str(w);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
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
        let mut v = Verdict::allow("inject");
        v.patch = Some(r#"[{"op":"add","path":"/a","value":1}]"#.into());
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
        let mut v = Verdict::deny(403, "Forbidden", "m".repeat(700), "deny")
            .with_warnings(vec!["w".repeat(100); 3]);
        v.patch = Some("p".repeat(9_001));
        let uid = "4b6c9a43-2f0e-4d7b-9d3e-1f5c2a7e8b01";
        let out = encode(uid, &v);
        assert!(out.len() <= encoded_len(uid, &v), "{} bytes", out.len());
        assert_eq!(out.capacity(), encoded_len(uid, &v), "the buffer grew");
    }

    #[test]
    fn allowed_without_patch_has_no_patch_type() {
        let out: serde_json::Value =
            serde_json::from_slice(&encode("u", &Verdict::allow("skip"))).expect("json");
        assert_eq!(out["response"]["allowed"], true);
        assert!(out["response"].get("patchType").is_none());
        assert!(out["response"].get("patch").is_none());
    }

    #[test]
    fn denial_carries_status_and_warnings() {
        let v = Verdict::deny(403, "Forbidden", "no \"way\"".into(), "deny")
            .with_warnings(vec!["careful".into()]);
        let out: serde_json::Value = serde_json::from_slice(&encode("u", &v)).expect("json");
        assert_eq!(out["response"]["allowed"], false);
        assert_eq!(out["response"]["status"]["code"], 403);
        assert_eq!(out["response"]["status"]["message"], "no \"way\"");
        assert_eq!(out["response"]["warnings"][0], "careful");
    }

    #[test]
    fn long_warnings_are_split_under_120_chars_without_losing_words() {
        let msg = "namespace \"shop\" selects revision \"asm-1-22\", which is not installed; installed: asm-1-23; tags: prod-stable -> asm-1-23. Relabel with: kubectl label namespace shop istio.io/rev=asm-1-23 --overwrite";
        let parts = fit_warning(msg);
        assert!(parts.len() > 1);
        assert!(parts.iter().all(|p| p.chars().count() <= 120), "{parts:?}");
        assert_eq!(parts.join(" "), msg);
        let long = "x".repeat(300);
        let parts = fit_warning(&long);
        assert_eq!(parts.concat(), long);
        assert!(parts.iter().all(|p| p.chars().count() <= 120));
    }
}
