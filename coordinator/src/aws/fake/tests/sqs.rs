//! The fake's SQS.

use std::future::Future;

use protocol::{Ping, decode_pong, encode_ping};
use stacks::aws_names::QueueUrl;
use tokio::time::Instant;

use super::*;
use crate::aws::{ReceivedMessage, Sqs};

const OTHER_ACCOUNT: &str = "333333333333";
const WAIT: Duration = Duration::from_secs(20);

/// A tenant with SQS through its deploy role.
fn sqs_tenant(cloud: &FakeCloud, id: &str) -> (Tenant, Arc<dyn Sqs>) {
    let t = tenant(cloud, id);
    let sqs = cloud.tenant_sqs(t.credentials.clone(), REGION);
    (t, sqs)
}

fn bodies(messages: &[ReceivedMessage]) -> Vec<&str> {
    messages.iter().map(|m| m.body.as_str()).collect()
}

fn handles(messages: &[ReceivedMessage]) -> Vec<String> {
    messages.iter().map(|m| m.receipt_handle.clone()).collect()
}

fn sqs_calls(cloud: &FakeCloud) -> Vec<Call> {
    cloud
        .calls()
        .into_iter()
        .filter(|c| c.service == "sqs")
        .collect()
}

/// Polls `future` once: whether it is still pending.
async fn still_pending<F: Future>(future: F) -> bool {
    tokio::time::timeout(Duration::from_secs(3600), future)
        .await
        .is_err()
}

/// A template with one named queue per name.
fn queues_template(names: &[&str]) -> String {
    let resources: serde_json::Map<String, serde_json::Value> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            (
                format!("Queue{i}"),
                json!({"Type": "AWS::SQS::Queue", "Properties": {"QueueName": name}}),
            )
        })
        .collect();
    json!({ "Resources": resources }).to_string()
}

