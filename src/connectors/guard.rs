//! Refuses addresses partners must not make the service contact: loopback,
//! private, link-local and reserved ones, whether a URL names them or a name
//! resolves to them.

use std::net::{IpAddr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

use super::error::ConnectorError;

const REFUSED: &str = "resolves only to loopback, private, link-local or reserved addresses";

/// Globally routable unicast addresses only.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            let [first, second, ..] = a.octets();
            !(a.is_private()
                || a.is_loopback()
                || a.is_link_local()
                || a.is_unspecified()
                || a.is_broadcast()
                || a.is_multicast()
                || a.is_documentation()
                || first == 0
                || first >= 240
                || (first == 100 && (64..128).contains(&second))
                || (first == 198 && (18..20).contains(&second))
                || (first == 192 && second == 0 && a.octets()[2] == 0)
                || (first == 192 && second == 88 && a.octets()[2] == 99))
        }
        IpAddr::V6(a) => {
            let s = a.segments();
            let embedded = |hi: u16, lo: u16| {
                IpAddr::V4(std::net::Ipv4Addr::from(
                    (u32::from(hi) << 16) | u32::from(lo),
                ))
            };
            if let Some(v4) = a.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            // Forms that carry an IPv4 address and can reach it: judge that address.
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0]
                || (s[..6] == [0, 0, 0, 0, 0, 0] && !a.is_loopback() && !a.is_unspecified())
            {
                return is_public(embedded(s[6], s[7])); // NAT64, IPv4-compatible
            }
            if s[0] == 0x2002 {
                return is_public(embedded(s[1], s[2])); // 6to4
            }
            !(a.is_loopback()
                || a.is_unspecified()
                || a.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] & 0xffc0) == 0xfec0
                || (s[0] == 0x2001 && s[1] == 0x0db8)
                || (s[0] == 0x2001 && s[1] == 0)) // Teredo
        }
    }
}

/// A URL whose host is a literal address: checked here (the resolver never sees it).
pub fn check_url(system: &'static str, url: &Url) -> Result<(), ConnectorError> {
    let ip = match url.host() {
        Some(Host::Ipv4(a)) => IpAddr::V4(a),
        Some(Host::Ipv6(a)) => IpAddr::V6(a),
        _ => return Ok(()),
    };
    if is_public(ip) {
        Ok(())
    } else {
        Err(ConnectorError::NotAllowed {
            system,
            reason: format!("{ip} is a loopback, private, link-local or reserved address"),
        })
    }
}

/// Resolves names, keeping only public addresses: a name that resolves to
/// our own network (or is rebound to it) is refused at connect time.
pub struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = found.into_iter().filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                return Err(Box::new(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!("{host} {REFUSED}"),
                )) as _);
            }
            Ok(Box::new(public.into_iter()) as Addrs)
        })
    }
}

/// The resolver's refusal, found in a transport error's causes.
pub fn refusal(error: &reqwest::Error) -> Option<String> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        if let Some(io) = e
            .downcast_ref::<std::io::Error>()
            .filter(|io| io.kind() == std::io::ErrorKind::PermissionDenied)
        {
            return Some(io.to_string());
        }
        cause = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_globally_routable_addresses_are_public() {
        let cases = [
            ("8.8.8.8", true),
            ("93.184.216.34", true),
            ("2606:4700::1111", true),
            ("127.0.0.1", false),
            ("10.1.2.3", false),
            ("172.16.0.1", false),
            ("192.168.1.1", false),
            ("169.254.169.254", false),
            ("100.64.0.1", false),
            ("0.0.0.0", false),
            ("255.255.255.255", false),
            ("224.0.0.1", false),
            ("192.0.2.1", false),
            ("::1", false),
            ("::", false),
            ("fc00::1", false),
            ("fd12:3456::1", false),
            ("fe80::1", false),
            ("ff02::1", false),
            ("::ffff:127.0.0.1", false),
            ("::ffff:8.8.8.8", true),
            ("2001:db8::1", false),
            ("64:ff9b::7f00:1", false),
            ("64:ff9b::808:808", true),
            ("::7f00:1", false),
            ("2002:7f00:1::1", false),
            ("2002:808:808::1", true),
            ("2001:0:1::1", false),
            ("fec0::1", false),
            ("198.18.0.1", false),
            ("192.0.0.8", false),
            ("192.88.99.1", false),
        ];
        for (ip, public) in cases {
            assert_eq!(is_public(ip.parse().expect("ip")), public, "{ip}");
        }
    }

    #[test]
    fn literal_private_hosts_are_refused_before_any_connection() {
        let exotic = [
            "http://2130706433/",
            "http://0x7f.1/",
            "http://0177.0.0.1/",
            "http://127.1/",
            "http://[::ffff:7f00:1]/",
            "http://[0:0:0:0:0:0:0:1]/",
        ];
        for url in [
            "http://127.0.0.1:9",
            "http://[::1]/",
            "https://169.254.169.254/latest",
            "http://10.0.0.5:6379",
        ]
        .into_iter()
        .chain(exotic)
        {
            assert!(
                check_url("test", &Url::parse(url).expect("url")).is_err(),
                "{url}"
            );
        }
        for url in [
            "https://eu2-cloud.acronis.com",
            "http://8.8.8.8",
            "http://localhost:8080",
        ] {
            assert!(
                check_url("test", &Url::parse(url).expect("url")).is_ok(),
                "{url}: names are the resolver's job"
            );
        }
    }

    #[tokio::test]
    async fn a_name_that_resolves_to_loopback_is_refused_by_the_resolver() {
        let result = PublicOnly
            .resolve("localhost".parse::<Name>().expect("name"))
            .await;
        let error = result.err().expect("refused");
        assert!(error.to_string().contains(REFUSED), "{error}");
    }
}
