//! Register reads and writes: what an access to each register does (the dispatch over the
//! layout of [`super::regs`]), on top of the model's parts it reaches into.

use userpci_framework::backend::sim::ModelContext;

use super::hostile::DeviceWrite;
use super::regs::{
    block, eiam_ex, eics_ex, eimc_ex, eims_ex, is_counter, queue_reg, rx_reg, tx_reg, QueueReg,
};
use super::state::IxgbeModel;
use crate::spec::queue::{
    DMATXCTL, DMATXCTL_TE, RDRXCTL, RDRXCTL_DMAIDONE, RXCTRL, RXCTRL_RXEN, RXDCTL_ENABLE, RXPBSIZE,
    TXDCTL_ENABLE, TXDCTL_SWFLSH,
};
use crate::spec::regs::{
    AUTOC, AUTOC_AN_RESTART, AUTOC_FLU, CTRL, CTRL_LRST, CTRL_PCIE_MASTER_DISABLE, CTRL_RST, EEC,
    EEC_ARD, EEC_PRES, EIAC, EIAM, EICR, EICS, EIMC, EIMS, GPIE, LINKS, LINKS_UP, STATUS,
    STATUS_LAN_ID_SHIFT, STATUS_LINK_UP, STATUS_PCIE_MASTER_ENABLE_STATUS,
};

impl IxgbeModel {
    /// A 32-bit register read.
    pub(crate) fn read32(&mut self, ctx: &mut ModelContext<'_>, offset: usize) -> u32 {
        match offset {
            STATUS => {
                let lan = u32::from(ctx.address().function & 1) << STATUS_LAN_ID_SHIFT;
                let link = if self.link.up { STATUS_LINK_UP } else { 0 };
                let master = if self.reg(CTRL) & CTRL_PCIE_MASTER_DISABLE == 0 {
                    STATUS_PCIE_MASTER_ENABLE_STATUS
                } else {
                    0
                };
                lan | link | master
            }
            LINKS => self.links(),
            EICR => self.read_eicr(),
            EICS => self.eicr_value(),
            EIMS => self.eims_value(),
            EIMC => 0,
            o if o == eims_ex(0) => self.irq.mask as u32,
            o if o == eims_ex(1) => (self.irq.mask >> 32) as u32,
            o if is_counter(o) => {
                let value = self.reg(o);
                self.set_reg(o, 0);
                value
            }
            o => match queue_reg(o) {
                Some(QueueReg::Tx(q, block::HEAD)) => {
                    self.hostile
                        .u32(self.reg(o), |value| DeviceWrite::HeadRead {
                            queue: q as u16,
                            tx: true,
                            value,
                        })
                }
                Some(QueueReg::Rx(q, block::HEAD)) => {
                    self.hostile
                        .u32(self.reg(o), |value| DeviceWrite::HeadRead {
                            queue: q as u16,
                            tx: false,
                            value,
                        })
                }
                _ => self.reg(o),
            },
        }
    }

    /// A 32-bit register write.
    pub(crate) fn write32(&mut self, ctx: &mut ModelContext<'_>, offset: usize, value: u32) {
        if let Some(queue) = queue_reg(offset) {
            if !is_counter(offset) {
                self.write_queue_reg(ctx, offset, queue, value);
            }
            return;
        }
        match offset {
            CTRL => self.write_ctrl(ctx, value),
            STATUS | LINKS => {}
            EEC => {
                let hw = EEC_PRES | EEC_ARD;
                let old = self.reg(EEC);
                self.set_reg(EEC, (value & !hw) | (old & hw));
            }
            RDRXCTL => {
                let old = self.reg(RDRXCTL);
                self.set_reg(
                    RDRXCTL,
                    (value & !RDRXCTL_DMAIDONE) | (old & RDRXCTL_DMAIDONE),
                );
            }
            AUTOC => {
                let old = self.reg(AUTOC);
                self.set_reg(AUTOC, value & !AUTOC_AN_RESTART);
                let force_up = value & AUTOC_FLU != 0 && old & AUTOC_FLU == 0;
                if value & AUTOC_AN_RESTART != 0 || force_up {
                    self.restart_link(ctx);
                }
            }
            RXCTRL => {
                let old = self.reg(RXCTRL);
                self.set_reg(RXCTRL, value);
                if value & RXCTRL_RXEN != 0 && old & RXCTRL_RXEN == 0 {
                    self.receiver_enabled(ctx);
                }
            }
            DMATXCTL => {
                let old = self.reg(DMATXCTL);
                self.set_reg(DMATXCTL, value);
                self.announce_sending();
                if value & DMATXCTL_TE != 0 && old & DMATXCTL_TE == 0 {
                    self.process_all_tx(ctx);
                }
            }
            o if o == RXPBSIZE(0) => {
                self.set_reg(o, value);
                self.rx_fifo
                    .set_limit(((value >> 10) & 0x3FF) as usize * 1024);
            }
            EICR => self.write_eicr(ctx, value),
            EICS => self.write_eics(ctx, value),
            EIMS => self.write_eims(ctx, u64::from(value & 0xFFFF), value & 0xFFFF_0000),
            EIMC => self.write_eimc(u64::from(value & 0xFFFF), value & 0xFFFF_0000),
            EIAM => {
                self.set_reg(EIAM, value);
                let low = eiam_ex(0);
                self.set_reg(low, (self.reg(low) & !0xFFFF) | (value & 0xFFFF));
            }
            o if o == eiam_ex(0) => {
                self.set_reg(o, value);
                self.set_reg(EIAM, (self.reg(EIAM) & !0xFFFF) | (value & 0xFFFF));
            }
            o if o == eims_ex(0) || o == eims_ex(1) => {
                let shift = if o == eims_ex(0) { 0 } else { 32 };
                self.write_eims(ctx, u64::from(value) << shift, 0);
            }
            o if o == eimc_ex(0) || o == eimc_ex(1) => {
                let shift = if o == eimc_ex(0) { 0 } else { 32 };
                self.write_eimc(u64::from(value) << shift, 0);
            }
            o if o == eics_ex(0) || o == eics_ex(1) => {
                let shift = if o == eics_ex(0) { 0 } else { 32 };
                self.set_causes(ctx, u64::from(value) << shift, 0);
            }
            EIAC | GPIE => self.set_reg(offset, value),
            o if is_counter(o) => {}
            o => self.set_reg(o, value),
        }
    }

