use super::b::helper;

pub fn run() {
    helper();
}

pub fn config() {}
