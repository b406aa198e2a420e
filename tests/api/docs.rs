//! The documentation's tables (README.md and docs/) are derived from the
//! code's own lists: each test fails when a row is missing, extra or different.

use domain::{config::RULES, error::Code};

/// README.md and every page of docs/, as one text.
fn readme() -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut pages: Vec<_> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    pages.sort();
    pages.insert(0, root.join("README.md"));
    pages.iter().map(|p| std::fs::read_to_string(p).unwrap()).collect::<Vec<_>>().join("\n")
}

/// The rows of the README table whose first cell starts with `prefix`.
fn rows(readme: &str, prefix: &str) -> Vec<String> {
    readme.lines().filter(|l| l.starts_with(prefix)).map(str::to_owned).collect()
}

#[test]
fn the_rate_limit_table_is_the_rule_table() {
    let readme = readme();
    let expected: Vec<String> =
        RULES.iter().map(|r| format!("| `{}` | `{}` | {} |", r.variable, r.default, r.meaning)).collect();
    let found: Vec<String> = rows(&readme, "| `AUTHGATE_RATE_")
        .into_iter()
        .filter(|row| !row.starts_with("| `AUTHGATE_RATE_*`"))
        .collect();
    assert_eq!(found, expected);
}

#[test]
fn the_error_code_table_is_the_code_list() {
    let readme = readme();
    let section = readme.split("\n## Error codes\n").nth(1).expect("an Error codes section");
    let section = section.split("\n## ").next().unwrap_or_default();
    let expected: Vec<String> =
        Code::ALL.iter().map(|c| format!("| `{}` | {} |", c.as_str(), c.meaning())).collect();
    assert_eq!(rows(section, "| `"), expected);
}

/// Each rule of the table is a flag and a variable of the server, and the
/// benchmark's "every rule off" turns off every one of them.
#[test]
fn every_rule_is_a_flag_and_a_variable() {
    use clap::{CommandFactory, Parser};
    use domain::config::{Cli, Rates};
    let command = Cli::command();
    for rule in &RULES {
        let arg =
            command.get_arguments().find(|a| a.get_env().and_then(|e| e.to_str()) == Some(rule.variable));
        let arg = arg.unwrap_or_else(|| panic!("{} is not a setting", rule.variable));
        let flag = format!("--{}", arg.get_long().unwrap());
        let config = Cli::parse_from(["authgate", flag.as_str(), "7/1m"]).config;
        assert_eq!(config.rates.get(rule.rule).to_string(), "7/1m", "{flag}");
        assert_eq!(Rates::off().get(rule.rule).limit, 0, "{} off", rule.variable);
        assert_eq!(Rates::default().get(rule.rule).to_string(), rule.default, "{}", rule.variable);
    }
}

/// Every variable `authgate --help` knows is in the configuration table
/// (rate limits in their own table).
#[test]
fn every_setting_is_documented() {
    use clap::CommandFactory;
    let readme = readme();
    let command = domain::config::Cli::command();
    let missing: Vec<String> = command
        .get_arguments()
        .filter_map(|arg| arg.get_env().and_then(|e| e.to_str()).map(str::to_owned))
        .filter(|env| !readme.contains(&format!("`{env}`")) && !readme.contains(&format!("`{env}` /")))
        .collect();
    assert!(missing.is_empty(), "not in README.md or docs/: {missing:?}");
}

/// Every metric the code emits, and every value of `event`, is in the
/// metrics list of docs/deployment.md (a dashboard built from the docs
/// finds everything); the `event` values come from one enum.
#[test]
fn every_metric_and_event_is_documented() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let docs = std::fs::read_to_string(root.join("docs/deployment.md")).unwrap();
    let sources: Vec<_> = crate::layers::rust_files(&root.join("src"))
        .into_iter()
        .chain(crate::layers::rust_files(&root.join("domain/src")))
        .collect();
    let mut names = std::collections::BTreeSet::new();
    for file in &sources {
        let text = std::fs::read_to_string(file).unwrap();
        // The name is the first argument of a `metrics::` macro.
        for macro_call in ["counter!(", "gauge!(", "histogram!("] {
            for (at, _) in text.match_indices(macro_call) {
                let args = text[at + macro_call.len()..].trim_start();
                if let Some(name) = args.strip_prefix('"').and_then(|a| a.split('"').next()) {
                    names.insert(name.to_owned());
                }
            }
        }
        assert!(
            !text.contains("\"event\" => \""),
            "{}: an event label outside domain::telemetry::AuthEvent",
            file.display()
        );
    }
    assert!(names.len() >= 10 && names.contains("authgate_auth_events_total"), "{names:?}");
    let missing: Vec<_> = names.iter().filter(|n| !docs.contains(&format!("`{n}"))).collect();
    assert!(missing.is_empty(), "metrics missing from docs/deployment.md: {missing:?}");
    let events: Vec<_> = domain::telemetry::AuthEvent::ALL
        .iter()
        .map(|e| e.label())
        .filter(|label| !docs.contains(&format!("`{label}`")))
        .collect();
    assert!(events.is_empty(), "event values missing from docs/deployment.md: {events:?}");
}

