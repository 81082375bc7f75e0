//! The same shapes as ../cyclic, broken with a leaf. `crate::device::Device` in a comment.

mod controller;
mod device;
mod link;
mod probe;
mod rx;
mod state;
mod stats;

// A facade: re-exports depend on nothing.
pub use controller::*;
pub use device::Device;
pub use state::{Counters, Speed};

#[macro_export]
macro_rules! counters {
    () => {
        $crate::device::Device::new()
    };
}
