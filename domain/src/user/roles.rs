//! Who may do what beyond their own account: permissions as
//! `resource:action`. Roles arrive with the admin issue; until then no
//! account holds any permission, and what needs one (the audit log,
//! webhooks) is done from the command line, which is the operator.

use entity::users;

/// A permission an admin field needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permission {
    /// `auditEvents`.
    AuditRead,
    /// `createWebhookEndpoint`.
    WebhookManage,
}

impl Permission {
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::AuditRead => "audit:read",
            Permission::WebhookManage => "webhook:manage",
        }
    }
}

/// Whether `user` holds `permission`: nobody does yet (no roles exist).
pub fn holds(_user: &users::Model, _permission: Permission) -> bool {
    false
}
