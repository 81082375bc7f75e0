//! A minimal, independent VFIO/iommufd ioctl layer for the plumbing smoke tests.
//!
//! Deliberately NOT the framework's `backend::vfio`: these tests prove that the guest kernel,
//! the QEMU topology and the device nodes work, so that a failure of the backend's tests can be
//! told apart from a broken VM. Constants and structs come from `vfio-bindings` and
//! `iommufd-bindings` (the host's C headers are too old for iommufd).

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;

use iommufd_bindings as iommufd;
use vfio_bindings::bindings::vfio;

/// `_IO(type, nr)`: VFIO and iommufd encode neither direction nor size in their numbers.
const fn io(ty: u8, nr: u32) -> libc::Ioctl {
    ((ty as u32) << 8 | nr) as libc::Ioctl
}

pub const VFIO_GET_API_VERSION: libc::Ioctl = io(vfio::VFIO_TYPE, vfio::VFIO_BASE);
pub const VFIO_CHECK_EXTENSION: libc::Ioctl = io(vfio::VFIO_TYPE, vfio::VFIO_BASE + 1);
pub const VFIO_SET_IOMMU: libc::Ioctl = io(vfio::VFIO_TYPE, vfio::VFIO_BASE + 2);
pub const VFIO_GROUP_GET_STATUS: libc::Ioctl = io(vfio::VFIO_TYPE, vfio::VFIO_BASE + 3);
pub const VFIO_GROUP_SET_CONTAINER: libc::Ioctl = io(vfio::VFIO_TYPE, vfio::VFIO_BASE + 4);
pub const VFIO_GROUP_GET_DEVICE_FD: libc::Ioctl = io(vfio::VFIO_TYPE, vfio::VFIO_BASE + 6);
pub const VFIO_DEVICE_GET_INFO: libc::Ioctl = io(vfio::VFIO_TYPE, vfio::VFIO_BASE + 7);
pub const VFIO_DEVICE_BIND_IOMMUFD: libc::Ioctl = io(vfio::VFIO_TYPE, vfio::VFIO_BASE + 18);
pub const VFIO_DEVICE_ATTACH_IOMMUFD_PT: libc::Ioctl = io(vfio::VFIO_TYPE, vfio::VFIO_BASE + 19);
pub const IOMMU_IOAS_ALLOC: libc::Ioctl =
    io(iommufd::IOMMUFD_TYPE, iommufd::IOMMUFD_CMD_IOAS_ALLOC);

/// Size of a uAPI struct as the `argsz`/`size` field wants it.
fn argsz<T>() -> u32 {
    // uAPI structs are a few dozen bytes.
    std::mem::size_of::<T>() as u32
}

/// Error of a named ioctl, with errno.
fn ioctl_error(name: &str, what: &str) -> io::Error {
    let e = io::Error::last_os_error();
    io::Error::new(e.kind(), format!("{name} on {what}: {e}"))
}

/// `ioctl(fd, req, arg)` with a pointer to a uAPI struct that the kernel reads and writes.
fn ioctl_struct<T>(
    fd: RawFd,
    req: libc::Ioctl,
    arg: &mut T,
    name: &str,
    what: &str,
) -> io::Result<i32> {
    // SAFETY: `arg` is a valid, exclusively borrowed `#[repr(C)]` uAPI struct whose `argsz`
    // (or `size`) field the caller set to its size, so the kernel reads and writes only within
    // it; `fd` is an open descriptor owned by the caller for the duration of the call.
    let ret = unsafe { libc::ioctl(fd, req, arg as *mut T) };
    if ret < 0 {
        return Err(ioctl_error(name, what));
    }
    Ok(ret)
}

/// `ioctl(fd, req, value)` with an integer argument (or none).
fn ioctl_value(
    fd: RawFd,
    req: libc::Ioctl,
    value: libc::c_ulong,
    name: &str,
    what: &str,
) -> io::Result<i32> {
    // SAFETY: the requests used with this helper take an integer argument (or ignore it), so
    // the kernel dereferences no pointer; `fd` is open for the duration of the call.
    let ret = unsafe { libc::ioctl(fd, req, value) };
    if ret < 0 {
        return Err(ioctl_error(name, what));
    }
    Ok(ret)
}

fn open_rw(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("open {}: {e}", path.display())))
}

