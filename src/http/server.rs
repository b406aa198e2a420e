//! The accept loop: axum's router on hyper, with the limits `axum::serve`
//! does not offer. A client that sends half a header, idles on a kept-alive
//! connection, trickles its body or stops reading its answers is cut off
//! within the timeouts; no connection lives past a maximum age; at most
//! `max_connections` are open at once, and at most
//! `max_connections_per_client` from one client (an IPv4 address, an IPv6
//! /64), so slow clients cannot exhaust file descriptors, memory or the
//! slots everyone else needs.

use std::{
    collections::HashMap,
    convert::Infallible,
    future::Future,
    net::IpAddr,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll, ready},
    time::Duration,
};

use axum::{Router, extract::ConnectInfo, http::Request};
use domain::limits::{client_of, network_of};
use hyper::{body::Incoming, server::conn::http1};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use ipnet::IpNet;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{Semaphore, watch},
    time::Sleep,
};
use tower::ServiceExt;

/// Connection limits (from the configuration).
#[derive(Clone, Debug)]
pub struct Limits {
    /// The whole request head must arrive within this, counted from when the
    /// server starts waiting for it: also how long a kept-alive connection
    /// may sit idle between requests.
    pub header_read_timeout: Duration,
    /// An answer that cannot be written for this long (the client stopped
    /// reading) ends its connection.
    pub write_timeout: Duration,
    /// A connection is asked to close after this (the request in flight
    /// finishes; `shutdown_timeout` later it is closed regardless).
    pub max_connection_age: Duration,
    /// Connections open at once; further clients wait in the listen backlog.
    pub max_connections: usize,
    /// Connections open at once from one client; more are closed at once.
    /// Not applied to the trusted proxies, which carry many clients.
    pub max_connections_per_client: usize,
    /// The same for a network (an IPv4 /24, an IPv6 /48): a site with many
    /// addresses holds no more than this.
    pub max_connections_per_network: usize,
    /// Peers whose connections carry other clients' requests.
    pub trusted_proxies: Vec<IpNet>,
    /// On shutdown, how long open requests may still run.
    pub shutdown_timeout: Duration,
}

