//! A reset-group broker: one process holds whole reset groups and lends their functions to
//! client processes, so that several processes can share one coordinated reset.
//!
//! The kernel lets a hot reset through only when the caller owns every function of the reset
//! group. Two processes that each drive part of a group can therefore never reset it. The
//! broker ([`Broker`]) claims the whole group, lends each function to a client over a Unix
//! socket ([`BrokerClient::open`] gives the driver the same function type it would open
//! itself), and proxies each client's [`crate::reset::ResetParticipant`] into its own
//! coordinator. A reset asked by any client, or by the broker, runs plan, quiesce, reset and
//! recover across every client, each hook under a real-time deadline. A client that misses
//! one, fails, or disconnects is fenced: bus mastering off, lease revoked; the others go on.
//!
//! Modules, leaves first: [`protocol`] (frames and messages), `leases`, `connection` (the
//! broker's end of one client), `remote` (the proxy participant and fencing), `state` (what the
//! broker's threads share), `session` (one client's requests), `server` ([`Broker`]); on the client side `hooks` (running hooks when
//! asked) and `client` ([`BrokerClient`]); `lending` moves a function from broker to client (`vfio_lending` over real VFIO).

mod client;
mod connection;
pub mod fdpass;
mod hooks;
mod leases;
mod lending;
pub mod protocol;
mod remote;
mod server;
mod session;
mod state;
mod vfio_lending;

pub use client::{BrokerClient, RemoteResetOutcome};
pub use leases::LeaseView;
pub use lending::{Collector, Lend, Lender, SimLending};
pub use server::Broker;
pub use state::BrokerConfig;
pub use vfio_lending::{VfioCollector, VfioLending};
