//! Concurrent requests, limited per user and in all, as API Priority and
//! Fairness and `--max-requests-inflight` limit kube-apiserver's: a request
//! takes a seat for as long as it is being answered; past a user's share, or
//! past the total, it gets 429 Too Many Requests with `Retry-After`, as
//! Kubernetes answers, and other users go on being served. Long-running
//! requests (watches, followed logs) take no seat (their cost is bounded
//! elsewhere: watch buffers, the connection cap), and `system:masters` (the
//! admin) is exempt, as APF's exempt level. The controllers' identity
//! (`system:mosaic:controllers`) has a level of its own, as
//! kube-controller-manager's `workload-high`: up to the total, apart from
//! the users' seats, so users cannot starve the scheduler nor it them.

use crate::auth::User;
use crate::error::ApiError;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The limits.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Requests under way at once, all users together.
    pub total: usize,
    /// Requests under way at once for one user.
    pub per_user: usize,
}

impl Default for Limits {
    /// kube-apiserver's default total (400 + 200 mutating) and a quarter of it per user.
    fn default() -> Self {
        Self {
            total: 600,
            per_user: 150,
        }
    }
}

/// The seats in use.
#[derive(Debug, Default)]
pub struct Seats {
    limits: Limits,
    taken: Mutex<(usize, HashMap<String, usize>)>,
}

/// A seat, given back when dropped.
#[derive(Debug)]
pub struct Seat {
    seats: Arc<Seats>,
    user: String,
    /// Counted in the users' total (not the controllers' own level).
    counted: bool,
}

impl Seats {
    /// Seats within `limits`.
    pub fn new(limits: Limits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            taken: Mutex::default(),
        })
    }

    /// A seat for `user`'s request, or 429; `None` when the request needs none.
    pub fn take(
        self: &Arc<Self>,
        user: &User,
        long_running: bool,
    ) -> Result<Option<Seat>, ApiError> {
        if long_running || user.groups.iter().any(|g| g == crate::rbac::MASTERS) {
            return Ok(None);
        }
        let system = user.name == crate::rbac::bootstrap::CONTROLLERS_USER;
        let mut t = self.taken.lock().expect("seats lock");
        let mine = t.1.get(&user.name).copied().unwrap_or(0);
        let full = if system {
            mine >= self.limits.total
        } else {
            t.0 >= self.limits.total || mine >= self.limits.per_user
        };
        if full {
            return Err(ApiError::too_many_requests());
        }
        if !system {
            t.0 += 1;
        }
        *t.1.entry(user.name.clone()).or_default() += 1;
        Ok(Some(Seat {
            seats: self.clone(),
            user: user.name.clone(),
            counted: !system,
        }))
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        let mut t = self.seats.taken.lock().expect("seats lock");
        if self.counted {
            t.0 = t.0.saturating_sub(1);
        }
        if let Some(n) = t.1.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                t.1.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, groups: &[&str]) -> User {
        User {
            name: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    #[test]
    fn a_user_past_their_share_gets_429_and_others_go_on() {
        let seats = Seats::new(Limits {
            total: 3,
            per_user: 2,
        });
        let alice = user("alice", &[]);
        let bob = user("bob", &[]);
        let a1 = seats.take(&alice, false).unwrap();
        let _a2 = seats.take(&alice, false).unwrap();
        let e = seats.take(&alice, false).unwrap_err();
        assert_eq!((e.code, e.reason), (429, "TooManyRequests"));
        // Watches take no seat; nor does the admin.
        assert!(seats.take(&alice, true).unwrap().is_none());
        assert!(
            seats
                .take(&user("admin", &[crate::rbac::MASTERS]), false)
                .unwrap()
                .is_none()
        );
        let _b1 = seats.take(&bob, false).unwrap();
        // The total is reached: bob too waits.
        assert!(seats.take(&bob, false).is_err());
        drop(a1);
        assert!(seats.take(&bob, false).unwrap().is_some());
        // The controllers have a level of their own: the users' total does
        // not hold them back, and they take none of it.
        let ctl = user(crate::rbac::bootstrap::CONTROLLERS_USER, &[]);
        let held: Vec<_> = (0..3).map(|_| seats.take(&ctl, false).unwrap()).collect();
        assert!(seats.take(&ctl, false).is_err(), "up to the total, no more");
        drop(held);
    }
}
