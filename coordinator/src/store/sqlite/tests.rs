//! The SQLite store on real files and in memory: migrations, every table's
//! round trip, the audit chain and its tamper detection.

use super::*;
use serde_json::json;

fn tenant() -> TenantId {
    "acme".parse().unwrap()
}

#[tokio::test]
async fn plans_get_increasing_generations_with_parents() {
    let store = SqliteStore::in_memory().unwrap();
    let new = || NewPlan {
        actor: "op".into(),
        release: "2026.11.0".into(),
        manifest_digest: "d".into(),
        summary: json!({}),
    };
    let first = store.record_plan(new()).await.unwrap();
    let second = store.record_plan(new()).await.unwrap();
    assert_eq!((first.generation, first.parent), (1, None));
    assert_eq!((second.generation, second.parent), (2, Some(1)));
    assert_eq!(store.latest_plan().await.unwrap().unwrap(), second);
}

#[tokio::test]
async fn deployments_outputs_and_states_round_trip() {
    let store = SqliteStore::in_memory().unwrap();
    let plan = store
        .record_plan(NewPlan {
            actor: "op".into(),
            release: "r".into(),
            manifest_digest: "d".into(),
            summary: json!([]),
        })
        .await
        .unwrap();
    let id = store
        .start_deployment(NewDeployment {
            generation: plan.generation,
            tenant: tenant(),
            stack: StackKind::Storage,
            action: "create".into(),
            token: "t".into(),
        })
        .await
        .unwrap();
    store
        .finish_deployment(
            id,
            DeploymentResult {
                outcome: "failed".into(),
                status: Some("ROLLBACK_COMPLETE".into()),
                reason: Some("boom".into()),
            },
        )
        .await
        .unwrap();
    let d = &store.deployments(Some(&tenant()), 10).await.unwrap()[0];
    assert_eq!(
        (d.outcome.as_deref(), d.reason.as_deref()),
        (Some("failed"), Some("boom"))
    );
    assert!(d.finished_at.is_some());
    assert_eq!(store.tenant_generation(&tenant()).await.unwrap(), Some(1));
    assert!(
        store
            .finish_deployment(
                999,
                DeploymentResult {
                    outcome: "x".into(),
                    status: None,
                    reason: None
                }
            )
            .await
            .is_err()
    );

    let outputs = StoredOutputs {
        tenant: tenant(),
        stack: StackKind::Storage,
        release: "r".into(),
        template_hash: "h".into(),
        outputs: [("BucketName".to_owned(), "b".to_owned())].into(),
        recorded_at: now(),
    };
    store.put_outputs(outputs.clone()).await.unwrap();
    store.put_outputs(outputs.clone()).await.unwrap();
    assert_eq!(
        store.outputs(&tenant(), StackKind::Storage).await.unwrap(),
        Some(outputs)
    );
    assert_eq!(
        store.outputs(&tenant(), StackKind::Worker).await.unwrap(),
        None
    );

    let state = StackState {
        tenant: tenant(),
        stack: StackKind::Worker,
        status: Some("CREATE_COMPLETE".into()),
        release: Some("r".into()),
        template_hash: Some("h".into()),
        last_outcome: Some("succeeded".into()),
        last_reason: None,
        updated_at: now(),
    };
    store.put_stack_state(state.clone()).await.unwrap();
    let other = StackState {
        tenant: "other".parse().unwrap(),
        stack: StackKind::Storage,
        ..state.clone()
    };
    store.put_stack_state(other.clone()).await.unwrap();
    assert_eq!(
        store.stack_states().await.unwrap(),
        vec![state.clone(), other.clone()]
    );
    assert_eq!(
        store
            .stack_state(&tenant(), StackKind::Worker)
            .await
            .unwrap(),
        Some(state)
    );
    assert_eq!(
        store
            .stack_state(&tenant(), StackKind::Storage)
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn audit_chain_verifies_and_detects_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let store = SqliteStore::open(&path).unwrap();
    for i in 0..4 {
        store
            .append_audit(NewAuditEntry {
                actor: "arn:aws:sts::111111111111:assumed-role/r/alice".into(),
                tenant: Some(tenant()),
                action: "deploy.stack".into(),
                details: json!({"n": i, "digest": audit::digest(b"x")}),
            })
            .await
            .unwrap();
    }
    let entries = store.audit_entries(0, 100).await.unwrap();
    assert_eq!(audit::verify(&entries), Ok(4));
    assert_eq!(store.audit_entries(2, 100).await.unwrap().len(), 2);

    // Edit a row behind the store's back.
    store
        .conn()
        .execute("UPDATE audit SET actor = 'mallory' WHERE seq = 3", [])
        .unwrap();
    let broken = audit::verify(&store.audit_entries(0, 100).await.unwrap()).unwrap_err();
    assert_eq!(broken.seq, 3);
    assert!(broken.reason.contains("edited"));

    // Delete a row.
    let store2 = SqliteStore::open(&path).unwrap();
    store2
        .conn()
        .execute("DELETE FROM audit WHERE seq = 2", [])
        .unwrap();
    let broken = audit::verify(&store2.audit_entries(0, 100).await.unwrap()).unwrap_err();
    assert_eq!(broken.seq, 3);
}

#[test]
fn a_missing_directory_is_refused_and_nothing_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no/such/dir/state.db");
    assert!(matches!(
        SqliteStore::open(&path),
        Err(StoreError::MissingDirectory(_))
    ));
    assert!(!dir.path().join("no").exists());
}

