//! One client's session with the broker: its requests, checked against its lease, and what
//! happens to its functions when it goes away.

use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::Arc;

use super::connection::{Connection, HookAnswer};
use super::fdpass::send_with_fds;
use super::protocol::{
    frame_bytes, read_frame, BrokerMessage, ClientMessage, FrameError, RemoteBudget, RemoteMember,
    PROTOCOL_VERSION,
};
use super::remote::{fence, RemoteParticipant};
use super::state::{PendingLend, Shared};
use crate::error::{Error, Result};
use crate::pci::PciAddress;
use crate::reset::{ParticipantConfig, ResetOutcome};

/// Serves one client until it disconnects or the broker stops.
pub(super) fn serve(shared: &Arc<Shared>, id: u64, mut stream: UnixStream) {
    let writer = match stream
        .set_write_timeout(Some(shared.config.write_timeout))
        .and_then(|()| stream.try_clone())
    {
        Ok(writer) => writer,
        Err(err) => {
            tracing::warn!(client = id, %err, "broker: cannot set up the connection");
            return;
        }
    };
    let conn = Arc::new(Connection::new(id, writer));
    shared.connections().insert(id, Arc::clone(&conn));
    let mut greeted = false;
    loop {
        let message = match read_frame::<ClientMessage>(&mut stream) {
            Ok(message) => message,
            Err(FrameError::Closed | FrameError::Io(_)) => break,
            Err(err @ FrameError::TooLong(_)) => {
                // The stream cannot be resynchronised after a bad length: say why and close.
                refuse(
                    &conn,
                    &format!("{}: {err}; closing the connection", conn.label()),
                );
                break;
            }
            Err(err @ FrameError::Malformed(_)) => {
                refuse(&conn, &format!("{}: {err}", conn.label()));
                continue;
            }
        };
        let reply = match (greeted, message) {
            (_, ClientMessage::Hello { version, name, pid }) if version == PROTOCOL_VERSION => {
                greeted = true;
                conn.set_label(&name, pid);
                tracing::info!(client = %conn.label(), "broker: client connected");
                BrokerMessage::Welcome {
                    client: id,
                    version,
                }
            }
            (_, ClientMessage::Hello { version, .. }) => BrokerMessage::Refused {
                message: format!(
                    "{}: protocol version {version}, this broker speaks {PROTOCOL_VERSION}",
                    conn.label()
                ),
            },
            (false, ClientMessage::Collect { token }) => {
                deliver(shared, &conn, &stream, token);
                break;
            }
            (false, _) => BrokerMessage::Refused {
                message: format!("{}: send hello first", conn.label()),
            },
            (true, ClientMessage::HookDone { device, seq, error }) => {
                if !conn.route(device, HookAnswer { seq, error }) {
                    tracing::debug!(client = %conn.label(), %device, seq, "late hook answer");
                }
                continue;
            }
            (true, message) => {
                // On a thread of its own: a reset, and the coordinator calls of register and
                // release, wait for a running reset, and this thread must keep routing the
                // hook answers that reset needs from this very client.
                spawn_request(shared, &conn, message);
                continue;
            }
        };
        if conn.send(&reply).is_err() {
            break;
        }
    }
    disconnect(shared, &conn);
}

fn refuse(conn: &Connection, message: &str) {
    tracing::warn!(client = %conn.label(), message, "broker: refused");
    let _ = conn.send(&BrokerMessage::Refused {
        message: message.to_string(),
    });
}

fn handle(
    shared: &Arc<Shared>,
    conn: &Arc<Connection>,
    message: ClientMessage,
) -> Result<BrokerMessage> {
    let label = conn.label();
    match message {
        ClientMessage::RequestReset { request } => {
            shared.leases.check(request.device, conn.id, &label)?;
            Ok(reset_done(&shared.coordinator.request(request)?))
        }
        ClientMessage::Acquire { device } => {
            shared.leases.acquire(device, conn.id, &label)?;
            let lent = shared.lender.lend(device, conn.id).and_then(|lend| {
                let token = one_time_token().map_err(|source| Error::BrokerSocket {
                    path: shared.config.socket.clone(),
                    what: "cannot draw a lend token from /dev/urandom",
                    source,
                })?;
                let pending = PendingLend {
                    client: conn.id,
                    device,
                    lend,
                };
                shared.pending().insert(token, pending);
                Ok(token)
            });
            match lent {
                Ok(token) => Ok(BrokerMessage::Leased { device, token }),
                Err(err) => {
                    shared.leases.release(device, conn.id);
                    Err(err)
                }
            }
        }
        ClientMessage::Register {
            device,
            name,
            budget,
        } => {
            shared.leases.check(device, conn.id, &label)?;
            register(shared, conn, device, name, budget)?;
            Ok(BrokerMessage::Done)
        }
        ClientMessage::Release { device } => {
            shared.leases.check(device, conn.id, &label)?;
            shared.coordinator.unregister(device);
            shared.lender.reclaim(device);
            shared.leases.release(device, conn.id);
            shared.pending().retain(|_, p| p.device != device);
            // Still the broker's: disabled and reset with its group.
            if let Some(target) = shared.targets.get(&device) {
                shared.coordinator.add_function(Arc::clone(target));
            }
            Ok(BrokerMessage::Done)
        }
        // The session loop answers these itself; a second hello lands here, and a collect
        // in the middle of a session.
        ClientMessage::Hello { .. }
        | ClientMessage::HookDone { .. }
        | ClientMessage::Collect { .. } => Err(Error::BrokerProtocol {
            peer: label,
            what: "unexpected message".into(),
        }),
    }
}

