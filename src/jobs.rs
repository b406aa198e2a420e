//! Work done after the answer: a bounded queue run one job at a time, in
//! order. Used where the time of an answer must not depend on the work
//! (a reset request for an unknown email answers as fast as for a known one).

use std::future::Future;

use futures_util::future::BoxFuture;
use tokio::sync::mpsc;

/// Jobs waiting beyond this are dropped (and logged) rather than piling up.
const CAPACITY: usize = 4096;

#[derive(Clone)]
pub struct Jobs {
    tx: mpsc::Sender<BoxFuture<'static, ()>>,
}

impl Jobs {
    /// Starts the worker; needs a Tokio runtime.
    pub fn start() -> Self {
        let (tx, mut rx) = mpsc::channel::<BoxFuture<'static, ()>>(CAPACITY);
        tokio::spawn(async move {
            while let Some(job) = rx.recv().await {
                job.await;
            }
        });
        Self { tx }
    }

    pub fn spawn(&self, job: impl Future<Output = ()> + Send + 'static) {
        if self.tx.try_send(Box::pin(job)).is_err() {
            tracing::warn!("background queue full; job dropped");
        }
    }
}
