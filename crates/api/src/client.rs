//! Who is calling, for the rate limits: the client's address, seen through the reverse
//! proxies the operator declared ([`WebSettings::trusted_proxies`]).

use std::net::{IpAddr, Ipv4Addr};

use chat_service::auth::Client;
use poem::Request;

use crate::web::WebSettings;

/// The address a request is counted against. Behind trusted proxies it is the nearest
/// `X-Forwarded-For` hop that is not itself a trusted proxy (the one the outermost
/// trusted proxy saw); a client cannot forge it, because everything to its left is the
/// client's own say.
pub fn client_address(req: &Request) -> IpAddr {
    let peer = req
        .remote_addr()
        .as_socket_addr()
        .map(|a| a.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let Some(web) = req.data::<WebSettings>() else {
        return peer;
    };
    let trusted = |ip: &IpAddr| web.trusted_proxies.iter().any(|net| net.contains(ip));
    if !trusted(&peer) {
        return peer;
    }
    let mut nearest = peer;
    for header in req.headers().get_all("x-forwarded-for").iter().rev() {
        let Ok(list) = header.to_str() else {
            return nearest;
        };
        for hop in list.rsplit(',') {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) if trusted(&ip) => nearest = ip,
                Ok(ip) => return ip,
                // An unparsable hop: stop at the last address we could trust.
                Err(_) => return nearest,
            }
        }
    }
    nearest
}

/// Longest `User-Agent` kept with a session.
const MAX_USER_AGENT: usize = 256;

/// The client of a login: its address, and its `User-Agent` (cut to a sane length).
pub fn client_of(req: &Request) -> Client {
    let user_agent = req
        .headers()
        .get(poem::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| {
            ua.chars()
                .filter(|c| !c.is_control())
                .take(MAX_USER_AGENT)
                .collect()
        });
    Client {
        address: client_address(req),
        user_agent,
    }
}
