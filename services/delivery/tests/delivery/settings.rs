//! The `[delivery]` settings: start-up stops on a value delivery cannot work with, naming
//! the key.

use dbtops_settings::{DeliveryProvider, SensitiveAction, Settings, SettingsError};

fn load(toml: &str, environment: &[(&str, &str)]) -> Result<Settings, SettingsError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dbt-ops.toml");
    std::fs::write(&path, toml).unwrap();
    Settings::load_from(
        Some(&path),
        environment
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string())),
    )
}

fn refused(toml: &str, key: &str) {
    let error = load(toml, &[]).unwrap_err();
    assert!(
        error.to_string().contains(key),
        "{key} not named in: {error}"
    );
}

#[test]
fn a_forge_provider_needs_its_project() {
    refused(
        "[delivery]\nprovider = \"gitlab\"\n",
        "delivery.gitlab.project",
    );
    refused(
        "[delivery]\nprovider = \"github\"\n",
        "delivery.github.repository",
    );
    refused(
        "[delivery]\nprovider = \"github\"\n[delivery.github]\nrepository = \"no-slash\"\n",
        "delivery.github.repository",
    );
    refused(
        "[delivery]\nprovider = \"gitlab\"\n[delivery.gitlab]\nproject = \"a/b\"\nbase_url = \"gitlab.example\"\n",
        "delivery.gitlab.base_url",
    );
}

#[test]
fn a_webhook_endpoint_needs_an_address_and_a_secret() {
    refused(
        "[delivery]\nwebhook_listen = \"127.0.0.1:8088\"\n",
        "delivery.webhook_listen",
    );
    refused(
        "[delivery]\nwebhook_listen = \"localhost\"\n[delivery.gitlab]\nwebhook_token = \"t\"\n",
        "delivery.webhook_listen",
    );
    let settings = load(
        "[delivery]\nwebhook_listen = \"127.0.0.1:8088\"\n[delivery.github]\nwebhook_secret = \"s\"\n",
        &[],
    )
    .unwrap();
    assert_eq!(settings.delivery.webhook_listen, "127.0.0.1:8088");
}

#[test]
fn langfuse_needs_both_keys_and_labels_no_commas() {
    refused(
        "[delivery.langfuse]\nbase_url = \"https://cloud.langfuse.com\"\npublic_key = \"pk\"\n",
        "delivery.langfuse",
    );
    refused("[delivery]\nlabels = [\"a,b\"]\n", "delivery.labels");
    refused(
        "[delivery]\nhttp_timeout_secs = 0\n",
        "delivery.http_timeout_secs",
    );
}

#[test]
fn forge_settings_come_from_the_file_and_the_environment() {
    let settings = load(
        "[delivery]\nprovider = \"gitlab\"\nsensitive_action = \"draft\"\n[delivery.gitlab]\nproject = \"data/shop\"\n",
        &[
            ("DBT_OPS__DELIVERY__GITLAB__TOKEN", "glpat-from-env"),
            ("DBT_OPS__DELIVERY__LABELS", "dbt-ops,data"),
        ],
    )
    .unwrap();
    assert_eq!(settings.delivery.provider, DeliveryProvider::Gitlab);
    assert_eq!(settings.delivery.sensitive_action, SensitiveAction::Draft);
    assert_eq!(settings.delivery.gitlab.token.expose(), "glpat-from-env");
    assert_eq!(settings.delivery.labels, vec!["dbt-ops", "data"]);
    assert!(!format!("{settings:?}").contains("glpat-from-env"));
}
