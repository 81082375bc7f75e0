//! The client's side of a reset: running its participants' hooks when the broker asks, on a
//! thread of their own, so that the application's thread may be waiting for that very reset.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crossbeam::channel::Receiver;

use super::protocol::{BrokerMessage, ClientMessage, HookPhase};
use crate::pci::PciAddress;
use crate::reset::{Progress, ResetParticipant};

/// Between two polls of a participant that is still working.
const POLL_PAUSE: Duration = Duration::from_micros(50);

/// What the reader thread and the hook runner share.
#[derive(Default)]
pub(super) struct HookState {
    pub participants: Mutex<BTreeMap<PciAddress, Box<dyn ResetParticipant>>>,
    /// Functions the broker fenced, with its reason; a hook running on one stops.
    pub fenced: Mutex<BTreeMap<PciAddress, String>>,
    /// Set when the broker's connection is gone: running hooks stop.
    pub closed: std::sync::atomic::AtomicBool,
    /// Functions whose fence message arrived but was not yet acted on.
    pub cancelled: Mutex<BTreeSet<PciAddress>>,
}

pub(super) fn relock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl HookState {
    fn stopped(&self, device: PciAddress) -> bool {
        self.closed.load(std::sync::atomic::Ordering::Acquire)
            || relock(&self.cancelled).contains(&device)
    }
}

/// Runs hooks in the order the broker sent them until the connection closes; `answer` sends
/// one `HookDone`.
pub(super) fn run(
    state: &Arc<HookState>,
    messages: &Receiver<BrokerMessage>,
    answer: &dyn Fn(&ClientMessage) -> std::io::Result<()>,
) {
    for message in messages {
        match message {
            BrokerMessage::Hook { device, phase, seq } => {
                let error = run_hook(state, device, phase);
                if state.stopped(device) {
                    continue;
                }
                let done = ClientMessage::HookDone { device, seq, error };
                if answer(&done).is_err() {
                    return;
                }
            }
            BrokerMessage::Fenced { device, reason } => {
                if let Some(mut participant) = relock(&state.participants).remove(&device) {
                    participant.abandon(&reason);
                }
                relock(&state.cancelled).remove(&device);
                relock(&state.fenced).insert(device, reason);
            }
            _ => {}
        }
    }
}

/// One hook, begun and polled to its end; `Some(why)` when it failed or was stopped.
fn run_hook(state: &HookState, device: PciAddress, phase: HookPhase) -> Option<String> {
    let mut participants = relock(&state.participants);
    let Some(participant) = participants.get_mut(&device) else {
        return Some(format!(
            "{device}: no participant registered in this client"
        ));
    };
    let begun = match phase {
        HookPhase::Quiesce => participant.begin_quiesce(),
        HookPhase::Recover => participant.begin_recover(),
    };
    if let Err(err) = begun {
        return Some(err.to_string());
    }
    loop {
        let progress = match phase {
            HookPhase::Quiesce => participant.poll_quiesce(),
            HookPhase::Recover => participant.poll_recover(),
        };
        match progress {
            Ok(Progress::Done) => return None,
            Err(err) => return Some(err.to_string()),
            Ok(Progress::Pending) if state.stopped(device) => {
                return Some(format!(
                    "{device}: {} stopped by the broker",
                    phase.as_str()
                ));
            }
            Ok(Progress::Pending) => std::thread::sleep(POLL_PAUSE),
        }
    }
}
