use super::b::helper;

pub fn run() {
    helper();
}
