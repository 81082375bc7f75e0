//! Controller model: NVM commands, PRP handling, checks, DMA through the IOMMU, namespace
//! storage and the SMART / Error logs.

mod model_support;

use model_support::*;
use userpci_framework::backend::sim::{DmaAccess, FaultReason};
use userpci_framework::dma::{DmaBuffer, DmaDirection};
use userpci_nvme::spec::log::{ErrorInformationEntry, LogPageId, SmartHealthLog};
use userpci_nvme::spec::nvm::DatasetManagement;
use userpci_nvme::spec::{DsmRange, Status, SubmissionEntry, NSID_ALL};

/// An enabled controller with I/O queue pair 1 of 32 entries.
fn setup(params: &str) -> (Ctrl, QueuePair) {
    let mut ctrl = Ctrl::enabled(params);
    let pair = ctrl.create_io(1, 32);
    (ctrl, pair)
}

fn io(ctrl: &Ctrl, pair: &mut QueuePair, sqe: SubmissionEntry) -> Status {
    pair.run(&ctrl.regs, sqe).status()
}

fn write(ctrl: &Ctrl, pair: &mut QueuePair, slba: u64, nlb: u16, prp1: u64, prp2: u64) -> Status {
    io(ctrl, pair, SubmissionEntry::write(1, slba, nlb, prp1, prp2))
}

fn read(ctrl: &Ctrl, pair: &mut QueuePair, slba: u64, nlb: u16, prp1: u64, prp2: u64) -> Status {
    io(ctrl, pair, SubmissionEntry::read(1, slba, nlb, prp1, prp2))
}

/// A PRP list page holding `entries`.
fn prp_list(ctrl: &Ctrl, entries: &[u64]) -> DmaBuffer {
    let mut list = ctrl.buffer(PAGE, DmaDirection::ToDevice, |_| 0);
    for (slot, entry) in list.as_mut_slice().chunks_exact_mut(8).zip(entries) {
        slot.copy_from_slice(&entry.to_le_bytes());
    }
    list
}

fn page_iova(buffer: &DmaBuffer, page: usize) -> u64 {
    buffer.iova() + (page * PAGE) as u64
}

#[test]
fn write_and_read_back_with_prp1_only() {
    let (ctrl, mut pair) = setup("");
    let source = ctrl.buffer(PAGE, DmaDirection::ToDevice, pattern(1));
    assert_eq!(
        write(&ctrl, &mut pair, 10, 7, source.iova(), 0),
        Status::SUCCESS
    );
    assert_eq!(ctrl.stored(1, 10 * 512, PAGE), source.as_slice());
    let sink = ctrl.buffer(PAGE, DmaDirection::FromDevice, |_| 0xee);
    assert_eq!(
        read(&ctrl, &mut pair, 10, 7, sink.iova(), 0),
        Status::SUCCESS
    );
    assert_eq!(sink.as_slice(), source.as_slice());
    // Never-written blocks read as zeroes.
    assert_eq!(
        read(&ctrl, &mut pair, 5000, 0, sink.iova(), 0),
        Status::SUCCESS
    );
    assert!(sink.as_slice()[..512].iter().all(|&b| b == 0));
    let stats = ctrl.stats();
    assert_eq!((stats.reads, stats.writes), (2, 1));
    assert_eq!(
        (stats.bytes_read, stats.bytes_written),
        (PAGE as u64 + 512, PAGE as u64)
    );
}

#[test]
fn prp1_at_an_offset_and_prp2() {
    let (ctrl, mut pair) = setup("");
    let source = ctrl.buffer(2 * PAGE, DmaDirection::ToDevice, pattern(2));
    // 6 KiB: 2 KiB at the end of the first page, then the whole second page.
    let prp1 = source.iova() + 2048;
    assert_eq!(
        write(&ctrl, &mut pair, 0, 11, prp1, page_iova(&source, 1)),
        Status::SUCCESS
    );
    assert_eq!(ctrl.stored(1, 0, 6144), &source.as_slice()[2048..]);
    let sink = ctrl.buffer(2 * PAGE, DmaDirection::FromDevice, |_| 0);
    let prp1 = sink.iova() + 2048;
    assert_eq!(
        read(&ctrl, &mut pair, 0, 11, prp1, page_iova(&sink, 1)),
        Status::SUCCESS
    );
    assert_eq!(&sink.as_slice()[2048..], &source.as_slice()[2048..]);
    assert!(sink.as_slice()[..2048].iter().all(|&b| b == 0));
}

