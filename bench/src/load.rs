//! A closed-loop load generator: `concurrency` workers, each sending its
//! next request as soon as the previous one is answered and checked.

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use crate::server::Server;

/// What one run measured.
pub struct Measured {
    /// Latencies of the answers that passed their check, in microseconds.
    pub latencies: Vec<u64>,
    pub errors: u64,
    pub elapsed: Duration,
    pub peak_rss: Option<u64>,
    /// A sample of what failed, for the report.
    pub first_error: Option<String>,
}

impl Measured {
    /// Nothing measured yet (`peak_rss`: the server's memory now).
    pub fn new(peak_rss: Option<u64>) -> Self {
        Measured { latencies: Vec::new(), errors: 0, elapsed: Duration::ZERO, peak_rss, first_error: None }
    }

    /// One timed sample of a sequential scenario: its latency in
    /// microseconds, or why it failed.
    pub fn record(&mut self, outcome: Result<u64, String>) {
        match outcome {
            Ok(micros) => self.latencies.push(micros),
            Err(why) => {
                self.errors += 1;
                self.first_error.get_or_insert(why);
            }
        }
    }
}

/// Progress of a sequential scenario, every hundredth sample.
pub fn progress(label: &str, done: usize, total: usize) {
    if done.is_multiple_of(100) {
        eprint!("\r  {label}: {done} of {total}");
    }
}

/// Runs `request(worker, n)` from `concurrency` workers for `duration`. A
/// request answers `Ok(true)` when its check passed, `Ok(false)` when the
/// worker has nothing left to send, `Err(why)` when the check failed.
pub async fn run<F, Fut>(
    label: &str,
    concurrency: usize,
    duration: Duration,
    server: &Server,
    request: F,
) -> Measured
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<bool, String>> + Send,
{
    let request = Arc::new(request);
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let mut workers = Vec::with_capacity(concurrency);
    for worker in 0..concurrency {
        let (request, stop, done) = (request.clone(), stop.clone(), done.clone());
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(4096);
            let (mut errors, mut first_error) = (0u64, None);
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                let t0 = Instant::now();
                match request(worker, n).await {
                    Ok(true) => latencies.push(t0.elapsed().as_micros() as u64),
                    Ok(false) => break,
                    Err(why) => {
                        errors += 1;
                        first_error.get_or_insert(why);
                    }
                }
                done.fetch_add(1, Ordering::Relaxed);
                n += 1;
            }
            (latencies, errors, first_error)
        }));
    }
    // Sample the server's memory and show progress while the workers run.
    let mut peak_rss = server.rss_bytes();
    let mut last_report = Instant::now();
    while Instant::now() < deadline && !workers.iter().all(|w| w.is_finished()) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        peak_rss = peak_rss.max(server.rss_bytes());
        if last_report.elapsed() >= Duration::from_secs(1) {
            let left = deadline.saturating_duration_since(Instant::now()).as_secs();
            eprint!("\r  {label:<32} {:>8} requests, {left:>3}s left ", done.load(Ordering::Relaxed));
            last_report = Instant::now();
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut measured =
        Measured { latencies: Vec::new(), errors: 0, elapsed: Duration::ZERO, peak_rss, first_error: None };
    for worker in workers {
        if let Ok((latencies, errors, first_error)) = worker.await {
            measured.latencies.extend(latencies);
            measured.errors += errors;
            if measured.first_error.is_none() {
                measured.first_error = first_error;
            }
        }
    }
    measured.elapsed = started.elapsed();
    measured.peak_rss = measured.peak_rss.max(server.rss_bytes());
    eprint!("\r{:<80}\r", "");
    measured
}
