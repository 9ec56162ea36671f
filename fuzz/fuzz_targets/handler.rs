//! Arbitrary bytes into both webhooks: an error or a response, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use revhook::handler::{handle, Webhook};
use revhook::core::policy::Policy;
use std::sync::OnceLock;

fn snapshot() -> &'static revhook::core::snapshot::Snapshot {
    static SNAPSHOT: OnceLock<revhook::core::snapshot::Snapshot> = OnceLock::new();
    SNAPSHOT.get_or_init(|| revhook::sources::config::embedded().expect("embedded config"))
}

fuzz_target!(|data: &[u8]| {
    for webhook in [Webhook::Inject, Webhook::Validate] {
        if let Ok(handled) = handle(webhook, data, snapshot(), &Policy::default()) {
            assert!(serde_json::from_slice::<serde_json::Value>(&handled.body).is_ok());
        }
    }
});