fn register(
    shared: &Arc<Shared>,
    conn: &Arc<Connection>,
    device: PciAddress,
    name: String,
    budget: RemoteBudget,
) -> Result<()> {
    let max = shared.config.max_budget;
    if budget.quiesce() > max || budget.recover() > max || budget.quiesce_ms == 0 {
        return Err(Error::BrokerRefused {
            message: format!(
                "{device}: budgets quiesce {} ms, recover {} ms: expected 1 ms to {} ms each",
                budget.quiesce_ms,
                budget.recover_ms,
                max.as_millis()
            ),
        });
    }
    let Some(target) = shared.targets.get(&device).cloned() else {
        return Err(Error::NotLeased {
            device,
            client: conn.label(),
            why: "this broker does not lend it".into(),
        });
    };
    let participant = RemoteParticipant {
        device,
        name: format!("{name} ({})", conn.label()),
        target: Arc::clone(&target),
        conn: Arc::clone(conn),
        leases: Arc::clone(&shared.leases),
        lender: Arc::clone(&shared.lender),
        answers: conn.hook_channel(device),
        budget,
        current: None,
        next_seq: 0,
    };
    // The client's real-time deadline decides; the coordinator's own deadline (on the
    // functions' clock, virtual on the simulated bus) is a backstop well behind it.
    let backstop = |b: std::time::Duration| b * 4 + std::time::Duration::from_secs(1);
    let config = ParticipantConfig {
        priority: budget.priority,
        quiesce_budget: backstop(budget.quiesce()),
        recover_budget: backstop(budget.recover()),
    };
    // The claimed function's member entry has no participant yet; this fills it in, and a
    // second registration is refused by the coordinator.
    shared
        .coordinator
        .register(target, Box::new(participant), config)
}

fn spawn_request(shared: &Arc<Shared>, conn: &Arc<Connection>, message: ClientMessage) {
    let worker = (Arc::clone(shared), Arc::clone(conn));
    let spawned = std::thread::Builder::new()
        .name(format!("userpci-broker-request-{}", conn.id))
        .spawn(move || {
            let (shared, conn) = worker;
            let reply = handle(&shared, &conn, message).unwrap_or_else(|err| {
                BrokerMessage::Refused {
                    message: match err {
                        // The client says "broker refused: " itself.
                        Error::BrokerRefused { message } => message,
                        other => other.to_string(),
                    },
                }
            });
            let _ = conn.send(&reply);
        });
    if let Err(err) = spawned {
        refuse(
            conn,
            &format!("{}: cannot serve the request: {err}", conn.label()),
        );
    }
}

fn reset_done(outcome: &ResetOutcome) -> BrokerMessage {
    let report = &outcome.report;
    BrokerMessage::ResetDone {
        coalesced: outcome.coalesced,
        members: report
            .members
            .iter()
            .map(|m| RemoteMember {
                address: m.address,
                participant: m.participant.clone(),
                failure: match &m.outcome {
                    crate::reset::Outcome::Ok => None,
                    crate::reset::Outcome::Failed(why) | crate::reset::Outcome::Skipped(why) => {
                        Some(why.clone())
                    }
                },
            })
            .collect(),
        report: serde_json::to_value(report.as_ref()).unwrap_or(serde_json::Value::Null),
    }
}

/// The client is gone: its participants see it at once (their channels close), then each
/// function it held is taken back: participant removed, bus mastering off, lease freed, and
/// the function put back under the coordinator as a claimed member.
fn disconnect(shared: &Arc<Shared>, conn: &Arc<Connection>) {
    conn.close();
    shared.connections().remove(&conn.id);
    shared.pending().retain(|_, p| p.client != conn.id);
    for device in shared.leases.held_by(conn.id) {
        let Some(target) = shared.targets.get(&device).cloned() else {
            continue;
        };
        shared.coordinator.unregister(device);
        fence(
            target.as_ref(),
            shared.lender.as_ref(),
            &shared.leases,
            conn,
            "its client disconnected",
        );
        shared.leases.release(device, conn.id);
        shared.coordinator.add_function(target);
    }
    tracing::info!(client = %conn.label(), "broker: client gone");
}

/// A token nobody can guess: a lend's descriptors go to whoever presents it.
fn one_time_token() -> std::io::Result<u64> {
    let mut bytes = [0u8; 8];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut bytes)?;
    Ok(u64::from_le_bytes(bytes))
}

/// A collect connection: sends the lend `token` names, with its descriptors, once.
fn deliver(shared: &Shared, conn: &Connection, stream: &UnixStream, token: u64) {
    let pending = shared.pending().remove(&token);
    let reply = match pending {
        None => Err(format!(
            "{}: lend token {token:#x} is unknown or was used",
            conn.label()
        )),
        Some(p) => {
            let holder = format!("client {}", p.client);
            match shared.leases.check(p.device, p.client, &holder) {
                Err(err) => Err(err.to_string()),
                Ok(()) => Ok(p),
            }
        }
    };
    let sent = match reply {
        Err(message) => conn.send(&BrokerMessage::Refused { message }),
        Ok(p) => {
            let message = BrokerMessage::Lent {
                device: p.device,
                fds: p.lend.fds.len() as u32,
                detail: p.lend.detail,
            };
            let fds: Vec<_> = p.lend.fds.iter().map(|fd| fd.as_fd()).collect();
            frame_bytes(&message).and_then(|bytes| send_with_fds(stream, &bytes, &fds))
        }
    };
    if let Err(err) = sent {
        tracing::warn!(client = %conn.label(), %err, "broker: a lend was not delivered");
    }
}
