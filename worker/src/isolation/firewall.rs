//! `network: "outbound"`: runs share the host's network namespace, and an nftables
//! table refuses what the HTTP targets' address rules refuse (core's `ssrf.rs`) to
//! every socket owned by a uid of this worker's sandbox block. Set once at start-up,
//! it costs a run nothing. The host's DNS servers stay reachable on port 53 even when
//! they sit on a private address, or nothing could resolve a name.

use jobcenter_core::ssrf;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::process::{Command, Stdio};

/// The table of the worker's uid block `first..=last`.
pub fn table_name(first: u32) -> String {
    format!("jobcenter_sandbox_{first}")
}

/// The nftables script that (re)defines the table.
pub fn script(first: u32, last: u32, allow_private: bool, resolvers: &[IpAddr]) -> String {
    let table = table_name(first);
    let who = format!("meta skuid {first}-{last}");
    let mut rules = Vec::new();
    for dns in resolvers {
        let family = if dns.is_ipv4() { "ip" } else { "ip6" };
        for proto in ["udp", "tcp"] {
            rules.push(format!(
                "{who} {family} daddr {dns} {proto} dport 53 accept"
            ));
        }
    }
    let mut lists = vec![(ssrf::FORBIDDEN_V4, false), (ssrf::FORBIDDEN_V6, true)];
    if !allow_private {
        lists.push((ssrf::PRIVATE_V4, false));
        lists.push((ssrf::PRIVATE_V6, true));
    }
    for (list, v6) in lists {
        let family = if v6 { "ip6" } else { "ip" };
        rules.push(format!(
            "{who} {family} daddr {{ {} }} reject with icmpx type admin-prohibited",
            list.join(", ")
        ));
        if !v6 {
            // The same IPv4 ranges reached through the NAT64 prefix.
            let images: Vec<String> = list.iter().map(|cidr| nat64(cidr)).collect();
            rules.push(format!(
                "{who} ip6 daddr {{ {} }} reject with icmpx type admin-prohibited",
                images.join(", ")
            ));
        }
    }
    format!(
        "table inet {table}\ndelete table inet {table}\ntable inet {table} {{\n  chain output {{\n    type filter hook output priority 0; policy accept;\n    {}\n  }}\n}}\n",
        rules.join("\n    ")
    )
}

/// `a.b.c.d/n` as its image in 64:ff9b::/96.
fn nat64(cidr: &str) -> String {
    let (addr, len) = cidr.split_once('/').expect("a CIDR");
    let v4: Ipv4Addr = addr.parse().expect("an IPv4 address");
    let len: u32 = len.parse().expect("a prefix length");
    let [a, b, c, d] = v4.octets();
    format!(
        "64:ff9b::{:x}:{:x}/{}",
        u16::from_be_bytes([a, b]),
        u16::from_be_bytes([c, d]),
        96 + len
    )
}

/// The name servers of `/etc/resolv.conf` that the rules would otherwise refuse.
pub fn private_resolvers() -> Vec<IpAddr> {
    let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    text.lines()
        .filter_map(|line| line.trim().strip_prefix("nameserver"))
        .filter_map(|rest| rest.trim().parse::<IpAddr>().ok())
        .filter(|ip| ssrf::classify(*ip) != ssrf::Class::Public)
        .collect()
}

/// Loads the table with `nft -f -`.
pub fn install(script: &str) -> io::Result<()> {
    let nft = ["/usr/sbin/nft", "/sbin/nft"]
        .into_iter()
        .find(|path| std::path::Path::new(path).exists())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "nft (Debian package nftables) is not installed",
            )
        })?;
    let mut child = Command::new(nft)
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(script.as_bytes())?;
    let output = child.wait_with_output()?;
    if !output.status.success() {
        return Err(io::Error::other(format!(
            "nft refused the rules: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(())
}

/// Removes the table (at shutdown; a crashed worker's table is replaced at next start).
pub fn remove(first: u32) {
    let script = format!("delete table inet {}\n", table_name(first));
    let _ = install(&script);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rules_name_the_block_and_keep_dns() {
        let dns: IpAddr = "10.255.255.53".parse().unwrap();
        let rules = script(2_000_000_000, 2_000_065_535, false, &[dns]);
        assert!(rules.contains(
            "meta skuid 2000000000-2000065535 ip daddr 10.255.255.53 udp dport 53 accept"
        ));
        assert!(rules.contains("127.0.0.0/8"));
        assert!(rules.contains("64:ff9b::a9fe:0/112"), "{rules}");
        let open = script(2_000_000_000, 2_000_065_535, true, &[]);
        assert!(!open.contains("127.0.0.0/8") && open.contains("169.254.0.0/16"));
    }
}
