//! Address rules for sign-in: CIDR blocks (IPv4 and IPv6) allowed for the
//! whole server (`[sso] allowed_networks`) and per app (`--allow-ip`). An
//! empty list allows every address.

use std::net::IpAddr;

/// One CIDR block, e.g. `203.0.113.0/24` or `2001:db8::/32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

/// Why a text is not an address block; the message names the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    #[error("{0:?} is not an address block such as 203.0.113.0/24")]
    NotAnAddress(String),
    #[error("{text:?}: the prefix must be 0 to {max}")]
    Prefix { text: String, max: u8 },
    #[error("{text:?}: host bits are set; did you mean {first}?")]
    HostBits { text: String, first: String },
}

impl Cidr {
    /// Parses `ADDRESS/PREFIX` (or a bare address, meaning that address
    /// only). The address must be the block's first: `10.1.2.3/8` is
    /// refused as a likely typo.
    pub fn parse(text: &str) -> Result<Cidr, CidrError> {
        let text = text.trim();
        let (address, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let network: IpAddr = address
            .parse()
            .map_err(|_| CidrError::NotAnAddress(text.to_owned()))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => {
                p.parse::<u8>()
                    .ok()
                    .filter(|p| *p <= max)
                    .ok_or_else(|| CidrError::Prefix {
                        text: text.to_owned(),
                        max,
                    })?
            }
        };
        let cidr = Cidr { network, prefix };
        if cidr.masked(network) != bits(network) {
            return Err(CidrError::HostBits {
                text: text.to_owned(),
                first: cidr.first(),
            });
        }
        Ok(cidr)
    }

    fn masked(&self, address: IpAddr) -> u128 {
        let width: u32 = if address.is_ipv4() { 32 } else { 128 };
        let shift = width.saturating_sub(u32::from(self.prefix));
        if shift >= 128 {
            0
        } else {
            (bits(address) >> shift) << shift
        }
    }

    fn first(&self) -> String {
        let masked = self.masked(self.network);
        let address = match self.network {
            IpAddr::V4(_) => {
                IpAddr::from(std::net::Ipv4Addr::from(u32::try_from(masked).unwrap_or(0)))
            }
            IpAddr::V6(_) => IpAddr::from(std::net::Ipv6Addr::from(masked)),
        };
        format!("{address}/{}", self.prefix)
    }

