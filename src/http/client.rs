//! Who is calling: the client's address and user agent, recorded on sessions.

use std::net::{IpAddr, SocketAddr};

use axum::{
    extract::ConnectInfo,
    http::{HeaderMap, header, request::Parts},
};
use domain::{AuthContext, ClientMeta};
use ipnet::IpNet;

pub fn meta(parts: &Parts, auth: &AuthContext) -> ClientMeta {
    let trusted = &auth.config.trusted_proxies;
    let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| addr.ip());
    let user_agent = parts
        .headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| ua.chars().take(512).collect());
    ClientMeta {
        ip_address: client_ip(peer, &parts.headers, trusted).map(|ip| ip.to_string()),
        user_agent,
        request_id: parts
            .headers
            .get(&super::observe::REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        device: super::cookie::find_device(&parts.headers, auth),
        sign_in_binding: super::cookie::read(
            &parts.headers,
            super::cookie::sign_in_binding_name(auth.config.cookie_secure()),
        )
        .map(Into::into),
    }
}

/// The peer address; or, when the peer is a trusted proxy, the first address
/// in `X-Forwarded-For`, read from the right, that is not a trusted proxy.
/// Anything left of it was written by the client and is never believed; a
/// hop that does not parse ends the walk there (the peer is used), since
/// nothing to its left can be trusted either. Addresses are canonical:
/// IPv4-mapped IPv6 is IPv4, so trusted IPv4 ranges match it.
pub fn client_ip(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = peer?.to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .map(|v| v.to_str().unwrap_or(""))
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut last = peer;
    for hop in hops.iter().rev() {
        let Some(ip) = parse_hop(hop) else { return Some(peer) };
        if !is_trusted(&ip) {
            return Some(ip);
        }
        last = ip;
    }
    // Every hop is a trusted proxy: the left-most is the client.
    Some(last)
}

/// `203.0.113.7`, `203.0.113.7:4711`, `2001:db8::1` or `[2001:db8::1]:4711`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .or_else(|_| hop.parse::<SocketAddr>().map(|addr| addr.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
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
        assert_eq!(
            client_ip(proxy, &xff("1.1.1.1, 10.0.0.9"), &trusted),
            Some("1.1.1.1".parse().unwrap()),
            "an untrusted left-most hop is the client"
        );
        assert_eq!(
            client_ip(proxy, &xff("10.0.0.7, 10.0.0.9"), &trusted),
            Some("10.0.0.7".parse().unwrap()),
            "all hops trusted: the left-most one"
        );
    }

    #[test]
    fn a_hop_that_does_not_parse_ends_the_walk_at_the_peer() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let proxy = Some("10.1.2.3".parse().unwrap());
        assert_eq!(client_ip(proxy, &xff("6.6.6.6, unknown, 10.0.0.5"), &trusted), proxy);
        assert_eq!(client_ip(proxy, &xff("6.6.6.6, 198.51.100.7 x"), &trusted), proxy);
        assert_eq!(client_ip(proxy, &xff("6.6.6.6,"), &trusted), proxy, "an empty hop");
    }

    #[test]
    fn hops_with_ports_and_mapped_addresses_are_understood() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let proxy = Some("10.1.2.3".parse().unwrap());
        let v4 = Some("198.51.100.7".parse().unwrap());
        assert_eq!(client_ip(proxy, &xff("198.51.100.7:4711"), &trusted), v4);
        assert_eq!(
            client_ip(proxy, &xff("[2001:db8::7]:4711"), &trusted),
            Some("2001:db8::7".parse().unwrap())
        );
        assert_eq!(client_ip(proxy, &xff("::ffff:198.51.100.7"), &trusted), v4, "mapped hop is IPv4");
        let mapped_proxy = Some("::ffff:10.1.2.3".parse().unwrap());
        assert_eq!(client_ip(mapped_proxy, &xff("198.51.100.7"), &trusted), v4, "mapped peer is trusted");
        let mapped_stranger = Some("::ffff:203.0.113.9".parse().unwrap());
        assert_eq!(
            client_ip(mapped_stranger, &xff("1.1.1.1"), &trusted),
            Some("203.0.113.9".parse().unwrap())
        );
    }
}
