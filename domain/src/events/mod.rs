//! The event record: one thin row per change to a user, a session or a way
//! in, written in the transaction of the change (a change rolled back
//! leaves no event; one committed always has its event). The user's
//! activity, the audit log, webhooks and live subscriptions all read it.
//!
//! Rows hold ids, names and where the request came from; never a secret,
//! a token or a password (`Event::with` takes only what `Value` can say,
//! and every caller passes ids, names and counts).

pub mod live;
pub mod read;

use chrono::{DateTime, Utc};
use entity::events;
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::{AuthContext, ClientMeta, error::AuthError};

/// What happened. The names are the contract's (`README.md`, "Security
/// activity and the audit log"); a new kind goes at the end of `ALL`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    UserCreated,
    UserEmailVerified,
    UserPasswordChanged,
    UserPasswordReset,
    UserUpdated,
    UserDeleted,
    SessionCreated,
    SessionRevoked,
    LoginFailed,
    TwoFactorEnabled,
    TwoFactorDisabled,
    RecoveryCodesRegenerated,
    PasskeyAdded,
    PasskeyRemoved,
    OauthLinked,
    OauthUnlinked,
    WebhookEndpointCreated,
    SessionReauthenticated,
    UserBanned,
    UserUnbanned,
    UserRolesChanged,
    ImpersonationStarted,
    ImpersonationEnded,
    UserResetLinkSent,
}

impl Kind {
    pub const ALL: [Kind; 24] = [
        Kind::UserCreated,
        Kind::UserEmailVerified,
        Kind::UserPasswordChanged,
        Kind::UserPasswordReset,
        Kind::UserUpdated,
        Kind::UserDeleted,
        Kind::SessionCreated,
        Kind::SessionRevoked,
        Kind::LoginFailed,
        Kind::TwoFactorEnabled,
        Kind::TwoFactorDisabled,
        Kind::RecoveryCodesRegenerated,
        Kind::PasskeyAdded,
        Kind::PasskeyRemoved,
        Kind::OauthLinked,
        Kind::OauthUnlinked,
        Kind::WebhookEndpointCreated,
        Kind::SessionReauthenticated,
        Kind::UserBanned,
        Kind::UserUnbanned,
        Kind::UserRolesChanged,
        Kind::ImpersonationStarted,
        Kind::ImpersonationEnded,
        Kind::UserResetLinkSent,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::UserCreated => "user.created",
            Kind::UserEmailVerified => "user.email_verified",
            Kind::UserPasswordChanged => "user.password_changed",
            Kind::UserPasswordReset => "user.password_reset",
            Kind::UserUpdated => "user.updated",
            Kind::UserDeleted => "user.deleted",
            Kind::SessionCreated => "session.created",
            Kind::SessionRevoked => "session.revoked",
            Kind::LoginFailed => "login.failed",
            Kind::TwoFactorEnabled => "two_factor.enabled",
            Kind::TwoFactorDisabled => "two_factor.disabled",
            Kind::RecoveryCodesRegenerated => "recovery_codes.regenerated",
            Kind::PasskeyAdded => "passkey.added",
            Kind::PasskeyRemoved => "passkey.removed",
            Kind::OauthLinked => "oauth.linked",
            Kind::OauthUnlinked => "oauth.unlinked",
            Kind::WebhookEndpointCreated => "webhook.endpoint_created",
            Kind::SessionReauthenticated => "session.reauthenticated",
            Kind::UserBanned => "user.banned",
            Kind::UserUnbanned => "user.unbanned",
            Kind::UserRolesChanged => "user.roles_changed",
            Kind::ImpersonationStarted => "impersonation.started",
            Kind::ImpersonationEnded => "impersonation.ended",
            Kind::UserResetLinkSent => "user.reset_link_sent",
        }
    }

    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|kind| kind.as_str() == name)
    }
}

/// Why a session ended (`session.revoked`'s `reason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    /// `logout`.
    SignedOut,
    /// `revokeSession` or `revokeOtherSessions`, from another session.
    Revoked,
    /// Beyond `AUTHGATE_MAX_SESSIONS_PER_USER`: the oldest ended.
    Limit,
    /// The password changed or was reset, or two-factor turned on or off.
    CredentialsChanged,
    /// The address was claimed by the owner who proved it (a squatter's sessions).
    Claimed,
    /// The account was deleted.
    Deleted,
    /// An admin banned the account.
    Banned,
    /// An admin ended them (`revokeUserSessions`, `resetUserTwoFactor`).
    Admin,
}

impl Ended {
    fn as_str(self) -> &'static str {
        match self {
            Ended::SignedOut => "signed_out",
            Ended::Revoked => "revoked",
            Ended::Limit => "limit",
            Ended::CredentialsChanged => "credentials_changed",
            Ended::Claimed => "claimed",
            Ended::Deleted => "deleted",
            Ended::Banned => "banned",
            Ended::Admin => "admin",
        }
    }
}

