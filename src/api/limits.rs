//! Rate limits: token buckets (governor) per client IP, per API key and per
//! verified email. Every limit is "N per window"; 0 turns one off.

use std::{
    hash::Hash,
    net::IpAddr,
    num::NonZeroU32,
    sync::{Arc, Weak},
    time::Duration,
};

use governor::{
    clock::{Clock, DefaultClock},
    DefaultKeyedRateLimiter, Quota, RateLimiter,
};
use ipnet::IpNet;
use poem::Request;

use super::{errors::ApiError, operations::Budget};
use crate::{config::Config, domain::Caller};

struct Limiter<K: Hash + Eq + Clone>(Option<DefaultKeyedRateLimiter<K>>);

impl<K: Hash + Eq + Clone> Limiter<K> {
    fn new(per_window: u32, window: Duration) -> Self {
        let limiter = NonZeroU32::new(per_window).and_then(|burst| {
            let quota = Quota::with_period(window / burst.get())?.allow_burst(burst);
            Some(RateLimiter::keyed(quota))
        });
        Self(limiter)
    }

    fn check(&self, key: &K) -> Result<(), ApiError> {
        let Some(limiter) = &self.0 else {
            return Ok(());
        };
        limiter.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            ApiError::RateLimited {
                retry_after: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
            }
        })
    }

    /// Forgets keys whose buckets are full again, so memory follows the
    /// number of recently active clients, not all clients ever seen.
    fn forget_idle(&self) {
        if let Some(limiter) = &self.0 {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

pub struct RateLimits {
    writes_by_ip: Limiter<IpAddr>,
    writes_by_key: Limiter<Caller>,
    verify_by_ip: Limiter<IpAddr>,
    unauthenticated_by_ip: Limiter<IpAddr>,
    trusted_proxies: Vec<IpNet>,
}

impl RateLimits {
    pub fn new(config: &Config) -> Arc<Self> {
        let limits = &config.limits;
        let window = limits.rate_limit_window;
        let this = Arc::new(Self {
            writes_by_ip: Limiter::new(limits.rate_limit_writes, window),
            writes_by_key: Limiter::new(limits.rate_limit_writes, window),
            verify_by_ip: Limiter::new(limits.rate_limit_verify, window),
            unauthenticated_by_ip: Limiter::new(limits.rate_limit_unauthenticated, window),

            trusted_proxies: config.security.trusted_proxies.clone(),
        });
        spawn_cleanup(Arc::downgrade(&this), window);
        this
    }

    /// Charges the per-IP (and, for writes, per-key) budgets of a request.
    pub fn charge(
        &self,
        budget: Budget,
        request: &Request,
        caller: Option<Caller>,
    ) -> Result<(), ApiError> {
        let ip = self.client_ip(request).map(network_of);
        match budget {
            Budget::Free => Ok(()),
            Budget::Verify => ip.map_or(Ok(()), |ip| self.verify_by_ip.check(&ip)),
            Budget::Write => {
                if let Some(ip) = ip {
                    self.writes_by_ip.check(&ip)?;
                }
                caller.map_or(Ok(()), |caller| self.writes_by_key.check(&caller))
            }
        }
    }

    /// Charges the budget of requests without a valid API key, per client.
    pub fn charge_unauthenticated(&self, request: &Request) -> Result<(), ApiError> {
        match self.client_ip(request).map(network_of) {
            Some(ip) => self.unauthenticated_by_ip.check(&ip),
            None => Ok(()),
        }
    }

    /// The socket peer, or, when the peer is a trusted proxy, the nearest
    /// untrusted address in `X-Forwarded-For` (read right to left, as each
    /// proxy appends the address it saw).
    pub fn client_ip(&self, request: &Request) -> Option<IpAddr> {
        let peer = request.remote_addr().as_socket_addr()?.ip();
        let mut client = peer;
        if !self.is_trusted(peer) {
            return Some(client);
        }
        let forwarded = request
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .collect::<Vec<_>>();
        for hop in forwarded.into_iter().rev() {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) => {
                    client = ip;
                    if !self.is_trusted(ip) {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        Some(client)
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }

    fn forget_idle(&self) {
        self.writes_by_ip.forget_idle();
        self.writes_by_key.forget_idle();
        self.verify_by_ip.forget_idle();
        self.unauthenticated_by_ip.forget_idle();
    }
}

/// The key a client's address is counted under. An IPv6 client usually has a
/// whole /64 to pick addresses from, so it is counted by that /64: neither
/// its budget nor the limiter's memory grows with the addresses it uses.
fn network_of(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let [a, b, c, d, ..] = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(a, b, c, d, 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

fn spawn_cleanup(limits: Weak<RateLimits>, every: Duration) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every.max(Duration::from_secs(1)));
        ticks.tick().await;
        loop {
            ticks.tick().await;
            match limits.upgrade() {
                Some(limits) => limits.forget_idle(),
                None => return,
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limiter_allows_its_burst_then_says_when_to_retry() {
        let limiter = Limiter::new(3, Duration::from_secs(60));
        for _ in 0..3 {
            assert!(limiter.check(&1).is_ok());
        }
        match limiter.check(&1) {
            Err(ApiError::RateLimited { retry_after }) => assert!((1..=20).contains(&retry_after)),
            other => panic!("expected a rate limit, got {other:?}"),
        }
        assert!(limiter.check(&2).is_ok(), "buckets are per key");
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(network_of(a), network_of(b));
        assert_ne!(network_of(a), network_of(other));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(network_of(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn zero_disables_a_limit() {
        let limiter = Limiter::new(0, Duration::from_secs(60));
        for _ in 0..1000 {
            assert!(limiter.check(&1).is_ok());
        }
    }
}
