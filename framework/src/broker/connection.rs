//! The broker's end of one client connection: sending frames, and routing the client's hook
//! answers to the participant that waits for them.

use std::collections::BTreeMap;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use crossbeam::channel::{self, Receiver, Sender};

use super::protocol::{write_frame, BrokerMessage};
use crate::pci::PciAddress;

/// A client's answer to a hook: its sequence number, and the error if the hook failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct HookAnswer {
    pub seq: u64,
    pub error: Option<String>,
}

/// One connected client.
#[derive(Debug)]
pub(super) struct Connection {
    pub id: u64,
    label: Mutex<String>,
    writer: Mutex<UnixStream>,
    hooks: Mutex<BTreeMap<PciAddress, Sender<HookAnswer>>>,
    open: AtomicBool,
}

fn relock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Connection {
    pub(super) fn new(id: u64, writer: UnixStream) -> Self {
        Connection {
            id,
            label: Mutex::new(format!("client {id}")),
            writer: Mutex::new(writer),
            hooks: Mutex::new(BTreeMap::new()),
            open: AtomicBool::new(true),
        }
    }

    /// `client 3 (fwd, pid 4242)` once the client said hello, `client 3` before.
    pub(super) fn label(&self) -> String {
        relock(&self.label).clone()
    }

    pub(super) fn set_label(&self, name: &str, pid: u32) {
        *relock(&self.label) = format!("client {} ({name}, pid {pid})", self.id);
    }

    /// Sends one message. The socket has a write timeout, so a client that stopped reading
    /// makes this fail instead of stalling a reset.
    pub(super) fn send(&self, message: &BrokerMessage) -> std::io::Result<()> {
        if !self.open.load(Ordering::Acquire) {
            return Err(std::io::Error::from(std::io::ErrorKind::NotConnected));
        }
        write_frame(&mut *relock(&self.writer), message)
    }

    /// A channel for the answers to hooks of `device`'s participant.
    pub(super) fn hook_channel(&self, device: PciAddress) -> Receiver<HookAnswer> {
        let (tx, rx) = channel::unbounded();
        relock(&self.hooks).insert(device, tx);
        rx
    }

    /// Routes an answer; false when no participant of this client waits on `device`.
    pub(super) fn route(&self, device: PciAddress, answer: HookAnswer) -> bool {
        relock(&self.hooks)
            .get(&device)
            .is_some_and(|tx| tx.send(answer).is_ok())
    }

    /// The client is gone: drop every hook channel so that waiting participants see it at
    /// once, and refuse further sends.
    pub(super) fn close(&self) {
        self.open.store(false, Ordering::Release);
        relock(&self.hooks).clear();
        let _ = relock(&self.writer).shutdown(std::net::Shutdown::Both);
    }
}
