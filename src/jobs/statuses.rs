//! Whether a migration is still running, as the jobs that must stop on its pause
//! see it: one task per process and migration reads its status every
//! [`EVERY`], however many jobs watch it.
//!
//! Each transfer batch and each registration job watches its migration while its
//! calls wait for the workspace's pace, so that a pause stops them within about a
//! second. Each read by itself, those jobs (32 registration jobs and the transfers
//! of each worker) read the migration's row about 500 times a second at `large`
//! on PostgreSQL, every read a round trip, while the migration did about 150
//! items a second.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use sea_orm::DatabaseConnection;
use tokio::sync::watch;
use uuid::Uuid;

/// How often a watched migration's status is read.
pub const EVERY: Duration = Duration::from_millis(200);

/// The migrations this process's jobs watch, each read by one task.
#[derive(Default)]
pub struct MigrationStatuses {
    watched: Mutex<HashMap<Uuid, Weak<Watch>>>,
}

/// A watched migration's status; its reading task ends with the last watcher.
pub struct Watch {
    /// `None` until first read; then `Some(None)` when the migration is gone.
    status: watch::Receiver<Option<Option<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl MigrationStatuses {
    /// Watches `migration_id`: with the task already reading it, or a new one
    /// that reads it at once and then every [`EVERY`].
    pub fn watch(&self, db: &DatabaseConnection, migration_id: Uuid) -> Arc<Watch> {
        let mut watched = self.watched.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(watch) = watched.get(&migration_id).and_then(Weak::upgrade) {
            return watch;
        }
        watched.retain(|_, w| w.strong_count() > 0);
        let (sender, status) = watch::channel(None);
        let task = tokio::spawn(read_every(db.clone(), migration_id, sender));
        let watch = Arc::new(Watch { status, task });
        watched.insert(migration_id, Arc::downgrade(&watch));
        watch
    }
}

impl Watch {
    /// The status as last read, at most [`EVERY`] ago (the first read waited
    /// for); `None` when the migration is gone.
    pub async fn status(&self) -> Option<String> {
        let mut status = self.status.clone();
        match status.wait_for(Option::is_some).await {
            Ok(read) => read.clone().flatten(),
            Err(_) => None,
        }
    }

    /// Returns once the status read satisfies `done` (`None`: the migration is gone).
    pub async fn until(&self, done: impl Fn(Option<&str>) -> bool) {
        let mut status = self.status.clone();
        let _ = status
            .wait_for(|read| read.as_ref().is_some_and(|s| done(s.as_deref())))
            .await;
    }
}

/// Reads the status now and every [`EVERY`] until aborted; a failed read keeps
/// the last one (and is logged).
async fn read_every(
    db: DatabaseConnection,
    migration_id: Uuid,
    sender: watch::Sender<Option<Option<String>>>,
) {
    loop {
        match crate::db::migrations::get(&db, migration_id).await {
            Ok(migration) => {
                sender.send_replace(Some(migration.map(|m| m.status)));
            }
            Err(error) => tracing::warn!(%error, "could not read the migration's status"),
        }
        tokio::time::sleep(EVERY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_task_reads_a_migration_for_all_its_watchers_and_ends_with_the_last() {
        let db = sea_orm::Database::connect("sqlite::memory:").await.unwrap();
        let statuses = MigrationStatuses::default();
        let id = Uuid::new_v4();
        let first = statuses.watch(&db, id);
        let second = statuses.watch(&db, id);
        assert!(Arc::ptr_eq(&first, &second));
        let other = statuses.watch(&db, Uuid::new_v4());
        assert!(!Arc::ptr_eq(&first, &other));
        drop((first, second));
        // Its last watcher gone, nothing holds the migration's watch any more.
        assert!(statuses.watched.lock().unwrap()[&id].upgrade().is_none());
        // The next watcher of that migration starts a new one, in place of the old.
        let _again = statuses.watch(&db, id);
        assert_eq!(statuses.watched.lock().unwrap().len(), 2);
        assert!(statuses.watched.lock().unwrap()[&id].upgrade().is_some());
    }
}