#[test]
fn a_prp_list_of_scattered_pages() {
    let (ctrl, mut pair) = setup("");
    // 64 KiB: PRP1 is page 0, the list names pages 15, 14, ..., 1 in that order.
    let pages = ctrl.buffer(16 * PAGE, DmaDirection::Bidirectional, pattern(3));
    let entries: Vec<u64> = (1..16).rev().map(|p| page_iova(&pages, p)).collect();
    let list = prp_list(&ctrl, &entries);
    assert_eq!(
        write(&ctrl, &mut pair, 64, 127, pages.iova(), list.iova()),
        Status::SUCCESS
    );
    let stored = ctrl.stored(1, 64 * 512, 16 * PAGE);
    assert_eq!(&stored[..PAGE], &pages.as_slice()[..PAGE]);
    for (i, p) in (1..16).rev().enumerate() {
        let at = (i + 1) * PAGE;
        assert_eq!(
            &stored[at..at + PAGE],
            &pages.as_slice()[p * PAGE..(p + 1) * PAGE]
        );
    }
    let sink = ctrl.buffer(16 * PAGE, DmaDirection::Bidirectional, |_| 0);
    let entries: Vec<u64> = (1..16).rev().map(|p| page_iova(&sink, p)).collect();
    let list = prp_list(&ctrl, &entries);
    assert_eq!(
        read(&ctrl, &mut pair, 64, 127, sink.iova(), list.iova()),
        Status::SUCCESS
    );
    assert_eq!(sink.as_slice(), pages.as_slice());
}

#[test]
fn a_prp_list_starting_inside_its_page_chains_to_the_next() {
    let (ctrl, mut pair) = setup("");
    let source = ctrl.buffer(4 * PAGE, DmaDirection::ToDevice, pattern(4));
    // PRP2 points 16 bytes before the end of a list page: one data entry, then the last
    // slot chains to a second list page holding the remaining two.
    let second = prp_list(&ctrl, &[page_iova(&source, 2), page_iova(&source, 3)]);
    let mut first = ctrl.buffer(PAGE, DmaDirection::ToDevice, |_| 0);
    first.as_mut_slice()[PAGE - 16..PAGE - 8].copy_from_slice(&page_iova(&source, 1).to_le_bytes());
    first.as_mut_slice()[PAGE - 8..].copy_from_slice(&second.iova().to_le_bytes());
    let prp2 = first.iova() + PAGE as u64 - 16;
    assert_eq!(
        write(&ctrl, &mut pair, 0, 31, source.iova(), prp2),
        Status::SUCCESS
    );
    assert_eq!(ctrl.stored(1, 0, 4 * PAGE), source.as_slice());
}

#[test]
fn a_transfer_longer_than_one_list_page_chains_lists() {
    // 640 pages need 639 entries: 511 in the first list page plus a chain pointer.
    let (ctrl, mut pair) = setup("mdts = 0");
    let pages = 640;
    let source = ctrl.buffer(pages * PAGE, DmaDirection::ToDevice, pattern(5));
    let data: Vec<u64> = (1..pages).map(|p| page_iova(&source, p)).collect();
    let second = prp_list(&ctrl, &data[511..]);
    let mut first_entries = data[..511].to_vec();
    first_entries.push(second.iova());
    let first = prp_list(&ctrl, &first_entries);
    let nlb = (pages * PAGE / 512 - 1) as u16;
    assert_eq!(
        write(&ctrl, &mut pair, 0, nlb, source.iova(), first.iova()),
        Status::SUCCESS
    );
    assert_eq!(ctrl.stored(1, 0, pages * PAGE), source.as_slice());
}

