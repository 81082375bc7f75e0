//! The Intel advanced-descriptor ring engine shared by `userpci-ixgbe` (82599) and
//! `userpci-igb` (82576). (Being written; see the crate's README section in the root README.)

#![forbid(unsafe_code)]
