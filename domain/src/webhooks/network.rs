//! Where a webhook may go: public addresses only, unless the operator
//! allows a network (`AUTHGATE_WEBHOOK_ALLOW_NETWORKS`). An endpoint's
//! name is resolved for every connection and only permitted addresses are
//! dialled (the resolver below is the HTTP client's own): a name that
//! resolves to a public address when the endpoint is added and to
//! 127.0.0.1 later (DNS rebinding) still reaches nothing inside.

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

use ipnet::IpNet;

/// Networks no webhook reaches by default: this host, private networks,
/// link-local (cloud metadata at 169.254.169.254 and fd00:ec2::254
/// included), shared address space (CGNAT), documentation and benchmark
/// ranges, multicast and reserved space, and IPv6 forms that embed an
/// IPv4 address (NAT64, 6to4, Teredo).
const REFUSED: [&str; 28] = [
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.88.99.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "::/128",
    "::1/128",
    "::ffff:0:0:0/96",
    "fec0::/10",
    "64:ff9b::/96",
    "64:ff9b:1::/48",
    "100::/64",
    "2001::/32",
    "2001:db8::/32",
    "2002::/16",
    "fc00::/7",
    "fe80::/10",
    "ff00::/8",
];

/// `REFUSED`, parsed once for the process (every delivery checks it).
static REFUSED_NETS: std::sync::LazyLock<Vec<IpNet>> =
    std::sync::LazyLock::new(|| REFUSED.iter().filter_map(|net| net.parse().ok()).collect());

/// Which addresses webhooks may reach.
#[derive(Clone, Debug)]
pub struct Reach {
    allowed: Arc<Vec<IpNet>>,
}

impl Reach {
    pub fn new(allowed: &[IpNet]) -> Self {
        Self { allowed: Arc::new(allowed.to_vec()) }
    }

    /// Whether `ip` may be dialled. IPv4-mapped IPv6 (`::ffff:127.0.0.1`)
    /// is judged as the IPv4 address it is.
    pub fn permits(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        if self.allowed.iter().any(|net| net.contains(&ip)) {
            return true;
        }
        // The IPv4-compatible form (`::127.0.0.1`) is deprecated but still routes somewhere.
        if let IpAddr::V6(v6) = ip
            && v6.segments()[..6] == [0; 6]
            && !v6.is_unspecified()
            && !v6.is_loopback()
        {
            return false;
        }
        !REFUSED_NETS.iter().any(|net| net.contains(&ip))
    }
}

impl reqwest::dns::Resolve for Reach {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let reach = self.clone();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let permitted: Vec<SocketAddr> =
                found.into_iter().filter(|addr| reach.permits(addr.ip())).collect();
            if permitted.is_empty() {
                return Err(
                    Box::new(Refused(name.as_str().to_owned())) as Box<dyn std::error::Error + Send + Sync>
                );
            }
            Ok(Box::new(permitted.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// A name that resolves to no permitted address.
#[derive(Debug, thiserror::Error)]
#[error("{0} resolves to no public address (allow its network with AUTHGATE_WEBHOOK_ALLOW_NETWORKS)")]
pub struct Refused(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_are_reached_by_default() {
        let reach = Reach::new(&[]);
        for refused in [
            "127.0.0.1",
            "10.1.2.3",
            "172.31.255.255",
            "192.168.0.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "::",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "fd00:ec2::254",
            "fe80::1",
            "64:ff9b::7f00:1",
            "2002:7f00:1::",
            "::ffff:0:7f00:1",
            "fec0::1",
            "224.0.0.1",
            "255.255.255.255",
        ] {
            assert!(!reach.permits(refused.parse().unwrap()), "{refused}");
        }
        for public in ["93.184.215.14", "1.1.1.1", "2606:4700:4700::1111", "::ffff:1.1.1.1"] {
            assert!(reach.permits(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn every_refused_network_parses() {
        assert_eq!(REFUSED_NETS.len(), REFUSED.len());
    }

    #[test]
    fn the_operator_may_allow_a_network() {
        let reach = Reach::new(&["127.0.0.0/8".parse().unwrap()]);
        assert!(reach.permits("127.0.0.1".parse().unwrap()));
        assert!(reach.permits("::ffff:127.0.0.1".parse().unwrap()), "mapped, judged as IPv4");
        assert!(!reach.permits("10.0.0.1".parse().unwrap()), "only that network");
    }
}
