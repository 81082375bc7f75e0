//! The leaf: shared types, imports no sibling (but its tests may build the device).

pub struct Speed;
pub struct Counters;
pub struct Inner;

pub fn describe() -> &'static str {
    "crate::device::Device is named in a string, not used"
}

#[cfg(test)]
mod tests {
    use crate::device::Device;

    #[test]
    fn builds() {
        let _ = Device::new();
    }
}

/// Exported at the crate root, defined here: `crate::require_speed!` is a use of this file.
#[macro_export]
macro_rules! require_speed {
    () => {
        $crate::state::Speed
    };
}
