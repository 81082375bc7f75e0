//! The model's namespaces: one store each, in sparse memory or a slice of the backing file.

use std::fs::OpenOptions;
use std::sync::Arc;

use userpci_framework::{Error, Result};

use super::config::{NvmeModelConfig, MODEL_NAME};
use super::storage::Store;

/// One namespace.
#[derive(Debug)]
pub(super) struct Namespace {
    pub(super) store: Store,
    pub(super) blocks: u64,
    pub(super) lba_shift: u8,
    pub(super) metadata_size: u16,
}

impl Namespace {
    /// The configured namespaces, in sparse memory or in the backing file.
    pub(super) fn create_all(config: &NvmeModelConfig) -> Result<Vec<Namespace>> {
        let bytes = config.namespace_bytes();
        let file = match &config.backing {
            None => None,
            Some(path) => {
                let fail = |err: std::io::Error| {
                    Error::Topology(format!("{MODEL_NAME}: parameter backing = {path:?}: {err}"))
                };
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(path)
                    .map_err(fail)?;
                let total = bytes * u64::from(config.namespaces);
                if file.metadata().map_err(fail)?.len() < total {
                    file.set_len(total).map_err(fail)?;
                }
                Some(Arc::new(file))
            }
        };
        Ok((0..u64::from(config.namespaces))
            .map(|i| Namespace {
                store: match &file {
                    Some(file) => Store::file(file.clone(), i * bytes, bytes),
                    None => Store::sparse(bytes),
                },
                blocks: config.blocks,
                lba_shift: config.lba_shift(),
                metadata_size: config.metadata_size,
            })
            .collect())
    }
}
