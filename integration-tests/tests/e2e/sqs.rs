//! The coordinator's SDK implementation of SQS (`coordinator::aws::sdk::SdkSqs`,
//! through `Connector::tenant_sqs`) against moto: send, long-poll receive,
//! batch delete and depth in a fresh tenant account, and the errors of a
//! deleted queue and of another account's queue.
//!
//! The queues are created with an independent `aws-sdk-sqs` client through a
//! role assumed in the tenant account (the coordinator never creates queues:
//! the worker stack does).

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use coordinator::aws::sdk::SdkConnector;
use coordinator::aws::{Connector, ErrorKind, RoleRequest, SessionName, Sqs, TenantCredentials};
use integration_tests::{assume_role, random_account_id, random_external_id};
use stacks::aws_names::QueueUrl;
use stacks::ids::{AccountId, Region, RoleArn};

use crate::base_config;

const ROLE_NAME: &str = "docproc-coordinator-deploy";
const REGION: Region = Region::UsEast1;
const LONG_POLL: Duration = Duration::from_secs(20);

fn fresh_account() -> AccountId {
    random_account_id().parse().expect("12 digits")
}

/// The coordinator's SQS in `account`, through the deploy role.
fn tenant_sqs(connector: &SdkConnector, account: &AccountId) -> Arc<dyn Sqs> {
    let credentials = Arc::new(TenantCredentials::new(
        connector.operator_sts(),
        RoleRequest {
            role_arn: RoleArn::for_role(account, ROLE_NAME).expect("role ARN"),
            external_id: Some(random_external_id().parse().expect("ExternalId")),
            session_name: SessionName::sanitize("docproc-coordinator"),
            source_identity: None,
            duration: Duration::from_secs(3600),
        },
    ));
    connector.tenant_sqs(credentials, REGION)
}

/// An independent SQS client acting in `account`.
async fn admin_sqs(base: &SdkConfig, account: &AccountId) -> aws_sdk_sqs::Client {
    let config = assume_role(base, account.as_str(), "e2e-admin", &random_external_id())
        .await
        .expect("assume a role in the tenant account");
    aws_sdk_sqs::Client::new(&config)
}

async fn create_queue(admin: &aws_sdk_sqs::Client, name: &str) -> QueueUrl {
    let out = admin
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .expect("CreateQueue");
    let url = out.queue_url().expect("QueueUrl");
    url.parse()
        .unwrap_or_else(|e| panic!("moto's queue URL {url:?}: {e}"))
}

