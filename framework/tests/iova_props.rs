//! Properties of the IOVA allocator over random range sets and random alloc/free sequences,
//! checked against a simple model (a list of live allocations).

use proptest::prelude::*;
use userpci_framework::dma::{IovaAllocator, IovaRange};
use userpci_framework::Error;

#[derive(Clone, Debug)]
enum Op {
    /// Allocate `len` bytes aligned to `1 << align_shift`.
    Alloc { len: u64, align_shift: u32 },
    /// Free the live allocation at this position (modulo the number live).
    Free(usize),
    /// Free a live allocation and allocate the same size and alignment again at once.
    FreeRealloc(usize),
    /// Free again a range freed earlier that nothing has reused since.
    DoubleFree(usize),
    /// Free a range outside every valid range.
    ForeignFree(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1u64..=0x3000, 0u32..=13).prop_map(|(len, align_shift)| Op::Alloc { len, align_shift }),
        2 => any::<usize>().prop_map(Op::Free),
        1 => any::<usize>().prop_map(Op::FreeRealloc),
        1 => any::<usize>().prop_map(Op::DoubleFree),
        1 => any::<usize>().prop_map(Op::ForeignFree),
    ]
}

/// 1 to 4 disjoint ranges (sorted, with holes between them), the first possibly at IOVA 0,
/// and whether to hand them to the allocator in reverse order.
fn ranges() -> impl Strategy<Value = (Vec<IovaRange>, bool)> {
    (
        prop_oneof![Just(0u64), 0u64..=0x2000],
        prop::collection::vec((1u64..=0x4000, 1u64..=0x10000), 1..=4),
        any::<bool>(),
    )
        .prop_map(|(first, shapes, reverse)| {
            let mut ranges = Vec::new();
            let mut start = first;
            for (gap, size) in shapes {
                let last = start + size - 1;
                ranges.push(IovaRange::new(start, last));
                start = last + 1 + gap;
            }
            (ranges, reverse)
        })
}

fn overlaps(a: (u64, u64), b: (u64, u64)) -> bool {
    a.0 < b.0 + b.1 && b.0 < a.0 + a.1
}

/// The free intervals (inclusive) the model says exist: valid ranges minus IOVA 0 minus `live`.
fn model_free(ranges: &[IovaRange], live: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut taken: Vec<(u64, u64)> = live.to_vec();
    taken.push((0, 1));
    taken.sort();
    let mut free = Vec::new();
    for range in ranges {
        let mut cursor = range.start;
        for &(start, len) in &taken {
            let last = start + len - 1;
            if last < cursor || start > range.last {
                continue;
            }
            if start > cursor {
                free.push((cursor, start - 1));
            }
            cursor = last + 1;
        }
        if cursor <= range.last {
            free.push((cursor, range.last));
        }
    }
    free
}

