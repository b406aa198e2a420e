//! Real SMTP delivery: a tiny SMTP sink on loopback receives what authgate
//! sends through lettre.

use std::sync::{Arc, Mutex};

use serde_json::json;
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::TcpListener,
};

use crate::common::{TestApp, decode_quoted_printable, token_in};

#[derive(Default, Debug, Clone)]
pub struct Received {
    /// `AUTH` lines, as sent (credentials in base64).
    pub auth: Vec<String>,
    pub rcpt: Vec<String>,
    pub data: String,
}

/// Accepts SMTP sessions and records each message; takes any credentials
/// (`AUTH PLAIN` with the initial response) and answers 250 to the rest.
pub async fn smtp_sink() -> (u16, Arc<Mutex<Vec<Received>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let inbox = Arc::new(Mutex::new(Vec::new()));
    let store = inbox.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let store = store.clone();
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read).lines();
                write.write_all(b"220 sink ESMTP\r\n").await.ok()?;
                let mut current = Received::default();
                while let Ok(Some(line)) = lines.next_line().await {
                    let upper = line.to_ascii_uppercase();
                    let reply: &[u8] = if upper.starts_with("EHLO") {
                        b"250-sink\r\n250-AUTH PLAIN\r\n250 8BITMIME\r\n"
                    } else if upper.starts_with("AUTH ") {
                        current.auth.push(line.clone());
                        b"235 accepted\r\n"
                    } else if upper.starts_with("RCPT TO:") {
                        current.rcpt.push(line[8..].trim().trim_matches(['<', '>']).to_owned());
                        b"250 ok\r\n"
                    } else if upper == "DATA" {
                        write.write_all(b"354 go ahead\r\n").await.ok()?;
                        while let Ok(Some(data)) = lines.next_line().await {
                            if data == "." {
                                break;
                            }
                            current.data.push_str(&data);
                            current.data.push_str("\r\n");
                        }
                        store.lock().unwrap().push(std::mem::take(&mut current));
                        b"250 queued\r\n"
                    } else if upper == "QUIT" {
                        write.write_all(b"221 bye\r\n").await.ok()?;
                        return Some(());
                    } else {
                        b"250 ok\r\n"
                    };
                    write.write_all(reply).await.ok()?;
                }
                Some(())
            });
        }
    });
    (port, inbox)
}

#[tokio::test]
async fn verification_mail_goes_out_over_smtp() {
    let (port, inbox) = smtp_sink().await;
    let app = TestApp::sqlite_with(|c| {
        c.smtp_host = Some("127.0.0.1".into());
        c.smtp_port = port;
        c.smtp_tls = domain::config::SmtpTls::None;
        c.app_url = "https://app.example.com/".into();
    })
    .await;
    app.register("smtp@example.com", "a fine password").await;
    let mut received = None;
    for _ in 0..100 {
        if let Some(first) = inbox.lock().unwrap().first().cloned() {
            received = Some(first);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let received = received.expect("a message reached the SMTP sink within 5 s");
    assert_eq!(received.rcpt, ["smtp@example.com"]);
    let message = decode_quoted_printable(&received.data);
    assert!(message.contains("Subject: Confirm your email address"), "{message}");
    let token = token_in(&message);
    assert!(message.contains(&format!("https://app.example.com/verify-email?token={token}")), "{message}");
    let verified = app
        .gql("mutation($t: String!) { verifyEmail(token: $t) { emailVerified } }", json!({ "t": token }))
        .await;
    assert_eq!(verified.body["data"]["verifyEmail"]["emailVerified"], true, "{}", verified.body);
    assert!(app.outbox.path().read_dir().unwrap().next().is_none(), "nothing went to the outbox");
}
