//! What kube-apiserver refuses with 422 Invalid, for the objects gpusched writes.
//!
//! Written from the rules in kubernetes/apimachinery (`pkg/util/validation/validation.go`,
//! `pkg/api/validate/content/kube.go`, `pkg/api/validation/generic.go` and `objectmeta.go`) and
//! kubernetes' `pkg/apis/core/validation/events.go`, not from guesses: a fake server that is more
//! lenient than the real one hides exactly the bugs a real cluster shows first (every Event of
//! gpusched was once refused for a generateName ending in '.').

#![allow(dead_code)]

use serde_json::Value;

pub const DNS1123_LABEL_MAX: usize = 63;
pub const DNS1123_SUBDOMAIN_MAX: usize = 253;
pub const LABEL_VALUE_MAX: usize = 63;
pub const QUALIFIED_NAME_MAX: usize = 63;
/// `TotalAnnotationSizeLimitB`: keys and values of one object's annotations, in bytes.
pub const ANNOTATIONS_MAX_BYTES: usize = 256 * 1024;
/// names.SimpleNameGenerator: a generated name is the prefix cut to 58 bytes plus 5 characters.
pub const GENERATED_SUFFIX_LEN: usize = 5;
pub const MAX_GENERATED_PREFIX: usize = DNS1123_LABEL_MAX - GENERATED_SUFFIX_LEN;
/// The generator's alphabet (no vowels, no look-alikes).
pub const SUFFIX_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
/// events.k8s.io/v1 limits (bytes).
pub const EVENT_NOTE_MAX: usize = 1024;
pub const EVENT_FIELD_MAX: usize = 128;
pub const CONFIGMAP_KEY_MAX: usize = 253;