/// The README's Rust version is the one Cargo.toml requires.
#[test]
fn the_readme_names_the_rust_version_cargo_needs() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let version = manifest
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = \""))
        .and_then(|v| v.strip_suffix('"'))
        .expect("rust-version in the workspace");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    assert!(readme.contains(&format!("Rust ≥ {version}")), "README.md should say Rust ≥ {version}");
}

/// Every setting that takes a duration is checked by `Config::validate`
/// (a window beyond 100 years would overflow at a sign-in, not at start):
/// found from the settings themselves, so a new one cannot be left out.
#[test]
fn every_duration_setting_is_validated() {
    use clap::{CommandFactory, Parser};
    use domain::config::Cli;
    let mut durations = 0;
    for arg in Cli::command().get_arguments() {
        let (Some(env), Some(long)) = (arg.get_env().and_then(|e| e.to_str()), arg.get_long()) else {
            continue;
        };
        let flag = format!("--{long}");
        let value = if env.starts_with("AUTHGATE_RATE_") { "5/300000y" } else { "300000y" };
        // A duration takes `300000y` and refuses what is not one (a text setting takes both).
        let Ok(cli) = Cli::try_parse_from(["authgate", flag.as_str(), value]) else { continue };
        if Cli::try_parse_from(["authgate", flag.as_str(), "not-a-duration"]).is_ok() {
            continue;
        }
        durations += 1;
        let refused = cli.config.validate().expect_err(&format!("{env}={value} must be refused"));
        assert!(refused.to_string().contains(env), "{env}: {refused}");
    }
    assert!(durations >= 30, "the duration settings were found ({durations})");
}

/// Every test ARCHITECTURE.md's checklists name (`file::test`) exists, so
/// "the test that fails when a step is skipped" is a real one.
#[test]
fn the_tests_architecture_names_exist() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap();
    let mut named = 0;
    for quoted in text.split('`').skip(1).step_by(2) {
        let Some((file, test)) = quoted.split_once("::") else { continue };
        let path = root.join("tests/api").join(format!("{file}.rs"));
        if test.contains("::") || !test.chars().all(|c| c.is_ascii_lowercase() || c == '_') || !path.exists()
        {
            continue;
        }
        let source = std::fs::read_to_string(&path).unwrap();
        assert!(
            source.contains(&format!("fn {test}(")),
            "ARCHITECTURE.md names {file}::{test}, which does not exist"
        );
        named += 1;
    }
    assert!(named >= 15, "the checklists name their tests ({named})");
}

/// Every place the docs list the step-up operations lists exactly
/// `graphql::STEP_UP_OPERATIONS` (a new one, or one no longer step-up,
/// fails here until each list says so).
#[test]
fn every_step_up_list_is_the_one_list() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let sdl = std::fs::read_to_string(root.join("schema.graphql")).unwrap();
    let mutations = sdl.split("type MutationRoot {").nth(1).unwrap().split("\n}").next().unwrap();
    let expected: std::collections::BTreeSet<&str> =
        authgate::graphql::STEP_UP_OPERATIONS.iter().copied().collect();
    let places = [
        ("docs/sign-in.md", "- **Step-up**:"),
        ("docs/security.md", "| step-up for changes to the ways in |"),
        ("docs/security.md", "**Step-up for changes to the ways in.**"),
        ("docs/configuration.md", "| `AUTHGATE_REAUTH_WINDOW` |"),
        ("contract/README.md", "- Step-up:"),
    ];
    for (file, marker) in places {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        let start = text.find(marker).unwrap_or_else(|| panic!("{file} has no {marker:?}"));
        let rest = &text[start..];
        // The list ends where the rule begins ("… need a session that …").
        let end =
            [rest.find("\n\n"), rest[1..].find("\n- ").map(|i| i + 1), rest.find(" |\n"), rest.find(" need")]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(rest.len());
        let listed: std::collections::BTreeSet<&str> = rest[..end]
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|name| mutations.contains(&format!("\t{name}")))
            // How a session proves presence, named beside the list.
            .filter(|name| *name != "reauthenticate")
            .collect();
        assert_eq!(listed, expected, "{file}, {marker}");
    }
}
