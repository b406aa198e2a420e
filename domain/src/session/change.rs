//! The one shape of a change made through a session (a password change, a
//! factor added or removed, a link removed, the account deleted): what
//! used to be a sequence each operation had to get right is one type.
//!
//! 1. A place for the owner's notice is reserved before anything is
//!    written (`begin_noticed`): queueing it after the commit never waits,
//!    and a request cancelled while it waits has written nothing.
//! 2. A cache guard is taken for the user (`SessionCache::changing`):
//!    settled after the commit, it forgets what this instance holds of the
//!    user (and anything read while the transaction ran); dropped
//!    unsettled (an error, a cancelled request), it forgets the user all
//!    the same, for one cache lifetime.
//! 3. The transaction first holds the user's row on the credentials
//!    version the session was read with and checks the session still
//!    lives (`session::hold_session`): a reset, claim or password change
//!    that committed meanwhile wins, and this change answers
//!    `UNAUTHENTICATED`.
//! 4. `commit` commits and settles the cache; `Committed::notify` mails
//!    the owner.

use sea_orm::DatabaseTransaction;
use serde_json::Value;

use super::{CurrentSession, cache::Forget, hold_session};
use crate::{
    AuthContext,
    error::AuthError,
    events,
    events::{Ended, Event, Kind},
    jobs::Slot,
    notices::{self, Notice},
};

/// A change under way: write through `txn()`, then `commit`.
pub(crate) struct Change<'a> {
    auth: &'a AuthContext,
    current: &'a CurrentSession,
    notice: Option<Slot>,
    // Dropped in this order on an error: the rollback, then the cache guard.
    txn: DatabaseTransaction,
    /// This process's write turn (SQLite), held until the transaction ends
    /// (declared after `txn`: dropped after it).
    _turn: crate::db::WriteTurn,
    forget: Forget,
}

impl<'a> Change<'a> {
    /// Begins a change the owner is mailed about.
    pub(crate) async fn begin_noticed(
        auth: &'a AuthContext,
        current: &'a CurrentSession,
    ) -> Result<Self, AuthError> {
        let notice = notices::notice_slot(auth).await;
        Self::start(auth, current, Some(notice)).await
    }

    /// Begins a change that mails nobody (the account's deletion).
    pub(crate) async fn begin(auth: &'a AuthContext, current: &'a CurrentSession) -> Result<Self, AuthError> {
        Self::start(auth, current, None).await
    }

    async fn start(
        auth: &'a AuthContext,
        current: &'a CurrentSession,
        notice: Option<Slot>,
    ) -> Result<Self, AuthError> {
        let forget = auth.sessions.changing(current.user.id);
        let (turn, txn) = auth.write().await?;
        hold_session(&txn, auth, current).await?;
        Ok(Self { auth, current, notice, forget, txn, _turn: turn })
    }

    /// The transaction, holding the user's row.
    pub(crate) fn txn(&self) -> &DatabaseTransaction {
        &self.txn
    }

    /// Records `kind` about the session's user, done by them through this
    /// session, with `details`, in the change's transaction.
    pub(crate) async fn record(&self, kind: Kind, details: &[(&str, Value)]) -> Result<(), AuthError> {
        let mut event = Event::new(kind, self.current.user.id)
            .session(self.current.session.id)
            .impersonated_by(self.current.session.impersonator_id);
        for (key, value) in details {
            event = event.with(key, value.clone());
        }
        event.record(&self.txn, self.auth, &self.current.meta).await
    }

    /// Ends the user's other sessions (all of them with `all`) for `why`,
    /// recording each; returns how many.
    pub(crate) async fn end_sessions(&self, all: bool, why: Ended) -> Result<u64, AuthError> {
        let keep = (!all).then_some(self.current.session.id);
        super::revoke_others(&self.txn, self.auth, self.current.user.id, keep, why, &self.current.meta).await
    }

    /// Records the end of the sessions `ids` (deleted through `txn()`).
    pub(crate) async fn sessions_ended(&self, ids: &[uuid::Uuid], why: Ended) -> Result<(), AuthError> {
        events::sessions_ended(&self.txn, self.auth, self.current.user.id, ids, why, &self.current.meta).await
    }

    /// Commits the change and settles the session cache.
    pub(crate) async fn commit(self) -> Result<Committed<'a>, AuthError> {
        self.txn.commit().await?;
        self.forget.done();
        Ok(Committed { auth: self.auth, current: self.current, notice: self.notice })
    }
}

/// A committed change: the owner may be told of it.
pub(crate) struct Committed<'a> {
    auth: &'a AuthContext,
    current: &'a CurrentSession,
    notice: Option<Slot>,
}

impl Committed<'_> {
    /// Mails the owner `notice` in the place reserved at the start (as the
    /// session that made the change).
    pub(crate) async fn notify(self, notice: Notice) {
        if let Some(slot) = self.notice {
            let by = Some(self.current.session.id);
            notices::notify_committed(slot, self.auth, &self.current.user, notice, by).await;
        }
    }
}
