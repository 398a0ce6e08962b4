//! Where user webhooks may point: public addresses only, checked at the moment of
//! connecting.
//!
//! Checking a name and then letting the HTTP client resolve it again leaves a gap: the
//! name can resolve to a public address for the check and to `127.0.0.1` for the call
//! (DNS rebinding). So the client that calls user webhooks resolves names through
//! [`PublicResolver`], which hands it only addresses that pass [`is_public`]: the
//! connection goes to an address that was checked. URLs with an address instead of a
//! name do not resolve at all, so [`check_endpoint`] checks those before the call.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Whether an address is on the public internet: not loopback, private, shared
/// (carrier-grade NAT), link-local, documentation, benchmarking, multicast, reserved or
/// otherwise special-purpose (the IANA registries). IPv4-mapped and -compatible IPv6
/// addresses are judged as the IPv4 address they carry.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => public_v4(v4),
            None => public_v6(v6),
        },
    }
}

fn public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let special = a == 0                               // "this network"
        || a == 10                                     // private
        || (a == 100 && (64..128).contains(&b))        // shared address space (CGN)
        || a == 127                                    // loopback
        || (a == 169 && b == 254)                      // link-local, cloud metadata
        || (a == 172 && (16..32).contains(&b))         // private
        || (a == 192 && b == 0 && c == 0)              // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2)              // documentation
        || (a == 192 && b == 88 && c == 99)            // 6to4 relay anycast
        || (a == 192 && b == 168)                      // private
        || (a == 198 && (b == 18 || b == 19))          // benchmarking
        || (a == 198 && b == 51 && c == 100)           // documentation
        || (a == 203 && b == 0 && c == 113)            // documentation
        || a >= 224; // multicast, reserved, broadcast
    !special
}

fn public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    let special = ip.is_unspecified()
        || ip.is_loopback()
        || s[0..6] == [0, 0, 0, 0, 0, 0]               // IPv4-compatible (deprecated)
        || (s[0] == 0x64 && s[1] == 0xff9b)            // NAT64: reaches IPv4 hosts
        || (s[0] == 0x100 && s[1..4] == [0, 0, 0])     // discard-only
        || (s[0] == 0x2001 && s[1] < 0x200)            // IETF protocol assignments (Teredo…)
        || (s[0] == 0x2001 && s[1] == 0xdb8)           // documentation
        || s[0] == 0x2002                              // 6to4: reaches IPv4 hosts
        || (s[0] & 0xfe00) == 0xfc00                   // unique local
        || (s[0] & 0xffc0) == 0xfe80                   // link-local
        || (s[0] & 0xff00) == 0xff00; // multicast
    !special
}

/// Refuses an endpoint that is not an `http`/`https` URL, or whose host is an address
/// that is not public. (A host name is checked when it is resolved, by the client.)
pub fn check_endpoint(endpoint: &str) -> Result<(), String> {
    let url = reqwest::Url::parse(endpoint).map_err(|e| format!("invalid URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("scheme {} is not allowed", url.scheme()));
    }
    let host = url.host_str().ok_or("the URL has no host")?;
    // The URL parser has normalised addresses already (`2130706433` is `127.0.0.1`);
    // IPv6 ones keep their brackets.
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    let Ok(ip) = literal.parse::<IpAddr>() else {
        return Ok(());
    };
    if is_public(ip) {
        Ok(())
    } else {
        Err(format!("endpoint address {ip} is not allowed"))
    }
}

/// A resolver that only ever yields public addresses; a name with none is an error.
#[derive(Clone, Default)]
pub struct PublicResolver;

impl Resolve for PublicResolver {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| is_public(a.ip()))
                .collect();
            if public.is_empty() {
                let shown: Vec<String> = found.iter().map(|a| a.ip().to_string()).collect();
                return Err(format!(
                    "{host} resolves to no public address ({})",
                    shown.join(", ")
                )
                .into());
            }
            let addrs: Addrs = Box::new(public.into_iter());
            Ok(addrs)
        })
    }
}

/// The client for user webhooks: short timeouts, no redirects (a redirect would be a
/// second, unchecked request), names resolved by [`PublicResolver`].
pub fn public_client() -> reqwest::Client {
    builder()
        .dns_resolver(Arc::new(PublicResolver))
        .build()
        .unwrap_or_default()
}

/// The client for the installation's own webhook (the operator's, so trusted): the
/// same, without the address rule.
pub fn trusted_client() -> reqwest::Client {
    builder().build().unwrap_or_default()
}

fn builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn special_addresses_are_not_public() {
        for s in [
            "127.0.0.1",
            "10.1.2.3",
            "100.64.0.1",
            "100.127.255.254",
            "169.254.169.254",
            "172.16.0.1",
            "192.168.1.1",
            "192.0.0.8",
            "198.18.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::7f00:1",
            "2002:7f00:1::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
            "2001::1",
        ] {
            assert!(!is_public(ip(s)), "{s} must not be public");
        }
        for s in [
            "8.8.8.8",
            "100.128.0.1",
            "172.32.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(is_public(ip(s)), "{s} is public");
        }
    }

    #[test]
    fn endpoints_with_internal_addresses_or_odd_schemes_are_refused() {
        for url in [
            "http://127.0.0.1:9/x",
            "http://[::ffff:127.0.0.1]:9/x",
            "http://[::1]/x",
            "http://169.254.169.254/latest",
            "http://100.64.1.1/",
            "http://2130706433/", // 127.0.0.1 as one number
            "file:///etc/passwd",
            "not a url",
        ] {
            assert!(check_endpoint(url).is_err(), "{url}");
        }
        assert!(check_endpoint("https://hooks.example.com/x").is_ok());
        assert!(check_endpoint("http://8.8.8.8/x").is_ok());
    }

    #[tokio::test]
    async fn names_resolving_to_internal_addresses_are_never_connected_to() {
        let resolved = PublicResolver
            .resolve("localhost".parse().expect("name"))
            .await;
        assert!(resolved.is_err(), "localhost resolves to loopback only");
    }
}
