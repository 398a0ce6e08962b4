//! A small, fixed pool of threads for argon2.
//!
//! Each argon2 hash needs 19 MiB and a core for tens of milliseconds. Run on tokio's
//! blocking pool (up to 512 threads), a burst of logins hashed hundreds at once, and the
//! allocator kept every thread's arena afterwards: a few hundred logins grew the API by
//! gigabytes. Here at most `threads` hashes run at once (one per core by default), always
//! on the same threads, so memory stays at `threads` × 19 MiB whatever the load, and the
//! rest wait in a bounded queue. A full queue is refused at once ([`HasherBusy`]) rather
//! than queued without end.

use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};

use futures::channel::oneshot;

use crate::AuthError;

type Job = Box<dyn FnOnce() + Send>;

/// The queue was full: too many passwords are waiting to be hashed.
#[derive(Debug, thiserror::Error)]
#[error("too many password checks are waiting")]
pub struct HasherBusy;

/// Handle on the pool. Cheap to clone; the threads stop when the last handle is dropped.
#[derive(Clone)]
pub struct PasswordHasher {
    jobs: SyncSender<Job>,
    threads: usize,
}

impl PasswordHasher {
    /// Starts `threads` hashing threads (at least one) with room for `queue` waiting jobs.
    pub fn start(threads: usize, queue: usize) -> Self {
        let threads = threads.max(1);
        let (jobs, waiting) = sync_channel::<Job>(queue.max(1));
        let waiting = Arc::new(Mutex::new(waiting));
        for n in 0..threads {
            let waiting = waiting.clone();
            // If a thread cannot be started the pool runs with fewer; with none, every
            // job's answer channel is dropped and callers get an error, not a hang.
            let _ = std::thread::Builder::new()
                .name(format!("argon2-{n}"))
                .spawn(move || run(&waiting));
        }
        Self { jobs, threads }
    }

    /// One thread per core.
    pub fn per_core(queue: usize) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::start(cores, queue)
    }

    /// How many hashes can run at once.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Hashes a new password (see [`crate::hash_password`]).
    pub async fn hash(&self, password: String) -> Result<Result<String, AuthError>, HasherBusy> {
        self.run(move || crate::hash_password(&password)).await
    }

    /// Checks a password against a stored hash (see [`crate::verify_password`]).
    pub async fn verify(&self, password: String, hash: String) -> Result<bool, HasherBusy> {
        self.run(move || crate::verify_password(&password, &hash))
            .await
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HasherBusy> {
        let (answer, answered) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = answer.send(work());
        });
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => return Err(HasherBusy),
        }
        answered.await.map_err(|_| HasherBusy)
    }
}

fn run(waiting: &Mutex<Receiver<Job>>) {
    loop {
        // Hold the lock only while taking a job, not while running it.
        let next = match waiting.lock() {
            Ok(receiver) => receiver.recv(),
            Err(_) => return,
        };
        match next {
            Ok(job) => job(),
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;

    use super::*;

    #[test]
    fn hashes_and_verifies_on_the_pool() {
        let pool = PasswordHasher::start(2, 8);
        futures::executor::block_on(async {
            let hash = pool
                .hash("s3cret pass".into())
                .await
                .expect("room")
                .expect("hash");
            assert!(
                pool.verify("s3cret pass".into(), hash.clone())
                    .await
                    .expect("room")
            );
            assert!(!pool.verify("other".into(), hash).await.expect("room"));
        });
    }

    #[test]
    fn a_full_queue_is_refused_not_queued() {
        let pool = PasswordHasher::start(1, 1);
        let (release, wait) = std::sync::mpsc::channel::<()>();
        // Occupy the only thread, then fill the only queue slot.
        let blocker = pool.run(move || {
            let _ = wait.recv();
        });
        let mut blocker = Box::pin(blocker);
        let waker = futures::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        assert!(blocker.as_mut().poll(&mut cx).is_pending());
        // The thread may not have taken the first job yet; give it a moment.
        std::thread::sleep(std::time::Duration::from_millis(100));
        let queued = Box::pin(pool.run(|| ()));
        let mut queued = queued;
        assert!(queued.as_mut().poll(&mut cx).is_pending());
        let refused = futures::executor::block_on(pool.run(|| ()));
        assert!(refused.is_err(), "a third job must be refused");
        release.send(()).expect("release");
        futures::executor::block_on(async {
            blocker.await.expect("first ran");
            queued.await.expect("second ran");
        });
    }
}