#[tokio::test]
async fn send_receive_delete_and_depth_in_a_tenant_account() {
    let base = base_config().await;
    let connector = SdkConnector::from_config(base.clone());
    let account = fresh_account();
    let admin = admin_sqs(&base, &account).await;
    let jobs = create_queue(&admin, "docproc-worker-jobs").await;
    let replies = create_queue(&admin, "docproc-worker-heartbeat-replies").await;
    assert_eq!(jobs.account(), account.as_str(), "{jobs}");
    let sqs = tenant_sqs(&connector, &account);

    // Send and depth.
    assert_eq!(sqs.queue_depth(&jobs).await.expect("depth"), 0);
    for i in 0..12 {
        sqs.send_message(&jobs, &format!("job {i}"))
            .await
            .expect("SendMessage");
    }
    assert_eq!(sqs.queue_depth(&jobs).await.expect("depth"), 12);

    // Receive everything (at most 10 a call), then delete it in batches.
    let mut received = Vec::new();
    while received.len() < 12 {
        let batch = sqs
            .receive_messages(&jobs, 10, Duration::from_secs(1))
            .await
            .expect("ReceiveMessage");
        assert!(!batch.is_empty() && batch.len() <= 10, "{batch:?}");
        received.extend(batch);
    }
    let mut bodies: Vec<&str> = received.iter().map(|m| m.body.as_str()).collect();
    bodies.sort_unstable();
    let mut expected: Vec<String> = (0..12).map(|i| format!("job {i}")).collect();
    expected.sort_unstable();
    assert_eq!(bodies, expected);
    assert!(
        received
            .iter()
            .all(|m| !m.message_id.is_empty() && !m.receipt_handle.is_empty())
    );
    // In flight: hidden from the depth.
    assert_eq!(sqs.queue_depth(&jobs).await.expect("depth"), 0);
    let handles: Vec<String> = received.iter().map(|m| m.receipt_handle.clone()).collect();
    for chunk in handles.chunks(10) {
        sqs.delete_messages(&jobs, chunk)
            .await
            .expect("DeleteMessageBatch");
    }
    let left = admin
        .get_queue_attributes()
        .queue_url(jobs.as_str())
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
        .send()
        .await
        .expect("GetQueueAttributes");
    let attributes = left.attributes().expect("attributes");
    for name in [
        aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages,
        aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
    ] {
        assert_eq!(
            attributes.get(&name).map(String::as_str),
            Some("0"),
            "{name}"
        );
    }

    // A receipt handle moto cannot read fails its entry, and the error says
    // how many failed.
    let e = sqs
        .delete_messages(&jobs, &["not-a-receipt-handle".to_owned()])
        .await
        .expect_err("garbage receipt handle");
    assert_eq!((e.service, e.operation), ("sqs", "DeleteMessageBatch"));
    assert!(e.message.starts_with("1 of 1 messages"), "{e}");
    assert!(e.code.is_some(), "{e}");

    // A long poll returns as soon as a message arrives (moto honours
    // WaitTimeSeconds), well before the 20 s wait.
    let start = Instant::now();
    let sender = {
        let admin = admin.clone();
        let replies = replies.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            admin
                .send_message()
                .queue_url(replies.as_str())
                .message_body("pong")
                .send()
                .await
                .expect("SendMessage by the agent");
        })
    };
    let got = sqs
        .receive_messages(&replies, 10, LONG_POLL)
        .await
        .expect("long poll");
    let elapsed = start.elapsed();
    sender.await.expect("sender");
    assert_eq!(
        got.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(),
        ["pong"]
    );
    assert!(
        elapsed >= Duration::from_millis(1500) && elapsed < Duration::from_secs(15),
        "{elapsed:?}"
    );
    sqs.delete_messages(&replies, &[got[0].receipt_handle.clone()])
        .await
        .expect("delete the reply");

    // Arguments outside SQS's bounds never reach moto.
    let e = sqs
        .receive_messages(&replies, 11, LONG_POLL)
        .await
        .expect_err("11 messages");
    assert_eq!(e.kind, ErrorKind::Validation, "{e}");

    // A deleted queue is NotFound.
    admin
        .delete_queue()
        .queue_url(replies.as_str())
        .send()
        .await
        .expect("DeleteQueue");
    let e = sqs
        .send_message(&replies, "late")
        .await
        .expect_err("send to a deleted queue");
    assert_eq!(e.kind, ErrorKind::NotFound, "{e:?}");
    let e = sqs
        .queue_depth(&replies)
        .await
        .expect_err("depth of a deleted queue");
    assert_eq!(e.kind, ErrorKind::NotFound, "{e:?}");
}

async fn depth(admin: &aws_sdk_sqs::Client, queue: &QueueUrl) -> String {
    let name = aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages;
    let out = admin
        .get_queue_attributes()
        .queue_url(queue.as_str())
        .attribute_names(name.clone())
        .send()
        .await
        .expect("GetQueueAttributes");
    out.attributes()
        .and_then(|a| a.get(&name))
        .cloned()
        .unwrap_or_else(|| panic!("no ApproximateNumberOfMessages for {queue}"))
}

