//! SMTP delivery with lettre (rustls), pooled connections.

use std::time::Duration;

use lettre::{
    AsyncSmtpTransport, AsyncTransport, Tokio1Executor, message::Mailbox,
    transport::smtp::authentication::Credentials,
};

use super::{Email, MailError, Mailer, build};
use crate::config::{Config, ExposeSecret, SmtpTls};

pub struct Smtp {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Smtp {
    pub(crate) fn new(config: &Config, host: &str) -> anyhow::Result<Self> {
        let builder = match config.smtp_tls {
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
            SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)?,
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host)?,
        };
        let mut builder = builder.port(config.smtp_port).timeout(Some(Duration::from_secs(15)));
        if let Some(user) = &config.smtp_username {
            builder = builder.credentials(Credentials::new(
                user.clone(),
                config.smtp_password.as_ref().map(|p| p.expose_secret().to_owned()).unwrap_or_default(),
            ));
        }
        tracing::info!(host, port = config.smtp_port, tls = ?config.smtp_tls, "mail goes out over SMTP");
        Ok(Self { transport: builder.build(), from: config.mail_from.parse()? })
    }
}

#[async_trait::async_trait]
impl Mailer for Smtp {
    async fn deliver(&self, email: &Email) -> Result<(), MailError> {
        let message = build(&self.from, email)?;
        self.transport.send(message).await.map_err(|e| MailError::Smtp(e.to_string()))?;
        tracing::info!(to = %email.to, subject = %email.subject, "mail sent");
        Ok(())
    }
}