#[tokio::test(start_paused = true)]
async fn received_messages_are_hidden_for_the_visibility_timeout() {
    let cloud = FakeCloud::new();
    let (t, sqs) = sqs_tenant(&cloud, TENANT_ACCOUNT);
    let queue = cloud.create_queue(&t.account, REGION, "q");
    assert_eq!(
        queue.as_str(),
        "https://sqs.eu-west-1.amazonaws.com/222222222222/q"
    );
    for body in ["one", "two", "three"] {
        sqs.send_message(&queue, body).await.unwrap();
    }
    assert_eq!(sqs.queue_depth(&queue).await.unwrap(), 3);

    let first = sqs
        .receive_messages(&queue, 2, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(bodies(&first), ["one", "two"]);
    assert_ne!(first[0].message_id, first[1].message_id);
    // In flight: not counted, not received again.
    assert_eq!(sqs.queue_depth(&queue).await.unwrap(), 1);
    let second = sqs
        .receive_messages(&queue, 10, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(bodies(&second), ["three"]);
    assert!(
        sqs.receive_messages(&queue, 10, Duration::ZERO)
            .await
            .unwrap()
            .is_empty()
    );
    // Still in the queue, for assertions.
    assert_eq!(
        cloud.queue_messages(&t.account, REGION, "q"),
        ["one", "two", "three"]
    );

    tokio::time::advance(DEFAULT_VISIBILITY_TIMEOUT).await;
    assert_eq!(sqs.queue_depth(&queue).await.unwrap(), 3);
    let again = sqs
        .receive_messages(&queue, 10, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(bodies(&again), ["one", "two", "three"]);
    assert_eq!(again[0].message_id, first[0].message_id);
    assert_ne!(again[0].receipt_handle, first[0].receipt_handle);

    // A shorter visibility timeout.
    cloud.set_visibility_timeout(Duration::from_secs(5));
    tokio::time::advance(DEFAULT_VISIBILITY_TIMEOUT).await;
    sqs.receive_messages(&queue, 10, Duration::ZERO)
        .await
        .unwrap();
    tokio::time::advance(Duration::from_secs(5)).await;
    assert_eq!(sqs.queue_depth(&queue).await.unwrap(), 3);
}

#[tokio::test(start_paused = true)]
async fn long_polls_wait_until_a_message_arrives_or_the_wait_ends() {
    let cloud = FakeCloud::new();
    let (t, sqs) = sqs_tenant(&cloud, TENANT_ACCOUNT);
    let queue = cloud.create_queue(&t.account, REGION, "q");

    // Empty queue: the whole wait.
    let start = Instant::now();
    assert!(
        sqs.receive_messages(&queue, 1, WAIT)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(start.elapsed(), WAIT);

    // A message sent after 3 s ends the wait at 3 s.
    let start = Instant::now();
    let sender = {
        let (sqs, queue) = (sqs.clone(), queue.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            sqs.send_message(&queue, "late").await.unwrap();
        })
    };
    let got = sqs.receive_messages(&queue, 10, WAIT).await.unwrap();
    assert_eq!(bodies(&got), ["late"]);
    assert_eq!(start.elapsed(), Duration::from_secs(3));
    sender.await.unwrap();

    // A message pushed by the test wakes a poll too.
    let start = Instant::now();
    let poll = {
        let (sqs, queue) = (sqs.clone(), queue.clone());
        tokio::spawn(async move { sqs.receive_messages(&queue, 10, WAIT).await })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    cloud.push_message(&t.account, REGION, "q", "pushed");
    let got = poll.await.unwrap().unwrap();
    assert_eq!(bodies(&got), ["pushed"]);
    assert_eq!(start.elapsed(), Duration::from_secs(1));

    // An in-flight message becoming visible again ends a wait.
    cloud.set_visibility_timeout(Duration::from_secs(10));
    let queue = cloud.create_queue(&t.account, REGION, "r");
    sqs.send_message(&queue, "again").await.unwrap();
    let first = sqs.receive_messages(&queue, 1, WAIT).await.unwrap();
    let start = Instant::now();
    let got = sqs.receive_messages(&queue, 10, WAIT).await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(10));
    assert_eq!(bodies(&got), ["again"]);
    assert_eq!(got[0].message_id, first[0].message_id);
}

#[tokio::test(start_paused = true)]
async fn batch_delete_removes_messages_by_receipt_handle() {
    let cloud = FakeCloud::new();
    let (t, sqs) = sqs_tenant(&cloud, TENANT_ACCOUNT);
    let queue = cloud.create_queue(&t.account, REGION, "q");
    for i in 0..12 {
        sqs.send_message(&queue, &format!("m{i}")).await.unwrap();
    }
    let got = sqs
        .receive_messages(&queue, 10, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(got.len(), 10);
    sqs.delete_messages(&queue, &handles(&got)).await.unwrap();
    assert_eq!(
        cloud.queue_messages(&t.account, REGION, "q"),
        ["m10", "m11"]
    );

    // A stale handle (the message was received again since) deletes nothing
    // and is no error; an invalid one fails its entry.
    let first = sqs
        .receive_messages(&queue, 1, Duration::ZERO)
        .await
        .unwrap();
    tokio::time::advance(DEFAULT_VISIBILITY_TIMEOUT).await;
    let second = sqs
        .receive_messages(&queue, 1, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(first[0].message_id, second[0].message_id);
    sqs.delete_messages(&queue, &handles(&first)).await.unwrap();
    assert_eq!(cloud.queue_messages(&t.account, REGION, "q").len(), 2);
    let e = sqs
        .delete_messages(
            &queue,
            &[second[0].receipt_handle.clone(), "garbage".into()],
        )
        .await
        .unwrap_err();
    assert_eq!(e.code.as_deref(), Some("ReceiptHandleIsInvalid"), "{e}");
    assert_eq!((e.service, e.operation), ("sqs", "DeleteMessageBatch"));
    assert!(e.message.starts_with("1 of 2 messages"), "{e}");
    assert!(e.message.contains("entry 1"), "{e}");
    // The valid entry was deleted.
    assert_eq!(cloud.queue_messages(&t.account, REGION, "q"), ["m11"]);

    // Batches are 1 to 10 handles: empty is nothing to do, 11 is refused;
    // neither is sent.
    cloud.clear_calls();
    sqs.delete_messages(&queue, &[]).await.unwrap();
    let e = sqs
        .delete_messages(&queue, &vec!["h".to_owned(); 11])
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Validation, "{e}");
    assert!(cloud.calls().is_empty(), "{:?}", cloud.calls());
}

#[tokio::test(start_paused = true)]
async fn receive_arguments_are_checked_before_any_call() {
    let cloud = FakeCloud::new();
    let (t, sqs) = sqs_tenant(&cloud, TENANT_ACCOUNT);
    let queue = cloud.create_queue(&t.account, REGION, "q");
    for (max, wait) in [
        (0, Duration::ZERO),
        (11, Duration::ZERO),
        (1, Duration::from_secs(21)),
        (1, Duration::from_millis(20_001)),
    ] {
        let e = sqs.receive_messages(&queue, max, wait).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Validation, "{max} {wait:?}: {e}");
        assert_eq!((e.service, e.operation), ("sqs", "ReceiveMessage"));
    }
    assert!(cloud.calls().is_empty());
}

#[tokio::test(start_paused = true)]
async fn queues_of_other_accounts_and_missing_queues_are_not_found() {
    let cloud = FakeCloud::new();
    let (t, sqs) = sqs_tenant(&cloud, TENANT_ACCOUNT);
    let (other, other_sqs) = sqs_tenant(&cloud, OTHER_ACCOUNT);
    let theirs = cloud.create_queue(&other.account, REGION, "q");
    let not_found = |e: AwsError| {
        assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
        assert_eq!(
            e.code.as_deref(),
            Some("AWS.SimpleQueueService.NonExistentQueue")
        );
        assert_eq!(e.service, "sqs");
    };

    // Another account's queue, even one whose name exists in ours.
    cloud.create_queue(&t.account, REGION, "q");
    not_found(sqs.send_message(&theirs, "x").await.unwrap_err());
    not_found(sqs.receive_messages(&theirs, 1, WAIT).await.unwrap_err());
    not_found(
        sqs.delete_messages(&theirs, &["h".into()])
            .await
            .unwrap_err(),
    );
    not_found(sqs.queue_depth(&theirs).await.unwrap_err());
    assert!(cloud.queue_messages(&other.account, REGION, "q").is_empty());
    assert!(cloud.queue_messages(&t.account, REGION, "q").is_empty());
    // The calls were made, in the caller's account.
    let calls = sqs_calls(&cloud);
    assert_eq!(calls.len(), 4);
    assert!(calls.iter().all(|c| c.account.as_ref() == Some(&t.account)));
    assert_eq!(calls[0].queue.as_ref(), Some(&theirs));
    other_sqs.send_message(&theirs, "mine").await.unwrap();

    // A queue that never existed, one in another region, a deleted one.
    let missing = FakeCloud::queue_url(&t.account, REGION, "missing");
    not_found(sqs.queue_depth(&missing).await.unwrap_err());
    let elsewhere = cloud.create_queue(&t.account, Region::UsEast1, "elsewhere");
    not_found(sqs.queue_depth(&elsewhere).await.unwrap_err());
    assert!(cloud.delete_queue(&other.account, REGION, "q"));
    assert!(!cloud.queue_exists(&other.account, REGION, "q"));
    not_found(other_sqs.send_message(&theirs, "x").await.unwrap_err());
    assert!(!cloud.delete_queue(&other.account, REGION, "q"));

    // A long poll on a queue deleted while it waits.
    let ours = FakeCloud::queue_url(&t.account, REGION, "q");
    let poll = {
        let (sqs, ours) = (sqs.clone(), ours.clone());
        tokio::spawn(async move { sqs.receive_messages(&ours, 1, WAIT).await })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    cloud.delete_queue(&t.account, REGION, "q");
    not_found(poll.await.unwrap().unwrap_err());
}

#[tokio::test(start_paused = true)]
async fn hung_sqs_never_answers_until_released() {
    let cloud = FakeCloud::new();
    let (t, sqs) = sqs_tenant(&cloud, TENANT_ACCOUNT);
    let (other, other_sqs) = sqs_tenant(&cloud, OTHER_ACCOUNT);
    let queue = cloud.create_queue(&t.account, REGION, "q");
    let other_queue = cloud.create_queue(&other.account, REGION, "q");
    cloud.hang_sqs(&t.account, true);
    assert!(still_pending(sqs.send_message(&queue, "x")).await);
    assert!(still_pending(sqs.queue_depth(&queue)).await);
    // Recorded, but nothing happened.
    assert_eq!(sqs_calls(&cloud).len(), 2);
    assert!(cloud.queue_messages(&t.account, REGION, "q").is_empty());
    // Other accounts are not affected.
    other_sqs.send_message(&other_queue, "y").await.unwrap();

    cloud.hang_sqs(&t.account, false);
    sqs.send_message(&queue, "x").await.unwrap();
    assert_eq!(sqs.queue_depth(&queue).await.unwrap(), 1);
}

#[tokio::test(start_paused = true)]
async fn sqs_calls_are_recorded_delayed_and_can_fail() {
    let cloud = FakeCloud::new();
    let (t, sqs) = sqs_tenant(&cloud, TENANT_ACCOUNT);
    let queue = cloud.create_queue(&t.account, REGION, "q");
    sqs.queue_depth(&queue).await.unwrap();
    cloud.clear_calls();

    // Latency: the general one, or SQS's own.
    cloud.set_latency(Duration::from_millis(100));
    let start = Instant::now();
    sqs.send_message(&queue, "a").await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_millis(100));
    cloud.set_sqs_latency(Duration::from_millis(250));
    let start = Instant::now();
    sqs.send_message(&queue, "b").await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_millis(250));
    assert_eq!(
        cloud.calls()[0],
        Call {
            service: "sqs",
            operation: "SendMessage",
            account: Some(t.account.clone()),
            region: Some(REGION),
            stack: None,
            role_arn: None,
            queue: Some(queue.clone()),
        }
    );

    // Injected errors hit only the named operation.
    cloud.throttle(&t.account, REGION, "ReceiveMessage", 1);
    let e = sqs
        .receive_messages(&queue, 1, Duration::ZERO)
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Throttled);
    assert_eq!((e.service, e.operation), ("sqs", "ReceiveMessage"));
    sqs.receive_messages(&queue, 1, Duration::ZERO)
        .await
        .unwrap();
    for operation in ["SendMessage", "DeleteMessageBatch", "GetQueueAttributes"] {
        let error =
            AwsError::new(ErrorKind::AccessDenied, "x", "x", "denied").with_code("AccessDenied");
        cloud.inject_error(&t.account, REGION, operation, 1, error);
    }
    let e = sqs.send_message(&queue, "c").await.unwrap_err();
    assert_eq!(
        (e.kind, e.operation),
        (ErrorKind::AccessDenied, "SendMessage")
    );
    let e = sqs
        .delete_messages(&queue, &["h".into()])
        .await
        .unwrap_err();
    assert_eq!(e.operation, "DeleteMessageBatch");
    let e = sqs.queue_depth(&queue).await.unwrap_err();
    assert_eq!(e.operation, "GetQueueAttributes");
    assert_eq!(cloud.queue_messages(&t.account, REGION, "q"), ["a", "b"]);

    // fail_all.
    cloud.fail_all();
    let e = sqs.queue_depth(&queue).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Transient);
    assert_eq!(e.service, "sqs");
    cloud.stop_failing();
    assert_eq!(
        sqs_calls(&cloud)
            .iter()
            .map(|c| c.operation)
            .collect::<Vec<_>>(),
        [
            "SendMessage",
            "SendMessage",
            "ReceiveMessage",
            "ReceiveMessage",
            "SendMessage",
            "DeleteMessageBatch",
            "GetQueueAttributes",
            "GetQueueAttributes",
        ]
    );
}