/// The coordinator reaches queues only through the tenant's own role: a
/// queue of another account is an error, and nothing lands in it.
///
/// moto resolves a queue URL by the queue's *name* in the caller's account
/// and ignores the account in the URL (AWS routes by the URL and refuses
/// another account's queue without a queue policy): another account's queue
/// whose name does not exist in the caller's account is `NonExistentQueue`,
/// but one whose name does exist there reaches the caller's own queue. So
/// on moto a session that lands in the wrong account silently uses that
/// account's same-named queues; the fake (`FakeCloud`) refuses them as AWS
/// does.
#[tokio::test]
async fn a_queue_of_another_account_is_not_reached() {
    let base = base_config().await;
    let connector = SdkConnector::from_config(base.clone());
    let tenant = fresh_account();
    let other = loop {
        let id = fresh_account();
        if id != tenant {
            break id;
        }
    };
    let tenant_admin = admin_sqs(&base, &tenant).await;
    let other_admin = admin_sqs(&base, &other).await;
    let theirs = create_queue(&other_admin, "docproc-worker-jobs").await;
    let sqs = tenant_sqs(&connector, &tenant);

    let e = sqs
        .send_message(&theirs, "ping")
        .await
        .expect_err("send to another account's queue");
    assert_eq!(e.kind, ErrorKind::NotFound, "{e:?}");
    let e = sqs
        .queue_depth(&theirs)
        .await
        .expect_err("depth of another account's queue");
    assert_eq!(e.kind, ErrorKind::NotFound, "{e:?}");
    let e = sqs
        .receive_messages(&theirs, 1, Duration::ZERO)
        .await
        .expect_err("receive from another account's queue");
    assert_eq!(e.kind, ErrorKind::NotFound, "{e:?}");
    assert_eq!(depth(&other_admin, &theirs).await, "0");

    // The same name in both accounts: the other account's queue still gets
    // nothing; moto delivers to the caller's own queue instead (AWS: an
    // error).
    let ours = create_queue(&tenant_admin, "docproc-worker-jobs").await;
    match sqs.send_message(&theirs, "ping").await {
        Ok(()) => assert_eq!(depth(&tenant_admin, &ours).await, "1", "moto quirk"),
        Err(e) => assert!(
            matches!(e.kind, ErrorKind::NotFound | ErrorKind::AccessDenied),
            "{e:?}"
        ),
    }
    assert_eq!(depth(&other_admin, &theirs).await, "0");
}

/// Tenants in one region share one SDK client (`SqsClients`); every call
/// still carries its own tenant's credentials, so each lands in its own
/// account even when the calls interleave.
#[tokio::test]
async fn tenants_sharing_a_regional_client_each_act_in_their_own_account() {
    let base = base_config().await;
    let connector = SdkConnector::from_config(base.clone());
    let accounts = [fresh_account(), fresh_account()];
    let mut queues = Vec::new();
    let mut admins = Vec::new();
    for account in &accounts {
        let admin = admin_sqs(&base, account).await;
        queues.push(create_queue(&admin, "docproc-worker-jobs").await);
        admins.push(admin);
    }
    let clients: Vec<Arc<dyn Sqs>> = accounts.iter().map(|a| tenant_sqs(&connector, a)).collect();
    // Interleaved: 3 messages to the first account, 5 to the second.
    let sends = (0..8).map(|i| {
        let which = usize::from(i >= 3);
        let (sqs, queue) = (&clients[which], &queues[which]);
        async move { sqs.send_message(queue, &format!("m{i}")).await }
    });
    for result in futures::future::join_all(sends).await {
        result.expect("send to the tenant's own queue");
    }
    assert_eq!(depth(&admins[0], &queues[0]).await, "3");
    assert_eq!(depth(&admins[1], &queues[1]).await, "5");
    assert_eq!(clients[0].queue_depth(&queues[0]).await.expect("depth"), 3);
    assert_eq!(clients[1].queue_depth(&queues[1]).await.expect("depth"), 5);
}
