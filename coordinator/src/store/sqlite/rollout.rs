//! The fenced rollout writes on SQLite (migration 0006): the lease with an
//! epoch per grant, and transitions written in one immediate transaction
//! with the check that the writer still holds the lease.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Transaction, TransactionBehavior, params};
use stacks::ids::TenantId;

use super::{SqliteStore, now, parse_time};
use crate::store::audit;
use crate::store::fencing::{FencedRollouts, LeaseFence, LeaseLost};
use crate::store::{LeaseHeld, NewRolloutEvent, RolloutEvent, StoreError};

/// The lease row: holder, rollout, expiry, epoch.
type LeaseRow = (String, Option<i64>, String, i64);

fn lease(tx: &Transaction<'_>) -> rusqlite::Result<Option<LeaseRow>> {
    tx.query_row(
        "SELECT holder, rollout, expires_at, epoch FROM rollout_lease WHERE id = 1",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )
    .optional()
}

fn expiry(ttl: Duration) -> String {
    let ttl = chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX);
    let at = now()
        .checked_add_signed(ttl)
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    audit::timestamp(&at)
}

/// `Ok(())` if the lease has `fence`'s holder and epoch.
fn check(tx: &Transaction<'_>, fence: &LeaseFence) -> rusqlite::Result<Result<(), LeaseLost>> {
    Ok(match lease(tx)? {
        Some((holder, _, _, epoch)) if holder == fence.holder && epoch == fence.epoch => Ok(()),
        other => Err(LeaseLost {
            fence: fence.clone(),
            now: other.map(|(holder, _, _, epoch)| LeaseFence { holder, epoch }),
        }),
    })
}

impl SqliteStore {
    /// Runs `write` in an immediate transaction if `fence` holds the lease.
    fn fenced<T>(
        &self,
        fence: &LeaseFence,
        write: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<Result<T, LeaseLost>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if let Err(lost) = check(&tx, fence)? {
            return Ok(Err(lost));
        }
        let value = write(&tx)?;
        tx.commit()?;
        Ok(Ok(value))
    }
}

