//! The transmit sink: what a port sent, counted, and the last frames kept for tests.

use bytemuck::{Pod, Zeroable};

use super::frame::{FrameFifo, MAX_FRAME};

#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
#[repr(C)]
pub(crate) struct SinkMeta {
    queue: u16,
    fcs: u16,
}

/// A transmitted frame kept by the sink.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SentFrame<'a> {
    /// The TX queue it was sent from.
    pub queue: u16,
    /// Whether the device appended an FCS (`IFCS`); not included in `data`.
    pub fcs: bool,
    /// The frame as it went on the wire (after padding), without FCS.
    pub data: &'a [u8],
}

/// Everything the port transmitted: counts, and the last `sink_keep` frames.
#[derive(Debug)]
pub struct TxSink {
    keep: usize,
    frames: FrameFifo<SinkMeta>,
    sent: u64,
    bytes: u64,
}

impl TxSink {
    pub(crate) fn new(keep: usize) -> Self {
        let per_frame = FrameFifo::<SinkMeta>::record_size(MAX_FRAME);
        TxSink {
            keep,
            frames: FrameFifo::new(keep.max(1) * per_frame),
            sent: 0,
            bytes: 0,
        }
    }

    pub(crate) fn record(&mut self, queue: u16, fcs: bool, frame: &[u8]) {
        self.sent += 1;
        self.bytes += frame.len() as u64;
        if self.keep == 0 {
            return;
        }
        while self.frames.len() >= self.keep
            || (!self.frames.is_empty() && !self.frames.fits(frame.len()))
        {
            self.frames.pop();
        }
        let meta = SinkMeta {
            queue,
            fcs: u16::from(fcs),
        };
        self.frames.push(meta, frame);
    }

    /// Frames transmitted since the model was built (resets do not clear it).
    pub fn frames_sent(&self) -> u64 {
        self.sent
    }

    /// Bytes transmitted (frames without FCS).
    pub fn bytes_sent(&self) -> u64 {
        self.bytes
    }

    /// The kept frames, oldest first.
    pub fn frames(&self) -> impl Iterator<Item = SentFrame<'_>> {
        self.frames.iter().map(|(meta, data)| SentFrame {
            queue: meta.queue,
            fcs: meta.fcs != 0,
            data,
        })
    }

    /// The newest kept frame.
    pub fn last(&self) -> Option<SentFrame<'_>> {
        self.frames().last()
    }

    /// Forgets the kept frames (the counts stay).
    pub fn clear(&mut self) {
        self.frames.clear();
    }
}
