//! Agents: each enrolled machine's agent holds a random token (kept as its
//! [`digest`](super::digest)) that reaches its own machine only.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sea_orm::{DatabaseConnection, DbErr};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use super::digest;
use crate::db::agents::{self as store, MachineRow};

/// The machine the request's agent token reaches, with its status as read when
/// the token was checked.
pub struct Agent(pub MachineRow);

/// Most tokens one query looks up.
const AT_ONCE: usize = 200;

type Reply = oneshot::Sender<Result<Option<MachineRow>, DbErr>>;

/// The token look-ups of agent requests arriving together, made in one query
/// (a check-in is otherwise one round trip to the database each): a request
/// whose look-up finds every query slot busy leaves its token with the next
/// query, which looks up every token waiting. Nothing is cached: each answer
/// is read after the request arrived, so a replaced token stops working at once.
pub struct AgentTokens {
    waiting: Mutex<Vec<(String, Reply)>>,
    /// The look-up queries in flight at once.
    queries: Arc<Semaphore>,
}

impl AgentTokens {
    pub fn new(queries_at_once: usize) -> Self {
        Self {
            waiting: Mutex::default(),
            queries: Arc::new(Semaphore::new(queries_at_once.max(1))),
        }
    }

    /// The machine `token` reaches (with its status as read after the request
    /// arrived); `None` for a token no agent holds.
    pub async fn verify(
        &self,
        db: &DatabaseConnection,
        token: &str,
    ) -> Result<Option<Agent>, DbErr> {
        let (reply, answer) = oneshot::channel();
        self.waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((digest(token), reply));
        // Requests arriving in the same turn of the scheduler join this look-up.
        tokio::task::yield_now().await;
        let slot = self
            .queries
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| DbErr::Custom(e.to_string()))?;
        let batch = std::mem::take(&mut *self.waiting.lock().unwrap_or_else(|e| e.into_inner()));
        // Empty when an earlier query took this token along. The query runs on
        // its own: a request dropped meanwhile (its client gone) fails no other.
        if !batch.is_empty() {
            tokio::spawn(look_up(db.clone(), batch, slot));
        }
        match answer.await {
            Ok(found) => Ok(found?.map(Agent)),
            Err(_) => Err(DbErr::Custom(
                "the look-up of this agent token was dropped".into(),
            )),
        }
    }
}

async fn look_up(db: DatabaseConnection, batch: Vec<(String, Reply)>, _slot: OwnedSemaphorePermit) {
    for chunk in chunks(batch) {
        let hashes: Vec<&str> = chunk.iter().map(|(h, _)| h.as_str()).collect();
        match store::machines_of_tokens(&db, &hashes).await {
            Ok(found) => {
                // The same token may wait more than once (an agent's requests at once).
                let found: HashMap<String, MachineRow> = found.into_iter().collect();
                for (hash, reply) in chunk {
                    let _ = reply.send(Ok(found.get(&hash).cloned()));
                }
            }
            Err(error) => {
                for (_, reply) in chunk {
                    let _ = reply.send(Err(same_error(&error)));
                }
            }
        }
    }
}

fn chunks<T>(mut items: Vec<T>) -> Vec<Vec<T>> {
    let mut chunks = Vec::new();
    while items.len() > AT_ONCE {
        let rest = items.split_off(AT_ONCE);
        chunks.push(items);
        items = rest;
    }
    if !items.is_empty() {
        chunks.push(items);
    }
    chunks
}

/// The error of a shared query for each request that waited on it: an exhausted
/// pool stays one (the caller answers it as such), any other is told as text.
fn same_error(error: &DbErr) -> DbErr {
    match error {
        DbErr::ConnectionAcquire(e) => DbErr::ConnectionAcquire(*e),
        other => DbErr::Custom(other.to_string()),
    }
}