    fn write_queue_reg(
        &mut self,
        ctx: &mut ModelContext<'_>,
        offset: usize,
        queue: QueueReg,
        value: u32,
    ) {
        match queue {
            QueueReg::Rx(_, block::TAIL) => {
                self.set_reg(offset, value & 0xFFFF);
                self.drain_rx(ctx);
            }
            QueueReg::Rx(q, block::HEAD) => {
                if self.reg(rx_reg(q, block::DCTL)) & RXDCTL_ENABLE != 0 {
                    self.stats.protocol_violations += 1;
                }
                self.set_reg(offset, value & 0xFFFF);
            }
            QueueReg::Rx(q, block::DCTL) => {
                let old = self.reg(offset);
                let allowed = q < usize::from(self.config.rx_queues);
                let value = if allowed {
                    value
                } else {
                    value & !RXDCTL_ENABLE
                };
                self.set_reg(offset, value);
                if value & RXDCTL_ENABLE != 0 && old & RXDCTL_ENABLE == 0 {
                    self.drain_rx(ctx);
                }
            }
            QueueReg::Tx(q, block::TAIL) => {
                self.set_reg(offset, value & 0xFFFF);
                self.process_tx(ctx, q);
            }
            QueueReg::Tx(q, block::HEAD) => {
                if self.reg(tx_reg(q, block::DCTL)) & TXDCTL_ENABLE != 0 {
                    self.stats.protocol_violations += 1;
                }
                self.set_reg(offset, value & 0xFFFF);
            }
            QueueReg::Tx(q, block::DCTL) => {
                let old = self.reg(offset);
                let allowed = q < usize::from(self.config.tx_queues);
                let value = if allowed {
                    value
                } else {
                    value & !TXDCTL_ENABLE
                };
                // SWFLSH is self-clearing: it flushes the accumulated write-backs.
                self.set_reg(offset, value & !TXDCTL_SWFLSH);
                if value & TXDCTL_ENABLE == 0 {
                    self.tx_queues[q].disable();
                }
                if value & TXDCTL_SWFLSH != 0 {
                    self.flush_tx_writebacks(ctx, q);
                }
                if value & TXDCTL_ENABLE != 0 && old & TXDCTL_ENABLE == 0 {
                    self.process_tx(ctx, q);
                }
            }
            _ => self.set_reg(offset, value),
        }
    }

    fn write_ctrl(&mut self, ctx: &mut ModelContext<'_>, value: u32) {
        if value & CTRL_RST != 0 {
            self.software_reset(ctx, value & CTRL_LRST != 0);
        } else if value & CTRL_LRST != 0 {
            self.set_reg(CTRL, value);
            self.link_reset(ctx);
        } else {
            let busy = self.reg(CTRL) & (CTRL_RST | CTRL_LRST);
            self.set_reg(CTRL, value | busy);
        }
    }

    /// `LINKS` as the link state gives it.
    pub(crate) fn links(&self) -> u32 {
        if self.link.up {
            LINKS_UP | crate::spec::regs::LinkSpeed::Gbps10.links_bits()
        } else {
            0
        }
    }
}