/// `VFIO_DEVICE_GET_INFO` on an open device fd (cdev or from a group).
pub fn device_info(device: &File, what: &str) -> io::Result<vfio::vfio_device_info> {
    let mut info = vfio::vfio_device_info {
        argsz: argsz::<vfio::vfio_device_info>(),
        ..Default::default()
    };
    ioctl_struct(
        device.as_raw_fd(),
        VFIO_DEVICE_GET_INFO,
        &mut info,
        "VFIO_DEVICE_GET_INFO",
        what,
    )?;
    Ok(info)
}

/// An open `/dev/iommu` with one IO address space.
pub struct Iommufd {
    pub file: File,
    pub ioas_id: u32,
}

impl Iommufd {
    /// Opens `/dev/iommu` and allocates an IOAS (`IOMMU_IOAS_ALLOC`).
    pub fn open() -> io::Result<Iommufd> {
        let file = open_rw(Path::new("/dev/iommu"))?;
        let mut alloc = iommufd::iommu_ioas_alloc {
            size: argsz::<iommufd::iommu_ioas_alloc>(),
            ..Default::default()
        };
        ioctl_struct(
            file.as_raw_fd(),
            IOMMU_IOAS_ALLOC,
            &mut alloc,
            "IOMMU_IOAS_ALLOC",
            "/dev/iommu",
        )?;
        Ok(Iommufd {
            file,
            ioas_id: alloc.out_ioas_id,
        })
    }
}

/// A VFIO cdev (`/dev/vfio/devices/vfioN`) bound to an iommufd and attached to its IOAS.
pub struct CdevDevice {
    pub file: File,
    pub devid: u32,
    pub name: String,
}

impl CdevDevice {
    /// Opens `/dev/vfio/devices/<name>`, `VFIO_DEVICE_BIND_IOMMUFD`, then
    /// `VFIO_DEVICE_ATTACH_IOMMUFD_PT` to the IOAS. Until the bind, every other device ioctl
    /// fails with EINVAL.
    pub fn open(name: &str, iommufd: &Iommufd) -> io::Result<CdevDevice> {
        let path = Path::new("/dev/vfio/devices").join(name);
        let file = open_rw(&path)?;
        let what = path.display().to_string();
        let mut bind = vfio::vfio_device_bind_iommufd {
            // Kernel 6.12's struct ends at out_devid (16 bytes); newer headers append a token
            // pointer, which 6.12 would ignore anyway. Pass the size this kernel knows.
            argsz: (std::mem::offset_of!(vfio::vfio_device_bind_iommufd, out_devid) + 4) as u32,
            flags: 0,
            iommufd: iommufd.file.as_raw_fd(),
            ..Default::default()
        };
        ioctl_struct(
            file.as_raw_fd(),
            VFIO_DEVICE_BIND_IOMMUFD,
            &mut bind,
            "VFIO_DEVICE_BIND_IOMMUFD",
            &what,
        )?;
        let mut attach = vfio::vfio_device_attach_iommufd_pt {
            argsz: (std::mem::offset_of!(vfio::vfio_device_attach_iommufd_pt, pt_id) + 4) as u32,
            flags: 0,
            pt_id: iommufd.ioas_id,
            ..Default::default()
        };
        ioctl_struct(
            file.as_raw_fd(),
            VFIO_DEVICE_ATTACH_IOMMUFD_PT,
            &mut attach,
            "VFIO_DEVICE_ATTACH_IOMMUFD_PT",
            &what,
        )?;
        Ok(CdevDevice {
            file,
            devid: bind.out_devid,
            name: name.to_string(),
        })
    }
}

/// A legacy VFIO container (`/dev/vfio/vfio`).
pub struct Container {
    pub file: File,
    iommu_set: bool,
}

