//! The broker's wire protocol: length-prefixed JSON messages over a Unix stream socket.
//!
//! A frame is a little-endian `u32` byte count followed by that many bytes of one JSON object.
//! JSON because an operator can read it in `strace` and a client in another language can speak
//! it; the control path carries a few messages per reset, so its cost does not matter. Frames
//! over [`MAX_FRAME`] are refused before anything is allocated for them.

use std::io::{self, Read, Write};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::pci::PciAddress;
use crate::reset::ResetRequest;

/// Protocol version; a client speaking another is refused at `Hello`.
pub const PROTOCOL_VERSION: u32 = 1;

/// The largest frame either side accepts (a reset report of a large group fits many times).
pub const MAX_FRAME: usize = 1 << 20;

/// A reset phase the broker asks a client's participant to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HookPhase {
    /// Stop submissions, take back in-flight work.
    Quiesce,
    /// Re-initialise after the reset and replay.
    Recover,
}

impl HookPhase {
    /// `quiesce` or `recover`.
    pub fn as_str(self) -> &'static str {
        match self {
            HookPhase::Quiesce => "quiesce",
            HookPhase::Recover => "recover",
        }
    }
}

/// How a client's participant is scheduled; budgets are real time in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteBudget {
    /// Recovery order, lower first.
    pub priority: u32,
    /// Time from the broker's quiesce message to the client's answer.
    pub quiesce_ms: u64,
    /// Time from the broker's recover message to the client's answer.
    pub recover_ms: u64,
}

impl RemoteBudget {
    /// The quiesce budget.
    pub fn quiesce(&self) -> Duration {
        Duration::from_millis(self.quiesce_ms)
    }
    /// The recover budget.
    pub fn recover(&self) -> Duration {
        Duration::from_millis(self.recover_ms)
    }
}

/// What a client sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// The first message: who is asking, in which protocol version.
    Hello {
        version: u32,
        name: String,
        pid: u32,
    },
    /// Lend me this function.
    Acquire { device: PciAddress },
    /// The only message of a collect connection: send me the lend this token names.
    Collect { token: u64 },
    /// Take part in resets of a leased function through my participant.
    Register {
        device: PciAddress,
        name: String,
        budget: RemoteBudget,
    },
    /// Run a coordinated reset for a leased function.
    RequestReset { request: ResetRequest },
    /// Give a leased function back.
    Release { device: PciAddress },
    /// A hook the broker asked for finished (`error` empty) or failed.
    HookDone {
        device: PciAddress,
        seq: u64,
        error: Option<String>,
    },
}

/// One member's outcome in a [`BrokerMessage::ResetDone`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteMember {
    /// The function.
    pub address: PciAddress,
    /// Its participant, if one was registered.
    pub participant: Option<String>,
    /// `None` when it recovered, else why not.
    pub failure: Option<String>,
}

/// What the broker sends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BrokerMessage {
    /// The answer to `Hello`: the client's id for logs and errors.
    Welcome { client: u64, version: u32 },
    /// The function is leased to the client; it collects the lend with `token` on a
    /// connection of its own (one use).
    Leased { device: PciAddress, token: u64 },
    /// On a collect connection: the lend, with its descriptors attached (`fds` of them).
    Lent {
        device: PciAddress,
        fds: u32,
        detail: serde_json::Value,
    },
    /// A request succeeded and has nothing else to say.
    Done,
    /// A reset ran (or was joined); `report` is the coordinator's report as JSON.
    ResetDone {
        coalesced: bool,
        members: Vec<RemoteMember>,
        report: serde_json::Value,
    },
    /// The request was refused or failed; `message` says why and names the device.
    Refused { message: String },
    /// Run a hook of the participant registered for `device` and answer with `HookDone`.
    Hook {
        device: PciAddress,
        phase: HookPhase,
        seq: u64,
    },
    /// The broker fenced the function (bus mastering off, lease revoked): stop using it.
    Fenced { device: PciAddress, reason: String },
}

