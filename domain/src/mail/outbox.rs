//! The development mailer: each message becomes an `.eml` file that any
//! mail client opens. The log names the file, never the token inside.

use std::path::PathBuf;

use lettre::message::Mailbox;

use super::{Email, MailError, Mailer, build};
use crate::config::Config;

pub struct Outbox {
    dir: PathBuf,
    from: Mailbox,
}

impl Outbox {
    pub(crate) fn new(config: &Config) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&config.outbox_dir)?;
        tracing::info!(dir = %config.outbox_dir.display(), "no SMTP host set: mail goes to the outbox directory");
        Ok(Self { dir: config.outbox_dir.clone(), from: config.mail_from.parse()? })
    }
}

#[async_trait::async_trait]
impl Mailer for Outbox {
    async fn deliver(&self, email: &Email) -> Result<(), MailError> {
        let message = build(&self.from, email)?;
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.6f");
        let name = format!("{stamp}-{}.eml", uuid::Uuid::new_v4().simple());
        let path = self.dir.join(&name);
        // Write then rename: a reader never sees half a message.
        let partial = self.dir.join(format!(".{name}.part"));
        tokio::fs::write(&partial, message.formatted()).await?;
        tokio::fs::rename(&partial, &path).await?;
        tracing::info!(path = %path.display(), to = %email.to, subject = %email.subject, "mail written to outbox");
        Ok(())
    }
}