impl Container {
    /// Opens the container and checks the API version and Type1v2 support.
    pub fn open() -> io::Result<Container> {
        let file = open_rw(Path::new("/dev/vfio/vfio"))?;
        let what = "/dev/vfio/vfio";
        let version = ioctl_value(
            file.as_raw_fd(),
            VFIO_GET_API_VERSION,
            0,
            "VFIO_GET_API_VERSION",
            what,
        )?;
        if version != vfio::VFIO_API_VERSION as i32 {
            return Err(io::Error::other(format!(
                "VFIO_GET_API_VERSION gave {version}, expected {}",
                vfio::VFIO_API_VERSION
            )));
        }
        let has = ioctl_value(
            file.as_raw_fd(),
            VFIO_CHECK_EXTENSION,
            libc::c_ulong::from(vfio::VFIO_TYPE1v2_IOMMU),
            "VFIO_CHECK_EXTENSION(TYPE1v2)",
            what,
        )?;
        if has != 1 {
            return Err(io::Error::other("container lacks VFIO_TYPE1v2_IOMMU"));
        }
        Ok(Container {
            file,
            iommu_set: false,
        })
    }

    /// Adds a group: checks it is viable, `VFIO_GROUP_SET_CONTAINER`, and after the first group
    /// `VFIO_SET_IOMMU(TYPE1v2)`.
    pub fn add_group(&mut self, group: u32) -> io::Result<Group> {
        let path = format!("/dev/vfio/{group}");
        let file = open_rw(Path::new(&path))?;
        let status = group_status(&file, &path)?;
        if status.flags & vfio::VFIO_GROUP_FLAGS_VIABLE == 0 {
            return Err(io::Error::other(format!(
                "{path} is not viable (a member is bound to a host driver): flags {:#x}",
                status.flags
            )));
        }
        let mut container_fd: RawFd = self.file.as_raw_fd();
        ioctl_struct(
            file.as_raw_fd(),
            VFIO_GROUP_SET_CONTAINER,
            &mut container_fd,
            "VFIO_GROUP_SET_CONTAINER",
            &path,
        )?;
        if !self.iommu_set {
            ioctl_value(
                self.file.as_raw_fd(),
                VFIO_SET_IOMMU,
                libc::c_ulong::from(vfio::VFIO_TYPE1v2_IOMMU),
                "VFIO_SET_IOMMU(TYPE1v2)",
                "/dev/vfio/vfio",
            )?;
            self.iommu_set = true;
        }
        let status = group_status(&file, &path)?;
        if status.flags & vfio::VFIO_GROUP_FLAGS_CONTAINER_SET == 0 {
            return Err(io::Error::other(format!(
                "{path}: CONTAINER_SET missing after VFIO_GROUP_SET_CONTAINER: flags {:#x}",
                status.flags
            )));
        }
        Ok(Group { file, path })
    }
}

/// An open, viable VFIO group attached to a container.
pub struct Group {
    pub file: File,
    pub path: String,
}

impl Group {
    /// `VFIO_GROUP_GET_DEVICE_FD` for a device of the group, by its sysfs name.
    pub fn device(&self, bdf: &str) -> io::Result<File> {
        let name = CString::new(bdf).map_err(io::Error::other)?;
        // SAFETY: VFIO_GROUP_GET_DEVICE_FD reads a NUL-terminated string from the pointer,
        // which `name` keeps alive for the call; the group fd is open.
        let fd = unsafe {
            libc::ioctl(
                self.file.as_raw_fd(),
                VFIO_GROUP_GET_DEVICE_FD,
                name.as_ptr(),
            )
        };
        if fd < 0 {
            return Err(ioctl_error(
                "VFIO_GROUP_GET_DEVICE_FD",
                &format!("{} ({bdf})", self.path),
            ));
        }
        // SAFETY: on success the ioctl returned a new file descriptor that nothing else owns.
        Ok(unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(fd) })
    }
}

fn group_status(group: &File, path: &str) -> io::Result<vfio::vfio_group_status> {
    let mut status = vfio::vfio_group_status {
        argsz: argsz::<vfio::vfio_group_status>(),
        flags: 0,
    };
    ioctl_struct(
        group.as_raw_fd(),
        VFIO_GROUP_GET_STATUS,
        &mut status,
        "VFIO_GROUP_GET_STATUS",
        path,
    )?;
    Ok(status)
}

/// Human-readable VFIO device flags.
pub fn device_flags(flags: u32) -> String {
    let mut names = Vec::new();
    if flags & vfio::VFIO_DEVICE_FLAGS_RESET != 0 {
        names.push("RESET");
    }
    if flags & vfio::VFIO_DEVICE_FLAGS_PCI != 0 {
        names.push("PCI");
    }
    format!("{flags:#x} ({})", names.join("|"))
}
