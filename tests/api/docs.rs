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
