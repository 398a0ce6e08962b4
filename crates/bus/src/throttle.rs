//! Rate limits that hold across every replica: one GCRA bucket per key in Redis.
//!
//! GCRA (the generic cell rate algorithm) keeps a single number per bucket, the
//! "theoretical arrival time" of the next request; a request is allowed when that time
//! is at most `burst` intervals ahead of now. One Lua script reads and advances it
//! atomically, with Redis's own clock (so replicas with skewed clocks agree), in one
//! round trip. A bucket's key expires once it is full again, so idle keys cost nothing.

use std::sync::LazyLock;
use std::time::Duration;

use fred::types::scripts::Script;

use crate::{Bus, BusError};

/// A rate: `burst` requests at once, refilled at `per_second`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: u32,
}

impl Rate {
    /// Parses `N/s`, `N/min` or `N/h`, with an optional `:BURST` (default `N`):
    /// `20/s:40` is 20 a second with bursts of 40; `10/min` is 10 a minute.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (rate, burst) = match text.split_once(':') {
            Some((rate, burst)) => (rate, Some(burst)),
            None => (text, None),
        };
        let (count, unit) = rate
            .split_once('/')
            .ok_or_else(|| format!("{text:?}: expected N/s, N/min or N/h"))?;
        let count: u32 = count
            .trim()
            .parse()
            .map_err(|_| format!("{text:?}: {count:?} is not a whole number"))?;
        let seconds = match unit.trim() {
            "s" => 1.0,
            "min" => 60.0,
            "h" => 3600.0,
            other => return Err(format!("{text:?}: unknown unit {other:?} (s, min, h)")),
        };
        let burst = match burst {
            Some(b) => b
                .trim()
                .parse()
                .map_err(|_| format!("{text:?}: burst {b:?} is not a whole number"))?,
            None => count,
        };
        if count == 0 || burst == 0 {
            return Err(format!("{text:?}: a rate and its burst must be above zero"));
        }
        Ok(Rate {
            per_second: f64::from(count) / seconds,
            burst,
        })
    }

    fn interval_us(&self) -> u64 {
        (1_000_000.0 / self.per_second).ceil() as u64
    }
}

impl std::str::FromStr for Rate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Rate::parse(s)
    }
}

/// KEYS[1] the bucket; ARGV[1] the interval between requests (µs); ARGV[2] the burst.
/// Returns 0 when allowed, else the µs until the next request would be.
static GCRA: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(
        r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local wait = tat + interval - interval * burst - now
if wait > 0 then return wait end
local next_tat = tat + interval
redis.call('SET', KEYS[1], next_tat, 'PX', math.ceil((next_tat - now) / 1000) + 1)
return 0
"#,
    )
});

impl Bus {
    /// Takes one request from the bucket `key` (scoped by the deployment's prefix).
    /// `None` when allowed; otherwise how long until one would be.
    pub async fn throttle(&self, key: &str, rate: Rate) -> Result<Option<Duration>, BusError> {
        let key = format!("{}rl:{key}", self.config.prefix);
        let wait_us: i64 = GCRA
            .evalsha_with_reload(
                &self.client,
                key,
                vec![rate.interval_us().to_string(), rate.burst.to_string()],
            )
            .await?;
        Ok((wait_us > 0).then(|| Duration::from_micros(wait_us as u64)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse() {
        assert_eq!(
            Rate::parse("20/s:40"),
            Ok(Rate {
                per_second: 20.0,
                burst: 40
            })
        );
        let per_minute = Rate::parse("10/min").expect("valid");
        assert_eq!(per_minute.burst, 10);
        assert!((per_minute.per_second - 10.0 / 60.0).abs() < 1e-9);
        for bad in ["", "10", "10/day", "0/s", "x/s", "5/s:0", "5/s:x"] {
            assert!(Rate::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
