//! Work done after the answer: bounded queues, each run one job at a time,
//! in order. Used where the time of an answer must not depend on the work
//! (a reset request for an unknown email answers as fast as for a known one).
//!
//! Two lanes, so that a flood of one kind cannot hold up the other: the
//! mailed links a user waits for (verification, reset) and the notices
//! that tell an owner what changed. A full lane makes the request that
//! queues wait for a slot (back-pressure) instead of dropping the job: a
//! notice of a security change or someone's reset link must never be lost
//! because somebody else was loud.

use std::future::Future;

use futures_util::future::BoxFuture;
use tokio::sync::mpsc;

/// Jobs waiting in one lane before a new one waits for a slot.
const CAPACITY: usize = 4096;

/// The longest one job may run before the lane moves on without it.
const JOB_DEADLINE: std::time::Duration = std::time::Duration::from_secs(60);

/// Which queue a job waits in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lane {
    /// Links a user asked for and waits on (verification, password reset).
    Links,
    /// Notices to an account's owner (a password changed, a factor added).
    Notices,
    /// Refused sign-ins counted into the event record, one at a time (two
    /// at once would each start the window's row).
    Record,
}

#[derive(Clone)]
pub struct Jobs {
    links: mpsc::Sender<BoxFuture<'static, ()>>,
    notices: mpsc::Sender<BoxFuture<'static, ()>>,
    record: mpsc::Sender<BoxFuture<'static, ()>>,
}

impl Jobs {
    /// Starts one worker per lane; needs a Tokio runtime.
    pub(crate) fn start() -> Self {
        Self::with_capacity(CAPACITY)
    }

    fn with_capacity(capacity: usize) -> Self {
        Self { links: worker(capacity), notices: worker(capacity), record: worker(capacity) }
    }

    /// Queues `job` in `lane`, waiting for a slot while the lane is full.
    #[cfg(any(test, feature = "test-support"))]
    pub(crate) async fn run(&self, lane: Lane, job: impl Future<Output = ()> + Send + 'static) {
        self.reserve(lane).await.run(job);
    }

    /// A place in `lane`, waited for while it is full. A service that
    /// queues work after a commit takes its place *before* the
    /// transaction: a request cancelled while it waits has written
    /// nothing, and once the change is committed, queueing cannot wait.
    pub(crate) async fn reserve(&self, lane: Lane) -> Slot {
        let tx = match lane {
            Lane::Links => &self.links,
            Lane::Notices => &self.notices,
            Lane::Record => &self.record,
        };
        if tx.capacity() == 0 {
            tracing::warn!(?lane, "background queue full; waiting for a slot");
        }
        Slot { lane, permit: tx.clone().reserve_owned().await.ok() }
    }

    /// A place in `lane` if one is free now; `None` when it is full (work
    /// that may be dropped, where waiting would show in the answer's time).
    pub(crate) fn try_reserve(&self, lane: Lane) -> Option<Slot> {
        let tx = match lane {
            Lane::Links => &self.links,
            Lane::Notices => &self.notices,
            Lane::Record => &self.record,
        };
        tx.clone().try_reserve_owned().ok().map(|permit| Slot { lane, permit: Some(permit) })
    }

    #[cfg(any(test, feature = "test-support"))]
    /// Resolves once every job queued in every lane before the call has run.
    pub async fn drained(&self) {
        for lane in [Lane::Links, Lane::Notices, Lane::Record] {
            let (done, waited) = tokio::sync::oneshot::channel();
            self.run(lane, async move {
                let _ = done.send(());
            })
            .await;
            let _ = waited.await;
        }
    }
}

/// A reserved place in a lane (`Jobs::reserve`); given back if dropped unused.
pub(crate) struct Slot {
    lane: Lane,
    permit: Option<mpsc::OwnedPermit<BoxFuture<'static, ()>>>,
}

impl Slot {
    /// Queues `job` in the reserved place: never waits.
    pub(crate) fn run(self, job: impl Future<Output = ()> + Send + 'static) {
        match self.permit {
            Some(permit) => {
                permit.send(Box::pin(job));
            }
            // Only when the runtime is shutting down.
            None => tracing::warn!(lane = ?self.lane, "background queue closed; job not run"),
        }
    }
}

fn worker(capacity: usize) -> mpsc::Sender<BoxFuture<'static, ()>> {
    let (tx, mut rx) = mpsc::channel::<BoxFuture<'static, ()>>(capacity);
    tokio::spawn(async move {
        while let Some(job) = rx.recv().await {
            // Each job in a task of its own, awaited (one at a time, in
            // order): a job that panics ends itself, not the lane, and one
            // that hangs (a stalled database) is given up after a minute.
            let mut task = tokio::spawn(job);
            match tokio::time::timeout(JOB_DEADLINE, &mut task).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "a background job failed"),
                Err(_) => {
                    task.abort();
                    tracing::error!(deadline = ?JOB_DEADLINE, "a background job took too long; given up");
                }
            }
        }
    });
    tx
}

#[cfg(test)]
mod tests {
    use std::{
        sync::{
            Arc,
            atomic::{AtomicUsize, Ordering},
        },
        time::Duration,
    };

    use super::*;

    #[tokio::test]
    async fn a_flooded_lane_holds_up_neither_the_other_nor_its_own_jobs() {
        let jobs = Jobs::with_capacity(4);
        // The notice lane's worker is stuck on its first job.
        let (release, stuck) = tokio::sync::oneshot::channel::<()>();
        jobs.run(Lane::Notices, async move {
            let _ = stuck.await;
        })
        .await;
        // Fill it, and queue more than it holds from another task: those wait.
        let ran = Arc::new(AtomicUsize::new(0));
        let flood = {
            let (jobs, ran) = (jobs.clone(), ran.clone());
            tokio::spawn(async move {
                for _ in 0..20 {
                    let ran = ran.clone();
                    jobs.run(Lane::Notices, async move {
                        ran.fetch_add(1, Ordering::SeqCst);
                    })
                    .await;
                }
            })
        };
        // A reset link meanwhile goes out at once.
        let (sent, link) = tokio::sync::oneshot::channel();
        jobs.run(Lane::Links, async move {
            let _ = sent.send(());
        })
        .await;
        tokio::time::timeout(Duration::from_secs(5), link)
            .await
            .expect("links run beside a stuck lane")
            .unwrap();
        assert!(!flood.is_finished(), "the flood waits for slots instead of dropping jobs");
        assert_eq!(ran.load(Ordering::SeqCst), 0);
        // Unstuck, every queued notice runs: none was dropped.
        release.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), flood).await.expect("the flood is queued").unwrap();
        tokio::time::timeout(Duration::from_secs(5), jobs.drained()).await.expect("drained");
        assert_eq!(ran.load(Ordering::SeqCst), 20);
    }

    #[tokio::test]
    async fn a_job_that_panics_does_not_end_its_lane() {
        let jobs = Jobs::with_capacity(4);
        jobs.run(Lane::Notices, async { panic!("a bug in one job") }).await;
        let (sent, done) = tokio::sync::oneshot::channel();
        jobs.run(Lane::Notices, async move {
            let _ = sent.send(());
        })
        .await;
        tokio::time::timeout(Duration::from_secs(5), done).await.expect("the next job runs").unwrap();
    }
}
