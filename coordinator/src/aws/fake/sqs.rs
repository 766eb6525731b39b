//! The fake's SQS: standard queues per account, region and name, with
//! visibility timeouts, long polls that wait on tokio time and wake when a
//! message arrives, batch deletes by receipt handle, and queue depth.
//!
//! Queues come from two places:
//!
//! - the fake CloudFormation: every `AWS::SQS::Queue` of a stack exists
//!   while the stack does (from the start of its creation until it is
//!   deleted or its creation rolled back; an update adds the new template's
//!   queues when it starts and removes the old template's when it ends). This
//!   is evaluated lazily, like stack operations, at every SQS call;
//! - [`FakeCloud::create_queue`] and [`FakeCloud::delete_queue`], for tests.
//!
//! As in SQS, a queue is reached only from its own account: a session of
//! another account gets `AWS.SimpleQueueService.NonExistentQueue`
//! ([`crate::aws::ErrorKind::NotFound`]), as without a queue policy (and always in
//! moto). A queue belongs to the region of the client that reaches it; the
//! host in its URL is not looked at.
//!
//! Test knobs: [`FakeCloud::hang_sqs`] (calls never return),
//! [`FakeCloud::set_sqs_latency`], [`FakeCloud::inject_error`] and
//! [`FakeCloud::throttle`] with the SQS operation names (`SendMessage`,
//! `ReceiveMessage`, `DeleteMessageBatch`, `GetQueueAttributes`),
//! [`FakeCloud::fail_all`], [`FakeCloud::push_message`],
//! [`FakeCloud::queue_messages`], and an agent that answers pings
//! ([`FakeCloud::respond_to_pings`]).

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use futures::channel::oneshot;
use stacks::aws_names::QueueUrl;
use stacks::ids::{AccountId, Region};
use tokio::time::Instant;

use super::outputs::uuid_like;
use super::{Call, FakeCloud, StackKey, State, sleep};
use crate::aws::sdk::{check_delete, check_receive, delete_batch_error};
use crate::aws::{AwsError, ReceivedMessage, Sqs, TenantCredentials};

/// How long a received message stays hidden unless configured otherwise
/// (SQS's default).
pub const DEFAULT_VISIBILITY_TIMEOUT: Duration = Duration::from_secs(30);

const SQS: &str = "sqs";
/// The error code of a missing queue (query-compatible form, as the SDK
/// reports it).
const NON_EXISTENT_QUEUE: &str = "AWS.SimpleQueueService.NonExistentQueue";
const REQUESTS_SUFFIX: &str = "-heartbeat-requests";
const REPLIES_SUFFIX: &str = "-heartbeat-replies";
/// Every receipt handle the fake issues starts with this; others are
/// `ReceiptHandleIsInvalid`.
const RECEIPT_PREFIX: &str = "fake-receipt/";

/// The SQS part of the fake's state.
#[derive(Debug)]
pub(super) struct SqsState {
    queues: BTreeMap<StackKey, Queue>,
    /// Stack queues deleted with [`FakeCloud::delete_queue`]: (stack id,
    /// queue name). Not recreated while that stack lives.
    dropped: HashSet<(String, String)>,
    hung: HashSet<AccountId>,
    responders: HashSet<(AccountId, Region)>,
    /// `None`: the cloud's latency.
    latency: Option<Duration>,
    visibility_timeout: Duration,
    seq: u64,
}

impl Default for SqsState {
    fn default() -> Self {
        Self {
            queues: BTreeMap::new(),
            dropped: HashSet::new(),
            hung: HashSet::new(),
            responders: HashSet::new(),
            latency: None,
            visibility_timeout: DEFAULT_VISIBILITY_TIMEOUT,
            seq: 0,
        }
    }
}

