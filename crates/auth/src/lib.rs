//! Credentials: argon2 password hashes, JWT access tokens and opaque refresh tokens.
//!
//! - Access tokens are short-lived HS256 JWTs naming the user (`sub`) and the login
//!   session (`sid`); a server that checks the session on each request can revoke them.
//! - Refresh tokens are 256 random bits, shown to the client once; only their SHA-256 is
//!   stored, and they rotate at every use.
//!
//! - Hashing runs on a small pool of its own threads ([`hasher`]), so that memory and
//!   CPU stay bounded under a flood of logins.
//!
//! This crate does no I/O: storing sessions is the store's job, deciding when to check
//! them is the service's.

pub mod hasher;

use std::time::Duration;

use std::cell::RefCell;

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Argon2, Block, Params, Version};
use base64::Engine;
use chat_domain::{SessionId, UserId};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The token is malformed, forged, expired or of the wrong kind.
    #[error("invalid or expired token")]
    InvalidToken,
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("the JWT secret must be at least 32 bytes")]
    WeakSecret,
}

/// Hashes a password with argon2id (the crate's default parameters) and a random salt,
/// as a PHC string. CPU-heavy: call it from a blocking thread (see [`hasher`]).
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    let argon2 = Argon2::default();
    let params = argon2.params().clone();
    let salt_bytes = argon2::password_hash::generate_salt();
    let salt = Salt::new(&salt_bytes).map_err(|e| AuthError::Hash(e.to_string()))?;
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    with_memory(params.block_count(), |memory| {
        argon2.hash_password_into_with_memory(password.as_bytes(), &salt, &mut out, memory)
    })
    .map_err(|e| AuthError::Hash(e.to_string()))?;
    let hash = PasswordHash {
        algorithm: argon2::Algorithm::Argon2id.ident(),
        version: Some(Version::default().into()),
        params: ParamsString::try_from(&params).map_err(|e| AuthError::Hash(e.to_string()))?,
        salt: Some(salt),
        hash: Some(Output::new(&out).map_err(|e| AuthError::Hash(e.to_string()))?),
    };
    Ok(hash.to_string())
}

/// Checks a password against a stored hash (constant-time comparison). A malformed hash
/// counts as a mismatch. CPU-heavy: call it from a blocking thread (see [`hasher`]).
pub fn verify_password(password: &str, hash: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
        return false;
    };
    let Ok(algorithm) = argon2::Algorithm::try_from(parsed.algorithm.as_str()) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from).transpose() {
        Ok(v) => v.unwrap_or_default(),
        Err(_) => return false,
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    // Only our own hashes are stored; a hash demanding more memory than ours is not one.
    if params.m_cost() > Params::DEFAULT_M_COST * 4 {
        return false;
    }
    let argon2 = Argon2::new(algorithm, version, params.clone());
    let mut out = vec![0u8; expected.len()];
    let computed = with_memory(params.block_count(), |memory| {
        argon2.hash_password_into_with_memory(password.as_bytes(), salt, &mut out, memory)
    });
    computed.is_ok() && Output::new(&out).is_ok_and(|o| &o == expected)
}

thread_local! {
    /// The argon2 working memory of this thread, allocated once and reused. Allocating
    /// 19 MiB (64-byte aligned) per hash made glibc keep every one of them: RSS grew by
    /// 19 MiB with each login and never came back.
    static MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

fn with_memory<T>(blocks: usize, f: impl FnOnce(&mut [Block]) -> T) -> T {
    MEMORY.with(|memory| {
        let mut memory = memory.borrow_mut();
        if memory.len() < blocks {
            memory.resize(blocks, Block::default());
        }
        f(&mut memory[..blocks])
    })
}

/// A hash that no password matches, verified when the username is unknown so that login
/// takes as long for unknown users as for wrong passwords.
pub fn dummy_hash() -> &'static str {
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc"
}

/// Claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: UserId,
    pub sid: SessionId,
    pub iat: i64,
    pub exp: i64,
    /// Always `"access"`; lets us add other token kinds without confusing them.
    pub typ: String,
}

/// Issues and verifies access tokens.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    pub access_ttl: Duration,
    /// How long a refresh token lives unused; each refresh starts it again.
    pub refresh_ttl: Duration,
    /// How long a session lives at most, however often it is refreshed.
    pub session_max_age: Duration,
}

impl TokenKeys {
    pub fn new(
        secret: &[u8],
        access_ttl: Duration,
        refresh_ttl: Duration,
    ) -> Result<Self, AuthError> {
        if secret.len() < 32 {
            return Err(AuthError::WeakSecret);
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Ok(Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            access_ttl,
            refresh_ttl,
            // Refreshing alone never keeps a session past this; see `with_session_max_age`.
            session_max_age: refresh_ttl.max(Duration::from_secs(90 * 24 * 3600)),
        })
    }

    /// Sets the absolute lifetime of sessions (at least the refresh token's lifetime).
    pub fn with_session_max_age(mut self, max_age: Duration) -> Self {
        self.session_max_age = max_age.max(self.refresh_ttl);
        self
    }

