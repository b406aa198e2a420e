//! argon2id hashing on a fixed pool of threads, each owning its working
//! memory (19 MiB by default) for life: a login never stalls the async
//! runtime, memory stays at `threads × m` however many sign-ins arrive,
//! and a full queue answers `SERVICE_UNAVAILABLE` at once instead of
//! piling up work.

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicU64, Ordering},
    mpsc,
};

use argon2::{
    Algorithm, Argon2, Block, Params, Version,
    password_hash::{Output, PasswordHash, SaltString},
};
use rand::rngs::OsRng;
use tokio::sync::{Semaphore, oneshot};

use crate::{config::Config, error::AuthError, token};

type Job = Box<dyn FnOnce(&mut Vec<Block>) + Send>;

pub struct PasswordHasher {
    params: Params,
    jobs: mpsc::SyncSender<Job>,
    /// Hashes running or waiting: `threads + hash_queue` at most. Counted
    /// with permits, not by the channel, so a worker that is still starting
    /// never makes a request look like overload.
    admitted: Arc<Semaphore>,
    /// A hash of a random password: unknown emails are verified against it so
    /// they cost the same time as known ones. At the cost most stored hashes
    /// have (`calibrate`), which is not today's setting while they are
    /// still being rehashed after a change of the argon2 parameters.
    dummy_hash: std::sync::RwLock<Arc<str>>,
    verifications: AtomicU64,
}

impl PasswordHasher {
    pub(crate) fn new(config: &Config) -> Result<Self, argon2::Error> {
        let params =
            Params::new(config.argon2_memory_kib, config.argon2_iterations, config.argon2_parallelism, None)?;
        let mut scratch = Vec::new();
        let random = token::generate().secret;
        let dummy_hash = hash_with(&params, random.as_bytes(), &mut scratch)
            .map_err(|_| argon2::Error::AlgorithmInvalid)?;
        drop(scratch);

        let workers = config.hash_concurrency();
        let capacity = workers + config.hash_queue;
        let (jobs, queue) = mpsc::sync_channel::<Job>(capacity);
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..workers {
            let queue = queue.clone();
            let blocks = params.block_count();
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || {
                    lower_priority();
                    let mut memory = vec![Block::default(); blocks];
                    loop {
                        let job = match queue.lock() {
                            Ok(queue) => queue.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(&mut memory),
                            Err(_) => return, // the hasher was dropped
                        }
                    }
                })
                .map_err(|_| argon2::Error::AlgorithmInvalid)?;
        }
        let admitted = Arc::new(Semaphore::new(capacity));
        let dummy_hash = std::sync::RwLock::new(Arc::from(dummy_hash));
        Ok(Self { params, jobs, admitted, dummy_hash, verifications: AtomicU64::new(0) })
    }

    /// A PHC string (`$argon2id$v=19$m=...`) for a password that passed the policy.
    pub(crate) async fn hash(&self, password: String) -> Result<String, AuthError> {
        let params = self.params.clone();
        self.run(move |memory| {
            hash_with(&params, password.as_bytes(), memory)
                .map_err(|e| AuthError::internal("password hashing failed", e))
        })
        .await?
    }

    /// Checks `password` against `stored`, or against the dummy hash when there
    /// is none, so both cases take one full verification.
    pub(crate) async fn verify(&self, password: String, stored: Option<String>) -> Result<bool, AuthError> {
        let known = stored.is_some();
        let phc = stored.unwrap_or_else(|| self.dummy().to_string());
        self.verifications.fetch_add(1, Ordering::Relaxed);
        let matched = self.run(move |memory| verify_with(&phc, password.as_bytes(), memory)).await?;
        Ok(matched && known)
    }

    fn dummy(&self) -> Arc<str> {
        self.dummy_hash.read().map(|d| d.clone()).unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    /// Whether `stored` was made with other parameters than today's (the
    /// settings changed since): a sign-in that proves the password then
    /// stores it again at today's cost.
    pub(crate) fn needs_rehash(&self, stored: &str) -> bool {
        cost_of(stored).is_some_and(|cost| cost != cost_string(&self.params))
    }

    /// The argon2 parameters unknown emails are checked at (`m=…,t=…,p=…`).
    pub fn dummy_cost(&self) -> String {
        cost_of(&self.dummy()).unwrap_or_default()
    }

    /// Sets the dummy's cost to the one most of `stored` (a sample of the
    /// stored hashes) have, so an unknown email costs what a known one
    /// most likely costs: after a change of the argon2 settings, stored
    /// hashes keep their old cost until their owners sign in again.
    pub(crate) async fn calibrate(&self, stored: &[String]) -> Result<(), AuthError> {
        let mut counts: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        for cost in stored.iter().filter_map(|h| cost_of(h)) {
            *counts.entry(cost).or_default() += 1;
        }
        // Ties go to today's settings, then to the larger cost string (stable).
        let today = cost_string(&self.params);
        let Some((mode, _)) = counts.into_iter().max_by(|(a, x), (b, y)| {
            x.cmp(y).then_with(|| (a == &today).cmp(&(b == &today))).then_with(|| a.cmp(b))
        }) else {
            return Ok(());
        };
        // The dummy is argon2id at the same parameters: the same cost.
        let Some(params) = params_of(&mode) else { return Ok(()) };
        if cost_string(&params) == self.dummy_cost() {
            return Ok(());
        }
        let random = token::generate().secret;
        let dummy = self
            .run(move |memory| hash_with(&params, random.as_bytes(), memory))
            .await?
            .map_err(|e| AuthError::internal("hashing the dummy password", e))?;
        tracing::info!(cost = %mode, "unknown emails are checked at the cost most stored hashes have");
        match self.dummy_hash.write() {
            Ok(mut slot) => *slot = Arc::from(dummy),
            Err(poisoned) => *poisoned.into_inner() = Arc::from(dummy),
        }
        Ok(())
    }

    #[cfg(any(test, feature = "test-support"))]
    /// Full verifications done so far (known and unknown accounts alike).
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    ) -> Result<T, AuthError> {
        let permit = self.admitted.clone().try_acquire_owned().map_err(|_| {
            tracing::warn!("password hashing queue full; shedding load");
            AuthError::ServiceUnavailable
        })?;
        let (done, answer) = oneshot::channel();
        let job: Job = Box::new(move |memory| {
            let _permit = permit;
            let started = std::time::Instant::now();
            let result = work(memory);
            metrics::histogram!("authgate_password_hash_duration_seconds")
                .record(started.elapsed().as_secs_f64());
            let _ = done.send(result);
        });
        self.jobs.try_send(job).map_err(|e| match e {
            mpsc::TrySendError::Full(_) => {
                tracing::warn!("password hashing queue full; shedding load");
                AuthError::ServiceUnavailable
            }
            mpsc::TrySendError::Disconnected(_) => {
                AuthError::internal("password hashing", "the workers are gone")
            }
        })?;
        answer.await.map_err(|e| AuthError::internal("password hashing worker stopped", e))
    }
}