impl Limits {
    pub fn from_config(config: &domain::config::Config) -> Self {
        Self {
            header_read_timeout: config.header_read_timeout,
            write_timeout: config.write_timeout,
            max_connection_age: config.max_connection_age,
            max_connections: config.max_connections,
            max_connections_per_client: config.max_connections_per_client,
            max_connections_per_network: config.max_connections_per_network,
            trusted_proxies: config.trusted_proxies.clone(),
            shutdown_timeout: config.shutdown_timeout,
        }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets open
/// requests finish for at most `shutdown_timeout`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send,
) {
    // HTTP/1.1 only: its header timer starts with the connection, so one
    // that sends nothing at all is closed too. (hyper-util's auto builder
    // first reads the HTTP/2 preface without any timer, and h2c, which no
    // browser speaks, would need idle limits hyper does not have. TLS and
    // HTTP/2 end at the proxy in front.)
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout).max_buf_size(64 * 1024);
    let builder = Arc::new(builder);
    let slots = limits.max_connections.max(1);
    let open = Arc::new(Semaphore::new(slots));
    let per_client = PerClient::default();
    let (stop, stopping) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = open.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait, don't spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Canonical: on a dual-stack bind an IPv4 proxy arrives as `::ffff:a.b.c.d`.
        let ip = peer.ip().to_canonical();
        let proxy = limits.trusted_proxies.iter().any(|net| net.contains(&ip));
        let caps = (limits.max_connections_per_client, limits.max_connections_per_network);
        let client_slot = match per_client.take(ip, caps, proxy) {
            Ok(slot) => slot,
            Err(Full { reason, limit }) => {
                // Debug, not info: a client looping on connect must not flood the log (the metric counts).
                tracing::debug!(%peer, limit, reason, "too many connections from one client or network; closed");
                metrics::counter!("authgate_connections_refused_total", "reason" => reason).increment(1);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let service = router.clone().map_request(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            request.map(axum::body::Body::new)
        });
        let service = TowerToHyperService::new(service.map_err(|e: Infallible| match e {}));
        let io = TokioIo::new(WriteDeadline::new(stream, limits.write_timeout));
        let connection = builder.serve_connection(io, service);
        let (mut stopping, limits) = (stopping.clone(), limits.clone());
        tokio::spawn(async move {
            let mut connection = std::pin::pin!(connection);
            let ended = tokio::select! {
                ended = connection.as_mut() => ended,
                () = tokio::time::sleep(limits.max_connection_age) => {
                    tracing::debug!(%peer, "connection reached its maximum age");
                    connection.as_mut().graceful_shutdown();
                    tokio::time::timeout(limits.shutdown_timeout, connection.as_mut()).await.unwrap_or(Ok(()))
                }
                () = async { let _ = stopping.wait_for(|stop| *stop).await; } => {
                    connection.as_mut().graceful_shutdown();
                    connection.as_mut().await
                }
            };
            if let Err(e) = ended {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
            drop((client_slot, permit));
        });
    }
    drop(listener);
    let _ = stop.send(true);
    // Every connection has ended when every slot is free again.
    let all = u32::try_from(slots).unwrap_or(u32::MAX);
    if tokio::time::timeout(limits.shutdown_timeout, open.acquire_many(all)).await.is_err() {
        tracing::warn!(grace = ?limits.shutdown_timeout, "requests still in flight after the grace period; stopping anyway");
    }
}

/// Open connections per client (an IPv4 address, or an IPv6 /64: one host
/// commonly holds a whole /64, as the rate limits assume too) and per
/// network (an IPv4 /24, an IPv6 /48: a site).
#[derive(Clone, Default)]
struct PerClient(Arc<Mutex<HashMap<Key, usize>>>);

/// A client or a network (kept apart: a /64 and its /48 can share an address).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Client(IpAddr),
    Network(IpAddr),
}

/// One connection's place in its client's and its network's count, given
/// back when dropped.
struct ClientSlot {
    table: PerClient,
    counted: Vec<Key>,
}

/// Why a connection was refused: which cap was full (the metric's
/// `reason`), and that cap.
#[derive(Debug)]
struct Full {
    reason: &'static str,
    limit: usize,
}

impl PerClient {
    /// A slot for a new connection from `ip`, unless its client or its
    /// network holds its cap already (`(client, network)`; 0: no cap). A
    /// trusted proxy is not counted.
    fn take(
        &self,
        ip: IpAddr,
        (client_cap, network_cap): (usize, usize),
        proxy: bool,
    ) -> Result<ClientSlot, Full> {
        if proxy {
            return Ok(ClientSlot { table: self.clone(), counted: Vec::new() });
        }
        let keys: Vec<(Key, usize)> =
            [(Key::Client(client_of(ip)), client_cap), (Key::Network(network_of(ip)), network_cap)]
                .into_iter()
                .filter(|(_, cap)| *cap > 0)
                .collect();
        let mut table = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((key, cap)) =
            keys.iter().find(|(key, cap)| table.get(key).is_some_and(|open| open >= cap))
        {
            let reason = match key {
                Key::Client(_) => "per_client",
                Key::Network(_) => "per_network",
            };
            return Err(Full { reason, limit: *cap });
        }
        for (key, _) in &keys {
            *table.entry(*key).or_insert(0) += 1;
        }
        Ok(ClientSlot { table: self.clone(), counted: keys.into_iter().map(|(key, _)| key).collect() })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        if self.counted.is_empty() {
            return;
        }
        let mut table = self.table.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        for key in &self.counted {
            if let Some(open) = table.get_mut(key) {
                *open -= 1;
                if *open == 0 {
                    table.remove(key);
                }
            }
        }
    }
}

