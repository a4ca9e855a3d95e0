//! The runs this worker holds, and how to stop one: by cancel (NOTIFY or heartbeat),
//! by hand-back (graceful shutdown) or because its lease was taken away (rescued).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;
use uuid::Uuid;

/// Why a run's process is stopped before it ends by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// A user cancelled it: it ends `cancelled`.
    Cancel,
    /// The worker is shutting down: the run goes back to the queue.
    HandBack,
    /// The leader rescued it (our lease expired): kill it and record nothing.
    LeaseLost,
}

struct Handle {
    lease_id: Uuid,
    stop: watch::Sender<Option<Stop>>,
}

/// The held runs, shared by the claim loop, the heartbeat and the LISTEN task.
#[derive(Clone, Default)]
pub struct Registry(Arc<Mutex<HashMap<Uuid, Handle>>>);

impl Registry {
    /// Registers a claimed run; the receiver learns when it must stop.
    pub fn register(&self, run_id: Uuid, lease_id: Uuid) -> watch::Receiver<Option<Stop>> {
        let (stop, receiver) = watch::channel(None);
        self.lock().insert(run_id, Handle { lease_id, stop });
        receiver
    }

    pub fn remove(&self, run_id: Uuid) {
        self.lock().remove(&run_id);
    }

    /// Asks a run to stop; the first reason given wins.
    pub fn stop(&self, run_id: Uuid, why: Stop) {
        if let Some(handle) = self.lock().get(&run_id) {
            handle.stop.send_if_modified(|current| {
                let first = current.is_none();
                if first {
                    *current = Some(why);
                }
                first
            });
        }
    }

    pub fn stop_all(&self, why: Stop) {
        for id in self.held().into_iter().map(|(id, _)| id) {
            self.stop(id, why);
        }
    }

    /// (run id, lease id) of every held run.
    pub fn held(&self) -> Vec<(Uuid, Uuid)> {
        self.lock()
            .iter()
            .map(|(id, handle)| (*id, handle.lease_id))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Handle>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_stop_reason_wins() {
        let registry = Registry::default();
        let (run, lease) = (Uuid::new_v4(), Uuid::new_v4());
        let receiver = registry.register(run, lease);
        registry.stop(run, Stop::Cancel);
        registry.stop(run, Stop::HandBack);
        assert_eq!(*receiver.borrow(), Some(Stop::Cancel));
        assert_eq!(registry.held(), vec![(run, lease)]);
        registry.remove(run);
        assert_eq!(registry.len(), 0);
    }
}