    /// Whether `address` (IPv4-mapped IPv6 counts as IPv4) is inside.
    pub fn contains(&self, address: IpAddr) -> bool {
        let address = address.to_canonical();
        address.is_ipv4() == self.network.is_ipv4()
            && self.masked(address) == self.masked(self.network)
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

fn bits(address: IpAddr) -> u128 {
    match address {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// Whether `address` passes `rules` (any block matches, or there are none).
/// An address that does not parse passes only an empty list.
pub fn allowed(rules: &[Cidr], address: &str) -> bool {
    if rules.is_empty() {
        return true;
    }
    match address.parse::<IpAddr>() {
        Ok(ip) => rules.iter().any(|r| r.contains(ip)),
        Err(_) => false,
    }
}

/// The address of the client behind `peer`: `peer` itself unless it is a
/// trusted proxy, in which case `X-Forwarded-For` (all its fields, joined
/// in order) is read from the right, skipping trusted proxies, and the
/// first address that is not one is the client. An entry that is not an
/// address ends the walk at the last trusted hop, so nothing a client
/// writes into the header is believed unless a trusted proxy put it
/// there.
pub fn client_address(peer: IpAddr, forwarded_for: &[&str], trusted: &[Cidr]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|t| t.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let mut client = peer;
    let hops = forwarded_for
        .iter()
        .flat_map(|field| field.split(','))
        .rev();
    for hop in hops {
        let Some(ip) = forwarded_hop(hop.trim()) else {
            break;
        };
        let ip = canonical(ip);
        client = ip;
        if !is_trusted(ip) {
            break;
        }
    }
    client
}

/// One `X-Forwarded-For` entry: an address, as some proxies write it with
/// a port (`192.0.2.7:51234`, `[2001:db8::1]:443`) or in brackets.
fn forwarded_hop(text: &str) -> Option<IpAddr> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = text.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        let port_ok = after.is_empty()
            || after
                .strip_prefix(':')
                .is_some_and(|p| p.parse::<u16>().is_ok());
        return port_ok.then(|| inside.parse::<IpAddr>().ok()).flatten();
    }
    let (host, port) = text.split_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
pub fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// Parses a list of blocks, naming the first bad one.
pub fn parse_all(texts: &[String]) -> Result<Vec<Cidr>, CidrError> {
    texts.iter().map(|t| Cidr::parse(t)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_addresses_count_only_from_trusted_proxies() {
        let trusted = parse_all(&["10.0.0.0/8".into()]).unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // A client talking to us directly cannot claim another address.
        assert_eq!(
            client_address(ip("198.51.100.7"), &["203.0.113.9"], &trusted),
            ip("198.51.100.7")
        );
        // Through our proxy: the address it saw.
        assert_eq!(
            client_address(ip("10.0.0.2"), &["203.0.113.9"], &trusted),
            ip("203.0.113.9")
        );
        // A forged entry on the left is not believed; the proxy's is.
        assert_eq!(
            client_address(ip("10.0.0.2"), &["1.2.3.4, 203.0.113.9"], &trusted),
            ip("203.0.113.9")
        );
        // Two trusted hops, with the header split over two fields.
        assert_eq!(
            client_address(ip("10.0.0.2"), &["203.0.113.9", "10.0.0.3"], &trusted),
            ip("203.0.113.9")
        );
        // Garbage ends the walk at the last trusted hop.
        assert_eq!(
            client_address(ip("10.0.0.2"), &["203.0.113.9, <script>"], &trusted),
            ip("10.0.0.2")
        );
        // No header from a trusted proxy: the proxy.
        assert_eq!(
            client_address(ip("10.0.0.2"), &[], &trusted),
            ip("10.0.0.2")
        );
        // None trusted: the header is ignored.
        assert_eq!(
            client_address(ip("10.0.0.2"), &["203.0.113.9"], &[]),
            ip("10.0.0.2")
        );
        assert_eq!(
            client_address(ip("10.0.0.2"), &["::ffff:203.0.113.9"], &trusted),
            ip("203.0.113.9")
        );
        // Proxies that write ports or brackets.
        for written in ["203.0.113.9:51234", "[203.0.113.9]"] {
            assert_eq!(
                client_address(ip("10.0.0.2"), &[written], &trusted),
                ip("203.0.113.9"),
                "{written}"
            );
        }
        assert_eq!(
            client_address(ip("10.0.0.2"), &["[2001:db8::7]:443"], &trusted),
            ip("2001:db8::7")
        );
        assert_eq!(
            client_address(ip("10.0.0.2"), &["203.0.113.9:port"], &trusted),
            ip("10.0.0.2")
        );
    }

    #[test]
    fn blocks_match_their_addresses_only() {
        let office = Cidr::parse("203.0.113.0/24").unwrap();
        assert!(office.contains("203.0.113.77".parse().unwrap()));
        assert!(office.contains("::ffff:203.0.113.9".parse().unwrap()));
        assert!(!office.contains("203.0.114.1".parse().unwrap()));
        assert!(!office.contains("2001:db8::1".parse().unwrap()));
        let v6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains("2001:db8:ffff::1".parse().unwrap()));
        assert!(!v6.contains("2001:db9::1".parse().unwrap()));
        let everything = Cidr::parse("0.0.0.0/0").unwrap();
        assert!(everything.contains("198.51.100.1".parse().unwrap()));
        let host = Cidr::parse("192.0.2.5").unwrap();
        assert!(host.contains("192.0.2.5".parse().unwrap()));
        assert!(!host.contains("192.0.2.6".parse().unwrap()));
    }

    #[test]
    fn bad_blocks_are_refused_with_the_reason() {
        assert!(
            Cidr::parse("10.1.2.3/8")
                .unwrap_err()
                .to_string()
                .contains("10.0.0.0/8")
        );
        assert!(
            Cidr::parse("10.0.0.0/33")
                .unwrap_err()
                .to_string()
                .contains("0 to 32")
        );
        assert!(
            Cidr::parse("office")
                .unwrap_err()
                .to_string()
                .contains("not an address block")
        );
        assert!(Cidr::parse("::/129").is_err());
    }

    #[test]
    fn an_empty_list_allows_everyone() {
        assert!(allowed(&[], "198.51.100.1"));
        let rules = parse_all(&["10.0.0.0/8".into()]).unwrap();
        assert!(allowed(&rules, "10.9.8.7"));
        assert!(!allowed(&rules, "192.0.2.1"));
        assert!(!allowed(&rules, "not-an-ip"));
    }
}
