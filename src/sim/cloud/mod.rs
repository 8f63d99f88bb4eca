//! `sim cloud` (to be written).

#[derive(Debug, clap::Args)]
pub struct CloudArgs {}

pub async fn run(_args: CloudArgs) -> anyhow::Result<()> {
    anyhow::bail!("not yet built")
}
