//! The accept loop: axum's router on hyper, with the limits `axum::serve`
//! does not offer. A client that sends half a header, idles on a kept-alive
//! connection, or trickles its body is cut off within the timeouts, and at
//! most `max_connections` are open at once, so slow clients cannot exhaust
//! file descriptors or memory.

use std::{convert::Infallible, future::Future, sync::Arc, time::Duration};

use axum::{Router, extract::ConnectInfo, http::Request};
use hyper::{body::Incoming, server::conn::http1};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
    service::TowerToHyperService,
};
use tokio::{net::TcpListener, sync::Semaphore};
use tower::ServiceExt;

/// Connection limits (from the configuration).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// The whole request head must arrive within this, counted from when the
    /// server starts waiting for it: also how long a kept-alive connection
    /// may sit idle between requests.
    pub header_read_timeout: Duration,
    /// Connections open at once; further clients wait in the listen backlog.
    pub max_connections: usize,
    /// On shutdown, how long open requests may still run.
    pub shutdown_timeout: Duration,
}

impl Limits {
    pub fn from_config(config: &crate::config::Config) -> Self {
        Self {
            header_read_timeout: config.header_read_timeout,
            max_connections: config.max_connections,
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
    let open = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
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
        let _ = stream.set_nodelay(true);
        let service = router.clone().map_request(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            request.map(axum::body::Body::new)
        });
        let service = TowerToHyperService::new(service.map_err(|e: Infallible| match e {}));
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.shutdown_timeout, graceful.shutdown()).await.is_err() {
        tracing::warn!(grace = ?limits.shutdown_timeout, "requests still in flight after the grace period; stopping anyway");
    }
}
