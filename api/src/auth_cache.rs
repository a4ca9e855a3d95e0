//! What a signed-in user is allowed (enabled, role), remembered by each API process for
//! a few seconds, so that a request with an access token does not pay a round trip to
//! the database before its own work (a third of the statements of `GET /runs/{id}`).
//!
//! Nothing remembered outlives a change. The database announces every change of a
//! user's role, disabled flag or session generation, every deletion and a truncation, itself (triggers
//! notify `jobcenter_users_changed`, so psql and other nodes are covered), and each API
//! process forgets all it remembered when it hears it. The process that made a change
//! through the API forgets before it answers, so its next request sees the change;
//! other API processes see it once the notification reaches them (milliseconds after
//! the commit). While the listening connection is down nothing is remembered, and a
//! lookup that raced with a change is not kept (a generation counter). Where no
//! notification can arrive (triggers off, a connection dead but not yet noticed, a
//! transaction-mode pooler), entries still expire after [`TTL`] (docs/auth.md).
//!
//! API tokens are still checked on every request: their check also records when they
//! were last used.

use jobcenter_sql::listen::Event;
use jobcenter_sql::states::Role;
use jobcenter_sql::USERS_CHANGED_CHANNEL;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// How long a user's role is remembered at most.
pub const TTL: Duration = Duration::from_secs(5);
/// Beyond this many users, the remembered ones are dropped and remembering starts over.
const MAX_USERS: usize = 10_000;

#[derive(Default)]
pub struct AuthCache {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// The listener is connected: a change would be heard.
    live: bool,
    /// Bumped by every forgetting; a lookup remembers only if none happened meanwhile.
    generation: u64,
    users: HashMap<Uuid, (Known, Instant)>,
}

/// What is remembered of an enabled user: their role, and which access tokens are still
/// theirs (the session generation and the session a password change kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Known {
    pub role: Role,
    pub generation: i32,
    pub kept_session: Option<Uuid>,
}

impl From<Role> for Known {
    fn from(role: Role) -> Known {
        Known {
            role,
            generation: 0,
            kept_session: None,
        }
    }
}

impl Inner {
    fn forget_all(&mut self) {
        self.generation += 1;
        self.users.clear();
    }
}

/// A lookup's ticket: the generation it started in (None: nothing may be remembered).
#[derive(Clone, Copy)]
pub struct Ticket(Option<u64>);

impl AuthCache {
    /// An enabled user remembered at most [`TTL`] before `now`.
    pub fn get(&self, user: Uuid, now: Instant) -> Option<Known> {
        let inner = self.lock();
        let (known, seen) = inner.users.get(&user)?;
        (inner.live && now.saturating_duration_since(*seen) < TTL).then_some(*known)
    }

    #[cfg(test)]
    fn role(&self, user: Uuid, now: Instant) -> Option<Role> {
        self.get(user, now).map(|known| known.role)
    }

    /// Taken before reading a user from the database.
    pub fn ticket(&self) -> Ticket {
        let inner = self.lock();
        Ticket(inner.live.then_some(inner.generation))
    }

    /// Remembers that `user` is enabled as `known`, as read after `ticket` was taken at
    /// `now`, unless something was forgotten since.
    pub fn remember(&self, ticket: Ticket, user: Uuid, known: impl Into<Known>, now: Instant) {
        let mut inner = self.lock();
        if !inner.live || ticket.0 != Some(inner.generation) {
            return;
        }
        if inner.users.len() >= MAX_USERS {
            inner.users.clear();
        }
        inner.users.insert(user, (known.into(), now));
    }

    /// Forgets every user (a user changed, here or elsewhere).
    pub fn forget_all(&self) {
        self.lock().forget_all();
    }

    /// The listener (re)connected or lost its connection: anything may have changed.
    fn set_live(&self, live: bool) {
        let mut inner = self.lock();
        inner.forget_all();
        inner.live = live;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .expect("the auth cache lock is never poisoned")
    }

