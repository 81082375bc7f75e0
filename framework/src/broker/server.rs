//! The broker: it holds whole reset groups, lends their functions to client processes over a
//! Unix socket, and runs coordinated resets across every client's participant.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::leases::{LeaseView, Leases};
use super::lending::Lender;
use super::session;
use super::state::{BrokerConfig, Shared};
use crate::device::ResetTarget;
use crate::error::{Error, Result};
use crate::pci::PciAddress;
use crate::reset::{ResetCoordinator, ResetOutcome, ResetRequest};

/// A running broker; dropping it stops serving and removes the socket.
pub struct Broker {
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
    sessions: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("socket", &self.shared.config.socket)
            .finish_non_exhaustive()
    }
}

impl Broker {
    /// Starts serving the functions of `lender` on `config.socket`.
    ///
    /// # Errors
    /// [`Error::BrokerRunning`] when another broker answers on the path; [`Error::BrokerSocket`]
    /// when the path holds something other than a socket or cannot be bound.
    pub fn start(lender: Arc<dyn Lender>, config: BrokerConfig) -> Result<Broker> {
        let targets: BTreeMap<PciAddress, Arc<dyn ResetTarget>> = lender
            .targets()
            .into_iter()
            .map(|t| (t.target_address(), t))
            .collect();
        let clock = targets
            .values()
            .next()
            .map(|t| t.target_clock())
            .ok_or_else(|| Error::BrokerRefused {
                message: "a broker needs at least one function to lend".into(),
            })?;
        let listener = bind(&config.socket, config.mode)?;
        let coordinator = Arc::new(ResetCoordinator::new(clock, config.coordinator));
        for target in targets.values() {
            coordinator.add_function(Arc::clone(target));
        }
        let shared = Arc::new(Shared {
            leases: Arc::new(Leases::new(targets.keys().copied())),
            targets,
            coordinator,
            lender,
            config,
            connections: Mutex::new(BTreeMap::new()),
            pending: Mutex::new(BTreeMap::new()),
            next_client: AtomicU64::new(1),
            stopping: AtomicBool::new(false),
        });
        let sessions = Arc::new(Mutex::new(Vec::new()));
        let accept = {
            let path = shared.config.socket.clone();
            let shared = Arc::clone(&shared);
            let sessions = Arc::clone(&sessions);
            std::thread::Builder::new()
                .name("userpci-broker".into())
                .spawn(move || accept_loop(&listener, &shared, &sessions))
                .map_err(|source| Error::BrokerSocket {
                    path,
                    what: "cannot start the accept thread",
                    source,
                })?
        };
        tracing::info!(socket = %shared.config.socket.display(), "broker serving");
        Ok(Broker {
            shared,
            accept: Some(accept),
            sessions,
        })
    }

    /// The coordinator running this broker's resets.
    pub fn coordinator(&self) -> &Arc<ResetCoordinator> {
        &self.shared.coordinator
    }

    /// Every lendable function with its holder.
    pub fn leases(&self) -> Vec<LeaseView> {
        self.shared.leases.view()
    }

    /// A coordinated reset asked by the broker itself (an operator, a watchdog).
    pub fn request_reset(&self, request: ResetRequest) -> Result<ResetOutcome> {
        self.shared.coordinator.request(request)
    }

    /// The socket path.
    pub fn socket(&self) -> &Path {
        &self.shared.config.socket
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::Release);
        // Wake the accept loop; it sees `stopping` and ends.
        let _ = UnixStream::connect(&self.shared.config.socket);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        let connections: Vec<_> = self.shared.connections().values().cloned().collect();
        for conn in connections {
            conn.close();
        }
        let sessions =
            std::mem::take(&mut *self.sessions.lock().unwrap_or_else(|p| p.into_inner()));
        for session in sessions {
            let _ = session.join();
        }
        let _ = fs::remove_file(&self.shared.config.socket);
    }
}

/// Binds `path`, refusing a live broker's socket and anything that is not a socket; a stale
/// socket (nobody answers) is replaced.
fn bind(path: &Path, mode: u32) -> Result<UnixListener> {
    let socket_error = |what, source| Error::BrokerSocket {
        path: path.to_path_buf(),
        what,
        source,
    };
    if let Ok(meta) = fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(socket_error(
                "exists and is not a socket",
                std::io::Error::from(std::io::ErrorKind::AlreadyExists),
            ));
        }
        if UnixStream::connect(path).is_ok() {
            return Err(Error::BrokerRunning {
                path: path.to_path_buf(),
            });
        }
        fs::remove_file(path).map_err(|e| socket_error("cannot remove the stale socket", e))?;
    }
    let listener = UnixListener::bind(path).map_err(|e| socket_error("cannot bind", e))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| socket_error("cannot set its permissions", e))?;
    Ok(listener)
}

fn accept_loop(
    listener: &UnixListener,
    shared: &Arc<Shared>,
    sessions: &Mutex<Vec<JoinHandle<()>>>,
) {
    for stream in listener.incoming() {
        if shared.stopping.load(Ordering::Acquire) {
            break;
        }
        let stream = match stream {
            Ok(stream) => stream,
            Err(err) => {
                tracing::warn!(%err, "broker: accept failed");
                continue;
            }
        };
        let id = shared.next_client.fetch_add(1, Ordering::Relaxed);
        let shared = Arc::clone(shared);
        let spawned = std::thread::Builder::new()
            .name(format!("userpci-broker-client-{id}"))
            .spawn(move || session::serve(&shared, id, stream));
        match spawned {
            Ok(handle) => sessions
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(handle),
            Err(err) => tracing::warn!(%err, "broker: cannot start a client thread"),
        }
    }
}
