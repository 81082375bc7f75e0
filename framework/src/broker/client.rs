//! A broker client: opens functions through a broker exactly as through VFIO (the driver gets
//! the same function type), and takes part in the broker's coordinated resets.

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam::channel::{self, Receiver, RecvTimeoutError, Sender};

use super::fdpass::recv_with_fds;
use super::hooks::{self, relock, HookState};
use super::lending::{Collector, Lend};
use super::protocol::{
    read_frame, write_frame, BrokerMessage, ClientMessage, RemoteBudget, RemoteMember,
    PROTOCOL_VERSION,
};
use crate::error::{Error, Result};
use crate::pci::PciAddress;
use crate::reset::{ParticipantConfig, ResetParticipant, ResetRequest};

/// What a reset requested through the broker did.
#[derive(Clone, Debug, PartialEq)]
pub struct RemoteResetOutcome {
    /// True if it joined a reset that was already running.
    pub coalesced: bool,
    /// Every member with its outcome.
    pub members: Vec<RemoteMember>,
    /// The broker's full report (the coordinator's `ResetReport` as JSON).
    pub report: serde_json::Value,
}

impl RemoteResetOutcome {
    /// True when every member recovered.
    pub fn all_recovered(&self) -> bool {
        self.members.iter().all(|m| m.failure.is_none())
    }
}

/// A connection to a broker.
pub struct BrokerClient<C: Collector> {
    socket: PathBuf,
    id: u64,
    collector: Arc<C>,
    writer: Arc<Mutex<UnixStream>>,
    replies: Receiver<BrokerMessage>,
    /// One request at a time, so that a reply is the answer to the request just sent.
    call: Mutex<()>,
    hooks: Arc<HookState>,
    reply_timeout: Duration,
    threads: Vec<JoinHandle<()>>,
}

