use sea_orm_migration::sea_orm::{ConnectionTrait, DatabaseBackend};
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// A migration's items counted by kind and state as they change, by triggers on
/// `migration_items`, so that reading a migration does not count its items: at
/// `large` on PostgreSQL counting 118,828 items took 150 ms to 1.4 s per read
/// while the migration ran. Kept by the database itself, the counts cannot drift
/// from the items, whichever statement changes them.
///
/// SQLite (one writer at a time) keeps one row per migration, kind and state
/// (`part` 0), updated by row triggers. PostgreSQL writers would queue on those
/// rows, so each statement that changes items inserts its own rows of changes
/// (`part` from a sequence; no row is ever updated by two writers) and readers
/// fold them into `part` 0 now and then. The count is the sum of the parts.
///
/// Also: `machine_assignments` by migration, for the machine counts, which read
/// all of the table's rows to find the migration's.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        manager
            .create_table(
                Table::create()
                    .table(Counts::Table)
                    .col(uuid(Counts::MigrationId))
                    .col(string(Counts::Kind))
                    .col(string(Counts::State))
                    .col(big_integer(Counts::Part))
                    .col(big_integer(Counts::N))
                    .primary_key(
                        Index::create()
                            .col(Counts::MigrationId)
                            .col(Counts::Kind)
                            .col(Counts::State)
                            .col(Counts::Part),
                    )
                    .to_owned(),
            )
            .await?;
        db.execute_unprepared(
            "CREATE INDEX IF NOT EXISTS machine_assignments_migration ON machine_assignments (migration_id)",
        )
        .await?;
        let statements: &[&str] = if manager.get_database_backend() == DatabaseBackend::Postgres {
            &[
                "CREATE SEQUENCE migration_item_counts_part",
                "CREATE FUNCTION migration_items_count() RETURNS trigger LANGUAGE plpgsql AS $$ \
                 BEGIN \
                   IF TG_OP = 'INSERT' THEN \
                     INSERT INTO migration_item_counts (migration_id, kind, state, part, n) \
                     SELECT migration_id, kind, state, nextval('migration_item_counts_part'), COUNT(*) \
                     FROM new_items GROUP BY migration_id, kind, state; \
                   ELSIF TG_OP = 'UPDATE' THEN \
                     INSERT INTO migration_item_counts (migration_id, kind, state, part, n) \
                     SELECT migration_id, kind, state, nextval('migration_item_counts_part'), SUM(n) \
                     FROM (SELECT migration_id, kind, state, -1 AS n FROM old_items \
                           UNION ALL SELECT migration_id, kind, state, 1 FROM new_items) d \
                     GROUP BY migration_id, kind, state HAVING SUM(n) <> 0; \
                   ELSE \
                     INSERT INTO migration_item_counts (migration_id, kind, state, part, n) \
                     SELECT migration_id, kind, state, nextval('migration_item_counts_part'), -COUNT(*) \
                     FROM old_items GROUP BY migration_id, kind, state; \
                   END IF; \
                   RETURN NULL; \
                 END $$",
                "CREATE TRIGGER migration_items_counted_insert AFTER INSERT ON migration_items \
                 REFERENCING NEW TABLE AS new_items FOR EACH STATEMENT EXECUTE FUNCTION migration_items_count()",
                "CREATE TRIGGER migration_items_counted_update AFTER UPDATE ON migration_items \
                 REFERENCING OLD TABLE AS old_items NEW TABLE AS new_items \
                 FOR EACH STATEMENT EXECUTE FUNCTION migration_items_count()",
                "CREATE TRIGGER migration_items_counted_delete AFTER DELETE ON migration_items \
                 REFERENCING OLD TABLE AS old_items FOR EACH STATEMENT EXECUTE FUNCTION migration_items_count()",
            ]
        } else {
            &[
                "CREATE TRIGGER migration_items_counted_insert AFTER INSERT ON migration_items BEGIN \
                   INSERT INTO migration_item_counts (migration_id, kind, state, part, n) \
                   VALUES (NEW.migration_id, NEW.kind, NEW.state, 0, 1) \
                   ON CONFLICT (migration_id, kind, state, part) DO UPDATE SET n = n + 1; \
                 END",
                "CREATE TRIGGER migration_items_counted_update AFTER UPDATE OF migration_id, kind, state \
                 ON migration_items \
                 WHEN OLD.migration_id IS NOT NEW.migration_id OR OLD.kind IS NOT NEW.kind OR OLD.state IS NOT NEW.state BEGIN \
                   INSERT INTO migration_item_counts (migration_id, kind, state, part, n) \
                   VALUES (OLD.migration_id, OLD.kind, OLD.state, 0, -1) \
                   ON CONFLICT (migration_id, kind, state, part) DO UPDATE SET n = n - 1; \
                   INSERT INTO migration_item_counts (migration_id, kind, state, part, n) \
                   VALUES (NEW.migration_id, NEW.kind, NEW.state, 0, 1) \
                   ON CONFLICT (migration_id, kind, state, part) DO UPDATE SET n = n + 1; \
                 END",
                "CREATE TRIGGER migration_items_counted_delete AFTER DELETE ON migration_items BEGIN \
                   INSERT INTO migration_item_counts (migration_id, kind, state, part, n) \
                   VALUES (OLD.migration_id, OLD.kind, OLD.state, 0, -1) \
                   ON CONFLICT (migration_id, kind, state, part) DO UPDATE SET n = n - 1; \
                 END",
            ]
        };
        for statement in statements {
            db.execute_unprepared(statement).await?;
        }
        // The items already there (the triggers count from now on).
        db.execute_unprepared(
            "INSERT INTO migration_item_counts (migration_id, kind, state, part, n) \
             SELECT migration_id, kind, state, 0, COUNT(*) FROM migration_items GROUP BY migration_id, kind, state",
        )
        .await
        .map(drop)
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for trigger in ["insert", "update", "delete"] {
            let on = if manager.get_database_backend() == DatabaseBackend::Postgres {
                " ON migration_items"
            } else {
                ""
            };
            db.execute_unprepared(&format!(
                "DROP TRIGGER IF EXISTS migration_items_counted_{trigger}{on}"
            ))
            .await?;
        }
        if manager.get_database_backend() == DatabaseBackend::Postgres {
            db.execute_unprepared("DROP FUNCTION IF EXISTS migration_items_count()")
                .await?;
            db.execute_unprepared("DROP SEQUENCE IF EXISTS migration_item_counts_part")
                .await?;
        }
        db.execute_unprepared("DROP INDEX IF EXISTS machine_assignments_migration")
            .await?;
        db.execute_unprepared("DROP TABLE IF EXISTS migration_item_counts")
            .await
            .map(drop)
    }
}

#[derive(DeriveIden)]
enum Counts {
    #[sea_orm(iden = "migration_item_counts")]
    Table,
    MigrationId,
    Kind,
    State,
    Part,
    N,
}
