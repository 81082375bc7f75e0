//! userpci NVMe driver. Written against `userpci_framework::device::PciFunction`, so the same
//! code drives a simulated controller and a real one.
//!
//! | module | contents |
//! |---|---|
//! | [`spec`] | the specification as types, shared with the controller model |
//! | [`Controller`] | bring-up, identify, namespaces, queue creation, reset (quiesce / recover), shutdown, log pages, asynchronous events |
//! | [`IoQueuePair`] | the raw polled data path: submit with a token, process completions, no allocation |
//! | [`AsyncQueuePair`] | `async` read / write / flush / write zeroes / trim on the framework runtime |
//! | [`NvmeParticipant`] | the controller as a participant of the framework's reset coordinator |
//! | [`prp`] | PRP entries and lists |
//! | [`Error`] | the crate's one error type |
//!
//! ```no_run
//! # use userpci_framework::device::PciFunction;
//! # fn demo<F: PciFunction>(function: F) -> userpci_nvme::Result<()> {
//! use userpci_nvme::{Controller, ControllerOptions, QpairOptions};
//!
//! let ctrl = Controller::new(function, ControllerOptions::default())?;
//! let ns = ctrl.namespaces()[0].clone();
//! let mut qp = ctrl.create_io_qpair::<u64, userpci_framework::dma::DmaBuffer>(
//!     QpairOptions::default(),
//! )?;
//! let buf = ctrl
//!     .function()
//!     .dma_space()
//!     .allocate_buffer(4096, userpci_framework::dma::DmaDirection::Bidirectional)?;
//! qp.submit_read(&ns, 0, buf, 1)?;
//! let mut done = None;
//! while done.is_none() {
//!     qp.process_completions(0, &mut |c| done = Some(c));
//! }
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]

pub mod spec;

#[cfg(feature = "model")]
pub mod model;

mod async_qpair;
mod buffer;
pub mod controller;
mod error;
mod namespace;
mod participant;
pub mod prp;
mod qpair;
mod queue;

pub use async_qpair::AsyncQueuePair;
pub use buffer::IoBuffer;
pub use controller::{
    AsyncEventNotice, Controller, ControllerInfo, ControllerOptions, ControllerState, EventLog,
    QpairState, ResetHandler, ShutdownReport, DEFAULT_SHUTDOWN_TIMEOUT, LOG_BUFFER_SIZE,
    NVME_CLASS_CODE,
};
pub use error::{Error, Rejected, Result, StatusKind};
pub use namespace::{LbaFormatInfo, Namespace, UnusableNamespace};
pub use participant::NvmeParticipant;
pub use qpair::{BogusCompletions, IoCompletion, IoQueuePair, QpairOptions, QpairStats};
