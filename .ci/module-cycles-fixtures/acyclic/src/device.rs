//! The orchestrating type, on top of everything.
use crate::{
    link,
    rx::{self, RxRing},
    state::{Counters, Speed},
    stats,
};

pub struct Device;

impl Device {
    pub fn new() -> Self {
        link::up(&RxRing, &Speed);
        rx::count(&Counters);
        let _ = stats::speed();
        crate::controller::stop(&crate::state::Inner);
        Device
    }
}
