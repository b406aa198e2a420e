//! The operator's commands that read or change the event record and the
//! webhooks (`authgate events …`, `authgate webhooks …`): the command line
//! is the operator, so nothing here asks for a permission.

use domain::{
    AuthContext, ClientMeta,
    access::{Alg, keys},
    config::{AdminCommand, EventsCommand, KeysCommand, WebhooksCommand},
    events, webhooks,
};

/// `authgate admin grant|revoke <email> <role>`, `authgate admin list`.
/// A running server counts a grant or revoke on the caller's next request
/// (permissions are read from the database; the tokens' `roles` claim
/// within the session cache's lifetime).
pub async fn admin(auth: &AuthContext, command: AdminCommand) -> anyhow::Result<()> {
    let fail = |e: domain::error::AuthError| anyhow::anyhow!("{e}");
    match command {
        AdminCommand::Grant { email, role } => {
            let changed =
                domain::admin::grant_from_command_line(auth, &email, &role, true).await.map_err(fail)?;
            println!(
                "{}",
                if changed {
                    format!("{email} now holds {role}")
                } else {
                    format!("{email} already holds {role}")
                }
            );
        }
        AdminCommand::Revoke { email, role } => {
            let changed =
                domain::admin::grant_from_command_line(auth, &email, &role, false).await.map_err(fail)?;
            println!(
                "{}",
                if changed {
                    format!("{email} no longer holds {role}")
                } else {
                    format!("{email} did not hold {role}")
                }
            );
        }
        AdminCommand::List => {
            for (email, role) in domain::admin::holders(auth).await.map_err(fail)? {
                println!("{email}\t{role}");
            }
        }
    }
    Ok(())
}

pub async fn keys(auth: &AuthContext, command: KeysCommand) -> anyhow::Result<()> {
    let fail = |e: domain::error::AuthError| anyhow::anyhow!("{e}");
    match command {
        KeysCommand::List => {
            for (key, state) in keys::list(auth).await.map_err(fail)? {
                println!(
                    "{}	{}	{}	{}	signs from {}",
                    key.kid,
                    key.alg.as_str(),
                    key.generation,
                    state.as_str(),
                    key.signs_from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                );
            }
        }
        KeysCommand::Rotate { alg } => {
            let algs = match alg {
                Some(name) => {
                    vec![Alg::parse(&name).ok_or_else(|| anyhow::anyhow!("--alg: ES256 or RS256"))?]
                }
                None => keys::algorithms(auth),
            };
            // Each algorithm on its own: one already rotating does not stop the others.
            let mut under_way = Vec::new();
            for alg in algs {
                match keys::rotate(auth, alg).await.map_err(fail)? {
                    Some(kid) => println!(
                        "{} key {kid} published; it signs from {} s from now",
                        alg.as_str(),
                        keys::PUBLISH_LEAD.as_secs()
                    ),
                    None => under_way.push(alg.as_str()),
                }
            }
            anyhow::ensure!(
                under_way.is_empty(),
                "a rotation is under way for {} (a key is published and not signing yet): see `authgate keys list`",
                under_way.join(", ")
            );
        }
        KeysCommand::Revoke { kid } => {
            anyhow::ensure!(
                keys::revoke(auth, &kid).await.map_err(fail)?,
                "no key {kid} that is not revoked"
            );
            keys::ensure(auth).await.map_err(fail)?;
            println!("key {kid} revoked");
        }
    }
    Ok(())
}

pub async fn events(auth: &AuthContext, command: EventsCommand) -> anyhow::Result<()> {
    let EventsCommand::Export { since } = command;
    let since = events::read::parse_since(&since, auth.clock.now())?;
    let mut out = std::io::stdout().lock();
    let mut failed = None;
    events::read::since(auth, since, 1000, |page| {
        use std::io::Write;
        for event in page {
            if let Err(e) = writeln!(out, "{}", events::read::export_line(&event)) {
                failed = Some(e);
                return false;
            }
        }
        true
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    match failed {
        // A closed pipe (`| head`) is the reader's choice, not a failure.
        Some(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

pub async fn webhooks(auth: &AuthContext, command: WebhooksCommand) -> anyhow::Result<()> {
    let fail = |e: domain::error::AuthError| anyhow::anyhow!("{e}");
    match command {
        WebhooksCommand::Add { url, events } => {
            let created =
                webhooks::create(auth, &url, events, None, &ClientMeta::default()).await.map_err(fail)?;
            println!("endpoint {}", created.endpoint.id);
            println!("secret {}", secrecy::ExposeSecret::expose_secret(&created.secret));
        }
        WebhooksCommand::List => {
            for e in webhooks::list(auth).await.map_err(fail)? {
                let types = if e.event_types.is_empty() { "*".to_owned() } else { e.event_types.join(",") };
                let state = match (e.enabled, e.disabled_reason) {
                    (true, _) => "enabled".to_owned(),
                    (false, reason) => format!("disabled ({})", reason.unwrap_or_default()),
                };
                println!("{}\t{}\t{types}\t{state}", e.id, e.url);
            }
        }
        WebhooksCommand::Failed => {
            for d in webhooks::failed(auth, 1000).await.map_err(fail)? {
                let status = d.last_status.map(|s| s.to_string()).unwrap_or_else(|| "-".into());
                let error = d.last_error.unwrap_or_default();
                println!(
                    "{}\t{}\tevt_{}\t{} attempts\t{status}\t{error}",
                    d.id, d.endpoint_id, d.event_id, d.attempts
                );
            }
        }
        WebhooksCommand::Replay { endpoint, delivery } => {
            let replayed = webhooks::replay(auth, endpoint, delivery).await.map_err(fail)?;
            println!("{replayed} deliveries queued again");
        }
        WebhooksCommand::Enable { id } => {
            anyhow::ensure!(webhooks::enable(auth, id).await.map_err(fail)?, "no webhook endpoint {id}");
            println!("endpoint {id} enabled");
        }
    }
    Ok(())
}