impl<C: Collector> std::fmt::Debug for BrokerClient<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerClient")
            .field("socket", &self.socket)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl<C: Collector + 'static> BrokerClient<C> {
    /// Connects to the broker at `socket` as `name`, collecting lent functions with
    /// `collector`.
    pub fn connect(socket: impl AsRef<Path>, name: &str, collector: Arc<C>) -> Result<Self> {
        let path = socket.as_ref().to_path_buf();
        let socket_error = |what, source| Error::BrokerSocket {
            path: path.clone(),
            what,
            source,
        };
        let stream = UnixStream::connect(&path).map_err(|e| socket_error("cannot connect", e))?;
        let reader = stream
            .try_clone()
            .map_err(|e| socket_error("cannot clone the connection", e))?;
        let writer = Arc::new(Mutex::new(stream));
        let hooks = Arc::new(HookState::default());
        let (reply_tx, replies) = channel::unbounded();
        let (hook_tx, hook_rx) = channel::unbounded();
        let mut threads = Vec::new();
        let reading = {
            let hooks = Arc::clone(&hooks);
            std::thread::Builder::new()
                .name("userpci-broker-reader".into())
                .spawn(move || read_loop(reader, &reply_tx, &hook_tx, &hooks))
                .map_err(|e| socket_error("cannot start the reader thread", e))?
        };
        threads.push(reading);
        let running = {
            let hooks = Arc::clone(&hooks);
            let writer = Arc::clone(&writer);
            std::thread::Builder::new()
                .name("userpci-broker-hooks".into())
                .spawn(move || {
                    hooks::run(&hooks, &hook_rx, &|m| write_frame(&mut *relock(&writer), m))
                })
                .map_err(|e| socket_error("cannot start the hook thread", e))?
        };
        threads.push(running);
        let mut client = BrokerClient {
            socket: path,
            id: 0,
            collector,
            writer,
            replies,
            call: Mutex::new(()),
            hooks,
            reply_timeout: Duration::from_secs(60),
            threads,
        };
        let hello = ClientMessage::Hello {
            version: PROTOCOL_VERSION,
            name: name.to_string(),
            pid: std::process::id(),
        };
        match client.call(&hello)? {
            BrokerMessage::Welcome { client: id, .. } => client.id = id,
            other => return Err(client.unexpected(other)),
        }
        Ok(client)
    }

    /// The id the broker gave this client.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Leases `device` and returns it as the function type a driver opens anyway.
    pub fn open(&self, device: PciAddress) -> Result<C::Function> {
        match self.call(&ClientMessage::Acquire { device })? {
            BrokerMessage::Leased {
                device: lent,
                token,
            } if lent == device => {
                let lend = self.collect_lend(device, token)?;
                self.collector.collect(device, lend)
            }
            other => Err(self.unexpected(other)),
        }
    }

    /// Collects the lend `token` names on a connection of its own: the descriptors must not
    /// arrive on the session's connection, whose reader would drop them.
    fn collect_lend(&self, device: PciAddress, token: u64) -> Result<Lend> {
        let socket_error = |what, source| Error::BrokerSocket {
            path: self.socket.clone(),
            what,
            source,
        };
        let mut stream = UnixStream::connect(&self.socket)
            .map_err(|e| socket_error("cannot connect to collect a lend", e))?;
        stream
            .set_read_timeout(Some(self.reply_timeout))
            .and_then(|()| write_frame(&mut stream, &ClientMessage::Collect { token }))
            .map_err(|e| socket_error("cannot ask for the lend", e))?;
        let mut buf = vec![0u8; 64 * 1024];
        let (received, fds) = recv_with_fds(&stream, &mut buf)
            .map_err(|e| socket_error("cannot receive the lend", e))?;
        // The frame's first bytes carried the descriptors; the rest reads as usual.
        let mut frame = std::io::Read::chain(&buf[..received], &mut stream);
        let reply = read_frame::<BrokerMessage>(&mut frame)
            .map_err(|err| self.protocol(format!("collecting {device}: {err}")))?;
        match reply {
            BrokerMessage::Lent {
                device: lent,
                fds: count,
                detail,
            } if lent == device && count as usize == fds.len() => Ok(Lend { fds, detail }),
            BrokerMessage::Refused { message } => Err(Error::BrokerRefused { message }),
            other => Err(self.protocol(format!(
                "collecting {device}: unexpected reply {other:?} with {} descriptors",
                fds.len()
            ))),
        }
    }

    /// Registers a driver's participant for a leased function, as with the coordinator: the
    /// broker runs its hooks in every coordinated reset of the function's group.
    pub fn register(
        &self,
        participant: Box<dyn ResetParticipant>,
        config: ParticipantConfig,
    ) -> Result<()> {
        let device = participant.address();
        let name = participant.name();
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let budget = RemoteBudget {
            priority: config.priority,
            quiesce_ms: millis(config.quiesce_budget),
            recover_ms: millis(config.recover_budget),
        };
        // In the table before the broker can ask for a hook; never over another one.
        {
            let mut participants = relock(&self.hooks.participants);
            if let Some(existing) = participants.get(&device) {
                return Err(Error::AlreadyRegistered {
                    device,
                    existing: existing.name(),
                    new: name,
                });
            }
            participants.insert(device, participant);
        }
        let registered = self.call(&ClientMessage::Register {
            device,
            name,
            budget,
        });
        match registered {
            Ok(BrokerMessage::Done) => Ok(()),
            other => {
                relock(&self.hooks.participants).remove(&device);
                Err(match other {
                    Ok(reply) => self.unexpected(reply),
                    Err(err) => err,
                })
            }
        }
    }

    /// Asks the broker for a coordinated reset of a leased function (its group, by scope).
    pub fn request_reset(&self, request: ResetRequest) -> Result<RemoteResetOutcome> {
        match self.call(&ClientMessage::RequestReset { request })? {
            BrokerMessage::ResetDone {
                coalesced,
                members,
                report,
            } => Ok(RemoteResetOutcome {
                coalesced,
                members,
                report,
            }),
            other => Err(self.unexpected(other)),
        }
    }

    /// Gives a leased function back; its participant leaves the broker's resets.
    pub fn release(&self, device: PciAddress) -> Result<()> {
        match self.call(&ClientMessage::Release { device })? {
            BrokerMessage::Done => {
                relock(&self.hooks.participants).remove(&device);
                Ok(())
            }
            other => Err(self.unexpected(other)),
        }
    }

    /// Functions the broker fenced, with its reason.
    pub fn fenced(&self) -> Vec<(PciAddress, String)> {
        relock(&self.hooks.fenced)
            .iter()
            .map(|(a, why)| (*a, why.clone()))
            .collect()
    }

    fn call(&self, message: &ClientMessage) -> Result<BrokerMessage> {
        let _one_at_a_time = relock(&self.call);
        let closed = || self.protocol("the broker closed the connection".into());
        if self.hooks.closed.load(Ordering::Acquire) {
            return Err(closed());
        }
        if let Err(source) = write_frame(&mut *relock(&self.writer), message) {
            use std::io::ErrorKind::{BrokenPipe, ConnectionReset, NotConnected};
            return Err(
                if matches!(source.kind(), BrokenPipe | ConnectionReset | NotConnected) {
                    closed()
                } else {
                    Error::BrokerSocket {
                        path: self.socket.clone(),
                        what: "cannot send",
                        source,
                    }
                },
            );
        }
        match self.replies.recv_timeout(self.reply_timeout) {
            Ok(BrokerMessage::Refused { message }) => Err(Error::BrokerRefused { message }),
            Ok(reply) => Ok(reply),
            Err(RecvTimeoutError::Timeout) => {
                Err(self.protocol(format!("no reply in {} s", self.reply_timeout.as_secs())))
            }
            Err(RecvTimeoutError::Disconnected) => Err(closed()),
        }
    }

    fn protocol(&self, what: String) -> Error {
        Error::BrokerProtocol {
            peer: format!("broker at {}", self.socket.display()),
            what,
        }
    }

    fn unexpected(&self, reply: BrokerMessage) -> Error {
        self.protocol(format!("unexpected reply {reply:?}"))
    }
}

impl<C: Collector> Drop for BrokerClient<C> {
    fn drop(&mut self) {
        let _ = relock(&self.writer).shutdown(std::net::Shutdown::Both);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// Sorts the broker's messages: replies to the caller, hooks and fences to the hook runner.
fn read_loop(
    mut reader: UnixStream,
    replies: &Sender<BrokerMessage>,
    hooks: &Sender<BrokerMessage>,
    state: &HookState,
) {
    while let Ok(message) = read_frame::<BrokerMessage>(&mut reader) {
        if let BrokerMessage::Fenced { device, .. } = &message {
            // Stops a hook of that function that is still running.
            relock(&state.cancelled).insert(*device);
        }
        let sent = if message.is_reply() {
            replies.send(message)
        } else {
            hooks.send(message)
        };
        if sent.is_err() {
            break;
        }
    }
    state.closed.store(true, Ordering::Release);
}
