//! The architecture's invariants (ARCHITECTURE.md), checked by reading the
//! source tree.

// Helpers of a test file: a panic is the failed check.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn rust_files(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                out.push((path, text));
            }
        }
    }
    assert!(!out.is_empty(), "no sources under {}", dir.display());
    out
}

/// Source lines outside `#[cfg(test)]` items and comments.
fn code_lines(text: &str) -> impl Iterator<Item = &str> {
    let mut kept = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("#[cfg(test)]") {
        kept.push(&rest[..at]);
        rest = &rest[at..];
        // Skip the item the attribute is on: up to its matching brace.
        let Some(open) = rest.find('{') else {
            rest = "";
            break;
        };
        let mut depth = 0usize;
        let mut end = rest.len();
        for (i, c) in rest.char_indices().skip(open) {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &rest[end..];
    }
    kept.push(rest);
    kept.into_iter()
        .flat_map(str::lines)
        .map(str::trim)
        .filter(|l| !l.starts_with("//"))
}

fn offenders(dir: &Path, allowed: &[&str], needles: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for (path, text) in rust_files(dir) {
        let relative = path
            .strip_prefix(dir)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        if allowed.iter().any(|a| relative.starts_with(a)) {
            continue;
        }
        for line in code_lines(&text) {
            if needles.iter().any(|n| line.contains(n)) {
                found.push(format!("{relative}: {line}"));
            }
        }
    }
    found
}

#[test]
fn core_imports_no_transport_or_storage_crate() {
    let core = root().join("server/src/core");
    let found = offenders(
        &core,
        &[],
        &[
            "axum", "tonic", "rumqttd", "rumqttc", "sea_orm", "hyper", "prost",
        ],
    );
    assert!(found.is_empty(), "{found:#?}");
}

/// The core answers with typed values and builds no JSON by hand: every
/// response body is built in `api/`, and what the core signs, seals or
/// reads (token claims, a sealed request, a JWS header, a device's
/// statement) is a typed struct.
#[test]
fn core_builds_no_json_by_hand() {
    let found = offenders(
        &root().join("server/src/core"),
        &[],
        &[
            "serde_json::Value",
            "serde_json::Map",
            "serde_json::{",
            "serde_json::to_value",
            "json!",
        ],
    );
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn only_store_imports_sea_orm() {
    let found = offenders(
        &root().join("server/src"),
        &["store/"],
        &["sea_orm::", "use sea_orm"],
    );
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn only_core_auth_constructs_authenticated_callers() {
    let found = offenders(
        &root().join("server/src"),
        &["core/auth.rs"],
        &["AuthenticatedDevice {", "AuthenticatedAdmin {"],
    );
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn protocol_error_dialects_live_in_api() {
    // `push/` may read a broker's CONNACK; only `api/` answers clients.
    let found = offenders(
        &root().join("server/src"),
        &["api/", "push/"],
        &["tonic::", "ConnectReturnCode", "StatusCode"],
    );
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn server_touches_private_keys_only_in_ca() {
    let found = offenders(
        &root().join("server/src"),
        &["ca/"],
        &["PrivateKeyPem::new", "KeyPair::", "rcgen"],
    );
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn server_has_no_global_state() {
    let found: Vec<_> = offenders(&root().join("server/src"), &[], &["static "])
        .into_iter()
        .filter(|l| !l.contains("&'static") && !l.contains("'static>"))
        .collect();
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn core_operations_take_the_time_as_a_parameter() {
    let found = offenders(
        &root().join("server/src/core"),
        &[],
        &["Utc::now", "SystemTime::now", "Instant::now"],
    );
    assert!(found.is_empty(), "{found:#?}");
}

/// The layers of the server and what each may not name, top to bottom:
/// `api -> core -> {store, ca, push, mail} -> domain`.
const ABOVE_DOMAIN: &[&str] = &[
    "crate::core",
    "crate::store",
    "crate::ca",
    "crate::push",
    "crate::mail",
    "crate::api",
    "crate::config",
];

#[test]
fn the_domain_vocabulary_names_nothing_above_it() {
    let mut needles = ABOVE_DOMAIN.to_vec();
    needles.extend([
        "sea_orm",
        "axum",
        "tonic",
        "rumqtt",
        "hyper",
        "prost",
        "tokio",
        "serde_json",
    ]);
    let found = offenders(&root().join("server/src/domain"), &[], &needles);
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn store_ca_push_and_mail_never_import_core() {
    for dir in ["store", "ca", "push", "dep", "apple_profiles"] {
        let found = offenders(
            &root().join("server/src").join(dir),
            &[],
            &["crate::core", "crate::api"],
        );
        assert!(found.is_empty(), "{dir}: {found:#?}");
    }
    let mail = std::fs::read_to_string(root().join("server/src/mail.rs")).unwrap();
    let found: Vec<_> = code_lines(&mail)
        .filter(|l| l.contains("crate::core") || l.contains("crate::api"))
        .collect();
    assert!(found.is_empty(), "mail.rs: {found:#?}");
    // Apple's profiles are documents: they name the domain, not the store
    // or a channel either.
    let found = offenders(
        &root().join("server/src/apple_profiles"),
        &[],
        &["crate::store", "crate::push", "crate::ca"],
    );
    assert!(found.is_empty(), "apple_profiles: {found:#?}");
}

/// Whether `line` names the identifier `word` itself (not `CoreError`).
fn names_identifier(line: &str, word: &str) -> bool {
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    line.match_indices(word).any(|(at, _)| {
        let before = line[..at].chars().next_back();
        let after = line[at + word.len()..].chars().next();
        !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
    })
}

/// The services in `core` are built together in `core/mod.rs` and reach
/// each other only through the handles they hold, never through `Core`:
/// a service that needs another says so in its fields.
#[test]
fn services_never_reach_through_core() {
    let dir = root().join("server/src/core");
    let mut found = Vec::new();
    for (path, text) in rust_files(&dir) {
        let relative = path
            .strip_prefix(&dir)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        if relative == "mod.rs" {
            continue;
        }
        for line in code_lines(&text) {
            if names_identifier(line, "Core") {
                found.push(format!("{relative}: {line}"));
            }
        }
    }
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn api_never_names_the_store() {
    let found = offenders(
        &root().join("server/src/api"),
        &[],
        &["crate::store", "latchkeyd::store", ".store."],
    );
    assert!(found.is_empty(), "{found:#?}");
}

/// The agent's modules from the bottom up. A module names only modules of
/// lower layers, so the agent's modules form a DAG: the state directory,
/// the keystore and the OS integration never reach up into the MQTT
/// session, device-bound login or enrollment that use them.
const AGENT_LAYERS: &[&[&str]] = &[
    &["policy", "platform"],
    &["state"],
    &["keystore"],
    &["enroll"],
    &["device_auth"],
    &["local"],
    &["run"],
];

/// The first path segment of `path`: `run` of `run::AppliedPolicy`.
fn leading_identifier(path: &str) -> String {
    path.trim_start()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// The crate-level names `code` reaches through `crate::` paths, including
/// each name of a `crate::{a, b::c}` group; in a file directly under
/// `src/`, `super::` paths reach the same names.
fn crate_names_in(code: &str, file_at_top: bool) -> Vec<String> {
    let mut prefixes = vec!["crate::"];
    if file_at_top {
        prefixes.push("super::");
    }
    let mut names = Vec::new();
    for prefix in prefixes {
        for (at, _) in code.match_indices(prefix) {
            let preceded_by_identifier = code[..at]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$');
            if preceded_by_identifier {
                continue;
            }
            let rest = &code[at + prefix.len()..];
            let Some(group) = rest.strip_prefix('{') else {
                names.push(leading_identifier(rest));
                continue;
            };
            let mut depth = 0usize;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        names.push(leading_identifier(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
            names.push(leading_identifier(&item));
        }
    }
    names.retain(|name| !name.is_empty() && name != "self" && name != "super");
    names
}

#[test]
fn agent_modules_name_only_lower_layers() {
    let src = root().join("agent/src");
    let layer_of = |module: &str| AGENT_LAYERS.iter().position(|l| l.contains(&module));
    let mut found = Vec::new();
    let mut modules_seen = 0;
    for (path, text) in rust_files(&src) {
        let relative = path
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        if relative == "lib.rs" || relative == "main.rs" {
            continue;
        }
        let module = leading_identifier(&relative);
        let Some(layer) = layer_of(&module) else {
            found.push(format!(
                "{relative}: module {module} is in no layer of AGENT_LAYERS; add it there"
            ));
            continue;
        };
        modules_seen += 1;
        let code: Vec<&str> = code_lines(&text).collect();
        let file_at_top = !relative.contains('/');
        for name in crate_names_in(&code.join("\n"), file_at_top) {
            if name == module {
                continue;
            }
            match layer_of(&name) {
                Some(other) if other < layer => {}
                Some(_) => found.push(format!(
                    "{relative}: {module} names crate::{name}, which is not below it"
                )),
                None => found.push(format!(
                    "{relative}: {module} names crate::{name}, an item of the crate root above every module"
                )),
            }
        }
    }
    assert!(
        modules_seen >= AGENT_LAYERS.len(),
        "too few agent modules read"
    );
    assert!(found.is_empty(), "{found:#?}");
}
