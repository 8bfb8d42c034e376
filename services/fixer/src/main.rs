//! `dbt-ops-fixer`: the fixer as its own process, for deployments that scale it alone.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    dbtops_service::main("dbt-ops-fixer", dbtops_fixer::run).await
}
