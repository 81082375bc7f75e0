//! The fake kernel's IOMMU side: type1 mappings and info, IOAS ranges and mappings.

use std::io;

use iommufd_bindings as iommufd;
use vfio_bindings::bindings::vfio;

use super::state::errno;
use super::State;
use crate::backend::vfio::sys::{write_u32, TYPE1_INFO_HEADER};

impl State {
    /// `VFIO_IOMMU_MAP_DMA` (`vfio_dma_do_map`): read and/or write, inside the valid ranges,
    /// not over an existing mapping.
    pub(super) fn type1_map(&mut self, iova: u64, size: u64, flags: u32) -> io::Result<()> {
        let prot = vfio::VFIO_DMA_MAP_FLAG_READ | vfio::VFIO_DMA_MAP_FLAG_WRITE;
        if flags & prot == 0 || flags & !prot != 0 || !self.in_ranges(iova, size) {
            return Err(errno(libc::EINVAL));
        }
        let overlaps = self
            .dma
            .range(..iova.saturating_add(size))
            .any(|(i, (l, _))| i + l > iova);
        if overlaps {
            return Err(errno(libc::EEXIST));
        }
        self.dma.insert(iova, (size, flags));
        Ok(())
    }

    /// `IOMMU_IOAS_IOVA_RANGES` (`iommufd_ioas_iova_ranges`): fills what fits, reports the
    /// total, EMSGSIZE when the array was too short.
    pub(super) fn ioas_ranges(
        &self,
        cmd: &mut iommufd::iommu_ioas_iova_ranges,
        ranges: &mut [iommufd::iommu_iova_range],
    ) -> io::Result<()> {
        for (slot, r) in ranges.iter_mut().zip(&self.iova_ranges) {
            *slot = iommufd::iommu_iova_range {
                start: r.start,
                last: r.last,
            };
        }
        cmd.num_iovas = self.iova_ranges.len() as u32;
        cmd.out_iova_alignment = 4096;
        if self.iova_ranges.len() > ranges.len() {
            return Err(errno(libc::EMSGSIZE));
        }
        Ok(())
    }

    /// `IOMMU_IOAS_MAP` with a fixed IOVA: readable and/or writeable, inside the valid ranges,
    /// not over an existing area.
    pub(super) fn ioas_map(
        &mut self,
        ioas: u32,
        iova: u64,
        length: u64,
        flags: u32,
    ) -> io::Result<()> {
        let prot = iommufd::iommufd_ioas_map_flags_IOMMU_IOAS_MAP_READABLE
            | iommufd::iommufd_ioas_map_flags_IOMMU_IOAS_MAP_WRITEABLE;
        let fixed = iommufd::iommufd_ioas_map_flags_IOMMU_IOAS_MAP_FIXED_IOVA;
        if flags & prot == 0 || flags & fixed == 0 || !self.in_ranges(iova, length) {
            return Err(errno(libc::EINVAL));
        }
        let overlaps = self
            .ioas_maps
            .range((ioas, 0)..(ioas, iova.saturating_add(length)))
            .any(|((_, i), (l, _))| i + l > iova);
        if overlaps {
            return Err(errno(libc::EEXIST));
        }
        self.ioas_maps.insert((ioas, iova), (length, flags));
        Ok(())
    }
}

/// The type1 info as `vfio_iommu_type1_get_info` builds it: migration and DMA-available
/// capabilities, then the IOVA ranges, each 8-byte aligned, `next` counted from the start.
pub(super) fn type1_info(state: &State) -> Vec<u8> {
    let mut caps: Vec<u8> = Vec::new();
    let mut add = |id: u32, body: &[u8]| {
        let start = caps.len();
        caps.extend_from_slice(&(id as u16).to_ne_bytes());
        caps.extend_from_slice(&1u16.to_ne_bytes());
        caps.extend_from_slice(&0u32.to_ne_bytes());
        caps.extend_from_slice(body);
        caps.resize(caps.len().next_multiple_of(8), 0);
        start
    };
    let mut starts = vec![add(
        vfio::VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION,
        &[
            [0u8; 8],
            0x1000u64.to_ne_bytes(),
            (256u64 << 20).to_ne_bytes(),
        ]
        .concat(),
    )];
    starts.push(add(
        vfio::VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL,
        &65535u32.to_ne_bytes(),
    ));
    if state.type1_iova_cap {
        let mut body = (state.iova_ranges.len() as u32).to_ne_bytes().to_vec();
        body.extend_from_slice(&[0; 4]);
        for r in &state.iova_ranges {
            body.extend_from_slice(&r.start.to_ne_bytes());
            body.extend_from_slice(&r.last.to_ne_bytes());
        }
        starts.push(add(vfio::VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, &body));
    }
    for pair in starts.windows(2) {
        write_u32(&mut caps, pair[0] + 4, (TYPE1_INFO_HEADER + pair[1]) as u32);
    }
    caps
}