fn lower_alnum(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 bytes.
pub fn dns1123_label(v: &str) -> Result<(), String> {
    let b = v.as_bytes();
    if b.len() > DNS1123_LABEL_MAX {
        return Err(format!(
            "must be no more than {DNS1123_LABEL_MAX} characters"
        ));
    }
    let ok = !b.is_empty()
        && lower_alnum(b[0])
        && lower_alnum(b[b.len() - 1])
        && b.iter().all(|&c| lower_alnum(c) || c == b'-');
    if ok {
        Ok(())
    } else if dns1123_subdomain(v).is_ok() {
        Err("must not contain dots".into())
    } else {
        Err("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character".into())
    }
}

/// Labels as above joined by '.', at most 253 bytes.
pub fn dns1123_subdomain(v: &str) -> Result<(), String> {
    if v.len() > DNS1123_SUBDOMAIN_MAX {
        return Err(format!(
            "must be no more than {DNS1123_SUBDOMAIN_MAX} characters"
        ));
    }
    let ok = v.split('.').all(|l| {
        let b = l.as_bytes();
        !b.is_empty()
            && lower_alnum(b[0])
            && lower_alnum(b[b.len() - 1])
            && b.iter().all(|&c| lower_alnum(c) || c == b'-')
    });
    if ok {
        Ok(())
    } else {
        Err(format!("{v:?}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"))
    }
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`: the name part of a label key, and a non-empty
/// label value.
fn qualified_token(v: &str) -> bool {
    let b = v.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// A label key (and, lower-cased, an annotation key): optional DNS-subdomain prefix and '/', then
/// a name of at most 63 bytes.
pub fn qualified_name(v: &str) -> Result<(), String> {
    let parts: Vec<&str> = v.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                return Err(format!("{v:?}: prefix part must be non-empty"));
            }
            dns1123_subdomain(prefix).map_err(|e| format!("{v:?}: prefix part {e}"))?;
            *name
        }
        _ => return Err(format!("{v:?}: a qualified name has at most one '/'")),
    };
    if name.is_empty() {
        return Err(format!("{v:?}: name part must be non-empty"));
    }
    if name.len() > QUALIFIED_NAME_MAX {
        return Err(format!(
            "{v:?}: name part must be no more than {QUALIFIED_NAME_MAX} characters"
        ));
    }
    if !qualified_token(name) {
        return Err(format!("{v:?}: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"));
    }
    Ok(())
}

pub fn label_value(v: &str) -> Result<(), String> {
    if v.len() > LABEL_VALUE_MAX {
        return Err(format!(
            "{v:?}: must be no more than {LABEL_VALUE_MAX} characters"
        ));
    }
    if !v.is_empty() && !qualified_token(v) {
        return Err(format!("{v:?}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"));
    }
    Ok(())
}

/// `IsConfigMapKey`: `[-._a-zA-Z0-9]+`, at most 253 bytes, not `.`/`..` nor starting with `..`.
pub fn configmap_key(v: &str) -> Result<(), String> {
    if v.is_empty() || v.len() > CONFIGMAP_KEY_MAX {
        return Err(format!(
            "{v:?}: must be 1 to {CONFIGMAP_KEY_MAX} characters"
        ));
    }
    if !v
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_'))
    {
        return Err(format!(
            "{v:?}: a valid config key must consist of alphanumeric characters, '-', '_' or '.'"
        ));
    }
    if v == "." || v == ".." || v.starts_with("..") {
        return Err(format!("{v:?}: must not be '.' or '..' or start with '..'"));
    }
    Ok(())
}

/// How a resource's names are checked (`ValidateNameFunc`): namespaces are DNS labels, every
/// other resource the fake serves is a DNS subdomain.
fn name_rule(resource: &str) -> fn(&str) -> Result<(), String> {
    match resource {
        "namespaces" => dns1123_label,
        _ => dns1123_subdomain,
    }
}

/// A generateName is checked as a name with a trailing '-' masked (`maskTrailingDash`): a
/// prefix may end in '-' (the suffix follows it), but not in '.'.
pub fn generate_name(resource: &str, prefix: &str) -> Result<(), String> {
    let masked = match prefix.strip_suffix('-') {
        Some(head) if prefix.len() > 1 => format!("{}a", &head[..head.len().saturating_sub(1)]),
        _ => prefix.to_string(),
    };
    name_rule(resource)(&masked)
}

/// The name the server makes from a generateName: the prefix cut to 58 bytes plus 5 characters
/// of the generator's alphabet (`n` picks them, so names are reproducible in tests).
pub fn generated_name(prefix: &str, n: u64) -> String {
    let mut base = prefix.to_string();
    if base.len() > MAX_GENERATED_PREFIX {
        let mut cut = MAX_GENERATED_PREFIX;
        while !base.is_char_boundary(cut) {
            cut -= 1;
        }
        base.truncate(cut);
    }
    let mut x = n;
    for _ in 0..GENERATED_SUFFIX_LEN {
        base.push(SUFFIX_ALPHABET[(x % SUFFIX_ALPHABET.len() as u64) as usize] as char);
        x /= SUFFIX_ALPHABET.len() as u64;
    }
    base
}

fn str_map(v: &Value) -> Vec<(&str, &str)> {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default()
}

/// `ValidateObjectMeta` for a stored object: name, namespace, labels, annotations.
pub fn object_meta(resource: &str, obj: &Value) -> Vec<String> {
    let mut errs = Vec::new();
    let meta = &obj["metadata"];
    match meta["name"].as_str() {
        None | Some("") => errs.push("metadata.name: Required value".into()),
        Some(n) => {
            if let Err(e) = name_rule(resource)(n) {
                errs.push(format!("metadata.name: Invalid value: {e}"));
            }
        }
    }
    if let Some(ns) = meta["namespace"].as_str().filter(|s| !s.is_empty()) {
        if let Err(e) = dns1123_label(ns) {
            errs.push(format!("metadata.namespace: Invalid value: {e}"));
        }
    }
    for (k, v) in str_map(&meta["labels"]) {
        if let Err(e) = qualified_name(k) {
            errs.push(format!("metadata.labels: Invalid value: {e}"));
        }
        if let Err(e) = label_value(v) {
            errs.push(format!("metadata.labels: Invalid value: {e}"));
        }
    }
    let annotations = str_map(&meta["annotations"]);
    let mut size = 0;
    for (k, v) in &annotations {
        if let Err(e) = qualified_name(&k.to_ascii_lowercase()) {
            errs.push(format!("metadata.annotations: Invalid value: {e}"));
        }
        size += k.len() + v.len();
    }
    if size > ANNOTATIONS_MAX_BYTES {
        errs.push(format!(
            "metadata.annotations: Too long: may not be more than {ANNOTATIONS_MAX_BYTES} bytes"
        ));
    }
    errs
}

/// events.k8s.io/v1 creation (`ValidateEventCreate`, strict for the v1 API).
fn event(obj: &Value) -> Vec<String> {
    let mut errs = Vec::new();
    let s = |k: &str| obj[k].as_str().unwrap_or("");
    if s("eventTime").is_empty() {
        errs.push("eventTime: Required value".into());
    }
    if !matches!(s("type"), "Normal" | "Warning") {
        errs.push(format!("type: Invalid value: {:?}", s("type")));
    }
    match s("reportingController") {
        "" => errs.push("reportingController: Required value".into()),
        c => {
            if let Err(e) = qualified_name(c) {
                errs.push(format!("reportingController: Invalid value: {e}"));
            }
        }
    }
    for k in ["reportingInstance", "action", "reason"] {
        match s(k).len() {
            0 => errs.push(format!("{k}: Required value")),
            n if n > EVENT_FIELD_MAX => errs.push(format!(
                "{k}: can have at most {EVENT_FIELD_MAX} characters"
            )),
            _ => {}
        }
    }
    if s("note").len() > EVENT_NOTE_MAX {
        errs.push(format!(
            "note: can have at most {EVENT_NOTE_MAX} characters"
        ));
    }
    let ns = obj["metadata"]["namespace"].as_str().unwrap_or("");
    let regarding_ns = obj["regarding"]["namespace"].as_str().unwrap_or("");
    if !regarding_ns.is_empty() && regarding_ns != ns {
        errs.push("regarding.namespace: does not match event.namespace".into());
    }
    for k in ["firstTimestamp", "lastTimestamp", "source", "count"] {
        if !obj[k].is_null() {
            errs.push(format!("{k}: needs to be unset"));
        }
    }
    errs
}

fn configmap(obj: &Value) -> Vec<String> {
    let mut errs = Vec::new();
    let mut size = 0;
    for (k, v) in str_map(&obj["data"]) {
        if let Err(e) = configmap_key(k) {
            errs.push(format!("data[{k}]: Invalid value: {e}"));
        }
        size += k.len() + v.len();
    }
    // The total of a ConfigMap's data (`MaxSecretSize`, shared with Secrets).
    if size > 1024 * 1024 {
        errs.push("data: Too long: must have at most 1048576 bytes".into());
    }
    errs
}

/// Taints as `validateNodeTaints` checks them: a qualified key, a label-value value, a known
/// effect, no duplicate key+effect.
fn node(obj: &Value) -> Vec<String> {
    let mut errs = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for t in obj["spec"]["taints"].as_array().into_iter().flatten() {
        let key = t["key"].as_str().unwrap_or("");
        if let Err(e) = qualified_name(key) {
            errs.push(format!("spec.taints.key: Invalid value: {e}"));
        }
        if let Err(e) = label_value(t["value"].as_str().unwrap_or("")) {
            errs.push(format!("spec.taints.value: Invalid value: {e}"));
        }
        let effect = t["effect"].as_str().unwrap_or("");
        if !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
            errs.push(format!("spec.taints.effect: Unsupported value: {effect:?}"));
        }
        if !seen.insert((key.to_string(), effect.to_string())) {
            errs.push(format!("spec.taints: Duplicate value: {key}:{effect}"));
        }
    }
    errs
}

/// Every check for an object about to be stored (after a create, or after a patch/replace).
pub fn object(resource: &str, obj: &Value, creating: bool) -> Vec<String> {
    let mut errs = object_meta(resource, obj);
    match resource {
        "events" if creating => errs.extend(event(obj)),
        "configmaps" => errs.extend(configmap(obj)),
        "nodes" => errs.extend(node(obj)),
        _ => {}
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(dns1123_subdomain("pod-1.abc").is_ok());
        assert!(dns1123_subdomain("pod-1.").is_err());
        assert!(dns1123_subdomain("Pod").is_err());
        assert!(dns1123_label("a.b").unwrap_err().contains("dots"));
        assert!(generate_name("events", "pod.").is_err());
        assert!(generate_name("events", "pod-").is_ok());
        assert!(generate_name("events", "pod-.").is_err());
        assert_eq!(generated_name(&"x".repeat(70), 0).len(), 63);
        assert!(qualified_name("gpusched.io/gpu-index").is_ok());
        assert!(qualified_name("gpusched.io/").is_err());
        assert!(label_value("gpusched-mps-2").is_ok());
        assert!(label_value(&"a".repeat(64)).is_err());
        assert!(configmap_key("..x").is_err());
    }
}