    /// Follows the API's LISTEN connection (`listener`): nothing is remembered until it
    /// listens, and a user change anywhere forgets every user.
    pub fn on_event(&self, event: &Event<'_>) {
        match *event {
            Event::Listening => self.set_live(true),
            Event::Lost => self.set_live(false),
            Event::Notification { channel, .. } if channel == USERS_CHANGED_CHANNEL => {
                self.forget_all()
            }
            Event::Notification { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live() -> AuthCache {
        let cache = AuthCache::default();
        cache.set_live(true);
        cache
    }

    #[test]
    fn remembers_a_user_until_the_ttl_runs_out() {
        let cache = live();
        let (user, now) = (Uuid::new_v4(), Instant::now());
        assert_eq!(cache.role(user, now), None);
        cache.remember(cache.ticket(), user, Role::Developer, now);
        assert_eq!(cache.role(user, now + TTL / 2), Some(Role::Developer));
        assert_eq!(cache.role(user, now + TTL), None);
        assert_eq!(cache.role(Uuid::new_v4(), now), None);
    }

    #[test]
    fn a_change_forgets_everyone_and_a_lookup_that_raced_it_is_not_kept() {
        let cache = live();
        let (user, now) = (Uuid::new_v4(), Instant::now());
        cache.remember(cache.ticket(), user, Role::Admin, now);
        // A lookup starts, a change is heard, the lookup answers with what it read.
        let ticket = cache.ticket();
        cache.forget_all();
        assert_eq!(cache.role(user, now), None);
        cache.remember(ticket, user, Role::Admin, now);
        assert_eq!(cache.role(user, now), None, "a stale read was kept");
        // The next lookup is kept again.
        cache.remember(cache.ticket(), user, Role::Developer, now);
        assert_eq!(cache.role(user, now), Some(Role::Developer));
    }

    #[test]
    fn nothing_is_remembered_while_the_listener_is_down() {
        let cache = AuthCache::default();
        let (user, now) = (Uuid::new_v4(), Instant::now());
        cache.remember(cache.ticket(), user, Role::Admin, now);
        assert_eq!(cache.role(user, now), None, "remembered before listening");
        cache.set_live(true);
        cache.remember(cache.ticket(), user, Role::Admin, now);
        assert_eq!(cache.role(user, now), Some(Role::Admin));
        // The connection drops: what was remembered is gone, and a lookup that started
        // before the drop is not kept after the listener is back either.
        let ticket = cache.ticket();
        cache.set_live(false);
        assert_eq!(cache.role(user, now), None);
        cache.remember(cache.ticket(), user, Role::Admin, now);
        assert_eq!(cache.role(user, now), None);
        cache.set_live(true);
        cache.remember(ticket, user, Role::Admin, now);
        assert_eq!(cache.role(user, now), None);
    }

    #[test]
    fn only_a_user_change_on_the_shared_connection_forgets() {
        let cache = AuthCache::default();
        let (user, now) = (Uuid::new_v4(), Instant::now());
        cache.on_event(&Event::Listening);
        cache.remember(cache.ticket(), user, Role::Developer, now);
        let run_id = Uuid::new_v4().to_string();
        for channel in [
            jobcenter_sql::RUN_FINISHED_CHANNEL,
            jobcenter_sql::RUN_LOGS_CHANNEL,
        ] {
            cache.on_event(&Event::Notification {
                channel,
                payload: &run_id,
            });
        }
        assert_eq!(
            cache.role(user, now),
            Some(Role::Developer),
            "a run event forgot"
        );
        cache.on_event(&Event::Notification {
            channel: USERS_CHANGED_CHANNEL,
            payload: "",
        });
        assert_eq!(cache.role(user, now), None, "a user change was not heard");
        cache.remember(cache.ticket(), user, Role::Developer, now);
        cache.on_event(&Event::Lost);
        assert_eq!(
            cache.role(user, now),
            None,
            "kept after the connection was lost"
        );
    }

    #[test]
    fn a_full_cache_starts_over_instead_of_growing() {
        let cache = live();
        let now = Instant::now();
        let first = Uuid::new_v4();
        cache.remember(cache.ticket(), first, Role::Developer, now);
        for _ in 1..MAX_USERS {
            cache.remember(cache.ticket(), Uuid::new_v4(), Role::Developer, now);
        }
        assert_eq!(cache.role(first, now), Some(Role::Developer));
        cache.remember(cache.ticket(), Uuid::new_v4(), Role::Developer, now);
        assert_eq!(cache.role(first, now), None);
        assert_eq!(cache.lock().users.len(), 1);
    }
}
