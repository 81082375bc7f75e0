//! Which client holds which function: the broker's lease table.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::pci::PciAddress;

/// One function's lease as the broker reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LeaseView {
    /// The function.
    pub device: PciAddress,
    /// The client holding it (`client 2 (fwd, pid 4242)`), or `None` when free.
    pub holder: Option<String>,
    /// Why the lease was revoked, when it was (the client was fenced).
    pub revoked: Option<String>,
}

#[derive(Clone, Debug)]
struct Lease {
    client: u64,
    label: String,
    revoked: Option<String>,
}

/// The lendable functions and their leases.
#[derive(Debug)]
pub(super) struct Leases {
    table: Mutex<BTreeMap<PciAddress, Option<Lease>>>,
}

impl Leases {
    /// Every function in `lendable` starts free.
    pub(super) fn new(lendable: impl IntoIterator<Item = PciAddress>) -> Self {
        Leases {
            table: Mutex::new(lendable.into_iter().map(|a| (a, None)).collect()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<PciAddress, Option<Lease>>> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lendable_list(table: &BTreeMap<PciAddress, Option<Lease>>) -> String {
        table
            .keys()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Leases `device` to `client` (labelled `label` in errors).
    pub(super) fn acquire(&self, device: PciAddress, client: u64, label: &str) -> Result<()> {
        let mut table = self.lock();
        let list = Self::lendable_list(&table);
        let Some(slot) = table.get_mut(&device) else {
            return Err(Error::NotLeased {
                device,
                client: label.to_string(),
                why: format!("this broker does not lend it (it lends {list})"),
            });
        };
        match slot {
            Some(lease) if lease.client != client => Err(Error::NotLeased {
                device,
                client: label.to_string(),
                why: format!("leased to {}", lease.label),
            }),
            Some(lease) => Err(Error::NotLeased {
                device,
                client: label.to_string(),
                why: match &lease.revoked {
                    Some(why) => format!("its lease was revoked ({why})"),
                    None => "already leased to it".to_string(),
                },
            }),
            None => {
                *slot = Some(Lease {
                    client,
                    label: label.to_string(),
                    revoked: None,
                });
                Ok(())
            }
        }
    }

    /// Succeeds when `client` holds a lease of `device` that was not revoked.
    pub(super) fn check(&self, device: PciAddress, client: u64, label: &str) -> Result<()> {
        let table = self.lock();
        let why = match table.get(&device) {
            None => format!(
                "this broker does not lend it (it lends {})",
                Self::lendable_list(&table)
            ),
            Some(None) => "it is not leased; acquire it first".to_string(),
            Some(Some(lease)) if lease.client != client => format!("leased to {}", lease.label),
            Some(Some(Lease {
                revoked: Some(why), ..
            })) => format!("its lease was revoked ({why})"),
            Some(Some(_)) => return Ok(()),
        };
        Err(Error::NotLeased {
            device,
            client: label.to_string(),
            why,
        })
    }

    /// Marks the lease of `device` revoked: the holder keeps nothing but the record.
    pub(super) fn revoke(&self, device: PciAddress, reason: &str) {
        if let Some(Some(lease)) = self.lock().get_mut(&device) {
            lease.revoked = Some(reason.to_string());
        }
    }

    /// Frees `device` if `client` holds it.
    pub(super) fn release(&self, device: PciAddress, client: u64) -> bool {
        let mut table = self.lock();
        match table.get_mut(&device) {
            Some(slot @ Some(_)) if slot.as_ref().is_some_and(|l| l.client == client) => {
                *slot = None;
                true
            }
            _ => false,
        }
    }

    /// The functions `client` holds (revoked or not).
    pub(super) fn held_by(&self, client: u64) -> Vec<PciAddress> {
        self.lock()
            .iter()
            .filter(|(_, l)| l.as_ref().is_some_and(|l| l.client == client))
            .map(|(a, _)| *a)
            .collect()
    }

    /// Every lendable function with its holder.
    pub(super) fn view(&self) -> Vec<LeaseView> {
        self.lock()
            .iter()
            .map(|(device, lease)| LeaseView {
                device: *device,
                holder: lease.as_ref().map(|l| l.label.clone()),
                revoked: lease.as_ref().and_then(|l| l.revoked.clone()),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(text: &str) -> PciAddress {
        text.parse().unwrap()
    }

    #[test]
    fn a_lease_is_exclusive_checked_revoked_and_released() {
        let leases = Leases::new([a("01:00.0"), a("01:00.1")]);
        leases.acquire(a("01:00.0"), 1, "client 1 (a)").unwrap();
        let err = leases.acquire(a("01:00.0"), 2, "client 2 (b)").unwrap_err();
        assert_eq!(
            err.to_string(),
            "0000:01:00.0: not in the lease of client 2 (b): leased to client 1 (a)"
        );
        let err = leases.check(a("01:00.1"), 1, "client 1 (a)").unwrap_err();
        assert!(
            err.to_string()
                .ends_with("it is not leased; acquire it first"),
            "{err}"
        );
        let err = leases.acquire(a("02:00.0"), 1, "client 1 (a)").unwrap_err();
        assert!(
            err.to_string()
                .ends_with("this broker does not lend it (it lends 0000:01:00.0, 0000:01:00.1)"),
            "{err}"
        );
        leases.check(a("01:00.0"), 1, "client 1 (a)").unwrap();
        leases.revoke(a("01:00.0"), "missed its quiesce deadline");
        let err = leases.check(a("01:00.0"), 1, "client 1 (a)").unwrap_err();
        assert!(err
            .to_string()
            .ends_with("its lease was revoked (missed its quiesce deadline)"));
        assert_eq!(leases.held_by(1), vec![a("01:00.0")]);
        assert!(!leases.release(a("01:00.0"), 2), "not the holder");
        assert!(leases.release(a("01:00.0"), 1));
        leases.acquire(a("01:00.0"), 2, "client 2 (b)").unwrap();
        assert_eq!(leases.view()[0].holder.as_deref(), Some("client 2 (b)"));
        assert_eq!(leases.view()[1].holder, None);
    }
}
