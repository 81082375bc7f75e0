//! Test device: a DMA copy engine model and its driver.
