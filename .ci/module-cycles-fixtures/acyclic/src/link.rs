use crate::{rx::RxRing, state::Speed};

pub fn up(_r: &RxRing, _s: &Speed) {}
