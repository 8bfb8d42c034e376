//! `dbt-ops-validator`: the validator as its own process, for deployments that scale it alone.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    dbtops_service::main("dbt-ops-validator", dbtops_validator::run).await
}