impl BrokerMessage {
    /// True for the messages that answer a client's request (the rest arrive unasked).
    pub fn is_reply(&self) -> bool {
        !matches!(
            self,
            BrokerMessage::Hook { .. } | BrokerMessage::Fenced { .. }
        )
    }
}

/// What reading a frame can end in, besides a message.
#[derive(Debug)]
pub enum FrameError {
    /// The peer closed the connection between frames.
    Closed,
    /// The socket failed.
    Io(io::Error),
    /// The frame's length is over [`MAX_FRAME`]: the stream cannot be resynchronised.
    TooLong(usize),
    /// A well-framed message that is not valid JSON of the expected shape.
    Malformed(String),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Closed => write!(f, "connection closed"),
            FrameError::Io(err) => write!(f, "socket error: {err}"),
            FrameError::TooLong(len) => {
                write!(f, "frame of {len} bytes, the limit is {MAX_FRAME}")
            }
            FrameError::Malformed(why) => write!(f, "malformed message: {why}"),
        }
    }
}

/// One message as a frame's bytes.
pub fn frame_bytes<T: Serialize>(message: &T) -> io::Result<Vec<u8>> {
    let body = serde_json::to_vec(message).map_err(io::Error::other)?;
    let len = u32::try_from(body.len())
        .ok()
        .filter(|&len| len as usize <= MAX_FRAME)
        .ok_or_else(|| io::Error::other(format!("message of {} bytes", body.len())))?;
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&len.to_le_bytes());
    frame.extend_from_slice(&body);
    Ok(frame)
}

/// Writes one message as a frame.
pub fn write_frame<T: Serialize>(out: &mut impl Write, message: &T) -> io::Result<()> {
    out.write_all(&frame_bytes(message)?)
}

/// Reads one frame and parses it as `T`.
pub fn read_frame<T: for<'de> Deserialize<'de>>(input: &mut impl Read) -> Result<T, FrameError> {
    let mut len = [0u8; 4];
    match input.read_exact(&mut len) {
        Ok(()) => {}
        Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => return Err(FrameError::Closed),
        Err(err) => return Err(FrameError::Io(err)),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(FrameError::TooLong(len));
    }
    let mut body = vec![0u8; len];
    input.read_exact(&mut body).map_err(FrameError::Io)?;
    serde_json::from_slice(&body).map_err(|err| FrameError::Malformed(err.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_survives_the_round_trip() {
        let message = ClientMessage::Register {
            device: "0000:01:00.1".parse().unwrap(),
            name: "nvme1".into(),
            budget: RemoteBudget {
                priority: 3,
                quiesce_ms: 50,
                recover_ms: 2000,
            },
        };
        let mut wire = Vec::new();
        write_frame(&mut wire, &message).unwrap();
        assert_eq!(
            wire.len(),
            4 + u32::from_le_bytes(wire[..4].try_into().unwrap()) as usize
        );
        let back: ClientMessage = read_frame(&mut wire.as_slice()).unwrap();
        assert_eq!(back, message);
    }

    #[test]
    fn an_oversize_length_is_refused_before_reading_the_body() {
        let mut wire = ((MAX_FRAME + 1) as u32).to_le_bytes().to_vec();
        wire.extend_from_slice(b"{}");
        let err = read_frame::<ClientMessage>(&mut wire.as_slice()).unwrap_err();
        assert!(matches!(err, FrameError::TooLong(len) if len == MAX_FRAME + 1));
    }

    #[test]
    fn bad_json_and_unknown_types_are_malformed_and_eof_is_closed() {
        for body in [&b"{not json"[..], br#"{"type":"format_disk"}"#] {
            let mut wire = (body.len() as u32).to_le_bytes().to_vec();
            wire.extend_from_slice(body);
            let err = read_frame::<ClientMessage>(&mut wire.as_slice()).unwrap_err();
            assert!(matches!(err, FrameError::Malformed(_)), "{err}");
        }
        let err = read_frame::<ClientMessage>(&mut [].as_slice()).unwrap_err();
        assert!(matches!(err, FrameError::Closed));
    }
}
