//! Which addresses an outgoing HTTP request may reach (server-side request forgery
//! rules), shared by HTTP targets (worker) and notifications (scheduler).
//!
//! Always refused: link-local addresses (169.254.0.0/16, fe80::/10: cloud metadata
//! services live there), other known metadata addresses, unspecified, multicast,
//! broadcast and reserved ranges. Refused unless the admin sets
//! `JOBCENTER_HTTP_ALLOW_PRIVATE=true`: loopback, RFC 1918, CGNAT (100.64.0.0/10) and
//! unique-local IPv6 (fc00::/7). Every address a name resolves to is checked, and the
//! caller connects to the checked address itself (no second resolution to rebind).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Public,
    Private,
    Forbidden(&'static str),
}

pub fn classify(ip: IpAddr) -> Class {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Class {
    let [a, b, c, d] = ip.octets();
    match (a, b, c, d) {
        (169, 254, _, _) => Class::Forbidden("link-local (cloud metadata)"),
        (100, 100, 100, 200) => Class::Forbidden("cloud metadata"),
        (0, _, _, _) => Class::Forbidden("unspecified"),
        (192, 0, 0, _) => Class::Forbidden("IETF protocol assignments"),
        (198, 18..=19, _, _) => Class::Forbidden("benchmarking"),
        (224..=255, _, _, _) => Class::Forbidden("multicast, broadcast or reserved"),
        (127, _, _, _) | (10, _, _, _) | (192, 168, _, _) => Class::Private,
        (172, 16..=31, _, _) | (100, 64..=127, _, _) => Class::Private,
        _ => Class::Public,
    }
}

fn classify_v6(ip: Ipv6Addr) -> Class {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    let segments = ip.segments();
    // IPv4-compatible addresses (::a.b.c.d, deprecated) reach the IPv4 address on some
    // stacks, and nothing legitimate uses them: refused, loopback `::1` aside.
    if segments[..6] == [0, 0, 0, 0, 0, 0] && !ip.is_loopback() && !ip.is_unspecified() {
        return Class::Forbidden("an IPv4-compatible address");
    }
    // The local-use NAT64 prefix may translate to anything, private ranges included.
    if segments[..3] == [0x64, 0xff9b, 1] {
        return Class::Forbidden("local-use NAT64 (64:ff9b:1::/48)");
    }
    // NAT64 (64:ff9b::/96) embeds an IPv4 address.
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let [a, b] = segments[6].to_be_bytes();
        let [c, d] = segments[7].to_be_bytes();
        return classify_v4(Ipv4Addr::new(a, b, c, d));
    }
    if ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
        return Class::Forbidden("cloud metadata");
    }
    match segments[0] {
        _ if ip.is_unspecified() => Class::Forbidden("unspecified"),
        _ if ip.is_loopback() => Class::Private,
        s if s & 0xffc0 == 0xfe80 => Class::Forbidden("link-local (cloud metadata)"),
        s if s & 0xff00 == 0xff00 => Class::Forbidden("multicast"),
        s if s & 0xfe00 == 0xfc00 => Class::Private,
        _ => Class::Public,
    }
}

/// What `classify` calls `Forbidden`, as CIDR ranges, for rules kept outside Rust (the
/// sandbox's firewall); a unit test holds the two in step.
pub const FORBIDDEN_V4: &[&str] = &[
    "169.254.0.0/16",
    "100.100.100.200/32",
    "0.0.0.0/8",
    "192.0.0.0/24",
    "198.18.0.0/15",
    "224.0.0.0/3",
];
/// What `classify` calls `Private`, as CIDR ranges.
pub const PRIVATE_V4: &[&str] = &[
    "127.0.0.0/8",
    "10.0.0.0/8",
    "192.168.0.0/16",
    "172.16.0.0/12",
    "100.64.0.0/10",
];
/// (The firewall refuses all of `::/96`, so `::1` too: loopback is no use to a sandbox.)
pub const FORBIDDEN_V6: &[&str] = &[
    "fd00:ec2::254/128",
    "::/96",
    "64:ff9b:1::/48",
    "fe80::/10",
    "ff00::/8",
];
pub const PRIVATE_V6: &[&str] = &["::1/128", "fc00::/7"];

/// Ok when `ip` may be reached; Err names why not.
pub fn check(ip: IpAddr, allow_private: bool) -> Result<(), String> {
    match classify(ip) {
        Class::Public => Ok(()),
        Class::Private if allow_private => Ok(()),
        Class::Private => Err(format!(
            "{ip} is a private address (allowed only with JOBCENTER_HTTP_ALLOW_PRIVATE=true)"
        )),
        Class::Forbidden(why) => Err(format!("{ip} is {why}: always refused")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(text: &str) -> Class {
        classify(text.parse().unwrap())
    }

    #[test]
    fn address_rules() {
        for forbidden in [
            "169.254.169.254",
            "169.254.0.1",
            "100.100.100.200",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "fe80::1",
            "fd00:ec2::254",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "::",
            "ff02::1",
            "::a9fe:a9fe",
            "::808:808",
            "64:ff9b:1::a00:1",
            "192.0.0.170",
            "198.18.0.1",
            "198.19.255.255",
        ] {
            assert!(
                matches!(class(forbidden), Class::Forbidden(_)),
                "{forbidden}"
            );
        }
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "::1",
            "fd12::1",
            "::ffff:10.0.0.1",
        ] {
            assert_eq!(class(private), Class::Private, "{private}");
        }
        for public in ["8.8.8.8", "172.32.0.1", "100.128.0.1", "2606:4700::1111"] {
            assert_eq!(class(public), Class::Public, "{public}");
        }
        assert!(check("127.0.0.1".parse().unwrap(), true).is_ok());
        assert!(check("127.0.0.1".parse().unwrap(), false).is_err());
        assert!(check("169.254.169.254".parse().unwrap(), true).is_err());
    }

    /// The first and last address of every listed range classify as the list says.
    #[test]
    fn the_cidr_lists_match_classify() {
        fn ends(cidr: &str) -> (IpAddr, IpAddr) {
            let (addr, len) = cidr.split_once('/').unwrap();
            let len: u32 = len.parse().unwrap();
            match addr.parse::<IpAddr>().unwrap() {
                IpAddr::V4(a) => {
                    let host = u32::MAX.checked_shr(len).unwrap_or(0);
                    let first = u32::from(a) & !host;
                    (
                        Ipv4Addr::from(first).into(),
                        Ipv4Addr::from(first | host).into(),
                    )
                }
                IpAddr::V6(a) => {
                    let host = u128::MAX.checked_shr(len).unwrap_or(0);
                    let first = u128::from(a) & !host;
                    (
                        Ipv6Addr::from(first).into(),
                        Ipv6Addr::from(first | host).into(),
                    )
                }
            }
        }
        for (list, private) in [
            (FORBIDDEN_V4, false),
            (FORBIDDEN_V6, false),
            (PRIVATE_V4, true),
            (PRIVATE_V6, true),
        ] {
            for cidr in list {
                let (first, last) = ends(cidr);
                for ip in [first, last] {
                    let class = classify(ip);
                    if private {
                        assert_eq!(class, Class::Private, "{cidr}: {ip}");
                    } else {
                        assert!(matches!(class, Class::Forbidden(_)), "{cidr}: {ip}");
                    }
                }
            }
        }
    }
}
