//! istiod's `ProxyImage` / `ProxyInitImage`: `<hub>/<name>:<tag>`, with the image type
//! (variant) replacing a known type suffix of the tag.
use serde_json::Value;

const KNOWN_TYPES: [&str; 2] = ["distroless", "debug"];

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn url(values: &Value, name: &str, image_type: &str, annotation: Option<&str>) -> String {
    let global = &values["global"];
    let tag = text(&global["tag"]);
    let mut image_type = image_type.to_owned();
    if image_type.is_empty() {
        image_type = text(&global["variant"]);
    }
    if let Some(t) = annotation {
        image_type = t.to_owned();
    }
    format!(
        "{}/{name}:{}",
        text(&global["hub"]),
        with_type(&tag, &image_type)
    )
}

fn with_type(tag: &str, image_type: &str) -> String {
    if image_type.is_empty() {
        return tag.to_owned();
    }
    let base = KNOWN_TYPES
        .iter()
        .find_map(|t| tag.strip_suffix(&format!("-{t}")))
        .unwrap_or(tag);
    if image_type == "default" {
        base.to_owned()
    } else {
        format!("{base}-{image_type}")
    }
}

fn name_or(v: &Value, default: &str) -> String {
    match v.as_str() {
        Some(s) if !s.is_empty() => s.to_owned(),
        _ => default.to_owned(),
    }
}

pub fn proxy_image(values: &Value, proxy_image_config: &Value, annotation: Option<&str>) -> String {
    let name = name_or(&values["global"]["proxy"]["image"], "proxyv2");
    let image_type = text(&proxy_image_config["imageType"]);
    url(values, &name, &image_type, annotation)
}

pub fn proxy_init_image(values: &Value, annotation: Option<&str>) -> String {
    let name = name_or(&values["global"]["proxy_init"]["image"], "proxyv2");
    url(values, &name, "", annotation)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn image_urls_follow_istiod() {
        let values =
            json!({"global": {"hub": "docker.io/istio", "tag": "1.23.2", "variant": "distroless"}});
        assert_eq!(
            proxy_image(&values, &Value::Null, None),
            "docker.io/istio/proxyv2:1.23.2-distroless"
        );
        assert_eq!(
            proxy_image(&values, &Value::Null, Some("debug")),
            "docker.io/istio/proxyv2:1.23.2-debug"
        );
        assert_eq!(
            proxy_image(&values, &Value::Null, Some("default")),
            "docker.io/istio/proxyv2:1.23.2"
        );
        let values = json!({"global": {"hub": "h", "tag": "1.23.2-distroless", "proxy": {"image": "custom"}}});
        assert_eq!(
            proxy_image(&values, &json!({"imageType": "debug"}), None),
            "h/custom:1.23.2-debug"
        );
        let values = json!({"global": {"hub": "h", "tag": 1.24}});
        assert_eq!(proxy_init_image(&values, None), "h/proxyv2:1.24");
    }
}
