//! Where actors run. Every actor is started on an Arbiter we create, which needs an actix System; the
//! binary has one, an embedding caller (a plain tokio test) may not.

use actix::{Arbiter, System};

/// Makes sure this thread can create Arbiters, starting a System on a thread of its own if needed.
pub fn ensure_system() {
    if System::try_current().is_some() {
        return;
    }
    let (sender, receiver) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new().name("entrasync-actors".to_owned()).spawn(move || {
        let system = System::new();
        if sender.send(System::current()).is_err() {
            return; // nobody waits for this system
        }
        if let Err(error) = system.run() {
            tracing::error!(%error, "the actor system stopped with an error");
        }
    });
    if let Err(error) = spawned {
        tracing::error!(%error, "cannot start the actor system's thread");
        return;
    }
    if let Ok(system) = receiver.recv() {
        System::set_current(system);
    }
}

/// A new Arbiter (an OS thread with its own single-threaded runtime).
pub fn new_arbiter() -> Arbiter {
    ensure_system();
    Arbiter::new()
}
