//! Abuse limits: how often an address may try to log in or register, how many REST
//! calls and sends a user may make. Every limit is a Redis bucket ([`chat_bus::Rate`]),
//! so it holds across all replicas of the API and the gateway; a refused call is
//! [`ServiceError::RateLimited`] (429 with `Retry-After`, or a `rate_limited` frame).
//!
//! When Redis does not answer, calls are let through (and the failure logged): Redis
//! being down must not lock everyone out, and the hashing pool still bounds what a flood
//! of logins can cost.

use std::net::IpAddr;
use std::time::Duration;

use chat_bus::Rate;
use chat_domain::UserId;

use crate::{ChatService, ServiceError};

/// The limits, read from flags or environment variables (`N/s`, `N/min`, `N/h`, with an
/// optional `:BURST`).
#[derive(Debug, Clone, clap::Args)]
pub struct LimitSettings {
    /// Login attempts from one client address.
    #[arg(
        long,
        env = "CHAT_LIMIT_LOGIN_PER_ADDRESS",
        default_value = "60/min:30"
    )]
    pub login_per_address: Rate,
    /// Login attempts at one account, from anywhere (online password guessing).
    #[arg(
        long,
        env = "CHAT_LIMIT_LOGIN_PER_ACCOUNT",
        default_value = "10/min:10"
    )]
    pub login_per_account: Rate,
    /// Accounts registered from one client address.
    #[arg(
        long,
        env = "CHAT_LIMIT_REGISTER_PER_ADDRESS",
        default_value = "30/h:10"
    )]
    pub register_per_address: Rate,
    /// REST calls of one user (all replicas together).
    #[arg(long, env = "CHAT_LIMIT_REQUESTS_PER_USER", default_value = "50/s:100")]
    pub requests_per_user: Rate,
    /// Messages one user sends, over REST and every socket together.
    #[arg(long, env = "CHAT_LIMIT_SENDS_PER_USER", default_value = "20/s:40")]
    pub sends_per_user: Rate,
    /// Threads hashing passwords at once (0: one per core). Each hash holds 19 MiB.
    #[arg(long, env = "CHAT_PASSWORD_HASH_THREADS", default_value_t = 0)]
    pub password_hash_threads: usize,
}

/// What a limit is counted against.
enum Bucket<'a> {
    LoginFrom(IpAddr),
    LoginTo(&'a str),
    RegisterFrom(IpAddr),
    Requests(UserId),
    Sends(UserId),
}

impl Bucket<'_> {
    fn key(&self) -> String {
        match self {
            Bucket::LoginFrom(ip) => format!("login-ip:{}", address_key(*ip)),
            Bucket::LoginTo(username) => format!("login-user:{username}"),
            Bucket::RegisterFrom(ip) => format!("register-ip:{}", address_key(*ip)),
            Bucket::Requests(user) => format!("rest:{user}"),
            Bucket::Sends(user) => format!("send:{user}"),
        }
    }
}

/// An IPv6 client is counted by its /64 (one subscriber's whole network), an IPv4 one
/// (or an IPv4-mapped IPv6 one) by its address.
fn address_key(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

impl ChatService {
    async fn take(&self, bucket: Bucket<'_>, rate: Rate) -> Result<(), ServiceError> {
        match self.bus.throttle(&bucket.key(), rate).await {
            Ok(None) => Ok(()),
            Ok(Some(retry_after)) => Err(ServiceError::RateLimited { retry_after }),
            Err(err) => {
                tracing::warn!(error = %err, "rate limit unavailable; letting the call through");
                Ok(())
            }
        }
    }

    /// Before checking a password: counts the attempt against the client's address and
    /// the account (whether or not it exists).
    pub(crate) async fn throttle_login(
        &self,
        from: IpAddr,
        username: &str,
    ) -> Result<(), ServiceError> {
        self.take(Bucket::LoginFrom(from), self.limits.login_per_address)
            .await?;
        self.take(Bucket::LoginTo(username), self.limits.login_per_account)
            .await
    }

    pub(crate) async fn throttle_register(&self, from: IpAddr) -> Result<(), ServiceError> {
        self.take(Bucket::RegisterFrom(from), self.limits.register_per_address)
            .await
    }

    /// One REST call of an authenticated user.
    pub async fn throttle_request(&self, user: UserId) -> Result<(), ServiceError> {
        self.take(Bucket::Requests(user), self.limits.requests_per_user)
            .await
    }

    /// One message send, over REST or a socket.
    pub async fn throttle_send(&self, user: UserId) -> Result<(), ServiceError> {
        self.take(Bucket::Sends(user), self.limits.sends_per_user)
            .await
    }
}

/// Rounds a wait up to whole seconds, for `Retry-After`.
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_share_their_64_and_mapped_ipv4_is_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().expect("ip");
        assert_eq!(address_key(a), address_key(b));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().expect("ip");
        assert_eq!(address_key(mapped), "192.0.2.7");
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(2)), 2);
        assert_eq!(retry_after_secs(Duration::from_millis(2001)), 3);
    }
}