impl SqsState {
    pub(super) fn queue_count(&self) -> usize {
        self.queues.len()
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// A new message id.
    fn message_id(&mut self, key: &StackKey) -> String {
        let seq = self.next_seq();
        uuid_like(&format!(
            "message/{}/{}/{}/{seq}",
            key.account, key.region, key.name
        ))
    }
}

#[derive(Debug)]
struct Queue {
    url: QueueUrl,
    /// The stack that created it; `None` for [`FakeCloud::create_queue`].
    stack_id: Option<String>,
    /// Oldest first.
    messages: VecDeque<Message>,
    /// Long polls waiting for a message (dropping the queue wakes them).
    waiters: Vec<oneshot::Sender<()>>,
}

#[derive(Debug)]
struct Message {
    id: String,
    body: String,
    /// Hidden until then (in flight after a receive, or delayed).
    visible_at: Instant,
    /// The handle of the latest receive.
    receipt: Option<String>,
}

impl Queue {
    fn new(url: QueueUrl, stack_id: Option<String>) -> Self {
        Self {
            url,
            stack_id,
            messages: VecDeque::new(),
            waiters: Vec::new(),
        }
    }

    /// Appends a message visible from `visible_at` and wakes long polls.
    fn push(&mut self, id: String, body: String, visible_at: Instant) {
        self.messages.push_back(Message {
            id,
            body,
            visible_at,
            receipt: None,
        });
        for waiter in self.waiters.drain(..) {
            let _ = waiter.send(());
        }
    }

    fn visible(&self, now: Instant) -> usize {
        self.messages.iter().filter(|m| m.visible_at <= now).count()
    }

    /// When the next hidden message becomes visible.
    fn next_visible(&self, now: Instant) -> Option<Instant> {
        self.messages
            .iter()
            .map(|m| m.visible_at)
            .filter(|at| *at > now)
            .min()
    }

    /// Takes up to `max` visible messages, oldest first, hiding each for
    /// `hide` under a new receipt handle.
    fn receive(
        &mut self,
        max: usize,
        now: Instant,
        hide: Duration,
        seq: &mut u64,
    ) -> Vec<ReceivedMessage> {
        let mut received = Vec::new();
        for message in self.messages.iter_mut() {
            if received.len() == max {
                break;
            }
            if message.visible_at > now {
                continue;
            }
            *seq += 1;
            let handle = format!("{RECEIPT_PREFIX}{}/{seq}", message.id);
            message.visible_at = now + hide;
            message.receipt = Some(handle.clone());
            received.push(ReceivedMessage {
                message_id: message.id.clone(),
                receipt_handle: handle,
                body: message.body.clone(),
            });
        }
        received
    }
}

fn queue_url(account: &AccountId, region: Region, name: &str) -> Option<QueueUrl> {
    format!("https://sqs.{region}.amazonaws.com/{account}/{name}")
        .parse()
        .ok()
}

fn non_existent(operation: &'static str) -> AwsError {
    let message = "The specified queue does not exist.";
    let kind = AwsError::classify(Some(NON_EXISTENT_QUEUE), message);
    AwsError::new(kind, SQS, operation, message).with_code(NON_EXISTENT_QUEUE)
}

fn same_place(key: &StackKey, account: &AccountId, region: Region) -> bool {
    key.account == *account && key.region == region
}

impl State {
    fn sqs_latency(&self) -> Duration {
        self.sqs.latency.unwrap_or(self.latency)
    }

