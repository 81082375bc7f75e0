//! userpci Intel 82576 (igb) driver. (Being written.)

#![forbid(unsafe_code)]
