//! Networks in settings: a CIDR network (`10.0.0.0/8`, `::1/128`, a bare address for
//! one host), and the comma-separated lists of them that settings take. It never reads
//! a variable but through `environment`.

use std::net::IpAddr;

use super::environment::{comma_list, Environment};

/// A network in CIDR notation (`10.0.0.0/8`, `::1/128`); a bare address is one host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(text: &str) -> Option<Self> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address.parse::<IpAddr>().ok()?, Some(prefix)),
            None => (text.parse::<IpAddr>().ok()?, None),
        };
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(prefix) => prefix.parse::<u8>().ok().filter(|bits| *bits <= max)?,
            None => max,
        };
        Some(Cidr {
            network: address,
            prefix,
        })
    }

    /// Whether `address` lies in this network (an IPv4-mapped IPv6 address counts as
    /// its IPv4 address).
    pub fn contains(&self, address: IpAddr) -> bool {
        let address = match address {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
            v4 => v4,
        };
        match (self.network, address) {
            (IpAddr::V4(network), IpAddr::V4(address)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(network) & mask == u32::from(address) & mask
            }
            (IpAddr::V6(network), IpAddr::V6(address)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(network) & mask == u128::from(address) & mask
            }
            _ => false,
        }
    }
}

/// The networks listed in `name` (`None` when unset; `none` is the empty list), each bad
/// item named as a problem.
pub fn read(env: &mut Environment<'_>, name: &str) -> Option<Vec<Cidr>> {
    let list = env.text(name)?;
    if list.trim().eq_ignore_ascii_case("none") {
        return Some(Vec::new());
    }
    let mut networks = Vec::new();
    for item in comma_list(&list) {
        match Cidr::parse(item) {
            Some(cidr) => networks.push(cidr),
            None => env.problem(
                name,
                format_args!(
                    "must be addresses or CIDR networks, or none (got {})",
                    crate::ingest::client_text::quoted(item)
                ),
            ),
        }
    }
    Some(networks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_contain_their_addresses_only() {
        let net = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(net.contains("10.1.200.3".parse().unwrap()));
        assert!(!net.contains("10.2.0.1".parse().unwrap()));
        assert!(net.contains("::ffff:10.1.0.9".parse().unwrap()));
        let host = Cidr::parse("::1").unwrap();
        assert!(host.contains("::1".parse().unwrap()));
        assert!(!host.contains("127.0.0.1".parse().unwrap()));
        assert!(Cidr::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
        assert!(Cidr::parse("10.0.0.0/33").is_none());
        assert!(Cidr::parse("example.com").is_none());
    }
}
