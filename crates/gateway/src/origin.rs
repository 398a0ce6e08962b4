//! Which pages may open a socket with the session cookie (cross-site WebSocket
//! hijacking guard). Browsers send cookies by host alone, whatever the port or scheme,
//! so a page anywhere else on the same host would otherwise ride the user's session:
//! the page's origin must match an allowed origin exactly, scheme and port included.

use url::Url;

/// One entry of `CHAT_ALLOWED_ORIGINS`, normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AllowedOrigin {
    scheme: String,
    /// `None` for `*`: the host the browser connected the socket to (its `Host`).
    host: Option<String>,
    port: u16,
}

/// The origins allowed to use the cookie, parsed once at start.
#[derive(Debug, Clone, Default)]
pub struct OriginPolicy {
    allowed: Vec<AllowedOrigin>,
}

/// An entry of `CHAT_ALLOWED_ORIGINS` that is not an origin.
#[derive(Debug, thiserror::Error)]
#[error("CHAT_ALLOWED_ORIGINS entry {0:?} is not an origin (scheme://host[:port], host may be *)")]
pub struct InvalidOrigin(String);

/// Where the wildcard host stands while the entry goes through the URL parser.
const OWN_HOST: &str = "own-host.invalid";

impl OriginPolicy {
    /// `entries` like `https://chat.example.com` or `http://*:8080` (a page on the
    /// gateway's own host, port 8080: the API's page when the host name varies).
    pub fn parse(entries: &[String]) -> Result<Self, InvalidOrigin> {
        let allowed = entries
            .iter()
            .map(|e| e.trim())
            .filter(|e| !e.is_empty())
            .map(|entry| {
                let invalid = || InvalidOrigin(entry.to_owned());
                let (scheme, rest) = entry.split_once("://").ok_or_else(invalid)?;
                let wildcard = rest == "*" || rest.starts_with("*:");
                let spelled = if wildcard {
                    format!("{scheme}://{OWN_HOST}{}", &rest[1..])
                } else {
                    entry.to_owned()
                };
                let url = Url::parse(&spelled).map_err(|_| invalid())?;
                if !matches!(url.scheme(), "http" | "https") {
                    return Err(invalid());
                }
                let port = url.port_or_known_default().ok_or_else(invalid)?;
                let host = url.host_str().ok_or_else(invalid)?;
                if url.path() != "/" || url.query().is_some() || !url.username().is_empty() {
                    return Err(invalid());
                }
                Ok(AllowedOrigin {
                    scheme: url.scheme().to_owned(),
                    host: (!wildcard).then(|| host.to_owned()),
                    port,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { allowed })
    }

    pub fn is_empty(&self) -> bool {
        self.allowed.is_empty()
    }

    /// Whether a page of `origin` (the `Origin` header) may use the cookie on a socket
    /// the browser opened to `host` (the `Host` header).
    pub fn allows(&self, origin: Option<&str>, host: Option<&str>) -> bool {
        let Some(origin) = origin.and_then(|o| Url::parse(o).ok()) else {
            return false;
        };
        let (Some(origin_host), Some(origin_port)) =
            (origin.host_str(), origin.port_or_known_default())
        else {
            return false;
        };
        // The host name the socket was opened to, without its port.
        let own_host = host
            .and_then(|h| Url::parse(&format!("http://{h}")).ok())
            .and_then(|u| u.host_str().map(str::to_owned));
        self.allowed.iter().any(|a| {
            a.scheme == origin.scheme()
                && a.port == origin_port
                && match &a.host {
                    Some(h) => h == origin_host,
                    None => own_host.as_deref() == Some(origin_host),
                }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(entries: &[&str]) -> OriginPolicy {
        OriginPolicy::parse(&entries.iter().map(|e| e.to_string()).collect::<Vec<_>>())
            .expect("valid")
    }

    #[test]
    fn exact_origins_need_their_scheme_and_port() {
        let p = policy(&["https://Chat.Example.com/"]);
        let host = Some("gw.example.com");
        assert!(p.allows(Some("https://chat.example.com"), host));
        assert!(p.allows(Some("https://chat.example.com:443"), host));
        assert!(!p.allows(Some("http://chat.example.com"), host));
        assert!(!p.allows(Some("https://chat.example.com:8443"), host));
        assert!(!p.allows(Some("https://chat.example.com.evil.example"), host));
        assert!(!p.allows(Some("null"), host));
        assert!(!p.allows(None, host));
    }

    #[test]
    fn a_wildcard_host_is_the_sockets_own_host_on_that_port() {
        let p = policy(&["http://*:8080"]);
        assert!(p.allows(Some("http://127.0.0.1:8080"), Some("127.0.0.1:8081")));
        assert!(p.allows(Some("http://localhost:8080"), Some("LOCALHOST:8082")));
        assert!(p.allows(Some("http://[::1]:8080"), Some("[::1]:8081")));
        assert!(!p.allows(Some("http://127.0.0.1:5555"), Some("127.0.0.1:8081")));
        assert!(!p.allows(Some("https://127.0.0.1:8080"), Some("127.0.0.1:8081")));
        assert!(!p.allows(Some("http://localhost:8080"), Some("127.0.0.1:8081")));
        assert!(!p.allows(Some("http://127.0.0.1:8080"), None));
    }

    #[test]
    fn nothing_is_allowed_by_default_and_garbage_is_refused_at_start() {
        let p = policy(&[]);
        assert!(p.is_empty());
        assert!(!p.allows(Some("http://127.0.0.1:8080"), Some("127.0.0.1:8081")));
        for bad in [
            "chat.example.com",
            "https://",
            "https://a.example/path",
            "ftp://*",
        ] {
            assert!(
                OriginPolicy::parse(&[bad.to_owned()]).is_err(),
                "{bad} was accepted"
            );
        }
    }
}
