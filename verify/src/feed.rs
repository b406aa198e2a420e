//! The revocation feed, followed as a stream: what is kept of it first
//! (every session that ended while its tokens may live), then each end as
//! it is committed; after a drop it resumes from the last cursor and misses
//! nothing. Only a heartbeat says how current the verifier is: authgate
//! sends one as soon as a catch-up is done and every 5 s when quiet, with
//! its lag (`lagMs`: every end older than that has been sent). An entry
//! says nothing of what may still be held back behind it. Past
//! `max_silence` since the last point known complete, every token is refused.

use std::{
    collections::HashMap,
    sync::{
        Mutex, RwLock, Weak,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use serde::Deserialize;

use crate::Inner;

pub(crate) struct State {
    /// Ended sessions, with when their last token expires (Unix seconds).
    ended: RwLock<HashMap<String, i64>>,
    cursor: Mutex<Option<String>>,
    /// Milliseconds after `epoch` when the feed was last known complete
    /// (0: never yet).
    heard: AtomicU64,
    epoch: Instant,
    /// Until the first heartbeat: why the feed could not be followed yet.
    pub(crate) start: tokio::sync::watch::Sender<Start>,
}

/// How following the feed began.
#[derive(Clone, Debug)]
pub(crate) enum Start {
    Trying(Option<String>),
    /// A refusal that trying again will not change (a wrong service key).
    Refused(String),
    Ready,
}

/// One entry of the feed.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    cursor: String,
    sid: String,
    expires_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Heartbeat {
    next: String,
    /// How far behind the server's feed stands (a transaction holding it
    /// back, a database it cannot read): complete only up to that long ago.
    lag_ms: u64,
}

/// No byte at all for this long (heartbeats come every 5 s): the
/// connection is dead even if the socket does not say so. Also the most a
/// connection may take to answer.
const IDLE: Duration = Duration::from_secs(15);
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MOST: Duration = Duration::from_secs(5);
/// One event's text at most (an entry is about 200 bytes).
const MAX_EVENT: usize = 64 * 1024;

impl State {
    pub(crate) fn new() -> Self {
        State {
            ended: RwLock::default(),
            cursor: Mutex::default(),
            heard: AtomicU64::new(0),
            epoch: Instant::now(),
            start: tokio::sync::watch::channel(Start::Trying(None)).0,
        }
    }

    pub(crate) fn ended(&self, sid: &str) -> bool {
        self.ended.read().unwrap_or_else(|e| e.into_inner()).contains_key(sid)
    }

    pub(crate) fn cursor(&self) -> Option<String> {
        self.cursor.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// How long since the feed was last known complete.
    pub(crate) fn silent_for(&self) -> Duration {
        let heard = Duration::from_millis(self.heard.load(Ordering::Acquire));
        self.epoch.elapsed().saturating_sub(heard)
    }

    /// The feed was complete `lag` ago. An older statement than one heard
    /// before changes nothing.
    fn heard(&self, lag: Duration) {
        let at = self.epoch.elapsed().saturating_sub(lag).as_millis() as u64;
        self.heard.fetch_max(at, Ordering::AcqRel);
    }

    fn add(&self, entry: Entry) {
        let expires = entry.expires_at.timestamp();
        let mut ended = self.ended.write().unwrap_or_else(|e| e.into_inner());
        let kept = ended.entry(entry.sid).or_insert(expires);
        *kept = (*kept).max(expires);
        drop(ended);
        *self.cursor.lock().unwrap_or_else(|e| e.into_inner()) = Some(entry.cursor);
    }

    fn at(&self, cursor: String) {
        *self.cursor.lock().unwrap_or_else(|e| e.into_inner()) = Some(cursor);
    }

    /// Forgets the sessions whose every token has expired, with the
    /// verifier's own leeway past the server's (a token is accepted up to
    /// `exp` + leeway).
    fn prune(&self, now: i64, leeway: i64) {
        self.ended.write().unwrap_or_else(|e| e.into_inner()).retain(|_, expires| *expires + leeway >= now);
    }
}

pub(crate) fn url_of(base: &str) -> String {
    format!("{base}/revocations")
}

/// Follows the stream for as long as the verifier lives, reconnecting
/// from the last cursor (with a growing pause while it cannot).
pub(crate) async fn follow(inner: Weak<Inner>) {
    let mut backoff = BACKOFF_FIRST;
    loop {
        match listen(&inner).await {
            Ok(Heard::Gone) => return,
            Ok(Heard::Something) => backoff = BACKOFF_FIRST,
            Ok(Heard::Nothing) => {}
            Err(failure) => {
                let Some(inner) = inner.upgrade() else { return };
                let start = &inner.feed.start;
                if matches!(*start.borrow(), Start::Ready) {
                    tracing::warn!(reason = %failure.reason, "authgate's revocation feed dropped; reconnecting");
                } else if failure.permanent {
                    start.send_replace(Start::Refused(failure.reason));
                } else {
                    start.send_replace(Start::Trying(Some(failure.reason)));
                }
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MOST);
    }
}

struct Failure {
    reason: String,
    permanent: bool,
}

impl From<String> for Failure {
    fn from(reason: String) -> Self {
        Failure { reason, permanent: false }
    }
}

enum Heard {
    /// The verifier was dropped.
    Gone,
    Something,
    Nothing,
}

/// One connection: opened after the cursor, read until it ends.
async fn listen(weak: &Weak<Inner>) -> Result<Heard, Failure> {
    let Some(inner) = weak.upgrade() else { return Ok(Heard::Gone) };
    let key = inner.config.service_key.as_deref().unwrap_or_default();
    let mut request = inner
        .http
        .get(url_of(&inner.config.url))
        .bearer_auth(key)
        .header(reqwest::header::ACCEPT, "text/event-stream");
    if let Some(cursor) = inner.feed.cursor() {
        request = request.header("last-event-id", cursor);
    }
    drop(inner);
    let mut response = match tokio::time::timeout(IDLE, request.send()).await {
        Err(_) => return Err("no answer within 15 s".to_owned().into()),
        Ok(sent) => sent.map_err(|e| e.without_url().to_string())?,
    };
    let status = response.status();
    if !status.is_success() {
        let permanent = matches!(status.as_u16(), 400 | 401 | 403 | 404);
        let reason = match status.as_u16() {
            401 => "the service key was refused (AUTHGATE_SERVICE_KEYS)".to_owned(),
            _ => format!("answered {status}"),
        };
        return Err(Failure { reason, permanent });
    }
    let mut heard = Heard::Nothing;
    let mut text = String::new();
    loop {
        let chunk = match tokio::time::timeout(IDLE, response.chunk()).await {
            Err(_) => return Err("silent for 15 s".to_owned().into()),
            Ok(chunk) => chunk.map_err(|e| e.without_url().to_string())?,
        };
        let Some(chunk) = chunk else { return Ok(heard) };
        let Some(inner) = weak.upgrade() else { return Ok(Heard::Gone) };
        for event in frames(&mut text, &chunk)? {
            apply(&inner.feed, (inner.config.clock)(), inner.config.leeway.as_secs() as i64, &event)?;
            heard = Heard::Something;
        }
    }
}

/// Adds `chunk` to what was read of the stream and takes out every whole
/// event (they end with a blank line). An unfinished event longer than
/// `MAX_EVENT` is an error: a stream that never ends one holds no memory.
fn frames(text: &mut String, chunk: &[u8]) -> Result<Vec<String>, String> {
    text.push_str(&String::from_utf8_lossy(chunk));
    if text.contains('\r') {
        *text = text.replace("\r\n", "\n");
    }
    // One pass and one drain per chunk (not one per event: a chunk of
    // blank lines would be quadratic).
    let (mut events, mut taken) = (Vec::new(), 0);
    while let Some(end) = text[taken..].find("\n\n") {
        events.push(text[taken..taken + end + 2].to_owned());
        taken += end + 2;
    }
    text.drain(..taken);
    if text.len() > MAX_EVENT {
        return Err("an event too long".to_owned());
    }
    Ok(events)
}

/// One Server-Sent Event: `revocation` (an entry) or `heartbeat` (at
/// `now`, Unix seconds, pruning with the verifier's `leeway`).
fn apply(feed: &State, now: i64, leeway: i64, event: &str) -> Result<(), String> {
    let (mut kind, mut data) = ("message", String::new());
    for line in event.lines() {
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => kind = value,
            "data" => data.push_str(value),
            _ => {}
        }
    }
    match kind {
        "revocation" => {
            let entry: Entry =
                serde_json::from_str(&data).map_err(|_| "an entry that is not JSON".to_owned())?;
            feed.add(entry);
        }
        "heartbeat" => {
            let beat: Heartbeat =
                serde_json::from_str(&data).map_err(|_| "a heartbeat that is not JSON".to_owned())?;
            feed.at(beat.next);
            feed.heard(Duration::from_millis(beat.lag_ms));
            feed.prune(now, leeway);
            feed.start
                .send_if_modified(|start| !matches!(std::mem::replace(start, Start::Ready), Start::Ready));
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(sid: &str, expires: i64) -> Entry {
        Entry {
            cursor: format!("0-{expires}"),
            sid: sid.into(),
            expires_at: chrono::DateTime::from_timestamp(expires, 0).unwrap(),
        }
    }

    /// A heartbeat's lag counts as silence: a feed held back 7 s ago is
    /// complete only up to then, however recently it spoke.
    #[test]
    fn a_heartbeats_lag_counts_as_silence_and_never_undoes_what_was_heard() {
        let state = State { epoch: Instant::now() - Duration::from_secs(60), ..State::new() };
        state.heard(Duration::from_secs(7));
        let silent = state.silent_for();
        assert!(silent >= Duration::from_secs(7) && silent < Duration::from_secs(8), "{silent:?}");
        state.heard(Duration::ZERO);
        assert!(state.silent_for() < Duration::from_secs(1));
        state.heard(Duration::from_secs(30));
        assert!(state.silent_for() < Duration::from_secs(1), "an older statement changes nothing");
    }

    /// Entries and heartbeats as the stream frames them: an entry ends
    /// a session (and moves the cursor) but says nothing of how current
    /// the feed is; a heartbeat does (less its lag), prunes, and marks the
    /// start ready. Anything malformed is an error (the connection is
    /// dropped and resumed).
    #[test]
    fn the_stream_s_events_are_applied_as_the_feed_means_them() {
        let state = State { epoch: Instant::now() - Duration::from_secs(600), ..State::new() };
        let entry = r#"{"cursor":"7-9","sid":"s-1","sub":"u","revokedAt":"2026-12-06T10:00:00Z","expiresAt":"2026-12-06T10:06:00Z"}"#;
        let expires = chrono::DateTime::parse_from_rfc3339("2026-12-06T10:06:00Z").unwrap().timestamp();
        apply(&state, expires, 60, &format!("id: 7-9\nevent: revocation\ndata: {entry}\n\n")).unwrap();
        assert!(state.ended("s-1"));
        assert_eq!(state.cursor().as_deref(), Some("7-9"));
        assert!(
            state.silent_for() >= Duration::from_secs(599),
            "an entry says nothing of the feed's currency"
        );
        assert!(matches!(*state.start.borrow(), Start::Trying(_)));
        apply(&state, expires + 61, 60, "event: heartbeat\ndata: {\"next\":\"8-1\",\"lagMs\":2000}\n\n")
            .unwrap();
        let silent = state.silent_for();
        assert!(silent >= Duration::from_secs(2) && silent < Duration::from_secs(3), "{silent:?}");
        assert_eq!(state.cursor().as_deref(), Some("8-1"));
        assert!(!state.ended("s-1"), "pruned past its expiry and the leeway");
        assert!(matches!(*state.start.borrow(), Start::Ready));
        apply(&state, 0, 60, ": a comment\nevent: other\ndata: x\n\n").unwrap();
        assert_eq!(state.cursor().as_deref(), Some("8-1"), "other events change nothing");
        for bad in ["event: revocation\ndata: {\n\n", "event: heartbeat\ndata: {\"next\":\"1-1\"}\n\n"] {
            assert!(apply(&state, 0, 60, bad).is_err(), "{bad}");
        }
        assert_eq!(state.cursor().as_deref(), Some("8-1"));
    }

    /// Events split across chunks come out whole, `\r\n` lines too; an
    /// unfinished event may grow to `MAX_EVENT`, not past it.
    #[test]
    fn the_stream_is_cut_into_whole_events_and_a_runaway_one_is_refused() {
        let mut text = String::new();
        assert!(frames(&mut text, b"event: heartbeat\ndata: {}").unwrap().is_empty());
        let events = frames(&mut text, b"\n\nevent: revocation\r\n\r\nevent: x").unwrap();
        assert_eq!(events, ["event: heartbeat\ndata: {}\n\n", "event: revocation\n\n"]);
        assert_eq!(text, "event: x");
        let mut text = String::new();
        let most = "a".repeat(MAX_EVENT);
        assert!(frames(&mut text, most.as_bytes()).unwrap().is_empty(), "up to the limit");
        assert!(frames(&mut text, b"a").is_err(), "past it");
    }

    /// An ended session is kept until its last token is past the
    /// verifier's own leeway too.
    #[test]
    fn ended_sessions_are_kept_until_their_tokens_and_the_leeway_are_past() {
        let state = State::new();
        state.add(entry("a", 1000));
        state.add(entry("b", 2000));
        assert_eq!(state.cursor().as_deref(), Some("0-2000"));
        state.prune(1060, 60);
        assert!(state.ended("a") && state.ended("b"), "to the last second of the leeway");
        state.prune(1061, 60);
        assert!(!state.ended("a") && state.ended("b"));
    }
}
