//! Passing file descriptors over a Unix stream socket (`SCM_RIGHTS`): how a broker hands a
//! client the VFIO device fd (and the fd it maps DMA through). One of the framework's few
//! `unsafe` modules: `sendmsg`/`recvmsg` with a control buffer, each block with its reason.

use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

/// The most descriptors one message carries (a device fd and an IOMMU fd, with room).
pub const MAX_FDS: usize = 4;

/// A control buffer for `MAX_FDS` descriptors, aligned for `cmsghdr` (u64 words).
fn control_buffer() -> Vec<u64> {
    // SAFETY: CMSG_SPACE only computes a size from its argument.
    let bytes = unsafe { libc::CMSG_SPACE((MAX_FDS * size_of::<RawFd>()) as u32) } as usize;
    vec![0u64; bytes.div_ceil(size_of::<u64>())]
}

/// Sends `data` (at least one byte) with `fds` attached to its first byte.
pub fn send_with_fds(stream: &UnixStream, data: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    if data.is_empty() || fds.len() > MAX_FDS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} bytes with {} fds: expected at least 1 byte and at most {MAX_FDS} fds",
                data.len(),
                fds.len()
            ),
        ));
    }
    let raw: Vec<RawFd> = fds.iter().map(|fd| fd.as_raw_fd()).collect();
    let mut control = control_buffer();
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: msghdr is a plain C struct for which all-zero is a valid (empty) value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !raw.is_empty() {
        let payload = (raw.len() * size_of::<RawFd>()) as u32;
        msg.msg_control = control.as_mut_ptr().cast();
        // SAFETY: CMSG_SPACE only computes a size.
        msg.msg_controllen = unsafe { libc::CMSG_SPACE(payload) } as _;
        // SAFETY: msg_control points at `control`, which is at least CMSG_SPACE(payload)
        // bytes and u64-aligned, so the first header and its data fit inside it; the fds
        // are copied into the header's data area, which holds exactly `raw.len()` of them.
        unsafe {
            let header = libc::CMSG_FIRSTHDR(&msg);
            (*header).cmsg_level = libc::SOL_SOCKET;
            (*header).cmsg_type = libc::SCM_RIGHTS;
            (*header).cmsg_len = libc::CMSG_LEN(payload) as _;
            std::ptr::copy_nonoverlapping(
                raw.as_ptr(),
                libc::CMSG_DATA(header).cast::<RawFd>(),
                raw.len(),
            );
        }
    }
    // SAFETY: `msg` points at `iov` (over `data`) and `control`, both alive for the call;
    // MSG_NOSIGNAL turns a closed peer into EPIPE instead of SIGPIPE.
    let sent = unsafe { libc::sendmsg(stream.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    if sent as usize != data.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            format!("sent {sent} of {} bytes with the fds", data.len()),
        ));
    }
    Ok(())
}

/// Receives into `buf`, with the descriptors attached to those bytes (each close-on-exec).
/// Returns the byte count (0: the peer closed) and the descriptors.
pub fn recv_with_fds(stream: &UnixStream, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    let mut control = control_buffer();
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is a plain C struct for which all-zero is a valid (empty) value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = (control.len() * size_of::<u64>()) as _;
    // SAFETY: `msg` points at `iov` (over `buf`) and `control`, both alive and writable for
    // the call, with their true lengths.
    let received = unsafe { libc::recvmsg(stream.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if received < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut fds = Vec::new();
    // SAFETY: the kernel filled `control` up to msg_controllen; CMSG_FIRSTHDR/NXTHDR walk
    // only inside it, and each SCM_RIGHTS header's data holds (cmsg_len - CMSG_LEN(0)) bytes
    // of descriptors that are now ours (owned exactly once, by the OwnedFd made here).
    unsafe {
        let mut header = libc::CMSG_FIRSTHDR(&msg);
        while !header.is_null() {
            if (*header).cmsg_level == libc::SOL_SOCKET && (*header).cmsg_type == libc::SCM_RIGHTS {
                let bytes = (*header).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                let data = libc::CMSG_DATA(header).cast::<RawFd>();
                for i in 0..bytes / size_of::<RawFd>() {
                    fds.push(OwnedFd::from_raw_fd(data.add(i).read_unaligned()));
                }
            }
            header = libc::CMSG_NXTHDR(&msg, header);
        }
    }
    if msg.msg_flags & libc::MSG_CTRUNC != 0 {
        // The fds that did arrive are closed with `fds`.
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("more than {MAX_FDS} descriptors sent; the rest were dropped"),
        ));
    }
    Ok((received as usize, fds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsFd;

    #[test]
    fn a_descriptor_sent_is_a_working_descriptor_received() {
        let (a, b) = UnixStream::pair().unwrap();
        let (mut pipe_read, pipe_write) = std::io::pipe().unwrap();
        send_with_fds(&a, b"lend", &[pipe_write.as_fd()]).unwrap();
        drop(pipe_write);
        let mut buf = [0u8; 16];
        let (n, mut fds) = recv_with_fds(&b, &mut buf).unwrap();
        assert_eq!(&buf[..n], b"lend");
        assert_eq!(fds.len(), 1);
        let mut received = std::fs::File::from(fds.pop().unwrap());
        received.write_all(b"through the received fd").unwrap();
        drop(received);
        let mut text = String::new();
        pipe_read.read_to_string(&mut text).unwrap();
        assert_eq!(text, "through the received fd");
    }

    #[test]
    fn plain_bytes_arrive_without_descriptors_and_bad_calls_are_refused() {
        let (a, b) = UnixStream::pair().unwrap();
        send_with_fds(&a, b"x", &[]).unwrap();
        let mut buf = [0u8; 4];
        let (n, fds) = recv_with_fds(&b, &mut buf).unwrap();
        assert_eq!((n, fds.len()), (1, 0));
        let err = send_with_fds(&a, b"", &[]).unwrap_err();
        assert!(
            err.to_string().contains("expected at least 1 byte"),
            "{err}"
        );
        let many: Vec<_> = (0..=MAX_FDS).map(|_| a.as_fd()).collect();
        let err = send_with_fds(&a, b"x", &many).unwrap_err();
        assert!(err.to_string().contains("at most 4 fds"), "{err}");
        drop(a);
        let (n, fds) = recv_with_fds(&b, &mut buf).unwrap();
        assert_eq!((n, fds.len()), (0, 0), "the peer closed");
    }
}
