//! [`FakeCall`]: the record of one system call.

use std::path::PathBuf;

use crate::pci::PciAddress;

/// One system call as the fake saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum FakeCall {
    Open {
        path: PathBuf,
    },
    GetApiVersion,
    CheckExtension {
        extension: u32,
    },
    SetIommu {
        iommu_type: u32,
    },
    IommuGetInfo {
        argsz: u32,
    },
    MapDma {
        iova: u64,
        size: u64,
        flags: u32,
    },
    UnmapDma {
        iova: u64,
        size: u64,
    },
    GroupGetStatus {
        group: u32,
    },
    GroupSetContainer {
        group: u32,
    },
    GroupGetDeviceFd {
        group: u32,
        name: String,
    },
    DeviceGetInfo {
        device: PciAddress,
    },
    RegionInfo {
        device: PciAddress,
        index: u32,
    },
    IrqInfo {
        device: PciAddress,
        index: u32,
    },
    SetIrqs {
        device: PciAddress,
        flags: u32,
        index: u32,
        start: u32,
        count: u32,
        fds: usize,
    },
    Reset {
        device: PciAddress,
    },
    HotResetInfo {
        device: PciAddress,
        argsz: u32,
    },
    HotReset {
        device: PciAddress,
        groups: Vec<u32>,
    },
    BindIommufd {
        device: PciAddress,
    },
    AttachPt {
        device: PciAddress,
        pt_id: u32,
    },
    IoasAlloc,
    IoasIovaRanges {
        ioas: u32,
        num_iovas: u32,
    },
    IoasMap {
        ioas: u32,
        iova: u64,
        length: u64,
        flags: u32,
    },
    IoasUnmap {
        ioas: u32,
        iova: u64,
        length: u64,
    },
    Destroy {
        id: u32,
    },
    Pread {
        device: PciAddress,
        offset: u64,
        len: usize,
    },
    Pwrite {
        device: PciAddress,
        offset: u64,
        len: usize,
    },
    Mmap {
        device: PciAddress,
        offset: u64,
        len: usize,
    },
    Munmap {
        len: usize,
    },
}

impl FakeCall {
    /// The ioctl's uAPI name (`VFIO_DEVICE_RESET`), or the system call's (`open`, `mmap`).
    pub fn name(&self) -> &'static str {
        match self {
            FakeCall::Open { .. } => "open",
            FakeCall::GetApiVersion => "VFIO_GET_API_VERSION",
            FakeCall::CheckExtension { .. } => "VFIO_CHECK_EXTENSION",
            FakeCall::SetIommu { .. } => "VFIO_SET_IOMMU",
            FakeCall::IommuGetInfo { .. } => "VFIO_IOMMU_GET_INFO",
            FakeCall::MapDma { .. } => "VFIO_IOMMU_MAP_DMA",
            FakeCall::UnmapDma { .. } => "VFIO_IOMMU_UNMAP_DMA",
            FakeCall::GroupGetStatus { .. } => "VFIO_GROUP_GET_STATUS",
            FakeCall::GroupSetContainer { .. } => "VFIO_GROUP_SET_CONTAINER",
            FakeCall::GroupGetDeviceFd { .. } => "VFIO_GROUP_GET_DEVICE_FD",
            FakeCall::DeviceGetInfo { .. } => "VFIO_DEVICE_GET_INFO",
            FakeCall::RegionInfo { .. } => "VFIO_DEVICE_GET_REGION_INFO",
            FakeCall::IrqInfo { .. } => "VFIO_DEVICE_GET_IRQ_INFO",
            FakeCall::SetIrqs { .. } => "VFIO_DEVICE_SET_IRQS",
            FakeCall::Reset { .. } => "VFIO_DEVICE_RESET",
            FakeCall::HotResetInfo { .. } => "VFIO_DEVICE_GET_PCI_HOT_RESET_INFO",
            FakeCall::HotReset { .. } => "VFIO_DEVICE_PCI_HOT_RESET",
            FakeCall::BindIommufd { .. } => "VFIO_DEVICE_BIND_IOMMUFD",
            FakeCall::AttachPt { .. } => "VFIO_DEVICE_ATTACH_IOMMUFD_PT",
            FakeCall::IoasAlloc => "IOMMU_IOAS_ALLOC",
            FakeCall::IoasIovaRanges { .. } => "IOMMU_IOAS_IOVA_RANGES",
            FakeCall::IoasMap { .. } => "IOMMU_IOAS_MAP",
            FakeCall::IoasUnmap { .. } => "IOMMU_IOAS_UNMAP",
            FakeCall::Destroy { .. } => "IOMMU_DESTROY",
            FakeCall::Pread { .. } => "pread",
            FakeCall::Pwrite { .. } => "pwrite",
            FakeCall::Mmap { .. } => "mmap",
            FakeCall::Munmap { .. } => "munmap",
        }
    }
}
