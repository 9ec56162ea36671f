//! The webhooks of a Mutating- or ValidatingWebhookConfiguration, read the same way for
//! both kinds (their webhook types differ, their client configs do not).

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration, WebhookClientConfig,
};

/// Each webhook's name and client config.
pub trait Hooks {
    fn hooks(&self) -> Vec<(&str, &WebhookClientConfig)>;
}

/// The two kinds have the same shape under different webhook types; one body serves both.
macro_rules! hooks {
    ($($kind:ident),*) => {$(
        impl Hooks for $kind {
            fn hooks(&self) -> Vec<(&str, &WebhookClientConfig)> {
                self.webhooks
                    .iter()
                    .flatten()
                    .map(|w| (w.name.as_str(), &w.client_config))
                    .collect()
            }
        }
    )*};
}

hooks!(MutatingWebhookConfiguration, ValidatingWebhookConfiguration);
