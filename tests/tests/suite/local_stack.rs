//! The PostgreSQL and Redis that `./ops/test` and `./ops/run` start admit only those who
//! hold their passwords: another account on the machine can neither read the rows nor
//! publish events to every socket.

use std::time::Duration;

use chat_bus::{Bus, BusConfig};
use sqlx::Connection;

fn env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run the tests through ./ops/test"))
}

/// The URL without its password.
fn without_password(url: &str) -> String {
    let mut url = reqwest::Url::parse(url).expect("a URL");
    url.set_password(None).expect("a password can be removed");
    url.to_string()
}

#[tokio::test]
async fn postgresql_refuses_connections_without_the_password() {
    let url = env("TEST_DATABASE_URL");
    assert!(
        reqwest::Url::parse(&url).expect("url").password().is_some(),
        "the test database URL carries a password"
    );
    sqlx::PgConnection::connect(&url)
        .await
        .expect("with the password");
    let refused = sqlx::PgConnection::connect(&without_password(&url)).await;
    assert!(
        refused.is_err(),
        "PostgreSQL let a client in without a password"
    );
}

#[tokio::test]
async fn redis_refuses_commands_without_the_password() {
    let url = env("TEST_REDIS_URL");
    let bus = |redis_url: String| {
        Bus::connect(BusConfig {
            redis_url,
            prefix: "stack-check:".into(),
            shards: 1,
            stream_maxlen: 10,
        })
        .expect("bus")
    };
    let with = bus(url.clone());
    with.wait_connected(Duration::from_secs(5))
        .await
        .expect("connect");
    with.ping().await.expect("with the password");
    let without = bus(without_password(&url));
    let _ = without.wait_connected(Duration::from_secs(2)).await;
    assert!(
        without.ping().await.is_err(),
        "Redis answered a client without the password"
    );
}
