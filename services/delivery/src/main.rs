//! `dbt-ops-delivery`: the delivery as its own process, for deployments that scale it alone.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    dbtops_service::main("dbt-ops-delivery", dbtops_delivery::run).await
}
