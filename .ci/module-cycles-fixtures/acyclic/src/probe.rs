//! Uses a #[macro_export] macro by its crate-root path; the edge goes to where it is defined.

pub fn probe() {
    let _ = crate::require_speed!();
}
