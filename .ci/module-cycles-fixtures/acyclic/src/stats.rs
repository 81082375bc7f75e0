pub fn speed() -> usize {
    std::mem::size_of::<crate::state::Speed>()
}