#[test]
fn reopening_does_not_reapply_migrations() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    drop(SqliteStore::open(&path).unwrap());
    let store = SqliteStore::open(&path).unwrap();
    let n: i64 = store
        .conn()
        .query_row("SELECT COUNT(*) FROM schema_migrations", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, MIGRATIONS.len() as i64);
}

#[tokio::test]
async fn rollouts_events_and_the_lease() {
    let store = SqliteStore::in_memory().unwrap();
    let r = store.create_rollout("1.0.0", "alice").await.unwrap();
    assert_eq!(r.state, "running");
    store
        .append_rollout_event(
            r.id,
            NewRolloutEvent {
                kind: "tenant_failed".into(),
                wave: Some("canary".into()),
                tenant: Some(tenant()),
                details: json!({"reason": "boom"}),
            },
        )
        .await
        .unwrap();
    let events = store.rollout_events(r.id).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event.tenant, Some(tenant()));
    assert_eq!(events[0].event.details["reason"], "boom");
    store
        .set_rollout_state(r.id, "halted", Some("why"))
        .await
        .unwrap();
    let latest = store.latest_rollout().await.unwrap().unwrap();
    assert_eq!(
        (latest.state.as_str(), latest.reason.as_deref()),
        ("halted", Some("why"))
    );

    let ttl = std::time::Duration::from_secs(60);
    assert!(
        store
            .acquire_rollout_lease("a", r.id, ttl)
            .await
            .unwrap()
            .is_ok()
    );
    assert!(
        store
            .acquire_rollout_lease("a", r.id, ttl)
            .await
            .unwrap()
            .is_ok()
    );
    let held = store.acquire_rollout_lease("b", r.id, ttl).await.unwrap();
    assert_eq!(held.unwrap_err().holder, "a");
    store.release_rollout_lease("a").await.unwrap();
    assert!(
        store
            .acquire_rollout_lease("b", r.id, ttl)
            .await
            .unwrap()
            .is_ok()
    );
    // An expired lease can be taken over.
    let zero = std::time::Duration::ZERO;
    assert!(
        store
            .acquire_rollout_lease("b", r.id, zero)
            .await
            .unwrap()
            .is_ok()
    );
    assert!(
        store
            .acquire_rollout_lease("c", r.id, ttl)
            .await
            .unwrap()
            .is_ok()
    );
}