/// One event about to be written.
#[derive(Debug)]
#[must_use = "an event is written only by `record`"]
pub(crate) struct Event {
    kind: Kind,
    subject: Option<Uuid>,
    actor: Option<Uuid>,
    /// The admin acting as the user, when done in an impersonation.
    impersonator: Option<Uuid>,
    session: Option<Uuid>,
    data: Map<String, Value>,
}

impl Event {
    /// An event about `subject`, done by them (`by` says otherwise).
    pub(crate) fn new(kind: Kind, subject: Uuid) -> Self {
        Self {
            kind,
            subject: Some(subject),
            actor: Some(subject),
            impersonator: None,
            session: None,
            data: Map::new(),
        }
    }

    /// The server did it (nobody was signed in: a mailed link, a provider's
    /// callback for a new account, the session limit).
    pub(crate) fn by_server(mut self) -> Self {
        self.actor = None;
        self
    }

    /// Done by `actor` (an admin), not the subject.
    pub(crate) fn by(mut self, actor: Uuid) -> Self {
        self.actor = Some(actor);
        self
    }

    /// Done in an impersonation by `admin` (`None`: not one).
    pub(crate) fn impersonated_by(mut self, admin: Option<Uuid>) -> Self {
        self.impersonator = admin;
        self
    }

    /// About no user (an endpoint added): only the audit log shows it.
    pub(crate) fn about_nobody(mut self) -> Self {
        self.subject = None;
        self
    }

    /// The session the event is about (a new or ended one), or that acted.
    pub(crate) fn session(mut self, id: Uuid) -> Self {
        self.session = Some(id);
        self
    }

    /// A detail: an id, a name, a count. Never a secret.
    pub(crate) fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.data.insert(key.to_owned(), value.into());
        self
    }

    /// `session.revoked` for `session_id` of `user_id`, ended for `why`.
    pub(crate) fn session_ended(user_id: Uuid, session_id: Uuid, why: Ended) -> Self {
        Self::new(Kind::SessionRevoked, user_id).session(session_id).with("reason", why.as_str())
    }

    /// Writes the event through `conn` (the change's transaction).
    pub(crate) async fn record(
        self,
        conn: &impl ConnectionTrait,
        auth: &AuthContext,
        origin: &ClientMeta,
    ) -> Result<(), AuthError> {
        let now = auth.clock.now();
        let row = events::ActiveModel {
            kind: Set(self.kind.as_str().to_owned()),
            occurred_at: Set(now),
            last_at: Set(now),
            count: Set(1),
            actor_id: Set(self.actor),
            impersonator_id: Set(self.impersonator),
            subject_user_id: Set(self.subject),
            session_id: Set(self.session),
            ip_address: Set(origin.ip_address.clone()),
            user_agent: Set(origin.user_agent.clone()),
            request_id: Set(origin.request_id.clone()),
            data: Set(Value::Object(self.data).to_string()),
            ..Default::default()
        };
        // Without RETURNING: nobody reads the row back.
        events::Entity::insert(row).exec_without_returning(conn).await?;
        Ok(())
    }

    /// Deletes the session this event is about (of its subject) and records
    /// the event, in one statement: one round trip, atomic as every
    /// statement is, where a transaction took four (sign-out is the busiest
    /// change there is; measured). PostgreSQL deletes in a `WITH` and
    /// inserts what it deleted; SQLite inserts the event from the session's
    /// row and its trigger `events_end_session` deletes the session
    /// (migration 14). Whether the session was there: nothing is recorded
    /// when it was not.
    pub(crate) async fn record_deleting_session(
        self,
        conn: &impl ConnectionTrait,
        auth: &AuthContext,
        origin: &ClientMeta,
    ) -> Result<bool, AuthError> {
        const POSTGRES: &str = "WITH gone AS (DELETE FROM sessions WHERE id = $1 AND user_id = $2 RETURNING id, user_id) \
             INSERT INTO events (type, occurred_at, last_at, count, actor_id, subject_user_id, session_id, \
             ip_address, user_agent, request_id, data) \
             SELECT $3, $4, $4, 1, $5, gone.user_id, gone.id, $6, $7, $8, $9 FROM gone";
        const SQLITE: &str = "INSERT INTO events (type, occurred_at, last_at, count, actor_id, subject_user_id, \
             session_id, ip_address, user_agent, request_id, data) \
             SELECT ?3, ?4, ?4, 1, ?5, user_id, id, ?6, ?7, ?8, ?9 FROM sessions WHERE id = ?1 AND user_id = ?2";
        let (Some(session), Some(subject)) = (self.session, self.subject) else {
            return Err(AuthError::internal("ending a session", "the event names no session or user"));
        };
        let values: [sea_orm::Value; 9] = [
            session.into(),
            subject.into(),
            self.kind.as_str().into(),
            auth.clock.now().into(),
            self.actor.into(),
            origin.ip_address.clone().into(),
            origin.user_agent.clone().into(),
            origin.request_id.clone().into(),
            Value::Object(self.data).to_string().into(),
        ];
        let backend = conn.get_database_backend();
        let sql = if backend == sea_orm::DbBackend::Postgres { POSTGRES } else { SQLITE };
        let statement = sea_orm::Statement::from_sql_and_values(backend, sql, values);
        Ok(conn.execute(statement).await?.rows_affected() > 0)
    }
}