/// `m=…,t=…,p=…` of an argon2id v=19 PHC string (what we make); another
/// algorithm or version (an imported hash) is named as it is, so it too
/// differs from today's and is stored again.
fn cost_of(phc: &str) -> Option<String> {
    let parsed = PasswordHash::new(phc).ok()?;
    let params = cost_string(&Params::try_from(&parsed).ok()?);
    let ours =
        parsed.algorithm == Algorithm::Argon2id.ident() && parsed.version == Some(Version::V0x13.into());
    Some(if ours { params } else { format!("{}/{:?}/{params}", parsed.algorithm, parsed.version) })
}

fn cost_string(params: &Params) -> String {
    format!("m={},t={},p={}", params.m_cost(), params.t_cost(), params.p_cost())
}

/// The parameters of a cost (`m=…,t=…,p=…`, after any algorithm prefix).
fn params_of(cost: &str) -> Option<Params> {
    let cost = cost.rsplit('/').next()?;
    let mut values = cost.split(',').map(|kv| kv.split_once('=').and_then(|(_, v)| v.parse::<u32>().ok()));
    let (m, t, p) = (values.next()??, values.next()??, values.next()??);
    Params::new(m, t, p, None).ok()
}

/// Hashing yields the CPU to request handling: under a flood of sign-ins,
/// `me` and friends stay fast while hashes wait a little (Linux nice 19).
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority on this thread's own id; no memory is touched.
    unsafe {
        let tid = libc::gettid();
        if libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 19) != 0 {
            tracing::debug!("could not lower the priority of a hashing thread");
        }
    }
}