fn fits_somewhere(free: &[(u64, u64)], len: u64, align: u64) -> bool {
    free.iter().any(|&(start, last)| {
        let aligned = start.next_multiple_of(align);
        aligned + len - 1 <= last
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn allocations_are_disjoint_aligned_valid_and_all_come_back(
        (ranges, reverse) in ranges(),
        ops in prop::collection::vec(op(), 1..120),
    ) {
        let mut given = ranges.clone();
        if reverse {
            given.reverse();
        }
        let mut alloc = IovaAllocator::new("prop", &given).unwrap();
        let initial: u128 = ranges.iter().map(|r| u128::from(r.last - r.start) + 1).sum::<u128>()
            - u128::from(ranges[0].start == 0);
        prop_assert_eq!(alloc.free_bytes(), initial);

        let mut live: Vec<(u64, u64, u64)> = Vec::new(); // iova, len, align
        let mut freed: Vec<(u64, u64)> = Vec::new();
        let check_alloc = |live: &[(u64, u64, u64)], iova: u64, len: u64, align: u64| {
            prop_assert_ne!(iova, 0, "IOVA 0 handed out");
            prop_assert_eq!(iova % align, 0, "{:#x} not aligned to {:#x}", iova, align);
            let last = iova + len - 1;
            prop_assert!(
                ranges.iter().any(|r| r.start <= iova && last <= r.last),
                "{:#x}+{:#x} not inside one valid range of {:?}", iova, len, ranges
            );
            for &(other, other_len, _) in live {
                prop_assert!(
                    !overlaps((iova, len), (other, other_len)),
                    "{:#x}+{:#x} overlaps live {:#x}+{:#x}", iova, len, other, other_len
                );
            }
            Ok(())
        };

        for op in ops {
            let before = alloc.free_bytes();
            match op {
                Op::Alloc { len, align_shift } => {
                    let align = 1u64 << align_shift;
                    let free = model_free(&ranges, &live.iter().map(|&(i, l, _)| (i, l)).collect::<Vec<_>>());
                    match alloc.alloc(len, align) {
                        Ok(iova) => {
                            check_alloc(&live, iova, len, align)?;
                            prop_assert_eq!(alloc.free_bytes(), before - u128::from(len));
                            live.push((iova, len, align));
                            freed.retain(|&f| !overlaps(f, (iova, len)));
                        }
                        Err(Error::IovaExhausted { len: l, align: a, .. }) => {
                            prop_assert_eq!((l, a), (len, align));
                            prop_assert!(
                                !fits_somewhere(&free, len, align),
                                "exhausted for {:#x} aligned {:#x}, but free: {:x?}", len, align, free
                            );
                            prop_assert_eq!(alloc.free_bytes(), before);
                        }
                        Err(err) => prop_assert!(false, "unexpected error {}", err),
                    }
                }
                Op::Free(pick) | Op::FreeRealloc(pick) if !live.is_empty() => {
                    let (iova, len, align) = live.swap_remove(pick % live.len());
                    alloc.free(iova, len).unwrap();
                    prop_assert_eq!(alloc.free_bytes(), before + u128::from(len));
                    if matches!(op, Op::FreeRealloc(_)) {
                        // The hole just made fits the same request; first fit finds it or an
                        // earlier one.
                        let again = alloc.alloc(len, align).unwrap();
                        check_alloc(&live, again, len, align)?;
                        prop_assert!(again <= iova, "realloc at {:#x} after a hole at {:#x}", again, iova);
                        prop_assert_eq!(alloc.free_bytes(), before);
                        live.push((again, len, align));
                        if again != iova {
                            freed.push((iova, len));
                        }
                        freed.retain(|&f| !overlaps(f, (again, len)));
                    } else {
                        freed.push((iova, len));
                    }
                }
                Op::Free(_) | Op::FreeRealloc(_) => {}
                Op::DoubleFree(pick) if !freed.is_empty() => {
                    let (iova, len) = freed[pick % freed.len()];
                    let err = alloc.free(iova, len).unwrap_err();
                    prop_assert!(matches!(err, Error::InvalidIovaRange { .. }), "{}", err);
                    prop_assert_eq!(alloc.free_bytes(), before);
                }
                Op::DoubleFree(_) => {}
                Op::ForeignFree(pick) => {
                    // Just below the first range (if there is room), in a hole, or past the end.
                    let mut foreign = vec![(ranges.last().unwrap().last + 1, 1)];
                    if ranges[0].start > 0 {
                        foreign.push((ranges[0].start - 1, 1));
                    }
                    for pair in ranges.windows(2) {
                        foreign.push((pair[0].last + 1, pair[1].start - pair[0].last - 1));
                        // Straddling a hole: starts valid, ends in the next range.
                        foreign.push((pair[0].last, pair[1].start - pair[0].last + 1));
                    }
                    let (iova, len) = foreign[pick % foreign.len()];
                    let err = alloc.free(iova, len).unwrap_err();
                    prop_assert!(err.to_string().contains("not inside one valid range"), "{}", err);
                    prop_assert_eq!(alloc.free_bytes(), before);
                }
            }
        }

        for (iova, len, _) in live.drain(..) {
            alloc.free(iova, len).unwrap();
        }
        prop_assert_eq!(alloc.free_bytes(), initial);
        // Everything merged back: the largest range (minus IOVA 0) is one allocation again.
        let largest = ranges
            .iter()
            .map(|r| r.last - r.start.max(1) + 1)
            .max()
            .unwrap();
        if largest > 0 {
            let iova = alloc.alloc(largest, 1).unwrap();
            alloc.free(iova, largest).unwrap();
        }
        prop_assert_eq!(alloc.free_bytes(), initial);
    }
}

#[test]
fn exhausted_space_reports_iova_exhausted() {
    let mut alloc = IovaAllocator::new("small", &[IovaRange::new(0x1000, 0x2fff)]).unwrap();
    let a = alloc.alloc(0x1000, 0x1000).unwrap();
    let b = alloc.alloc(0x1000, 0x1000).unwrap();
    assert_ne!(a, b);
    let err = alloc.alloc(1, 1).unwrap_err();
    assert!(
        matches!(
            err,
            Error::IovaExhausted {
                len: 1,
                align: 1,
                ..
            }
        ),
        "{err}"
    );
    alloc.free(a, 0x1000).unwrap();
    assert_eq!(
        alloc.alloc(0x1000, 0x1000).unwrap(),
        a,
        "freed space is reused"
    );
}
