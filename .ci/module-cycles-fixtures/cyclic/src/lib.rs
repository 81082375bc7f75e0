mod controller;
mod link;
mod rx;
mod stats;