#[tokio::test]
async fn a_worker_stack_has_its_queues_while_it_exists() {
    let cloud = FakeCloud::new();
    let (t, sqs) = sqs_tenant(&cloud, TENANT_ACCOUNT);
    let worker = rendered(StackKind::Worker, "worker");
    let names = [
        "docproc-worker-jobs",
        "docproc-worker-jobs-dlq",
        "docproc-worker-heartbeat-requests",
        "docproc-worker-heartbeat-replies",
    ];
    assert!(!cloud.queue_exists(&t.account, REGION, names[0]));
    t.cfn
        .create_stack(&create_rendered(&worker, "w"))
        .await
        .unwrap();
    for name in names {
        assert!(cloud.queue_exists(&t.account, REGION, name), "{name}");
    }
    let desc = t
        .cfn
        .describe_stack("docproc-worker")
        .await
        .unwrap()
        .unwrap();
    let outputs =
        Worker::parse_outputs(desc.outputs.iter().map(|(k, v)| (k.as_str(), v.as_str()))).unwrap();
    let requests = &outputs.heartbeat_request_queue_url;
    sqs.send_message(requests, "hello").await.unwrap();
    assert_eq!(sqs.queue_depth(requests).await.unwrap(), 1);
    assert_eq!(
        cloud.queue_messages(&t.account, REGION, names[2]),
        ["hello"]
    );
    // Not in another region.
    let other_region = cloud.tenant_sqs(t.credentials.clone(), Region::UsEast1);
    assert_eq!(
        other_region.queue_depth(requests).await.unwrap_err().kind,
        ErrorKind::NotFound
    );

    t.cfn
        .delete_stack("docproc-worker", None, "d")
        .await
        .unwrap();
    for name in names {
        assert!(!cloud.queue_exists(&t.account, REGION, name), "{name}");
    }
    let e = sqs.send_message(requests, "hello").await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound);

    // A new stack of the same name has new, empty queues.
    t.cfn
        .create_stack(&create_rendered(&worker, "w2"))
        .await
        .unwrap();
    assert_eq!(sqs.queue_depth(requests).await.unwrap(), 0);
}

