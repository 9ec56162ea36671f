pub fn to_string(_v: &serde_json::Value) -> String { String::new() }
