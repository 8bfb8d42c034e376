//! `dbtops-e2e-service`: one dbt-ops service as its own process, for the kill drills.
//!
//! It runs the same `dbtops_service::main` as each `dbt-ops-<service>` binary; the service
//! comes from `DBTOPS_E2E_SERVICE`. It exists because cargo hands an integration test the
//! paths of its own package's binaries only (`CARGO_BIN_EXE_*`): the real binaries belong
//! to the service packages, which `cargo test -p dbtops-e2e` neither builds nor rebuilds,
//! so a drill against them could run stale code.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let service = std::env::var(dbtops_e2e::processes::SERVICE_VARIABLE).unwrap_or_default();
    match service.as_str() {
        "detector" => dbtops_service::main("dbt-ops-detector", dbtops_detector::run).await,
        "fixer" => dbtops_service::main("dbt-ops-fixer", dbtops_fixer::run).await,
        "validator" => dbtops_service::main("dbt-ops-validator", dbtops_validator::run).await,
        "delivery" => dbtops_service::main("dbt-ops-delivery", dbtops_delivery::run).await,
        other => anyhow::bail!(
            "set {} to detector, fixer, validator or delivery (not {other:?})",
            dbtops_e2e::processes::SERVICE_VARIABLE
        ),
    }
}