#[async_trait]
impl FencedRollouts for SqliteStore {
    async fn take_rollout_lease(
        &self,
        holder: &str,
        rollout: i64,
        ttl: Duration,
    ) -> Result<Result<LeaseFence, LeaseHeld>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let current = lease(&tx)?;
        let at = now();
        let mut kept = None;
        if let Some((other, other_rollout, expires, epoch)) = current {
            let expires_at = parse_time(&expires)?;
            if other == holder {
                kept = Some(epoch);
            } else if expires_at > at {
                return Ok(Err(LeaseHeld {
                    holder: other,
                    rollout: other_rollout,
                    expires_at,
                }));
            }
        }
        let epoch = match kept {
            Some(epoch) => epoch,
            None => {
                tx.execute(
                    "INSERT INTO rollout_lease_grants (holder, rollout, granted_at) VALUES (?1, ?2, ?3)",
                    params![holder, rollout, audit::timestamp(&at)],
                )?;
                tx.last_insert_rowid()
            }
        };
        tx.execute(
            "INSERT INTO rollout_lease (id, holder, rollout, expires_at, epoch) VALUES (1, ?1, ?2, ?3, ?4)
             ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, rollout = excluded.rollout,
                 expires_at = excluded.expires_at, epoch = excluded.epoch",
            params![holder, rollout, expiry(ttl), epoch],
        )?;
        tx.commit()?;
        Ok(Ok(LeaseFence {
            holder: holder.to_owned(),
            epoch,
        }))
    }

    async fn renew_rollout_lease(
        &self,
        fence: &LeaseFence,
        rollout: i64,
        ttl: Duration,
    ) -> Result<Result<(), LeaseLost>, StoreError> {
        self.fenced(fence, |tx| {
            tx.execute(
                "UPDATE rollout_lease SET rollout = ?1, expires_at = ?2 WHERE id = 1",
                params![rollout, expiry(ttl)],
            )?;
            Ok(())
        })
    }

    async fn append_rollout_event_fenced(
        &self,
        fence: &LeaseFence,
        rollout: i64,
        event: NewRolloutEvent,
    ) -> Result<Result<RolloutEvent, LeaseLost>, StoreError> {
        self.fenced(fence, |tx| {
            let at = now();
            tx.execute(
                "INSERT INTO rollout_events (rollout, at, kind, wave, tenant, details) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    rollout,
                    audit::timestamp(&at),
                    event.kind,
                    event.wave,
                    event.tenant.as_ref().map(TenantId::as_str),
                    event.details.to_string()
                ],
            )?;
            Ok(RolloutEvent {
                id: tx.last_insert_rowid(),
                at,
                event,
            })
        })
    }

    async fn set_rollout_state_fenced(
        &self,
        fence: &LeaseFence,
        rollout: i64,
        state: &str,
        reason: Option<&str>,
    ) -> Result<Result<(), LeaseLost>, StoreError> {
        self.fenced(fence, |tx| {
            let changed = tx.execute(
                "UPDATE rollouts SET state = ?2, reason = ?3, updated_at = ?4 WHERE id = ?1",
                params![rollout, state, reason, audit::timestamp(&now())],
            )?;
            if changed == 0 {
                return Err(StoreError::Corrupt(format!("no rollout {rollout}")));
            }
            Ok(())
        })
    }

    async fn release_rollout_lease_fenced(&self, fence: &LeaseFence) -> Result<(), StoreError> {
        self.conn().execute(
            "DELETE FROM rollout_lease WHERE id = 1 AND holder = ?1 AND epoch = ?2",
            params![fence.holder, fence.epoch],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn event(kind: &str) -> NewRolloutEvent {
        NewRolloutEvent {
            kind: kind.into(),
            wave: Some("canary".into()),
            tenant: None,
            details: serde_json::json!({}),
        }
    }

    const TTL: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn a_holder_keeps_its_epoch_and_a_takeover_gets_a_new_one() {
        let store = SqliteStore::in_memory().unwrap();
        let a = store
            .take_rollout_lease("a", 0, TTL)
            .await
            .unwrap()
            .unwrap();
        let again = store
            .take_rollout_lease("a", 1, TTL)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(a, again);
        let held = store.take_rollout_lease("b", 1, TTL).await.unwrap();
        assert_eq!(held.unwrap_err().holder, "a");
        // Expired: b takes it over with a new epoch.
        store
            .renew_rollout_lease(&a, 1, Duration::ZERO)
            .await
            .unwrap()
            .unwrap();
        let b = store
            .take_rollout_lease("b", 1, TTL)
            .await
            .unwrap()
            .unwrap();
        assert!(b.epoch > a.epoch, "{a:?} {b:?}");
        // Released and taken again by a: still a new epoch.
        store.release_rollout_lease_fenced(&b).await.unwrap();
        let a2 = store
            .take_rollout_lease("a", 1, TTL)
            .await
            .unwrap()
            .unwrap();
        assert!(a2.epoch > b.epoch, "{b:?} {a2:?}");
    }

    #[tokio::test]
    async fn a_runner_whose_lease_was_taken_over_cannot_write() {
        let store = SqliteStore::in_memory().unwrap();
        let r = store.create_rollout("1.0.0", "alice").await.unwrap();
        let a = store
            .take_rollout_lease("a", r.id, TTL)
            .await
            .unwrap()
            .unwrap();
        store
            .append_rollout_event_fenced(&a, r.id, event("wave_started"))
            .await
            .unwrap()
            .unwrap();
        // a's lease lapses, unnoticed; written while nobody took it over is
        // still fine.
        store
            .renew_rollout_lease(&a, r.id, Duration::ZERO)
            .await
            .unwrap()
            .unwrap();
        store
            .append_rollout_event_fenced(&a, r.id, event("tenant_started"))
            .await
            .unwrap()
            .unwrap();
        let b = store
            .take_rollout_lease("b", r.id, TTL)
            .await
            .unwrap()
            .unwrap();

        let lost = store
            .append_rollout_event_fenced(&a, r.id, event("tenant_succeeded"))
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(lost.now.as_ref(), Some(&b));
        assert!(
            lost.to_string()
                .contains("lost the rollout lease (epoch 1): b took it over (epoch 2)"),
            "{lost}"
        );
        assert!(
            store
                .set_rollout_state_fenced(&a, r.id, "halted", Some("x"))
                .await
                .unwrap()
                .is_err()
        );
        assert!(
            store
                .renew_rollout_lease(&a, r.id, TTL)
                .await
                .unwrap()
                .is_err()
        );
        // a cannot release b's lease either.
        store.release_rollout_lease_fenced(&a).await.unwrap();
        let kinds: Vec<String> = store
            .rollout_events(r.id)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.event.kind)
            .collect();
        assert_eq!(kinds, ["wave_started", "tenant_started"]);
        assert_eq!(store.rollout(r.id).await.unwrap().unwrap().state, "running");

        // b writes.
        store
            .set_rollout_state_fenced(&b, r.id, "succeeded", None)
            .await
            .unwrap()
            .unwrap();
        store.release_rollout_lease_fenced(&b).await.unwrap();
        let lost = store
            .append_rollout_event_fenced(&b, r.id, event("completed"))
            .await
            .unwrap()
            .unwrap_err();
        assert!(
            lost.to_string().ends_with("it expired and was released"),
            "{lost}"
        );
    }

    #[tokio::test]
    async fn a_lease_taken_through_the_unfenced_call_is_respected() {
        let store = SqliteStore::in_memory().unwrap();
        store
            .acquire_rollout_lease("old", 0, TTL)
            .await
            .unwrap()
            .unwrap();
        let held = store.take_rollout_lease("new", 0, TTL).await.unwrap();
        assert_eq!(held.unwrap_err().holder, "old");
        store.release_rollout_lease("old").await.unwrap();
        assert!(
            store
                .take_rollout_lease("new", 0, TTL)
                .await
                .unwrap()
                .is_ok()
        );
    }
}
