//! `entrasync demo`: brings up the local services, starts the Graph emulator in-process with a generated
//! tenant, registers it (credential profile and tenant) through `store`, runs the whole service
//! in-process, shows progress bars for the first full rounds and a line per finished run while the
//! emulated directory keeps changing. Ctrl-C stops everything in the service's shutdown order.
//! Output to the terminal here is deliberate: this is a user-facing command.

pub mod emulated;
mod progress;
mod run;

pub use run::{run, DemoOptions};