#[test]
fn misplaced_prp_offsets_are_refused() {
    let (ctrl, mut pair) = setup("");
    let buf = ctrl.buffer(4 * PAGE, DmaDirection::ToDevice, pattern(6));
    let offset_invalid = Status::PRP_OFFSET_INVALID.with_dnr();
    // PRP2 as a data page must have offset zero.
    assert_eq!(
        write(
            &ctrl,
            &mut pair,
            0,
            15,
            buf.iova(),
            page_iova(&buf, 1) + 512
        ),
        offset_invalid
    );
    // PRP1 must be dword aligned.
    assert_eq!(
        write(&ctrl, &mut pair, 0, 0, buf.iova() + 2, 0),
        offset_invalid
    );
    // A list entry with an offset.
    let list = prp_list(&ctrl, &[page_iova(&buf, 1), page_iova(&buf, 2) + 8]);
    assert_eq!(
        write(&ctrl, &mut pair, 0, 23, buf.iova(), list.iova()),
        offset_invalid
    );
    // A list pointer that is not qword aligned.
    assert_eq!(
        write(&ctrl, &mut pair, 0, 23, buf.iova(), list.iova() + 4),
        offset_invalid
    );
    assert_eq!(
        ctrl.model(|m| m.allocated_chunks(1)),
        0,
        "nothing was written"
    );
}

#[test]
fn mdts_lba_range_and_nsid_checks() {
    let (ctrl, mut pair) = setup("blocks = 1000\nmdts = 5");
    let buf = ctrl.buffer(33 * PAGE, DmaDirection::Bidirectional, pattern(7));
    let entries: Vec<u64> = (1..33).map(|p| page_iova(&buf, p)).collect();
    let list = prp_list(&ctrl, &entries);
    // 128 KiB is the limit (4 KiB << 5); one block more is refused before any transfer.
    assert_eq!(
        read(&ctrl, &mut pair, 0, 255, buf.iova(), list.iova()),
        Status::SUCCESS
    );
    assert_eq!(
        read(&ctrl, &mut pair, 0, 256, buf.iova(), list.iova()),
        Status::INVALID_FIELD.with_dnr()
    );

    let out_of_range = Status::LBA_OUT_OF_RANGE.with_dnr();
    assert_eq!(
        read(&ctrl, &mut pair, 999, 0, buf.iova(), 0),
        Status::SUCCESS
    );
    assert_eq!(read(&ctrl, &mut pair, 999, 1, buf.iova(), 0), out_of_range);
    assert_eq!(
        write(&ctrl, &mut pair, u64::MAX, 0, buf.iova(), 0),
        out_of_range
    );
    assert_eq!(
        io(&ctrl, &mut pair, SubmissionEntry::write_zeroes(1, 990, 10)),
        out_of_range
    );

    let bad_ns = Status::INVALID_NAMESPACE_OR_FORMAT.with_dnr();
    for nsid in [0, 2, NSID_ALL] {
        assert_eq!(
            io(
                &ctrl,
                &mut pair,
                SubmissionEntry::read(nsid, 0, 0, buf.iova(), 0)
            ),
            bad_ns
        );
    }
    assert_eq!(
        io(&ctrl, &mut pair, SubmissionEntry::flush(1)),
        Status::SUCCESS
    );
    assert_eq!(
        io(&ctrl, &mut pair, SubmissionEntry::flush(NSID_ALL)),
        Status::SUCCESS
    );
    assert_eq!(io(&ctrl, &mut pair, SubmissionEntry::flush(0)), bad_ns);
    // Unknown opcode, SGL data pointer.
    assert_eq!(
        io(&ctrl, &mut pair, SubmissionEntry::new(0x05)),
        Status::INVALID_OPCODE.with_dnr()
    );
    let mut sgl = SubmissionEntry::read(1, 0, 0, buf.iova(), 0);
    sgl.cdw0 |= 0b01 << 14;
    assert_eq!(io(&ctrl, &mut pair, sgl), Status::INVALID_FIELD.with_dnr());
    assert_eq!(ctrl.stats().other_io, 1);
}