/// argon2 into `memory`, grown once to the size `params` need and reused.
fn compute(
    params: &Params,
    algorithm: Algorithm,
    version: Version,
    password: &[u8],
    salt: &[u8],
    output_len: usize,
    memory: &mut Vec<Block>,
) -> Result<Output, argon2::password_hash::Error> {
    let blocks = params.block_count();
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    let argon2 = Argon2::new(algorithm, version, params.clone());
    Output::init_with(output_len, |out| {
        argon2.hash_password_into_with_memory(password, salt, out, &mut memory[..blocks]).map_err(Into::into)
    })
}

fn hash_with(
    params: &Params,
    password: &[u8],
    memory: &mut Vec<Block>,
) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    let mut buffer = [0u8; 64];
    let salt_bytes = salt.decode_b64(&mut buffer)?;
    let output_len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    let output =
        compute(params, Algorithm::Argon2id, Version::V0x13, password, salt_bytes, output_len, memory)?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: params.try_into()?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    };
    Ok(phc.to_string())
}

/// Recomputes with the stored hash's own algorithm, version and parameters
/// (they may predate today's settings) and compares in constant time.
fn verify_with(phc: &str, password: &[u8], memory: &mut Vec<Block>) -> bool {
    let mut check = || -> Result<bool, argon2::password_hash::Error> {
        let parsed = PasswordHash::new(phc)?;
        let expected = parsed.hash.ok_or(argon2::password_hash::Error::Password)?;
        let salt = parsed.salt.ok_or(argon2::password_hash::Error::Password)?;
        let mut buffer = [0u8; 64];
        let salt_bytes = salt.decode_b64(&mut buffer)?;
        let algorithm = Algorithm::try_from(parsed.algorithm)?;
        let version = parsed.version.map(Version::try_from).transpose()?.unwrap_or_default();
        let params = Params::try_from(&parsed)?;
        let computed = compute(&params, algorithm, version, password, salt_bytes, expected.len(), memory)?;
        Ok(computed == expected) // `Output` compares in constant time
    };
    check().unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use argon2::{PasswordHasher as _, PasswordVerifier as _};

    use super::*;

    #[test]
    fn costs_are_read_back_from_phc_strings() {
        let params = Params::new(512, 2, 1, None).unwrap();
        let phc = hash_with(&params, b"pw", &mut Vec::new()).unwrap();
        assert_eq!(cost_of(&phc).as_deref(), Some("m=512,t=2,p=1"));
        let back = params_of("m=512,t=2,p=1").unwrap();
        assert_eq!((back.m_cost(), back.t_cost(), back.p_cost()), (512, 2, 1));
        assert_eq!(cost_of("not a hash"), None);
        let argon2i = Argon2::new(Algorithm::Argon2i, Version::V0x13, params.clone())
            .hash_password(b"pw", &SaltString::generate(&mut OsRng))
            .unwrap()
            .to_string();
        assert_ne!(cost_of(&argon2i).as_deref(), Some("m=512,t=2,p=1"), "another algorithm is another cost");
        let same = params_of(&cost_of(&argon2i).unwrap()).map(|p| cost_string(&p));
        assert_eq!(same.as_deref(), Some("m=512,t=2,p=1"), "a dummy of the same cost");
        assert!(params_of("m=x,t=1,p=1").is_none());
    }

    #[test]
    fn hashes_are_standard_phc_strings_that_verify_both_ways() {
        let params = Params::new(256, 1, 1, None).unwrap();
        let mut memory = Vec::new();
        let ours = hash_with(&params, b"open sesame", &mut memory).unwrap();
        assert!(ours.starts_with("$argon2id$v=19$m=256,t=1,p=1$"), "{ours}");
        // The reference implementation accepts ours, and we accept its.
        let reference = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        assert!(reference.verify_password(b"open sesame", &PasswordHash::new(&ours).unwrap()).is_ok());
        let theirs =
            reference.hash_password(b"open sesame", &SaltString::generate(&mut OsRng)).unwrap().to_string();
        assert!(verify_with(&theirs, b"open sesame", &mut memory));
        assert!(!verify_with(&theirs, b"open sesame!", &mut memory));
        assert!(!verify_with("not a hash", b"open sesame", &mut memory));
    }
}
