mod reset;

// The child's shared type is re-exported here and the child names it as `super::Inner`;
// the script follows the re-export to state.rs, so there is no circle.
pub use crate::state::Inner;

pub fn stop(inner: &Inner) {
    reset::quiesce(inner);
}
