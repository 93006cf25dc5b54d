//! The emulator generates its token-signing key when it starts, not at the first token request, so the
//! 0.05–1 s of a 2048-bit RSA key never lands inside a caller's measured round (docs/benchmarks.md,
//! "Stop 24"). Its own test binary: nothing else in this process may have generated the key first.

use graph_sim::{identity, GraphSim, SimOptions};

#[test]
fn starting_the_emulator_generates_its_signing_key() {
    assert!(!identity::signing_key_generated(), "a fresh process has no key yet");
    let sim = GraphSim::start(SimOptions::default()).expect("the emulator starts");
    assert!(identity::signing_key_generated(), "the key is ready before the first token request");
    drop(sim);
}
