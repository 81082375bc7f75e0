//! Users and groups, from `/etc/passwd` and `/etc/group` under the root (no NSS: a user only
//! in LDAP is not found, and the message says where setup looked).

use super::SystemRoot;
use crate::tools::error::{invalid, Result};

/// A user of `/etc/passwd`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: u32,
    /// The primary group.
    pub gid: u32,
}

/// A group of `/etc/group`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    pub gid: u32,
}

/// The users of a passwd file (`name:x:uid:gid:gecos:home:shell`); malformed lines are skipped.
pub fn parse_passwd(text: &str) -> Vec<User> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            Some(User {
                name: (*fields.first()?).to_string(),
                uid: fields.get(2)?.parse().ok()?,
                gid: fields.get(3)?.parse().ok()?,
            })
        })
        .collect()
}

/// The groups of a group file (`name:x:gid:members`); malformed lines are skipped.
pub fn parse_group(text: &str) -> Vec<Group> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            Some(Group {
                name: (*fields.first()?).to_string(),
                gid: fields.get(2)?.parse().ok()?,
            })
        })
        .collect()
}

/// The users of the root's `/etc/passwd` (none when it is missing).
pub fn users(root: &SystemRoot) -> Result<Vec<User>> {
    Ok(parse_passwd(
        &root.read_optional("/etc/passwd")?.unwrap_or_default(),
    ))
}

/// The groups of the root's `/etc/group` (none when it is missing).
pub fn groups(root: &SystemRoot) -> Result<Vec<Group>> {
    Ok(parse_group(
        &root.read_optional("/etc/group")?.unwrap_or_default(),
    ))
}

/// The user called `name`.
pub fn user(root: &SystemRoot, name: &str) -> Result<User> {
    users(root)?
        .into_iter()
        .find(|user| user.name == name)
        .ok_or_else(|| invalid("--user", name, "a user name of /etc/passwd"))
}

/// The group called `name`.
pub fn group(root: &SystemRoot, name: &str) -> Result<Group> {
    groups(root)?
        .into_iter()
        .find(|group| group.name == name)
        .ok_or_else(|| invalid("--group", name, "a group name of /etc/group"))
}

/// The name of `uid`, for reports.
pub fn user_name(users: &[User], uid: u32) -> Option<String> {
    users
        .iter()
        .find(|user| user.uid == uid)
        .map(|user| user.name.clone())
}

/// The name of `gid`, for reports.
pub fn group_name(groups: &[Group], gid: u32) -> Option<String> {
    groups
        .iter()
        .find(|group| group.gid == gid)
        .map(|group| group.name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_and_group_lines_parse_and_broken_ones_are_skipped() {
        let users = parse_passwd(
            "root:x:0:0:root:/root:/bin/bash\nbroken\nalice:x:1000:1000::/home/alice:/bin/sh\n",
        );
        assert_eq!(users.len(), 2);
        assert_eq!(users[1].name, "alice");
        assert_eq!((users[1].uid, users[1].gid), (1000, 1000));
        assert_eq!(user_name(&users, 0).as_deref(), Some("root"));
        let groups = parse_group("root:x:0:\nkvm:x:104:alice\nbad:x:nope:\n");
        assert_eq!(groups.len(), 2);
        assert_eq!(group_name(&groups, 104).as_deref(), Some("kvm"));
    }
}
