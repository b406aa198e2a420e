//! The layering ARCHITECTURE.md describes, checked on the source: data
//! flows HTTP → GraphQL → services → database, and no import runs the
//! other way. The compiler allows any `crate::` path, so this reads them.

use std::{collections::BTreeSet, path::Path};

/// A file without its comment lines (which may describe the rules).
fn code_of(source: &str) -> String {
    source.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n")
}

/// Every `crate::<module>` a file's code names (in `use` trees and in paths).
fn crate_modules(source: &str) -> BTreeSet<String> {
    let code = code_of(source);
    let mut found = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // A `use crate::{a::b, c, d::{e, f}}` tree: its top-level names.
            let (mut depth, mut item_start) = (0, true);
            for (i, ch) in group.char_indices() {
                match ch {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        rest = &group[i..];
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && (c.is_alphanumeric() || c == '_') => {
                        let name: String =
                            group[i..].chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                        found.insert(name);
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            found.insert(rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect());
        }
    }
    found
}

pub fn rust_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

fn src(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(path)
}

fn domain(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("domain/src").join(path)
}

/// `(files, crate modules they must not name, outside crates they must not use)`.
fn rules() -> Vec<(Vec<std::path::PathBuf>, &'static [&'static str], &'static [&'static str])> {
    let services: Vec<_> = ["auth", "mail"]
        .iter()
        .flat_map(|d| rust_files(&domain(d)))
        .chain(["db.rs", "keys.rs", "error.rs", "clock.rs", "jobs.rs"].iter().map(|f| domain(f)))
        .collect();
    vec![
        (rust_files(&src("graphql")), &["http"], &["axum::", "tower", "hyper"]),
        (services, &["http", "graphql"], &["axum::", "async_graphql", "hyper"]),
        // Configuration is read by every layer and reads none of them.
        (
            rust_files(&domain("config")),
            &["http", "graphql", "auth", "mail", "db"],
            &["axum::", "async_graphql"],
        ),
    ]
}

#[test]
fn imports_run_one_way() {
    let mut violations = Vec::new();
    for (files, modules, crates) in rules() {
        assert!(!files.is_empty());
        for file in files {
            let source = std::fs::read_to_string(&file).unwrap();
            let named = crate_modules(&source);
            for module in modules.iter().filter(|m| named.contains(**m)) {
                violations.push(format!("{} names crate::{module}", file.display()));
            }
            let code = code_of(&source);
            for outside in crates.iter().filter(|c| code.contains(**c)) {
                violations.push(format!("{} uses {outside}", file.display()));
            }
        }
    }
    assert!(violations.is_empty(), "imports against the flow:\n{}", violations.join("\n"));
}

#[test]
fn the_checker_sees_every_form_of_import() {
    let named =
        crate_modules("use crate::{\n    auth::x,\n    http::{cookie, y},\n};\nlet a = crate::graphql::f();");
    assert_eq!(named, ["auth", "graphql", "http"].map(String::from).into());
    assert!(
        crate_modules("//! never `crate::http`\n    // nor crate::graphql\n").is_empty(),
        "comments skipped"
    );
}

/// Services speak of inputs in their own terms (`error::Input`): a
/// camelCase GraphQL argument or field name in a service is the GraphQL
/// layer leaking down.
#[test]
fn services_name_no_graphql_fields() {
    let sdl = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("schema.graphql")).unwrap();
    let graphql_names: BTreeSet<&str> = sdl
        .split(|c: char| !c.is_alphanumeric() && c != '_')
        .filter(|w| w.chars().next().is_some_and(|c| c.is_lowercase()) && w.chars().any(|c| c.is_uppercase()))
        .collect();
    assert!(graphql_names.contains("newPassword"), "the SDL's camelCase names were read");
    let mut found = Vec::new();
    for file in ["auth", "mail"].iter().flat_map(|d| rust_files(&domain(d))) {
        let source = std::fs::read_to_string(&file).unwrap();
        for name in &graphql_names {
            if source.contains(&format!("\"{name}\"")) {
                found.push(format!("{} names \"{name}\"", file.display()));
            }
        }
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
}

/// The effects a resolver records hold secrets (a session token, an OAuth
/// state): their `Debug` names the effect and shows neither.
#[test]
fn effects_print_no_secret() {
    use authgate::graphql::effects::Effect;
    let shown = format!(
        "{:?} {:?} {:?}",
        Effect::SessionCookie { token: "tok-s3cret".into(), expires_at: chrono::Utc::now() },
        Effect::OAuthStarted { state: "state-s3cret".into() },
        Effect::SessionEnded,
    );
    assert!(
        shown.contains("SessionCookie") && shown.contains("OAuthStarted") && shown.contains("SessionEnded")
    );
    assert!(!shown.contains("s3cret"), "{shown}");
}
