//! deploy/Dockerfile, read line by line (continuations joined).

use std::collections::BTreeMap;

use super::*;

/// The instructions, each `(KEYWORD, rest)` with `\` continuations joined and comments
/// dropped.
fn instructions() -> Vec<(String, String)> {
    let text = read(&deploy().join("Dockerfile"));
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        if let Some(continued) = trimmed.strip_suffix('\\') {
            current.push_str(continued);
            current.push(' ');
            continue;
        }
        current.push_str(trimmed);
        let (keyword, rest) = current.split_once(' ').unwrap_or((&current, ""));
        instructions.push((keyword.to_uppercase(), rest.trim().to_owned()));
        current.clear();
    }
    instructions
}

fn all(keyword: &str) -> Vec<String> {
    instructions()
        .into_iter()
        .filter(|(k, _)| k == keyword)
        .map(|(_, rest)| rest)
        .collect()
}

/// A JSON-array (exec form) instruction's words.
fn exec_form(rest: &str) -> Vec<String> {
    serde_json::from_str(rest).unwrap_or_else(|_| panic!("not exec form: {rest}"))
}

/// The uid the image runs as.
pub fn user() -> i64 {
    let users = all("USER");
    let last = users.last().expect("a USER");
    last.split(':')
        .next()
        .unwrap()
        .parse()
        .expect("a numeric uid")
}

#[test]
fn the_image_builds_and_installs_every_service_binary() {
    let workspace = workspace();
    let build = all("RUN")
        .into_iter()
        .find(|run| run.contains("cargo build"))
        .expect("a cargo build");
    // The cargo command alone: the RUN goes on with `&& mkdir -p /out …`.
    let cargo = build
        .split("cargo build")
        .nth(1)
        .and_then(|rest| rest.split("&&").next())
        .unwrap_or_default();
    let words: Vec<&str> = cargo.split_whitespace().collect();
    let packages: Vec<&str> = words
        .windows(2)
        .filter(|pair| pair[0] == "-p")
        .map(|pair| pair[1])
        .collect();
    assert!(!packages.is_empty());
    for package in &packages {
        assert!(
            workspace.packages.contains(*package),
            "-p {package}: no such package"
        );
    }
    assert!(
        build.contains("--locked"),
        "the image must build the locked dependencies"
    );
    // `for bin in a b c; do … target/release/${bin} …`
    let list = build
        .split("for bin in ")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .expect("a `for bin in …;` loop");
    let installed: Vec<&str> = list.split_whitespace().collect();
    for binary in &installed {
        assert!(
            workspace.binaries.contains(*binary),
            "{binary}: no such [[bin]]"
        );
    }
    for binary in SERVICE_BINARIES.iter().chain(["dbt-ops"].iter()) {
        assert!(installed.contains(binary), "the image lacks {binary}");
    }
    // The default command runs an installed binary, under tini, which is installed.
    let command = exec_form(all("CMD").last().unwrap());
    assert!(installed.contains(&command[0].as_str()), "{command:?}");
    let entrypoint = exec_form(all("ENTRYPOINT").last().unwrap());
    assert_eq!(entrypoint[0], "/usr/bin/tini");
    assert!(all("RUN")
        .iter()
        .any(|run| run.contains("apt-get install") && run.contains(" tini")));
}

#[test]
fn copied_files_exist_and_the_toolchain_is_the_workspace_msrv() {
    for copy in all("COPY") {
        if copy.starts_with("--from") {
            continue;
        }
        let words: Vec<&str> = copy.split_whitespace().collect();
        for source in &words[..words.len() - 1] {
            assert!(root().join(source).exists(), "COPY {source}: missing");
        }
        // Not filtered out of the build context either.
        let ignored = read(&deploy().join("Dockerfile.dockerignore"));
        for source in &words[..words.len() - 1] {
            assert!(
                !ignored.lines().any(|line| line.trim() == *source),
                "{source} is copied but .dockerignore'd"
            );
        }
    }
    let rust_version = all("ARG")
        .into_iter()
        .find_map(|arg| arg.strip_prefix("RUST_VERSION=").map(str::to_owned))
        .expect("ARG RUST_VERSION=…");
    assert_eq!(rust_version, workspace().rust_version);
}

#[test]
fn env_settings_in_the_image_are_real_settings_keys() {
    let mut environment = BTreeMap::new();
    for env in all("ENV") {
        for pair in env.split_whitespace() {
            let (name, value) = pair.split_once('=').expect("ENV NAME=value");
            environment.insert(name.to_owned(), value.to_owned());
        }
    }
    let ours: Vec<_> = environment
        .keys()
        .filter(|k| k.starts_with("DBT_OPS__"))
        .collect();
    assert!(!ours.is_empty());
    let settings = settings_of("the image", None, &environment);
    assert_eq!(
        settings.validator.dbt_bin,
        environment["DBT_OPS__VALIDATOR__DBT_BIN"]
    );
    // The dbt it names is installed where the image says.
    assert!(all("RUN")
        .iter()
        .any(|run| run.contains("python -m venv /opt/dbt")));
    assert!(settings.validator.dbt_bin.starts_with("/opt/dbt/bin/"));
}
