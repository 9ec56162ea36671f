//! An admission request as the rules read it: who, what, which operation, and the object
//! (raw JSON, or a Pod parsed in the same pass as the review). The wire envelope around it is
//! `admission`'s.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::pod::PodIn;

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
    #[serde(borrow, default, deserialize_with = "super::pod::borrowed_opt")]
    pub name: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "super::pod::borrowed_opt")]
    pub namespace: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub operation: Cow<'a, str>,
    #[serde(default)]
    pub object: Option<O>,
    #[serde(borrow, default)]
    pub old_object: Option<&'a RawValue>,
}

/// A request with its object as raw JSON (every webhook can read it).
pub type RequestIn<'a> = Request<'a, &'a RawValue>;

/// A request with its object parsed as a Pod while decoding.
pub type PodRequestIn<'a> = Request<'a, PodIn<'a>>;

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
