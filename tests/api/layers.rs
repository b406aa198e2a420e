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

/// The server crate's own direction: GraphQL never reaches into HTTP. (The
/// domain cannot reach either: it is another crate that does not depend
/// on this one, which `the_domain_depends_on_no_server_crate` keeps so.)
#[test]
fn imports_run_one_way() {
    let mut violations = Vec::new();
    for file in rust_files(&src("graphql")) {
        let source = std::fs::read_to_string(&file).unwrap();
        if crate_modules(&source).contains("http") {
            violations.push(format!("{} names crate::http", file.display()));
        }
        let code = code_of(&source);
        for outside in ["axum::", "tower", "hyper"].iter().filter(|c| code.contains(**c)) {
            violations.push(format!("{} uses {outside}", file.display()));
        }
    }
    // Configuration is read by every room and reads none of them.
    for file in rust_files(&domain("config")) {
        let named = crate_modules(&std::fs::read_to_string(&file).unwrap());
        let rooms: Vec<_> = named.iter().filter(|m| !["error", "config"].contains(&m.as_str())).collect();
        if !rooms.is_empty() {
            violations.push(format!("{} names {rooms:?}", file.display()));
        }
    }
    assert!(violations.is_empty(), "imports against the flow:\n{}", violations.join("\n"));
}

/// The domain is a crate of its own so that Cargo refuses a dependency
/// running back up; this keeps anyone from adding one.
#[test]
fn the_domain_depends_on_no_server_crate() {
    let manifest = std::fs::read_to_string(domain("../Cargo.toml")).unwrap();
    let deps = manifest.split("[dependencies]").nth(1).unwrap().split("\n[").next().unwrap();
    for server_crate in ["authgate", "axum", "async-graphql", "hyper", "tower"] {
        assert!(
            !deps.lines().any(|l| l.trim_start().starts_with(&format!("{server_crate} "))
                || l.trim_start().starts_with(&format!("{server_crate}."))),
            "domain/Cargo.toml depends on {server_crate}"
        );
    }
}

/// A module's path in the domain crate (`["session", "cache"]`) from its file.
fn module_of(file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(domain("")).unwrap().with_extension("");
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts
}

/// Every module path a file of the domain names: `crate::a::b::…` and
/// `super::…`, resolved, each cut to the first segment that is not a module.
fn named_paths(file: &Path) -> BTreeSet<Vec<String>> {
    let code = code_of(&std::fs::read_to_string(file).unwrap());
    let me = module_of(file);
    let mut found = BTreeSet::new();
    for (at, _) in code.match_indices("crate::").chain(code.match_indices("super::")) {
        let before = code[..at].chars().last();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let rest = &code[at..];
        let path: String =
            rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':' || *c == '{').collect();
        let mut segments: Vec<&str> = path.split("::").collect();
        let mut base = match segments.remove(0) {
            "crate" => Vec::new(),
            _ => {
                // `super` is the parent module (the file's own module for a `mod tests` inside it).
                let mut parent = me.clone();
                parent.pop();
                while segments.first() == Some(&"super") {
                    segments.remove(0);
                    parent.pop();
                }
                parent
            }
        };
        if let Some(brace) = segments.iter().position(|s| s.starts_with('{')) {
            // `crate::a::{b, c::d}`: the top-level names of the group.
            segments.truncate(brace);
            let group = &rest[rest.find('{').unwrap() + 1..];
            let (mut depth, mut item, mut names) = (0, String::new(), Vec::new());
            for ch in group.chars() {
                match ch {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => names.push(std::mem::take(&mut item)),
                    c if depth == 0 => item.push(c),
                    _ => {}
                }
            }
            names.push(item);
            base.extend(segments.iter().map(|s| s.to_string()));
            for name in names {
                let mut full = base.clone();
                full.extend(name.trim().split("::").map(|s| s.trim().to_string()).filter(|s| !s.is_empty()));
                found.insert(full);
            }
        } else {
            base.extend(segments.iter().filter(|s| !s.is_empty()).map(|s| s.to_string()));
            found.insert(base);
        }
    }
    found
}

/// The rooms of the domain, in `lib.rs`'s order (bottom first).
fn rooms_in_order() -> Vec<String> {
    let lib = std::fs::read_to_string(domain("lib.rs")).unwrap();
    let order = lib.split("// order: ").nth(1).expect("lib.rs lists the rooms in order");
    let rooms: Vec<String> = order[..order.find('.').unwrap()].split(", ").map(String::from).collect();
    for room in &rooms {
        assert!(lib.contains(&format!("pub mod {room};")), "{room} is a module");
    }
    // Every room (a module with a folder of its own) is in the order.
    for entry in std::fs::read_dir(domain("")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() && !["config", "mail"].contains(&name.as_str()) {
            assert!(rooms.contains(&name), "the room {name} is missing from lib.rs's order");
        }
    }
    rooms
}