/// A socket whose writes must make progress: a write (or flush) that
/// cannot proceed for `timeout` fails with `TimedOut`, which ends the
/// connection. hyper has no write timeout of its own, and a client that
/// pipelines requests and never reads the answers would otherwise hold
/// its connection (and a slot) for ever.
struct WriteDeadline {
    inner: TcpStream,
    timeout: Duration,
    /// Armed while a write waits; disarmed by any progress.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl WriteDeadline {
    fn new(inner: TcpStream, timeout: Duration) -> Self {
        Self { inner, timeout, stalled: None }
    }

    /// After a write that could not proceed: `TimedOut` once it has waited
    /// `timeout` (the sleep wakes the task then, so this is polled again).
    fn waiting(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Error> {
        let timeout = self.timeout;
        let stalled = self.stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        ready!(stalled.as_mut().poll(cx));
        Poll::Ready(std::io::Error::new(std::io::ErrorKind::TimedOut, "the client stopped reading"))
    }

    fn progress<T>(
        &mut self,
        cx: &mut Context<'_>,
        poll: Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        match poll {
            Poll::Ready(done) => {
                self.stalled = None;
                Poll::Ready(done)
            }
            Poll::Pending => self.waiting(cx).map(Err),
        }
    }
}

impl AsyncRead for WriteDeadline {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for WriteDeadline {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.progress(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.progress(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.progress(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.progress(cx, poll)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_is_an_ipv4_address_or_an_ipv6_slash_64() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(client_of(ip("192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(client_of(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(client_of(ip("2001:db8:1:2:ffff::9")), client_of(ip("2001:db8:1:2::1")));
        assert_ne!(client_of(ip("2001:db8:1:3::1")), client_of(ip("2001:db8:1:2::1")));
        assert_eq!(client_of(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
    }

    #[test]
    fn a_client_gets_its_limit_of_slots_and_each_comes_back() {
        let table = PerClient::default();
        let ip: IpAddr = "2001:db8::1".parse().unwrap();
        let neighbour: IpAddr = "2001:db8::2".parse().unwrap();
        let first = table.take(ip, (2, 0), false).expect("one");
        let _second = table.take(neighbour, (2, 0), false).expect("two, from the same /64");
        assert_eq!(
            table.take(ip, (2, 0), false).err().map(|f| f.reason),
            Some("per_client"),
            "a third from the /64"
        );
        assert!(table.take("192.0.2.1".parse().unwrap(), (2, 0), false).is_ok(), "another client is not");
        assert!(table.take(ip, (2, 0), true).is_ok(), "a trusted proxy is not counted");
        assert!(table.take(ip, (0, 0), false).is_ok(), "0: no limit");
        drop(first);
        assert!(table.take(ip, (2, 0), false).is_ok(), "a closed connection gives its slot back");
    }

    #[test]
    fn a_network_gets_its_limit_however_many_clients_it_has() {
        let table = PerClient::default();
        let caps = (2, 3);
        // Subnet 0 of the /48: its /64 and the /48 share an address, counted apart.
        let slots: Vec<_> = ["2001:db8:5::1", "2001:db8:5:1::1", "2001:db8:5:2::1"]
            .iter()
            .map(|ip| table.take(ip.parse().unwrap(), caps, false).expect("under both caps"))
            .collect();
        assert_eq!(
            table.take("2001:db8:5:3::1".parse().unwrap(), caps, false).err().map(|f| (f.reason, f.limit)),
            Some(("per_network", 3)),
            "a fourth /64 of the /48"
        );
        assert!(table.take("2001:db8:6::1".parse().unwrap(), caps, false).is_ok(), "another /48");
        assert!(table.take("192.0.2.9".parse().unwrap(), caps, false).is_ok());
        drop(slots);
        assert!(table.take("2001:db8:5:3::1".parse().unwrap(), caps, false).is_ok(), "slots come back");
        assert_eq!(network_of("192.0.2.77".parse().unwrap()), "192.0.2.0".parse::<IpAddr>().unwrap());
    }
}