/// Records the end of each of `user_id`'s sessions `ids` (deleted in the
/// same transaction), done by the user themselves unless `Ended::Limit`.
pub(crate) async fn sessions_ended(
    conn: &impl ConnectionTrait,
    auth: &AuthContext,
    user_id: Uuid,
    ids: &[Uuid],
    why: Ended,
    origin: &ClientMeta,
) -> Result<(), AuthError> {
    let actor = if why == Ended::Limit { None } else { Some(user_id) };
    sessions_ended_by(conn, auth, user_id, ids, why, actor, origin).await
}

/// `sessions_ended`, done by `actor` (an admin; `None`: the server).
pub(crate) async fn sessions_ended_by(
    conn: &impl ConnectionTrait,
    auth: &AuthContext,
    user_id: Uuid,
    ids: &[Uuid],
    why: Ended,
    actor: Option<Uuid>,
    origin: &ClientMeta,
) -> Result<(), AuthError> {
    for id in ids {
        let mut event = Event::session_ended(user_id, *id, why);
        event.actor = actor;
        event.record(conn, auth, origin).await?;
    }
    Ok(())
}

/// Records the end of the impersonation `session_id` of `owner` (run by
/// `impersonator`): the session's end for `why`, then `impersonation.ended`,
/// both done by `actor` (`None`: the server).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn impersonation_ended(
    conn: &impl ConnectionTrait,
    auth: &AuthContext,
    owner: Uuid,
    session_id: Uuid,
    impersonator: Option<Uuid>,
    actor: Option<Uuid>,
    why: Ended,
    origin: &ClientMeta,
) -> Result<(), AuthError> {
    let mut ended = Event::session_ended(owner, session_id, why).impersonated_by(impersonator);
    let mut end =
        Event::new(Kind::ImpersonationEnded, owner).impersonated_by(impersonator).session(session_id);
    ended.actor = actor;
    end.actor = actor;
    ended.record(conn, auth, origin).await?;
    end.record(conn, auth, origin).await
}

/// Refused sign-ins of one account are counted into one row per window:
/// a flood of wrong passwords costs one row per 15 minutes, not one per
/// attempt (the limiter bounds the attempts themselves).
pub(crate) const FAILURE_WINDOW_SECS: i64 = 15 * 60;

/// Refusals counted into one row at most; the next starts a new row, so
/// webhooks and live subscribers hear of a continuing attack.
const MERGED: i32 = 10;

/// Records a refused sign-in of `user` (an existing account): counted
/// into the account's row of the current window, or a new row. In the
/// background (one at a time: two at once would each start the window's
/// row), after the answer: a wrong password for an existing account must
/// not take longer than one for an unknown address (the write would tell
/// them apart). Where it came from is left out while nobody has proved the
/// address: the account may be a squatter's, and the refused attempts may
/// be the owner's.
pub(crate) fn sign_in_refused(
    auth: &AuthContext,
    user: &entity::users::Model,
    method: &'static str,
    origin: &ClientMeta,
) {
    let origin = if user.email_verified { origin.clone() } else { ClientMeta::default() };
    let (worker, user_id) = (auth.clone(), user.id);
    // Never waited for: a full queue (a flood of refusals faster than the
    // database takes them) must not slow the answer for existing accounts.
    let Some(slot) = auth.jobs.try_reserve(crate::jobs::Lane::Record) else {
        tracing::warn!(%user_id, "refused sign-in not recorded: the record's queue is full");
        return;
    };
    slot.run(async move {
        if let Err(e) = count_refusal(&worker, user_id, method, &origin).await {
            e.report();
        }
    });
}

async fn count_refusal(
    auth: &AuthContext,
    user_id: Uuid,
    method: &str,
    origin: &ClientMeta,
) -> Result<(), AuthError> {
    use sea_orm::sea_query::Expr;
    let now = auth.clock.now();
    let window_start = window_start(now);
    let counted = events::Entity::update_many()
        .col_expr(events::Column::Count, Expr::col(events::Column::Count).add(1))
        .col_expr(events::Column::LastAt, Expr::value(now))
        .filter(events::Column::SubjectUserId.eq(user_id))
        .filter(events::Column::Kind.eq(Kind::LoginFailed.as_str()))
        .filter(events::Column::OccurredAt.gte(window_start))
        .filter(events::Column::Count.lt(MERGED))
        .exec(&auth.db)
        .await?;
    if counted.rows_affected == 0 {
        Event::new(Kind::LoginFailed, user_id)
            .by_server()
            .with("method", method)
            .record(&auth.db, auth, origin)
            .await?;
    }
    Ok(())
}

fn window_start(now: DateTime<Utc>) -> DateTime<Utc> {
    let secs = now.timestamp();
    DateTime::from_timestamp(secs - secs.rem_euclid(FAILURE_WINDOW_SECS), 0).unwrap_or(now)
}