#[test]
fn blocked_dma_is_a_data_transfer_error_and_leaves_the_namespace_alone() {
    let (ctrl, mut pair) = setup("");
    let original = ctrl.buffer(2 * PAGE, DmaDirection::ToDevice, pattern(8));
    assert_eq!(
        write(
            &ctrl,
            &mut pair,
            0,
            15,
            original.iova(),
            page_iova(&original, 1)
        ),
        Status::SUCCESS
    );

    // The second source page is unmapped: the IOMMU blocks it and nothing is stored, not even
    // the first page.
    let first = ctrl.buffer(PAGE, DmaDirection::ToDevice, |_| 0x11);
    let gone = ctrl.buffer(PAGE, DmaDirection::ToDevice, |_| 0x22);
    let gone_iova = gone.iova();
    drop(gone);
    assert_eq!(
        write(&ctrl, &mut pair, 0, 15, first.iova(), gone_iova),
        Status::DATA_TRANSFER_ERROR
    );
    assert_eq!(ctrl.stored(1, 0, 2 * PAGE), original.as_slice());
    let faults = ctrl.bus.iommu().take_faults();
    assert_eq!(faults.len(), 1);
    assert_eq!((faults[0].device, faults[0].iova), (addr(), gone_iova));
    assert_eq!(
        (faults[0].access, faults[0].reason),
        (DmaAccess::Read, FaultReason::Unmapped)
    );

    // Reading into memory the device may only read is blocked too.
    let read_only = ctrl.buffer(PAGE, DmaDirection::ToDevice, |_| 0x33);
    assert_eq!(
        read(&ctrl, &mut pair, 0, 7, read_only.iova(), 0),
        Status::DATA_TRANSFER_ERROR
    );
    assert!(read_only.as_slice().iter().all(|&b| b == 0x33));
    assert_eq!(
        ctrl.bus.iommu().take_faults()[0].reason,
        FaultReason::ReadOnly
    );
    // The error is in the Error Information log.
    let log = ctrl.buffer(256, DmaDirection::FromDevice, |_| 0);
    let mut ctrl = ctrl;
    ctrl.admin_ok(SubmissionEntry::get_log_page(
        NSID_ALL,
        LogPageId::ErrorInformation,
        63,
        0,
        log.iova(),
        0,
    ));
    let newest: ErrorInformationEntry = bytemuck::pod_read_unaligned(&log.as_slice()[..64]);
    assert_eq!((newest.error_count, newest.sqid), (2, 1));
    assert_eq!(newest.status(), Status::DATA_TRANSFER_ERROR);
}

#[test]
fn dataset_management_deallocate_and_write_zeroes() {
    let (ctrl, mut pair) = setup("");
    let data = ctrl.buffer(8 * PAGE, DmaDirection::ToDevice, pattern(9));
    let list = prp_list(
        &ctrl,
        &(1..8).map(|p| page_iova(&data, p)).collect::<Vec<_>>(),
    );
    // 64 blocks at LBA 0.
    assert_eq!(
        write(&ctrl, &mut pair, 0, 63, data.iova(), list.iova()),
        Status::SUCCESS
    );

    let mut ranges = ctrl.buffer(PAGE, DmaDirection::ToDevice, |_| 0);
    let set = [DsmRange::new(4, 8), DsmRange::new(40, 2)];
    ranges.as_mut_slice()[..32].copy_from_slice(bytemuck::cast_slice(&set));
    let hint = SubmissionEntry::dataset_management(1, 1, DatasetManagement::IDR, ranges.iova());
    assert_eq!(io(&ctrl, &mut pair, hint), Status::SUCCESS);
    assert_eq!(
        ctrl.stored(1, 0, 8 * PAGE),
        data.as_slice(),
        "no AD, no change"
    );
    let trim = SubmissionEntry::dataset_management(1, 1, DatasetManagement::AD, ranges.iova());
    assert_eq!(io(&ctrl, &mut pair, trim), Status::SUCCESS);
    let stored = ctrl.stored(1, 0, 8 * PAGE);
    let mut expected = data.as_slice().to_vec();
    expected[4 * 512..12 * 512].fill(0);
    expected[40 * 512..42 * 512].fill(0);
    assert_eq!(stored, expected);

    // A range past the end fails the whole command before anything is deallocated.
    let set = [DsmRange::new(0, 1), DsmRange::new(262_143, 2)];
    ranges.as_mut_slice()[..32].copy_from_slice(bytemuck::cast_slice(&set));
    assert_eq!(
        io(&ctrl, &mut pair, trim),
        Status::LBA_OUT_OF_RANGE.with_dnr()
    );
    assert_eq!(ctrl.stored(1, 0, 512), &expected[..512]);

    assert_eq!(
        io(&ctrl, &mut pair, SubmissionEntry::write_zeroes(1, 0, 1)),
        Status::SUCCESS
    );
    expected[..1024].fill(0);
    assert_eq!(ctrl.stored(1, 0, 8 * PAGE), expected);
}

