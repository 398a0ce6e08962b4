//! Group commit: every send of a process goes through one writer task that commits many
//! messages per transaction.
//!
//! There is no timer. The writer takes whatever sends are waiting, commits them as one
//! batch ([`chat_store::Store::insert_batch`]) and answers each; sends that arrive while
//! that commit is in flight wait for the next batch. At low load a batch is one message
//! and costs what a single insert did; under load batches grow by themselves, and the
//! per-message cost of a commit (round trips, the WAL flush, seq allocation) shrinks with
//! them. Each send still gets its own outcome: a bad message fails alone.
//!
//! One writer per process also keeps a socket's pipelined sends in the order it sent
//! them: they enter the queue in that order and take seqs in batch order.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use chat_domain::{EventPayload, Message};
use chat_store::messages::{InsertError, Inserted, NewMessage};
use chat_store::{OutboxEvent, Store, StoreError};
use tokio::sync::{mpsc, oneshot};

use crate::publisher::Publisher;
use crate::{Stats, envelope_of};

/// Sends waiting for the writer; past it, senders wait for room (back-pressure).
const QUEUE: usize = 16_384;

/// One send waiting for its batch.
struct Pending {
    new: NewMessage,
    traceparent: Option<String>,
    done: oneshot::Sender<Result<Inserted, InsertError>>,
}

/// Handle on this process's writer task.
#[derive(Clone)]
pub(crate) struct Writer {
    queue: mpsc::Sender<Pending>,
}

/// How the writer batches.
#[derive(Clone, Copy, Debug)]
pub struct WriterSettings {
    /// Most messages in one transaction.
    pub max_batch: usize,
    /// Test hook: exit the process right after the first commit of new messages,
    /// before their events are published (the outbox relay of another process must
    /// publish them).
    pub exit_after_commit: bool,
}

impl Writer {
    pub(crate) fn start(
        store: Store,
        publisher: Publisher,
        stats: Arc<Stats>,
        settings: WriterSettings,
    ) -> Self {
        let (queue, rx) = mpsc::channel(QUEUE);
        tokio::spawn(write_loop(rx, store, publisher, stats, settings));
        Self { queue }
    }

    /// Queues one message for the next batch, waiting only while the queue is full. The
    /// queue is FIFO: messages queued one after the other take seqs in that order.
    pub(crate) async fn enqueue(&self, new: NewMessage) -> Result<Queued, InsertError> {
        let (done, answer) = oneshot::channel();
        let pending = Pending {
            new,
            traceparent: chat_telemetry::current_traceparent(),
            done,
        };
        self.queue.send(pending).await.map_err(|_| writer_gone())?;
        Ok(Queued { answer })
    }
}

/// A message in the writer's queue.
pub(crate) struct Queued {
    answer: oneshot::Receiver<Result<Inserted, InsertError>>,
}

impl Queued {
    /// Waits for its batch to commit (or refuse it).
    pub(crate) async fn outcome(self) -> Result<Inserted, InsertError> {
        self.answer.await.map_err(|_| writer_gone())?
    }
}

fn writer_gone() -> InsertError {
    InsertError::Store(StoreError::unavailable("the message writer stopped"))
}

async fn write_loop(
    mut rx: mpsc::Receiver<Pending>,
    store: Store,
    publisher: Publisher,
    stats: Arc<Stats>,
    settings: WriterSettings,
) {
    let mut waiting: Vec<Pending> = Vec::with_capacity(settings.max_batch);
    while rx.recv_many(&mut waiting, settings.max_batch.max(1)).await > 0 {
        let (news, waiters): (Vec<NewMessage>, Vec<_>) = waiting
            .drain(..)
            .map(|p| (p.new, (p.traceparent, p.done)))
            .unzip();
        let events = |i: usize, message: &Message| -> Vec<OutboxEvent> {
            let payload = EventPayload::MessageCreated {
                message: message.clone(),
            };
            vec![envelope_of(
                message.conversation_id,
                message.sender_id,
                payload,
                waiters[i].0.clone(),
            )]
        };
        let result = store.insert_batch(&news, events).await;
        stats.write_batches.fetch_add(1, Ordering::Relaxed);
        stats
            .write_batch_messages
            .fetch_add(news.len() as u64, Ordering::Relaxed);
        stats
            .write_batch_largest
            .fetch_max(news.len() as u64, Ordering::Relaxed);
        match result {
            Ok((outcomes, outboxed)) => {
                let created = outcomes
                    .iter()
                    .filter(|o| matches!(o, Ok(Inserted::New(_))))
                    .count() as u64;
                stats
                    .messages_persisted
                    .fetch_add(created, Ordering::Relaxed);
                if settings.exit_after_commit && created > 0 {
                    tracing::error!(
                        "CHAT_FAULT_EXIT_AFTER_COMMIT: exiting between commit and publish"
                    );
                    std::process::exit(86);
                }
                publisher.hand_over(outboxed);
                for ((_, done), outcome) in waiters.into_iter().zip(outcomes) {
                    let _ = done.send(outcome);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, messages = news.len(), "send batch failed");
                for (_, done) in waiters {
                    let _ = done.send(Err(InsertError::Store(e.for_another_waiter())));
                }
            }
        }
    }
}
