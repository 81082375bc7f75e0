//! The PHY's registers through `MDIC` (datasheet 8.2.4): one access at a time, each polled
//! for `MDIC.R` with a deadline, `MDIC.E` reported as an error.

use std::time::Duration;

use userpci_framework::device::PciFunction;
use userpci_framework::time::poll_until;

use crate::error::{Error, Result};
use crate::shared::Shared;
use crate::spec::regs;

/// Deadline for one MDIC access (Linux polls 1920 × 50 µs, 96 ms).
pub const MDIC_TIMEOUT: Duration = Duration::from_millis(100);

/// What a finished MDIC access reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MdicOutcome {
    /// `MDIC.R` set, `MDIC.E` clear: the data field.
    Done(u16),
    /// `MDIC.E` set.
    Error,
    /// Not finished yet.
    Pending,
}

/// Decodes an `MDIC` value read back after starting an access.
pub(crate) const fn mdic_outcome(mdic: u32) -> MdicOutcome {
    if mdic & regs::MDIC_ERROR != 0 {
        MdicOutcome::Error
    } else if mdic & regs::MDIC_READY != 0 {
        MdicOutcome::Done((mdic & regs::MDIC_DATA_MASK) as u16)
    } else {
        MdicOutcome::Pending
    }
}

fn access<F: PciFunction>(
    s: &Shared<F>,
    command: u32,
    register: u32,
    op: &'static str,
) -> Result<u16> {
    s.write(regs::MDIC, command);
    let mut last = 0u32;
    let polled = poll_until(
        s.clock(),
        s.device,
        "MDIC.R=1 (PHY access done)",
        MDIC_TIMEOUT,
        || {
            last = s.read(regs::MDIC);
            if last == u32::MAX {
                return Err(userpci_framework::Error::DeviceGone { device: s.device });
            }
            Ok(match mdic_outcome(last) {
                MdicOutcome::Pending => None,
                done => Some(done),
            })
        },
    );
    let phy_error = |mdic, reason| Error::Phy {
        device: s.device,
        register,
        op,
        mdic,
        reason,
    };
    match polled {
        Ok(MdicOutcome::Done(data)) => Ok(data),
        Ok(_) => Err(phy_error(last, "MDIC.E set: no PHY register there")),
        Err(userpci_framework::Error::DeviceGone { .. }) => Err(Error::DeviceGone {
            device: s.device,
            register: "MDIC",
        }),
        Err(_) => Err(phy_error(last, "MDIC.R not set before the deadline")),
    }
}

/// Reads PHY register `register` of the internal PHY.
pub(crate) fn read<F: PciFunction>(s: &Shared<F>, register: u32) -> Result<u16> {
    access(
        s,
        regs::mdic_read(regs::PHY_ADDRESS, register),
        register,
        "read",
    )
}

/// Writes `data` to PHY register `register` of the internal PHY.
pub(crate) fn write<F: PciFunction>(s: &Shared<F>, register: u32, data: u16) -> Result<()> {
    access(
        s,
        regs::mdic_write(regs::PHY_ADDRESS, register, data),
        register,
        "write",
    )
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mdic_read_back_is_decoded() {
        assert_eq!(mdic_outcome(0x0820_0000), MdicOutcome::Pending);
        assert_eq!(
            mdic_outcome(regs::MDIC_READY | 0x1140),
            MdicOutcome::Done(0x1140)
        );
        assert_eq!(
            mdic_outcome(regs::MDIC_READY | regs::MDIC_ERROR | 0x1140),
            MdicOutcome::Error,
            "E wins over R"
        );
    }
}