/// "No two sibling modules import each other": among the modules of one
/// parent in the domain, the imports form no cycle; and the rooms import
/// only rooms listed before them in `lib.rs`.
#[test]
fn the_domains_rooms_import_one_way() {
    let files = rust_files(&domain(""));
    // (parent, from child, to child) for every sibling import.
    let mut edges: BTreeSet<(Vec<String>, String, String)> = BTreeSet::new();
    for file in &files {
        let me = module_of(file);
        for path in named_paths(file) {
            // The nearest common parent; the children of it on each side.
            let common = me.iter().zip(&path).take_while(|(a, b)| a == b).count();
            if common < me.len() && common < path.len() {
                edges.insert((me[..common].to_vec(), me[common].clone(), path[common].clone()));
            }
        }
    }
    let rooms = rooms_in_order();
    assert!(rooms.len() >= 8 && rooms[0] == "events", "{rooms:?}");
    let mut violations = Vec::new();
    for (parent, from, to) in &edges {
        if edges.contains(&(parent.clone(), to.clone(), from.clone())) && from < to {
            violations.push(format!("{}: {from} and {to} import each other", parent.join("::")));
        }
        if parent.is_empty() {
            let (f, t) = (rooms.iter().position(|r| r == from), rooms.iter().position(|r| r == to));
            if let (Some(f), Some(t)) = (f, t)
                && t > f
            {
                violations.push(format!("room {from} imports {to}, listed after it in lib.rs"));
            }
        }
    }
    // Longer cycles among siblings (a → b → c → a).
    let parents: BTreeSet<_> = edges.iter().map(|(p, _, _)| p.clone()).collect();
    for parent in parents {
        let mut left: BTreeSet<String> = edges
            .iter()
            .filter(|(p, _, _)| *p == parent)
            .flat_map(|(_, a, b)| [a.clone(), b.clone()])
            .collect();
        while let Some(leaf) = left
            .iter()
            .find(|m| !edges.iter().any(|(p, a, b)| *p == parent && a == *m && b != *m && left.contains(b)))
            .cloned()
        {
            left.remove(&leaf);
        }
        if !left.is_empty() {
            violations.push(format!("{}: a cycle among (or leading to) {left:?}", parent.join("::")));
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
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
    for file in rust_files(&domain("")).into_iter().filter(|f| !f.starts_with(domain("config"))) {
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

/// The docs promise internal errors are "logged in full": each is made by
/// `AuthError::internal(context, cause)`, which logs where it arises; a
/// bare `AuthError::Internal` outside `error.rs` would reach the client
/// with nothing in the log.
#[test]
fn internal_errors_are_made_by_the_logging_constructor() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let files = rust_files(&root.join("src")).into_iter().chain(rust_files(&root.join("domain/src")));
    let bare: Vec<String> = files
        .filter(|f| !f.ends_with("domain/src/error.rs"))
        .filter(|f| code_of(&std::fs::read_to_string(f).unwrap()).contains("AuthError::Internal"))
        .map(|f| f.display().to_string())
        .collect();
    assert!(bare.is_empty(), "a bare AuthError::Internal (use AuthError::internal): {bare:?}");
}

/// Every resolver that acts for a signed-in user declares it: the fields
/// whose resolver calls `signed_in` carry `#[graphql(guard = "SignedIn")]`
/// (without it `signed_in` refuses at run time; this says where, at once).
#[test]
fn every_resolver_acting_for_a_user_has_the_guard() {
    let mut guarded = 0;
    for file in rust_files(&src("graphql")) {
        let source = std::fs::read_to_string(&file).unwrap();
        // Each resolver: its attributes (the lines above it) and its body.
        let pieces: Vec<&str> = source.split("\n    async fn ").collect();
        for (i, body) in pieces.iter().enumerate().skip(1) {
            let body = body.split("\n    }\n").next().unwrap();
            if !body.contains("signed_in(ctx)") {
                continue;
            }
            let above = pieces[i - 1].lines().rev().take_while(|l| l.trim_start().starts_with(['#', '/']));
            let name = body.split('(').next().unwrap();
            assert!(
                above.clone().any(|l| l.contains("guard = \"SignedIn")),
                "{}: {name} calls signed_in without #[graphql(guard = \"SignedIn\")]",
                file.display()
            );
            guarded += 1;
        }
    }
    assert!(guarded >= 15, "the resolvers were read ({guarded})");
}