#[tokio::test(start_paused = true)]
async fn stack_queues_follow_updates_rollbacks_and_deletes() {
    let cloud = FakeCloud::new();
    let (t, _sqs) = sqs_tenant(&cloud, TENANT_ACCOUNT);
    let exists = |name: &str| cloud.queue_exists(&t.account, REGION, name);
    cloud.set_operation_duration(Duration::from_secs(60));
    t.cfn
        .create_stack(&create_request(
            "app",
            &queues_template(&["a", "b"]),
            &[],
            "c",
        ))
        .await
        .unwrap();
    // From the start of the creation.
    assert!(exists("a") && exists("b"));
    tokio::time::advance(Duration::from_secs(60)).await;
    cloud.push_message(&t.account, REGION, "a", "kept");

    // An update: the new queue appears when it starts, the removed one goes
    // when it ends; kept queues keep their messages.
    let update = change_set_request("app", "u1", &queues_template(&["a", "c"]), &[]);
    t.cfn.create_change_set(&update).await.unwrap();
    t.cfn.execute_change_set("app", "u1", "x1").await.unwrap();
    assert!(exists("a") && exists("b") && exists("c"));
    tokio::time::advance(Duration::from_secs(60)).await;
    assert!(exists("a") && !exists("b") && exists("c"));
    assert_eq!(cloud.queue_messages(&t.account, REGION, "a"), ["kept"]);

    // A failed update rolls its new queue back.
    cloud.script(
        &t.account,
        REGION,
        "app",
        Outcome::FailUpdate {
            resource: "Queue1".into(),
            reason: "no".into(),
        },
    );
    let update = change_set_request("app", "u2", &queues_template(&["a", "c", "d"]), &[]);
    t.cfn.create_change_set(&update).await.unwrap();
    t.cfn.execute_change_set("app", "u2", "x2").await.unwrap();
    assert!(exists("d"));
    tokio::time::advance(Duration::from_secs(60)).await;
    assert!(exists("a") && exists("c") && !exists("d"));

    // A queue deleted behind the stack's back stays deleted.
    assert!(cloud.delete_queue(&t.account, REGION, "c"));
    assert!(!exists("c"));

    // Delete: the queues exist until the stack is gone.
    t.cfn.delete_stack("app", None, "d").await.unwrap();
    assert!(exists("a"));
    tokio::time::advance(Duration::from_secs(60)).await;
    assert!(!exists("a"));

    // A failed creation rolls its queues back; a queue made by hand is not
    // the stack's.
    cloud.create_queue(&t.account, REGION, "mine");
    cloud.script(
        &t.account,
        REGION,
        "other",
        Outcome::FailCreate {
            resource: "Queue0".into(),
            reason: "no".into(),
        },
    );
    t.cfn
        .create_stack(&create_request(
            "other",
            &queues_template(&["e", "mine"]),
            &[],
            "c2",
        ))
        .await
        .unwrap();
    assert!(exists("e"));
    tokio::time::advance(Duration::from_secs(60)).await;
    assert_eq!(
        cloud.stack(&t.account, REGION, "other").unwrap().status,
        StackStatus::RollbackComplete
    );
    assert!(!exists("e") && exists("mine"));
}

