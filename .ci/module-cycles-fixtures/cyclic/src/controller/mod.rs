mod reset;

pub struct Inner;

pub fn stop(inner: &Inner) {
    // The parent calls into its child ...
    reset::quiesce(inner);
}