    pub fn issue_access(&self, user: UserId, session: SessionId) -> Result<String, AuthError> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: user,
            sid: session,
            iat: now,
            exp: now + self.access_ttl.as_secs() as i64,
            typ: "access".into(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|_| AuthError::InvalidToken)
    }

    /// The claims of a token this server signed, even if it has expired: enough to know
    /// which session to end at logout, never to grant access.
    pub fn verify_signature_only(&self, token: &str) -> Result<Claims, AuthError> {
        let mut validation = self.validation.clone();
        validation.validate_exp = false;
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map_err(|_| AuthError::InvalidToken)?;
        if data.claims.typ != "access" {
            return Err(AuthError::InvalidToken);
        }
        Ok(data.claims)
    }

    pub fn verify_access(&self, token: &str) -> Result<Claims, AuthError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|_| AuthError::InvalidToken)?;
        if data.claims.typ != "access" {
            return Err(AuthError::InvalidToken);
        }
        Ok(data.claims)
    }
}

/// A new refresh token: (the token for the client, the hash to store).
pub fn new_refresh_token() -> (String, Vec<u8>) {
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
    let hash = refresh_token_hash(&token);
    (token, hash)
}

/// A random secret for signing webhooks (256 bits, hex).
pub fn new_secret() -> String {
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    raw.iter().map(|b| format!("{b:02x}")).collect()
}

/// The stored form of a refresh token.
pub fn refresh_token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> TokenKeys {
        TokenKeys::new(
            &[7u8; 32],
            Duration::from_secs(60),
            Duration::from_secs(3600),
        )
        .expect("keys")
    }

    fn rss_mib() -> u64 {
        std::fs::read_to_string("/proc/self/status")
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .unwrap_or(0)
            / 1024
    }

    #[test]
    fn hashing_again_and_again_reuses_its_memory() {
        // Warm up this thread's working memory, then hash many more times.
        let _ = hash_password("warm up the memory");
        let before = rss_mib();
        for _ in 0..8 {
            let hash = hash_password("again and again").expect("hash");
            assert!(verify_password("again and again", &hash));
        }
        // Allocated anew each time, the 16 hashes kept ~300 MiB. Other tests hashing on
        // their own threads at the same time may add their one buffer each.
        let grown = rss_mib().saturating_sub(before);
        assert!(grown < 60, "RSS grew by {grown} MiB over 16 hashes");
    }

    #[test]
    fn hashes_are_standard_phc_strings() {
        let hash = hash_password("correct horse").expect("hash");
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        // One made by the argon2 crate's own PasswordHasher verifies here, and ours there.
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let theirs = Argon2::default()
            .hash_password(b"correct horse")
            .expect("hash")
            .to_string();
        assert!(verify_password("correct horse", &theirs));
        let parsed = PasswordHash::new(&hash).expect("parse");
        assert!(
            Argon2::default()
                .verify_password(b"correct horse", &parsed)
                .is_ok()
        );
    }

    #[test]
    fn passwords_verify_only_themselves() {
        let hash = hash_password("correct horse").expect("hash");
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("wrong horse", &hash));
        assert!(!verify_password("anything", dummy_hash()));
        assert!(!verify_password("anything", "not a hash"));
    }

    #[test]
    fn access_tokens_round_trip_and_reject_tampering() {
        let keys = keys();
        let (user, session) = (UserId::new(), SessionId::new());
        let token = keys.issue_access(user, session).expect("token");
        let claims = keys.verify_access(&token).expect("valid");
        assert_eq!((claims.sub, claims.sid), (user, session));
        let other = TokenKeys::new(&[8u8; 32], Duration::from_secs(60), Duration::from_secs(60))
            .expect("keys");
        assert!(other.verify_access(&token).is_err());
        assert!(keys.verify_access("garbage").is_err());
    }

    #[test]
    fn expired_tokens_name_their_session_but_grant_nothing() {
        let keys =
            TokenKeys::new(&[7u8; 32], Duration::ZERO, Duration::from_secs(60)).expect("keys");
        let (user, session) = (UserId::new(), SessionId::new());
        let claims = Claims {
            sub: user,
            sid: session,
            iat: 0,
            exp: 1,
            typ: "access".into(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &keys.encoding)
            .expect("token");
        assert!(keys.verify_access(&token).is_err());
        assert_eq!(
            keys.verify_signature_only(&token).expect("signed").sid,
            session
        );
        let other = TokenKeys::new(&[8u8; 32], Duration::ZERO, Duration::ZERO).expect("keys");
        assert!(other.verify_signature_only(&token).is_err());
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(TokenKeys::new(b"short", Duration::from_secs(1), Duration::from_secs(1)).is_err());
    }

    #[test]
    fn refresh_tokens_are_random_and_hashed() {
        let (a, ha) = new_refresh_token();
        let (b, _) = new_refresh_token();
        assert_ne!(a, b);
        assert_eq!(refresh_token_hash(&a), ha);
    }
}
