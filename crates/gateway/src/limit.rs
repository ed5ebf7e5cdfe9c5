//! Per-client-address token buckets, and finding the client's address behind trusted proxies.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use http::HeaderMap;
use pier_config::{IpNet, RateLimit};

const SHARDS: usize = 16;
/// Past this many clients in one shard, full buckets are forgotten.
const SHARD_SOFT_MAX: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// A token bucket per client address.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    limit: RateLimit,
    shards: Vec<Mutex<HashMap<IpAddr, Bucket>>>,
}

impl RateLimiter {
    pub(crate) fn new(limit: RateLimit) -> RateLimiter {
        RateLimiter {
            limit,
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    /// Takes one token for `ip`; `Err(wait)` when the bucket is empty.
    pub(crate) fn check(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let shard = &self.shards[shard_of(ip)];
        let mut map = shard
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() > SHARD_SOFT_MAX {
            let (rate, burst) = (self.limit.per_second, self.limit.burst);
            map.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * rate < burst);
        }
        let b = map.entry(ip).or_insert(Bucket {
            tokens: self.limit.burst,
            at: now,
        });
        let refill = now.duration_since(b.at).as_secs_f64() * self.limit.per_second;
        b.tokens = (b.tokens + refill).min(self.limit.burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - b.tokens) / self.limit.per_second,
            ))
        }
    }
}

fn shard_of(ip: IpAddr) -> usize {
    let h = match ip {
        IpAddr::V4(v) => u32::from(v) as usize,
        IpAddr::V6(v) => (u128::from(v) >> 64) as usize ^ (u128::from(v) as usize),
    };
    (h ^ (h >> 7) ^ (h >> 15)) % SHARDS
}

pub(crate) fn trusted(list: &[IpNet], ip: IpAddr) -> bool {
    list.iter().any(|n| n.contains(ip))
}

/// The client's address: the peer, or, when the peer is a trusted proxy, the rightmost address
/// of `X-Forwarded-For` that is not itself a trusted proxy.
pub(crate) fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted_proxies: &[IpNet]) -> IpAddr {
    if !trusted(trusted_proxies, peer) {
        return peer;
    }
    let mut client = peer;
    for value in headers.get_all("x-forwarded-for").iter().rev() {
        let Ok(s) = value.to_str() else { break };
        for part in s.rsplit(',') {
            match part.trim().parse::<IpAddr>() {
                Ok(ip) => {
                    client = ip;
                    if !trusted(trusted_proxies, ip) {
                        return ip;
                    }
                }
                Err(_) => return client,
            }
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_empties_and_refills() {
        let l = RateLimiter::new(RateLimit {
            per_second: 2.0,
            burst: 3.0,
        });
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let t = Instant::now();
        for _ in 0..3 {
            assert!(l.check(ip, t).is_ok());
        }
        let wait = l.check(ip, t).unwrap_err();
        assert!(wait <= Duration::from_millis(500) && wait > Duration::ZERO);
        // Another client has its own bucket.
        assert!(l.check("10.0.0.2".parse().unwrap(), t).is_ok());
        assert!(l.check(ip, t + Duration::from_millis(600)).is_ok());
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "1.2.3.4, 10.1.1.1".parse().unwrap());
        let proxy: IpAddr = "10.0.0.9".parse().unwrap();
        let stranger: IpAddr = "5.6.7.8".parse().unwrap();
        assert_eq!(
            client_ip(proxy, &h, &trusted),
            "1.2.3.4".parse::<IpAddr>().unwrap()
        );
        assert_eq!(client_ip(stranger, &h, &trusted), stranger);
        h.insert("x-forwarded-for", "garbage".parse().unwrap());
        assert_eq!(client_ip(proxy, &h, &trusted), proxy);
    }
}
