//! The state file: what `userpci setup` changed and what was there before, so that
//! `userpci setup reset` restores exactly that. A second setup keeps the first one's "before"
//! values: reset returns to the machine as it was before any setup.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::permissions::Ownership;
use super::SystemRoot;
use crate::tools::error::{system, Result, ToolError};

/// Where the state lives (`/run`: a reboot undoes the changes and forgets them together).
pub const STATE_FILE: &str = "/run/userpci/setup.json";
/// The version of the state file's layout.
pub const STATE_SCHEMA: u32 = 1;

/// Everything setup changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetupState {
    pub schema: u32,
    #[serde(default)]
    pub hugepages: Vec<HugepageChange>,
    #[serde(default)]
    pub mount: Option<MountChange>,
    /// Modules setup loaded; reset leaves them loaded (unloading vfio_pci would take every
    /// bound function from its driver, and nothing in a reset needs that).
    #[serde(default)]
    pub modules_loaded: Vec<String>,
    #[serde(default)]
    pub nodes: Vec<NodeChange>,
}

/// A hugepage pool setup resized.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HugepageChange {
    /// The `nr_hugepages` file (system path).
    pub path: String,
    pub node: Option<u32>,
    pub previous_pages: u64,
    /// What the kernel granted (reset restores only while the count is still this).
    pub set_pages: u64,
}

/// The hugetlbfs mount setup made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountChange {
    pub target: String,
    /// True when setup created the directory too (reset removes it).
    pub created_dir: bool,
}

/// A device node setup gave away.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeChange {
    pub path: String,
    pub previous: Ownership,
    /// What setup set (reset restores only while the node still has it).
    pub set: Ownership,
}

impl SetupState {
    /// True when nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.hugepages.is_empty()
            && self.mount.is_none()
            && self.modules_loaded.is_empty()
            && self.nodes.is_empty()
    }

    /// The number of recorded changes.
    pub fn change_count(&self) -> usize {
        self.hugepages.len()
            + usize::from(self.mount.is_some())
            + self.modules_loaded.len()
            + self.nodes.len()
    }

    /// Records a pool resize; an earlier record of the same pool keeps its previous count.
    pub fn record_hugepages(&mut self, change: HugepageChange) {
        match self.hugepages.iter_mut().find(|c| c.path == change.path) {
            Some(earlier) => earlier.set_pages = change.set_pages,
            None => self.hugepages.push(change),
        }
    }

    /// Records a node's new ownership; an earlier record keeps its previous ownership.
    pub fn record_node(&mut self, change: NodeChange) {
        match self.nodes.iter_mut().find(|c| c.path == change.path) {
            Some(earlier) => earlier.set = change.set,
            None => self.nodes.push(change),
        }
    }
}

/// The recorded state, `None` when there is no state file.
pub fn load(root: &SystemRoot) -> Result<Option<SetupState>> {
    let Some(text) = root.read_optional(STATE_FILE)? else {
        return Ok(None);
    };
    let state: SetupState = serde_json::from_str(&text).map_err(|err| ToolError::Malformed {
        path: STATE_FILE.into(),
        message: format!("not a userpci setup state file ({err}); remove it by hand"),
    })?;
    if state.schema != STATE_SCHEMA {
        return Err(ToolError::Malformed {
            path: STATE_FILE.into(),
            message: format!(
                "state schema {} (this userpci reads {STATE_SCHEMA})",
                state.schema
            ),
        });
    }
    Ok(Some(state))
}

/// Writes the state (removes the file when nothing is left to undo).
pub fn save(root: &SystemRoot, state: &SetupState) -> Result<()> {
    let path = root.path(STATE_FILE);
    if state.is_empty() {
        return remove(root);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(system(
            "create",
            Path::new(STATE_FILE).parent().unwrap_or(Path::new("/")),
        ))?;
    }
    let text = serde_json::to_string_pretty(state).map_err(|err| ToolError::Malformed {
        path: STATE_FILE.into(),
        message: err.to_string(),
    })?;
    // Write then rename: a crash mid-write leaves the old state, never half a file.
    let temporary = path.with_extension("json.tmp");
    std::fs::write(&temporary, text + "\n").map_err(system("write", STATE_FILE))?;
    std::fs::rename(&temporary, &path).map_err(system("write", STATE_FILE))
}

/// Removes the state file (absent is fine).
pub fn remove(root: &SystemRoot) -> Result<()> {
    match std::fs::remove_file(root.path(STATE_FILE)) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            Err(system("remove", STATE_FILE)(err))
        }
        _ => Ok(()),
    }
}
