//! Who is calling: the client's address and user agent, recorded on sessions.

use std::net::{IpAddr, SocketAddr};

use axum::{
    extract::ConnectInfo,
    http::{HeaderMap, header, request::Parts},
};
use ipnet::IpNet;

use crate::auth::ClientMeta;

pub fn meta(parts: &Parts, trusted: &[IpNet]) -> ClientMeta {
    let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| addr.ip());
    let user_agent = parts
        .headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| ua.chars().take(512).collect());
    ClientMeta { ip_address: client_ip(peer, &parts.headers, trusted).map(|ip| ip.to_string()), user_agent }
}

/// The peer address; or, when the peer is a trusted proxy, the first address
/// in `X-Forwarded-For`, read from the right, that is not a trusted proxy.
/// Anything left of it was written by the client and is never believed.
pub fn client_ip(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = peer?;
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|hop| hop.trim().parse().ok())
        .collect();
    hops.iter().rev().find(|ip| !is_trusted(ip)).or(hops.first()).copied().or(Some(peer))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xff(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", value.parse().unwrap());
        headers
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let proxy = Some("10.1.2.3".parse().unwrap());
        let stranger = Some("203.0.113.9".parse().unwrap());
        let headers = xff("1.1.1.1, 198.51.100.7, 10.0.0.5");
        assert_eq!(client_ip(stranger, &headers, &trusted), stranger, "untrusted peer: header ignored");
        assert_eq!(client_ip(proxy, &headers, &[]), proxy, "no trusted proxies by default");
        assert_eq!(
            client_ip(proxy, &headers, &trusted),
            Some("198.51.100.7".parse().unwrap()),
            "first untrusted hop from the right; the spoofable left part is ignored"
        );
        assert_eq!(client_ip(proxy, &HeaderMap::new(), &trusted), proxy);
    }
}
