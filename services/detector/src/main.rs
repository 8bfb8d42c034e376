//! `dbt-ops-detector`: the detector as its own process, for deployments that scale it alone.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    dbtops_service::main("dbt-ops-detector", dbtops_detector::run).await
}