#[tokio::test(start_paused = true)]
async fn the_auto_responder_answers_pings() {
    let cloud = FakeCloud::new();
    let (t, sqs) = sqs_tenant(&cloud, TENANT_ACCOUNT);
    let requests = cloud.create_queue(&t.account, REGION, "docproc-worker-heartbeat-requests");
    let replies = cloud.create_queue(&t.account, REGION, "docproc-worker-heartbeat-replies");
    let ping = Ping::new("acme", 7, "coordinator-1");

    // Off: pings stay where they were sent.
    sqs.send_message(&requests, &encode_ping(&ping))
        .await
        .unwrap();
    assert_eq!(sqs.queue_depth(&requests).await.unwrap(), 1);
    let got = sqs
        .receive_messages(&requests, 1, Duration::ZERO)
        .await
        .unwrap();
    sqs.delete_messages(&requests, &handles(&got))
        .await
        .unwrap();

    cloud.respond_to_pings(&t.account, REGION, true);
    cloud.set_sqs_latency(Duration::from_millis(50));
    let start = Instant::now();
    sqs.send_message(&requests, &encode_ping(&ping))
        .await
        .unwrap();
    // The ping is consumed; the pong shows up one latency after the send.
    assert!(
        cloud
            .queue_messages(&t.account, REGION, "docproc-worker-heartbeat-requests")
            .is_empty()
    );
    assert_eq!(
        cloud
            .queue_messages(&t.account, REGION, "docproc-worker-heartbeat-replies")
            .len(),
        1
    );
    let got = sqs.receive_messages(&replies, 10, WAIT).await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_millis(100));
    assert_eq!(got.len(), 1);
    let pong = decode_pong(&got[0].body).unwrap();
    assert_eq!(
        (pong.nonce, pong.seq, pong.tenant.as_str()),
        (ping.nonce.clone(), 7, "acme")
    );
    assert_eq!(pong.worker_id, "fake-agent");
    assert_eq!(pong.job_queue_depth, Some(0));
    // The agent's work is not recorded as calls.
    assert!(
        !sqs_calls(&cloud)
            .iter()
            .any(|c| c.operation == "SendMessage" && c.queue.as_ref() == Some(&replies))
    );

    // Bodies that are not pings are stored as usual.
    sqs.send_message(&requests, "not a ping").await.unwrap();
    assert_eq!(
        cloud.queue_messages(&t.account, REGION, "docproc-worker-heartbeat-requests"),
        ["not a ping"]
    );

    // Off again.
    cloud.respond_to_pings(&t.account, REGION, false);
    sqs.send_message(&requests, &encode_ping(&ping))
        .await
        .unwrap();
    assert_eq!(sqs.queue_depth(&requests).await.unwrap(), 2);
}

#[test]
fn queue_urls_name_account_region_and_queue() {
    let url: QueueUrl = FakeCloud::queue_url(&account(TENANT_ACCOUNT), Region::UsEast1, "x");
    assert_eq!(
        url.as_str(),
        "https://sqs.us-east-1.amazonaws.com/222222222222/x"
    );
    assert_eq!((url.account(), url.queue_name()), (TENANT_ACCOUNT, "x"));
}
