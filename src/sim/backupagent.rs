//! `sim backupagent` (to be written).

#[derive(Debug, clap::Args)]
pub struct BackupAgentArgs {}

pub async fn run(_args: BackupAgentArgs) -> anyhow::Result<()> {
    anyhow::bail!("not yet built")
}
