//! Agents: each enrolled machine's agent holds a random token (kept as its
//! [`digest`](super::digest)) that reaches its own machine only.

use sea_orm::{ConnectionTrait, DbErr};

use super::digest;
use crate::db::agents::{self as store, MachineRow};

/// The machine the request's agent token reaches, with its status as read when
/// the token was checked.
pub struct Agent(pub MachineRow);

/// The machine `token` reaches, in one query (the check-in's only one when
/// nothing changes); `None` for a token no agent holds.
pub async fn verify(db: &impl ConnectionTrait, token: &str) -> Result<Option<Agent>, DbErr> {
    Ok(store::machine_of_token(db, &digest(token))
        .await?
        .map(Agent))
}