#[test]
fn sparse_storage_allocates_on_first_write_only() {
    let (ctrl, mut pair) = setup("");
    let buf = ctrl.buffer(PAGE, DmaDirection::Bidirectional, pattern(10));
    assert_eq!(read(&ctrl, &mut pair, 0, 7, buf.iova(), 0), Status::SUCCESS);
    assert_eq!(
        ctrl.model(|m| m.allocated_chunks(1)),
        0,
        "reads do not allocate"
    );
    assert_eq!(
        write(&ctrl, &mut pair, 0, 7, buf.iova(), 0),
        Status::SUCCESS
    );
    assert_eq!(
        write(&ctrl, &mut pair, 8, 7, buf.iova(), 0),
        Status::SUCCESS
    );
    assert_eq!(ctrl.model(|m| m.allocated_chunks(1)), 1, "one 64 KiB chunk");
    assert_eq!(
        write(&ctrl, &mut pair, 128, 7, buf.iova(), 0),
        Status::SUCCESS
    );
    assert_eq!(ctrl.model(|m| m.allocated_chunks(1)), 2);
    // Write Zeroes over a whole chunk frees it.
    assert_eq!(
        io(&ctrl, &mut pair, SubmissionEntry::write_zeroes(1, 0, 127)),
        Status::SUCCESS
    );
    assert_eq!(ctrl.model(|m| m.allocated_chunks(1)), 1);
}

#[test]
fn four_kib_blocks_and_separate_metadata() {
    let (ctrl, mut pair) = setup("lba_size = 4096\nmetadata_size = 8\nnamespaces = 2\nblocks = 16");
    let data = ctrl.buffer(2 * PAGE, DmaDirection::ToDevice, pattern(11));
    let metadata = ctrl.buffer(16, DmaDirection::Bidirectional, |_| 0x5a);
    let mut sqe = SubmissionEntry::write(2, 15, 1, data.iova(), page_iova(&data, 1));
    assert_eq!(
        io(&ctrl, &mut pair, sqe),
        Status::LBA_OUT_OF_RANGE.with_dnr()
    );
    sqe = SubmissionEntry::write(2, 14, 1, data.iova(), page_iova(&data, 1));
    sqe.mptr = metadata.iova();
    assert_eq!(io(&ctrl, &mut pair, sqe), Status::SUCCESS);
    assert_eq!(ctrl.stored(2, 14 * 4096, 2 * PAGE), data.as_slice());
    assert_eq!(
        ctrl.stored(1, 14 * 4096, 8),
        vec![0; 8],
        "namespaces are separate"
    );
    // Metadata reads back as zeroes; an unmapped metadata buffer is a transfer error.
    let sink = ctrl.buffer(2 * PAGE, DmaDirection::FromDevice, |_| 0);
    let mut sqe = SubmissionEntry::read(2, 14, 1, sink.iova(), page_iova(&sink, 1));
    sqe.mptr = metadata.iova();
    assert_eq!(io(&ctrl, &mut pair, sqe), Status::SUCCESS);
    assert_eq!(sink.as_slice(), data.as_slice());
    assert_eq!(metadata.as_slice(), &[0; 16]);
    sqe.mptr = 0x10;
    assert_eq!(io(&ctrl, &mut pair, sqe), Status::DATA_TRANSFER_ERROR);
}