    /// Brings the queues of `account` and `region` in line with its stacks
    /// as they are at `now`.
    fn sync_queues(&mut self, account: &AccountId, region: Region, now: Instant) {
        let start = StackKey::new(account, region, "");
        let stacks: Vec<StackKey> = self
            .stacks
            .range(&start..)
            .take_while(|(k, _)| same_place(k, account, region))
            .map(|(k, _)| k.clone())
            .collect();
        // Queue name -> the stack id that has it.
        let mut wanted: BTreeMap<String, String> = BTreeMap::new();
        for key in &stacks {
            self.advance(key, now);
            if let Some(stack) = self.stacks.get(key) {
                for name in stack.queues() {
                    if !self
                        .sqs
                        .dropped
                        .contains(&(stack.id().to_owned(), name.clone()))
                    {
                        wanted
                            .entry(name.clone())
                            .or_insert_with(|| stack.id().to_owned());
                    }
                }
            }
        }
        let stale: Vec<StackKey> = self
            .sqs
            .queues
            .range(&start..)
            .take_while(|(k, _)| same_place(k, account, region))
            .filter(|(k, q)| {
                q.stack_id
                    .as_ref()
                    .is_some_and(|id| wanted.get(&k.name) != Some(id))
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in stale {
            self.sqs.queues.remove(&key);
        }
        for (name, stack_id) in wanted {
            let key = StackKey::new(account, region, &name);
            if self.sqs.queues.contains_key(&key) {
                continue;
            }
            if let Some(url) = queue_url(account, region, &name) {
                self.sqs.queues.insert(key, Queue::new(url, Some(stack_id)));
            }
        }
    }

    /// The queue `url` names in `account` and `region`, after syncing.
    fn queue_mut(
        &mut self,
        account: &AccountId,
        region: Region,
        url: &QueueUrl,
        operation: &'static str,
        now: Instant,
    ) -> Result<&mut Queue, AwsError> {
        self.sync_queues(account, region, now);
        self.sqs
            .queues
            .get_mut(&StackKey::new(account, region, url.queue_name()))
            .ok_or_else(|| non_existent(operation))
    }

    fn send(
        &mut self,
        account: &AccountId,
        region: Region,
        url: &QueueUrl,
        body: &str,
        now: Instant,
    ) -> Result<(), AwsError> {
        const OP: &str = "SendMessage";
        let latency = self.sqs_latency();
        self.queue_mut(account, region, url, OP, now)?;
        let name = url.queue_name();
        let responding = self.sqs.responders.contains(&(account.clone(), region));
        if responding
            && let Some(tenant) = name.strip_suffix(REQUESTS_SUFFIX)
            && let Ok(ping) = protocol::decode_ping(body)
        {
            let replies = StackKey::new(account, region, &format!("{tenant}{REPLIES_SUFFIX}"));
            if self.sqs.queues.contains_key(&replies) {
                let pong = protocol::encode_pong(&ping.answer(
                    "fake-agent",
                    "fake",
                    Utc::now(),
                    Some(0),
                    Some(0),
                ));
                let id = self.sqs.message_id(&replies);
                if let Some(queue) = self.sqs.queues.get_mut(&replies) {
                    queue.push(id, pong, now + latency);
                }
                return Ok(());
            }
        }
        let key = StackKey::new(account, region, name);
        let id = self.sqs.message_id(&key);
        if let Some(queue) = self.sqs.queues.get_mut(&key) {
            queue.push(id, body.to_owned(), now);
        }
        Ok(())
    }
}

impl FakeCloud {
    fn sqs_latency(&self) -> Duration {
        self.lock().sqs_latency()
    }

    /// The URL of queue `name` in `account` and `region`, as the fake's
    /// CloudFormation outputs it (`https://sqs.<region>.amazonaws.com/<account>/<name>`).
    ///
    /// # Panics
    /// If `name` is not a valid queue name.
    pub fn queue_url(account: &AccountId, region: Region, name: &str) -> QueueUrl {
        queue_url(account, region, name)
            .unwrap_or_else(|| panic!("{name:?} is not a valid queue name"))
    }

    /// Creates queue `name` (if it does not exist) and returns its URL.
    ///
    /// # Panics
    /// If `name` is not a valid queue name.
    pub fn create_queue(&self, account: &AccountId, region: Region, name: &str) -> QueueUrl {
        let url = Self::queue_url(account, region, name);
        let mut state = self.lock();
        state.sync_queues(account, region, Instant::now());
        state
            .sqs
            .queues
            .entry(StackKey::new(account, region, name))
            .or_insert_with(|| Queue::new(url.clone(), None))
            .url
            .clone()
    }

    /// Deletes queue `name` and its messages (pending long polls on it fail
    /// with NotFound); a stack's queue stays deleted while that stack lives.
    /// Returns whether it existed.
    pub fn delete_queue(&self, account: &AccountId, region: Region, name: &str) -> bool {
        let mut state = self.lock();
        state.sync_queues(account, region, Instant::now());
        match state
            .sqs
            .queues
            .remove(&StackKey::new(account, region, name))
        {
            Some(queue) => {
                if let Some(stack_id) = queue.stack_id {
                    state.sqs.dropped.insert((stack_id, name.to_owned()));
                }
                true
            }
            None => false,
        }
    }

    /// Whether queue `name` exists now.
    pub fn queue_exists(&self, account: &AccountId, region: Region, name: &str) -> bool {
        let mut state = self.lock();
        state.sync_queues(account, region, Instant::now());
        state
            .sqs
            .queues
            .contains_key(&StackKey::new(account, region, name))
    }

    /// The bodies of every message in queue `name`, visible, in flight or
    /// delayed, oldest first (not recorded as a call); empty if the queue
    /// does not exist.
    pub fn queue_messages(&self, account: &AccountId, region: Region, name: &str) -> Vec<String> {
        let mut state = self.lock();
        state.sync_queues(account, region, Instant::now());
        state
            .sqs
            .queues
            .get(&StackKey::new(account, region, name))
            .map(|q| q.messages.iter().map(|m| m.body.clone()).collect())
            .unwrap_or_default()
    }

    /// Appends `body` to queue `name` as it is (no auto-responder), visible
    /// at once, e.g. a malformed or duplicate reply.
    ///
    /// # Panics
    /// If the queue does not exist.
    pub fn push_message(&self, account: &AccountId, region: Region, name: &str, body: &str) {
        let now = Instant::now();
        let mut state = self.lock();
        state.sync_queues(account, region, now);
        let key = StackKey::new(account, region, name);
        let id = state.sqs.message_id(&key);
        let queue = state
            .sqs
            .queues
            .get_mut(&key)
            .unwrap_or_else(|| panic!("push_message: no queue {name} in {account} {region}"));
        queue.push(id, body.to_owned(), now);
    }

    /// While `hang` is set, SQS calls acting in `account` are recorded and
    /// then never return (so callers' own timeouts are exercised).
    pub fn hang_sqs(&self, account: &AccountId, hang: bool) {
        let mut state = self.lock();
        if hang {
            state.sqs.hung.insert(account.clone());
        } else {
            state.sqs.hung.remove(account);
        }
    }

    /// Sleeps this long (tokio time) at the start of every SQS call instead
    /// of [`FakeCloud::set_latency`]'s value; also how long the ping
    /// auto-responder takes to answer.
    pub fn set_sqs_latency(&self, latency: Duration) {
        self.lock().sqs.latency = Some(latency);
    }

    /// How long received messages stay hidden (default
    /// [`DEFAULT_VISIBILITY_TIMEOUT`]).
    pub fn set_visibility_timeout(&self, timeout: Duration) {
        self.lock().sqs.visibility_timeout = timeout;
    }

    /// When enabled, an agent answers pings in `account` and `region`: every
    /// body sent with `SendMessage` to a `<prefix>-heartbeat-requests` queue
    /// that decodes as a [`protocol::Ping`] is not stored; instead its pong
    /// (worker `fake-agent`, version `fake`, depths 0) is put on
    /// `<prefix>-heartbeat-replies`, visible after the SQS latency. Pings
    /// that do not decode, or without a replies queue, are stored as usual.
    /// The agent's own calls are not recorded.
    pub fn respond_to_pings(&self, account: &AccountId, region: Region, enabled: bool) {
        let mut state = self.lock();
        let key = (account.clone(), region);
        if enabled {
            state.sqs.responders.insert(key);
        } else {
            state.sqs.responders.remove(&key);
        }
    }
}

/// SQS in one tenant account and region. Each call first gets a session
/// from the tenant's credentials and acts in that session's account.
#[derive(Debug, Clone)]
pub struct FakeSqs {
    cloud: FakeCloud,
    credentials: Arc<TenantCredentials>,
    region: Region,
}

impl FakeSqs {
    pub(super) fn new(
        cloud: FakeCloud,
        credentials: Arc<TenantCredentials>,
        region: Region,
    ) -> Self {
        Self {
            cloud,
            credentials,
            region,
        }
    }

    /// What every call does first: latency, a session, the call log, a hang,
    /// `fail_all` and injected errors, and the account check. Returns the
    /// account the call acts in.
    async fn enter(
        &self,
        operation: &'static str,
        queue: &QueueUrl,
    ) -> Result<AccountId, AwsError> {
        sleep(self.cloud.sqs_latency()).await;
        let session = self.credentials.session().await?;
        let (admitted, hung) = {
            let mut state = self.cloud.lock();
            let resolved = state.resolve_session(&session, SQS, operation);
            let account = resolved.as_ref().ok().map(|s| s.account.clone());
            let hung = account.as_ref().is_some_and(|a| state.sqs.hung.contains(a));
            let admitted = state
                .admit(Call {
                    service: SQS,
                    operation,
                    account,
                    region: Some(self.region),
                    stack: None,
                    role_arn: None,
                    queue: Some(queue.clone()),
                })
                .and(resolved);
            (admitted, hung)
        };
        if hung {
            std::future::pending::<()>().await;
        }
        let session = admitted?;
        if queue.account() != session.account.as_str() {
            // As SQS answers a queue of another account without a policy
            // granting access (and as moto always does).
            return Err(non_existent(operation));
        }
        Ok(session.account)
    }
}

#[async_trait]
impl Sqs for FakeSqs {
    async fn send_message(&self, queue: &QueueUrl, body: &str) -> Result<(), AwsError> {
        let account = self.enter("SendMessage", queue).await?;
        self.cloud
            .lock()
            .send(&account, self.region, queue, body, Instant::now())
    }

    async fn receive_messages(
        &self,
        queue: &QueueUrl,
        max: u8,
        wait: Duration,
    ) -> Result<Vec<ReceivedMessage>, AwsError> {
        const OP: &str = "ReceiveMessage";
        check_receive(max, wait)?;
        let account = self.enter(OP, queue).await?;
        let deadline = Instant::now() + wait;
        loop {
            let (woken, wake_at) = {
                let mut guard = self.cloud.lock();
                let now = Instant::now();
                let state = &mut *guard;
                let hide = state.sqs.visibility_timeout;
                state.queue_mut(&account, self.region, queue, OP, now)?;
                let key = StackKey::new(&account, self.region, queue.queue_name());
                let Some(q) = state.sqs.queues.get_mut(&key) else {
                    return Err(non_existent(OP));
                };
                let received = q.receive(usize::from(max), now, hide, &mut state.sqs.seq);
                if !received.is_empty() || now >= deadline {
                    return Ok(received);
                }
                let (tx, rx) = oneshot::channel();
                q.waiters.retain(|w| !w.is_canceled());
                q.waiters.push(tx);
                let wake_at = q.next_visible(now).map_or(deadline, |at| at.min(deadline));
                (rx, wake_at)
            };
            tokio::select! {
                _ = woken => {}
                () = tokio::time::sleep_until(wake_at) => {}
            }
        }
    }

    async fn delete_messages(
        &self,
        queue: &QueueUrl,
        receipt_handles: &[String],
    ) -> Result<(), AwsError> {
        const OP: &str = "DeleteMessageBatch";
        check_delete(receipt_handles)?;
        if receipt_handles.is_empty() {
            return Ok(());
        }
        let account = self.enter(OP, queue).await?;
        let mut state = self.cloud.lock();
        let q = state.queue_mut(&account, self.region, queue, OP, Instant::now())?;
        let mut failed = Vec::new();
        for (i, handle) in receipt_handles.iter().enumerate() {
            if !handle.starts_with(RECEIPT_PREFIX) {
                failed.push((
                    i.to_string(),
                    format!("The input receipt handle \"{handle}\" is not a valid receipt handle."),
                ));
                continue;
            }
            // A stale handle (the message was received again since) deletes
            // nothing and succeeds, as in SQS.
            q.messages
                .retain(|m| m.receipt.as_deref() != Some(handle.as_str()));
        }
        match failed.first() {
            None => Ok(()),
            Some((id, message)) => Err(delete_batch_error(
                failed.len(),
                receipt_handles.len(),
                id,
                "ReceiptHandleIsInvalid",
                Some(message),
            )),
        }
    }

    async fn queue_depth(&self, queue: &QueueUrl) -> Result<u64, AwsError> {
        const OP: &str = "GetQueueAttributes";
        let account = self.enter(OP, queue).await?;
        let now = Instant::now();
        let mut state = self.cloud.lock();
        let q = state.queue_mut(&account, self.region, queue, OP, now)?;
        Ok(q.visible(now) as u64)
    }
}
