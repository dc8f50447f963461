//! Per-caller limits of the transports: requests per second over HTTP and
//! WebSocket connections open at once.
//!
//! A caller is the token a request comes with, whichever address it comes
//! from.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use std::time::{Duration, Instant};

use crate::config::LimitArgs;
use crate::domain::Principal;

/// Who the per-caller limits count.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Caller(String);

impl Caller {
    /// The token a principal came with (or, for one without a token, its
    /// member).
    pub fn of(principal: &Principal) -> Self {
        match &principal.token {
            Some(token) => Self(format!("token/{}", token.id)),
            None => Self(format!("{}/{}", principal.organization_id, principal.member.id)),
        }
    }
}

/// What the transports enforce besides the document limits.
#[derive(Debug, Clone)]
pub struct TransportLimits {
    pub max_body_bytes: usize,
    /// Most requests in one batch; 0 refuses batches.
    pub max_batch: usize,
    pub max_subscriptions_per_connection: usize,
    pub max_connections_per_caller: usize,
    /// Origins, besides the server's own, allowed to open a WebSocket.
    pub allowed_origins: Vec<String>,
}

impl From<&LimitArgs> for TransportLimits {
    fn from(args: &LimitArgs) -> Self {
        Self {
            max_body_bytes: args.max_body_bytes,
            max_batch: args.max_batch,
            max_subscriptions_per_connection: args.max_subscriptions_per_connection,
            max_connections_per_caller: args.max_connections_per_caller,
            allowed_origins: args
                .allowed_origins
                .iter()
                .map(|o| o.trim_end_matches('/').to_owned())
                .collect(),
        }
    }
}

/// A token bucket per caller: `rate` requests per second, bursts of twice
/// as many. Callers idle long enough to have a full bucket are forgotten
/// from time to time, so the map holds only recent callers.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<Buckets>,
}

#[derive(Debug, Default)]
struct Buckets {
    by_caller: HashMap<Caller, Bucket>,
    last_sweep: Option<Instant>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    /// `rate` requests per second per caller; 0 admits everything.
    pub fn new(rate: u32) -> Self {
        let rate = f64::from(rate);
        Self { rate, burst: rate * 2.0, buckets: Mutex::default() }
    }

    /// Whether `caller` may send one more request now.
    pub fn admit(&self, caller: &Caller) -> bool {
        self.admit_at(caller, Instant::now())
    }

    fn admit_at(&self, caller: &Caller, now: Instant) -> bool {
        if self.rate == 0.0 {
            return true;
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        self.sweep(&mut buckets, now);
        let bucket =
            buckets.by_caller.entry(caller.clone()).or_insert(Bucket { tokens: self.burst, at: now });
        let refill = now.duration_since(bucket.at).as_secs_f64() * self.rate;
        bucket.tokens = (bucket.tokens + refill).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Forgets the callers whose bucket has refilled, once a minute.
    fn sweep(&self, buckets: &mut Buckets, now: Instant) {
        const EVERY: Duration = Duration::from_secs(60);
        if buckets.last_sweep.is_some_and(|at| now.duration_since(at) < EVERY) {
            return;
        }
        buckets.last_sweep = Some(now);
        let full_after = self.burst / self.rate;
        buckets.by_caller.retain(|_, b| now.duration_since(b.at).as_secs_f64() < full_after);
    }
}

/// The WebSocket connections open per caller.
#[derive(Debug, Clone, Default)]
pub struct Connections(Arc<Mutex<HashMap<Caller, usize>>>);

/// One open connection of a caller; dropping it frees the place.
#[derive(Debug)]
pub struct ConnectionSlot {
    connections: Connections,
    caller: Caller,
}

impl Connections {
    /// A place for one more connection of `caller`, if it has fewer than
    /// `max` open.
    pub fn open(&self, caller: Caller, max: usize) -> Option<ConnectionSlot> {
        let mut open = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(caller.clone()).or_default();
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(ConnectionSlot { connections: self.clone(), caller })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut open = self.connections.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.caller) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.caller);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(name: &str) -> Caller {
        Caller(name.to_owned())
    }

    #[test]
    fn a_caller_gets_a_burst_of_twice_the_rate_then_the_rate() {
        let limiter = RateLimiter::new(5);
        let start = Instant::now();
        let admitted = (0..20).filter(|_| limiter.admit_at(&caller("a"), start)).count();
        assert_eq!(admitted, 10);
        // Others are counted apart.
        assert!(limiter.admit_at(&caller("b"), start));
        let later = start + Duration::from_millis(400);
        let admitted = (0..20).filter(|_| limiter.admit_at(&caller("a"), later)).count();
        assert_eq!(admitted, 2);
    }

    #[test]
    fn zero_turns_the_limit_off() {
        let limiter = RateLimiter::new(0);
        assert!((0..10_000).all(|_| limiter.admit(&caller("a"))));
    }

    #[test]
    fn idle_callers_are_forgotten() {
        let limiter = RateLimiter::new(1);
        let start = Instant::now();
        assert!(limiter.admit_at(&caller("a"), start));
        assert!(limiter.admit_at(&caller("b"), start + Duration::from_secs(61)));
        let buckets = limiter.buckets.lock().unwrap();
        assert_eq!(buckets.by_caller.keys().collect::<Vec<_>>(), [&caller("b")]);
    }

    #[test]
    fn connection_places_are_freed_when_dropped() {
        let connections = Connections::default();
        let first = connections.open(caller("a"), 2).unwrap();
        let _second = connections.open(caller("a"), 2).unwrap();
        assert!(connections.open(caller("a"), 2).is_none());
        assert!(connections.open(caller("b"), 2).is_some());
        drop(first);
        assert!(connections.open(caller("a"), 2).is_some());
    }
}