#[test]
fn smart_log_counts_host_commands_and_data_units() {
    let (mut ctrl, mut pair) = setup("");
    let buf = ctrl.buffer(PAGE, DmaDirection::Bidirectional, pattern(12));
    for i in 0..3 {
        assert_eq!(
            write(&ctrl, &mut pair, i * 8, 7, buf.iova(), 0),
            Status::SUCCESS
        );
    }
    assert_eq!(read(&ctrl, &mut pair, 0, 0, buf.iova(), 0), Status::SUCCESS);
    assert_eq!(
        io(&ctrl, &mut pair, SubmissionEntry::write_zeroes(1, 0, 0)),
        Status::SUCCESS
    );
    // A failed read is not counted.
    assert_eq!(
        read(&ctrl, &mut pair, u64::MAX, 0, buf.iova(), 0),
        Status::LBA_OUT_OF_RANGE.with_dnr()
    );

    let log = ctrl.buffer(512, DmaDirection::FromDevice, |_| 0xff);
    let sqe =
        SubmissionEntry::get_log_page(NSID_ALL, LogPageId::SmartHealth, 127, 0, log.iova(), 0);
    ctrl.admin_ok(sqe);
    let smart: SmartHealthLog = bytemuck::pod_read_unaligned(log.as_slice());
    assert_eq!(smart.host_read_commands.get(), 1);
    assert_eq!(
        smart.host_write_commands.get(),
        4,
        "three Writes and a Write Zeroes"
    );
    assert_eq!(
        smart.data_units_written.get(),
        1,
        "24 units of 512 bytes, rounded up to 1000s"
    );
    assert_eq!(smart.data_units_read.get(), 1);
    assert_eq!(smart.error_log_entries.get(), 1);
    assert_eq!(smart.available_spare, 100);
    assert!(smart.composite_temperature() > 273);

    // Offsets and lengths: a partial read from byte 32 (Data Units Read).
    let part = ctrl.buffer(16, DmaDirection::FromDevice, |_| 0);
    ctrl.admin_ok(SubmissionEntry::get_log_page(
        NSID_ALL,
        LogPageId::SmartHealth,
        3,
        32,
        part.iova(),
        0,
    ));
    assert_eq!(part.as_slice()[0], 1);
    let bad = [
        SubmissionEntry::get_log_page(NSID_ALL, LogPageId::SmartHealth, 0, 512, part.iova(), 0),
        SubmissionEntry::get_log_page(NSID_ALL, LogPageId::SmartHealth, 0, 2, part.iova(), 0),
        SubmissionEntry::get_log_page(1, LogPageId::SmartHealth, 0, 0, part.iova(), 0),
    ];
    for sqe in bad {
        assert_eq!(
            ctrl.admin(sqe).status(),
            Status::INVALID_FIELD.with_dnr(),
            "{sqe:?}"
        );
    }
    let mut unknown = sqe;
    unknown.cdw10 = (unknown.cdw10 & !0xff) | 0x7f;
    assert_eq!(
        ctrl.admin(unknown).status(),
        Status::INVALID_LOG_PAGE.with_dnr()
    );
}

#[test]
fn a_file_backing_holds_the_namespaces() {
    let path = std::env::temp_dir().join(format!("userpci-nvme-model-{}.img", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let params = format!(
        "namespaces = 2\nblocks = 64\nbacking = {:?}",
        path.to_str().unwrap()
    );
    {
        let (ctrl, mut pair) = setup(&params);
        let buf = ctrl.buffer(PAGE, DmaDirection::ToDevice, pattern(13));
        let sqe = SubmissionEntry::write(2, 8, 7, buf.iova(), 0);
        assert_eq!(io(&ctrl, &mut pair, sqe), Status::SUCCESS);
        let raw = std::fs::read(&path).unwrap();
        assert_eq!(raw.len(), 2 * 64 * 512);
        assert_eq!(
            &raw[64 * 512 + 8 * 512..64 * 512 + 16 * 512],
            buf.as_slice()
        );
    }
    // A new controller on the same file sees the data.
    let (ctrl, mut pair) = setup(&params);
    let sink = ctrl.buffer(PAGE, DmaDirection::FromDevice, |_| 0);
    assert_eq!(
        io(
            &ctrl,
            &mut pair,
            SubmissionEntry::read(2, 8, 7, sink.iova(), 0)
        ),
        Status::SUCCESS
    );
    let expected: Vec<u8> = (0..PAGE).map(pattern(13)).collect();
    assert_eq!(sink.as_slice(), &expected[..]);
    std::fs::remove_file(&path).unwrap();
}
