#!/usr/bin/env bash
# The VM test tier: boots QEMU guests with three emulated NVMe controllers behind a VT-d IOMMU
# and runs the guest test binary (tests/vm/guest, crate userpci-vmtest) in them.
#
#   bash tests/vm/run.sh               both modes (what CI runs)
#   bash tests/vm/run.sh cdev          one mode: cdev (built kernel, iommufd) or group (stock kernel)
#
# Environment:
#   USERPCI_VM_CACHE=/var/cache/userpci-vm   built kernel, stock kernel (outside the clone)
#   USERPCI_VM_TIMEOUT=600                   seconds per guest before it is killed (= failed)
#   USERPCI_VM_ACCEL=auto|tcg|kvm            auto: KVM only if a probe boot works, else TCG
#   USERPCI_VMTEST_FILTER=a,b                run only tests whose name contains a or b
#   USERPCI_VM_SHELL=1                       interactive: console on this terminal, a shell in
#                                            the guest after the tests, no timeout
#
# Output: target/vm/console-<mode>.log (the guest's whole serial console), and as the last line
# `N passed, N failed` over all modes. Exit status 0 only if every test passed and every guest
# finished with a complete result. See tests/vm/README.md.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VM_DIR="$REPO/tests/vm"
OUT="$REPO/target/vm"
CACHE="${USERPCI_VM_CACHE:-/var/cache/userpci-vm}"
TIMEOUT="${USERPCI_VM_TIMEOUT:-600}"
ACCEL="${USERPCI_VM_ACCEL:-auto}"
FILTER="${USERPCI_VMTEST_FILTER:-}"
SHELL_AFTER="${USERPCI_VM_SHELL:-0}"

# Bump when the way the kernel is built changes (the cache key also covers kernel.config and
# the linux-source-6.12 version).
KERNEL_RECIPE=1
KERNEL_SOURCE_PKG=linux-source-6.12
KERNEL_SOURCE_TAR=/usr/src/linux-source-6.12.tar.xz
# Debian's meta-package for the current 6.12 kernel; its image is fetched, not installed.
STOCK_META=linux-image-6.12-amd64
# Modules the group-mode guest loads (with their dependencies) into the stock kernel.
STOCK_MODULES=(vfio_iommu_type1 vfio_pci nvme)

PACKAGES=(
    busybox-static cpio kmod xz-utils
    "$KERNEL_SOURCE_PKG" build-essential bison flex libelf-dev libssl-dev bc
)

PASSED=0
FAILED=0
BOOT_RETRIED=""   # modes whose guest panicked at boot and were booted once more
STEP=start
DONE=0
declare -A STEP_SECONDS=()
STEP_ORDER=()

log() { echo "== vm: $*"; }
die() {
    echo "vm tier: ERROR: $*" >&2
    exit 1
}

# shellcheck disable=SC2317 # invoked by the EXIT trap
on_exit() {
    local rc=$?
    if [[ $DONE != 1 ]]; then
        echo "vm tier: aborted during step '$STEP' (exit status $rc)" >&2
        echo "$PASSED passed, $((FAILED + 1)) failed"
        [[ $rc != 0 ]] || rc=1
    fi
    exit "$rc"
}

# step NAME: starts timing a step (the previous one ends).
step_start=$SECONDS
step() {
    if [[ $STEP != start ]]; then
        STEP_SECONDS[$STEP]=$((SECONDS - step_start))
        STEP_ORDER+=("$STEP")
    fi
    STEP="$1"
    step_start=$SECONDS
    [[ $STEP == end ]] || log "$STEP"
}

# ---------------------------------------------------------------------------------------------
# 1. Packages (Debian's registry only)

APT_UPDATED=0
apt_update_once() {
    if [[ $APT_UPDATED == 0 ]]; then
        log "apt-get update"
        apt-get update -qq
        APT_UPDATED=1
    fi
}

install_packages() {
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        if [[ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" != installed ]]; then
            missing+=("$p")
        fi
    done
    if ((${#missing[@]} == 0)); then
        log "packages already installed"
        return
    fi
    [[ $EUID == 0 ]] || die "missing packages (${missing[*]}); run as root or install them"
    apt_update_once
    # Say loudly what apt would take away to satisfy these (on a bookworm image with the
    # backported qemu-utils 10, qemu-system-x86 7.2 replaces it).
    local removed
    removed="$(apt-get install -s --no-install-recommends "${missing[@]}" 2>/dev/null |
        awk '$1 == "Remv" { printf "%s ", $2 }')" || true
    [[ -z $removed ]] || log "WARNING: installing ${missing[*]} removes: $removed"
    log "apt-get install ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" \
        >"$OUT/apt-install.log" 2>&1 || {
        tail -30 "$OUT/apt-install.log"
        die "apt-get install failed (log: $OUT/apt-install.log)"
    }
}

# QEMU 10 (the 82576 `igb` model, and the NVMe fixes the tests rely on; tests/vm/README.md)
# from Debian's bookworm-backports suite, with only QEMU's packages (and the firmware they
# require) pinned to it: the rest of the system stays on bookworm.
QEMU_MIN_MAJOR=10
BACKPORTS_SOURCES=/etc/apt/sources.list.d/userpci-bookworm-backports.sources
BACKPORTS_PIN=/etc/apt/preferences.d/userpci-qemu-backports
QEMU_PACKAGES=(qemu-system-x86 qemu-system-common qemu-system-data seabios)

qemu_major() {
    command -v qemu-system-x86_64 >/dev/null || {
        echo 0
        return
    }
    qemu-system-x86_64 --version | awk 'NR == 1 { split($4, v, "."); print v[1] + 0 }'
}

install_qemu() {
    local major
    major="$(qemu_major)"
    if ((major >= QEMU_MIN_MAJOR)); then
        log "QEMU $(qemu-system-x86_64 --version | awk 'NR == 1 { print $4 }') installed"
        return
    fi
    [[ $EUID == 0 ]] || die "QEMU $QEMU_MIN_MAJOR or later needed (have major $major); run as root"
    local codename
    codename="$(. /etc/os-release && echo "${VERSION_CODENAME:-}")"
    [[ $codename == bookworm ]] ||
        die "QEMU $QEMU_MIN_MAJOR needed and this is '$codename', not bookworm: install it by hand"
    if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
        log "adding Debian's bookworm-backports suite ($BACKPORTS_SOURCES)"
        cat >"$BACKPORTS_SOURCES" <<'SOURCES'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
    fi
    cat >"$BACKPORTS_PIN" <<PIN
# Written by userpci's tests/vm/run.sh: QEMU from bookworm-backports, nothing else.
Package: ${QEMU_PACKAGES[*]} qemu-utils qemu-block-extra
Pin: release n=bookworm-backports
Pin-Priority: 990
PIN
    APT_UPDATED=0
    apt_update_once
    log "apt-get install ${QEMU_PACKAGES[*]} (bookworm-backports)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        "${QEMU_PACKAGES[@]}" >"$OUT/apt-qemu.log" 2>&1 || {
        tail -30 "$OUT/apt-qemu.log"
        die "installing QEMU from bookworm-backports failed (log: $OUT/apt-qemu.log)"
    }
    major="$(qemu_major)"
    ((major >= QEMU_MIN_MAJOR)) ||
        die "after the install qemu-system-x86_64 is major $major, expected $QEMU_MIN_MAJOR+"
    log "QEMU $(qemu-system-x86_64 --version | awk 'NR == 1 { print $4 }') installed"
}

# ---------------------------------------------------------------------------------------------
# 2. Debian's stock 6.12 kernel and modules, for the group-mode run. Fetched with
#    `apt-get download` and unpacked into the cache instead of installed: installing would run
#    the host's kernel hooks (initramfs, bootloader) for a kernel the host never boots.

STOCK_KVER=
STOCK_ROOT=
stock_kernel() {
    local image
    image="$(apt-cache depends "$STOCK_META" 2>/dev/null |
        awk '$1 == "Depends:" && $2 ~ /^linux-image-6\.12\./ { print $2; exit }')" || true
    if [[ -z $image ]]; then
        apt_update_once
        image="$(apt-cache depends "$STOCK_META" |
            awk '$1 == "Depends:" && $2 ~ /^linux-image-6\.12\./ { print $2; exit }')"
    fi
    [[ -n $image ]] || die "cannot resolve $STOCK_META to a kernel image package"
    local pkg="${image%-unsigned}-unsigned"
    local version
    version="$(apt-cache show --no-all-versions "$pkg" | awk '/^Version:/ { print $2; exit }')"
    [[ -n $version ]] || die "no version of $pkg in the apt lists"
    STOCK_KVER="${image#linux-image-}"
    STOCK_ROOT="$CACHE/stock-${pkg}_${version}"
    if [[ -f $STOCK_ROOT/.complete ]]; then
        log "stock kernel $STOCK_KVER cached ($STOCK_ROOT)"
    else
        log "fetching $pkg=$version"
        local tmp
        tmp="$(mktemp -d "$CACHE/download.XXXXXX")"
        chmod 755 "$tmp"
        (cd "$tmp" && apt-get download -q "$pkg=$version" >/dev/null 2>&1) ||
            (apt_update_once && cd "$tmp" && apt-get download -q "$pkg=$version") ||
            die "apt-get download $pkg=$version failed"
        rm -rf "$STOCK_ROOT.tmp"
        dpkg-deb -x "$tmp"/*.deb "$STOCK_ROOT.tmp"
        rm -rf "$tmp"
        depmod -b "$STOCK_ROOT.tmp" "$STOCK_KVER"
        rm -rf "$STOCK_ROOT"
        mv "$STOCK_ROOT.tmp" "$STOCK_ROOT"
        touch "$STOCK_ROOT/.complete"
    fi
    [[ -f $STOCK_ROOT/boot/vmlinuz-$STOCK_KVER ]] || die "no boot/vmlinuz-$STOCK_KVER in $STOCK_ROOT"
}

# ---------------------------------------------------------------------------------------------
# 3. The guest kernel with iommufd and VFIO cdev, built once per (kernel.config, source version).

# verify_config FILE: every line of kernel.config holds in FILE; lists every mismatch.
verify_config() {
    local config="$1" bad=() line sym
    while IFS= read -r line; do
        if [[ $line =~ ^(CONFIG_[A-Za-z0-9_]+)=(.*)$ ]]; then
            grep -qxF "$line" "$config" ||
                bad+=("want $line, have: $(grep -E "^(# )?${BASH_REMATCH[1]}[= ]" "$config" || echo absent)")
        elif [[ $line =~ ^#\ (CONFIG_[A-Za-z0-9_]+)\ is\ not\ set$ ]]; then
            sym="${BASH_REMATCH[1]}"
            if grep -qE "^$sym=[ym]$" "$config"; then
                bad+=("want $sym off, have: $(grep -E "^$sym=" "$config")")
            fi
        fi
    done <"$VM_DIR/kernel.config"
    if ((${#bad[@]})); then
        printf 'vm tier: kernel config %s does not satisfy tests/vm/kernel.config:\n' "$config" >&2
        printf '  %s\n' "${bad[@]}" >&2
        die "kernel config check failed (a dependency may be missing from kernel.config)"
    fi
}

KERNEL=
build_kernel() {
    local src_version key dir build src
    src_version="$(dpkg-query -W -f='${Version}' "$KERNEL_SOURCE_PKG")"
    key="$({
        echo "recipe $KERNEL_RECIPE"
        echo "$KERNEL_SOURCE_PKG $src_version"
        cat "$VM_DIR/kernel.config"
    } | sha256sum | cut -d' ' -f1)"
    dir="$CACHE/kernel-$key"
    KERNEL="$dir/bzImage"
    if [[ -f $dir/bzImage && -f $dir/config ]]; then
        verify_config "$dir/config"
        log "guest kernel cached ($dir, $KERNEL_SOURCE_PKG $src_version)"
        return
    fi
    build="$CACHE/build-$key"
    src="$build/linux-source-6.12"
    log "building the guest kernel from $KERNEL_SOURCE_PKG $src_version in $build"
    log "  (cold: several minutes; log: $OUT/kernel-build.log)"
    rm -rf "$build"
    mkdir -p "$build"
    tar -xJf "$KERNEL_SOURCE_TAR" -C "$build"
    [[ -d $src ]] || die "$KERNEL_SOURCE_TAR did not unpack to linux-source-6.12/"
    {
        make -C "$src" defconfig
        (cd "$src" && scripts/kconfig/merge_config.sh -m -O . .config "$VM_DIR/kernel.config")
        make -C "$src" olddefconfig
    } >"$OUT/kernel-build.log" 2>&1 || {
        tail -30 "$OUT/kernel-build.log"
        die "kernel configuration failed"
    }
    verify_config "$src/.config"
    local t0=$SECONDS
    if ! make -C "$src" -j"$(nproc)" bzImage >>"$OUT/kernel-build.log" 2>&1; then
        tail -40 "$OUT/kernel-build.log"
        die "kernel build failed (log: $OUT/kernel-build.log)"
    fi
    log "kernel built in $((SECONDS - t0)) s"
    rm -rf "$dir.tmp"
    mkdir -p "$dir.tmp"
    cp "$src/arch/x86/boot/bzImage" "$dir.tmp/bzImage"
    cp "$src/.config" "$dir.tmp/config"
    rm -rf "$dir"
    mv "$dir.tmp" "$dir"
    rm -rf "$build"
}

# ---------------------------------------------------------------------------------------------
# 4. The guest test binary and the userpci CLI (setup_then_unprivileged_perf runs it), static
#    (no shared libraries in the initramfs).

GUEST_BIN=
CLI_BIN=
build_guest_binary() {
    local target=x86_64-unknown-linux-gnu bin
    (cd "$REPO" &&
        RUSTFLAGS="-C target-feature=+crt-static" \
            CARGO_TARGET_DIR="$OUT/cargo" \
            CARGO_PROFILE_RELEASE_DEBUG=0 \
            CARGO_PROFILE_RELEASE_STRIP=debuginfo \
            cargo build --release --target "$target" -p userpci-vmtest -p userpci --bin userpci-vmtest --bin userpci)
    GUEST_BIN="$OUT/cargo/$target/release/userpci-vmtest"
    CLI_BIN="$OUT/cargo/$target/release/userpci"
    for bin in "$GUEST_BIN" "$CLI_BIN"; do
        [[ -x $bin ]] || die "no $bin after the build"
        if file "$bin" 2>/dev/null | grep -q 'dynamically linked'; then
            die "$bin is dynamically linked"
        fi
    done
}

# ---------------------------------------------------------------------------------------------
# 5. Initramfs (uncompressed newc cpio: TCG decompresses slowly).

# make_initramfs MODE -> $OUT/initramfs-MODE.cpio
make_initramfs() {
    local mode="$1" root="$OUT/initramfs-$1.d" applet
    rm -rf "$root"
    mkdir -p "$root"/{bin,dev,proc,sys,tmp,etc,lib/modules}
    cp /bin/busybox "$root/bin/busybox"
    for applet in $("$root/bin/busybox" --list); do
        [[ $applet == busybox ]] || ln -s busybox "$root/bin/$applet"
    done
    ln -s bin "$root/sbin"
    cp "$GUEST_BIN" "$root/bin/userpci-vmtest"
    cp "$CLI_BIN" "$root/bin/userpci"
    # vmuser: the unprivileged uid that setup_then_unprivileged_perf gives the device nodes to.
    printf 'root:x:0:0:root:/:/bin/sh\nvmuser:x:1000:1000:userpci VM test:/tmp:/bin/sh\n' \
        >"$root/etc/passwd"
    printf 'root:x:0:\nvmuser:x:1000:\n' >"$root/etc/group"
    install -m 0755 "$VM_DIR/init" "$root/init"
    if [[ $EUID == 0 ]]; then
        mknod -m 600 "$root/dev/console" c 5 1
        mknod -m 666 "$root/dev/null" c 1 3
    fi
    if [[ $mode == group ]]; then
        local moddir="$STOCK_ROOT/lib/modules/$STOCK_KVER" m ko seen=" "
        for m in "${STOCK_MODULES[@]}"; do
            # `insmod /path/x.ko.xz` lines in load order; `builtin x` lines need nothing.
            while read -r verb ko _; do
                [[ $verb == insmod ]] || continue
                local base="${ko##*/}"
                base="${base%.xz}"
                base="${base%.zst}"
                [[ $seen == *" $base "* ]] && continue
                seen+="$base "
                case "$ko" in
                    *.xz) xz -dc "$ko" >"$root/lib/modules/$base" ;;
                    *.zst) zstd -qdc "$ko" >"$root/lib/modules/$base" ;;
                    *) cp "$ko" "$root/lib/modules/$base" ;;
                esac
                echo "$base" >>"$root/lib/modules/load-order"
            done < <(modprobe -C /dev/null -d "$STOCK_ROOT" -S "$STOCK_KVER" --show-depends "$m")
        done
        [[ -s $root/lib/modules/load-order ]] || die "no modules resolved from $moddir"
        log "group-mode modules: $(tr '\n' ' ' <"$root/lib/modules/load-order")"
    fi
    (cd "$root" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet) \
        >"$OUT/initramfs-$mode.cpio"
}

# ---------------------------------------------------------------------------------------------
# 6. QEMU.

# qemu_args ACCEL KERNEL INITRD CMDLINE -> QEMU_ARGS
QEMU_ARGS=()
qemu_args() {
    local accel="$1" kernel="$2" initrd="$3" cmdline="$4"
    # shellcheck disable=SC2054 # commas separate QEMU sub-options, not array elements
    QEMU_ARGS=(
        # kernel-irqchip=split: needed by intremap=on under KVM, ignored by TCG.
        -machine "q35,kernel-irqchip=split"
        # TCG with one thread for both vCPUs: with multi-threaded TCG, QEMU 10 behind VT-d
        # sometimes dies in iotlb_to_section (an assertion in system/physmem.c) or hangs
        # the guest while a vCPU maps MMIO that the other vCPU's IOMMU update moved.
        -accel "$([[ $accel == tcg ]] && echo tcg,thread=single || echo "$accel")"
        -cpu max -m 1G -smp 2
        -nographic -no-reboot -vga none
        # VT-d with interrupt remapping; first, before the devices it translates for.
        -device intel-iommu,intremap=on
        # x-speed=5 on every root port: at QEMU 7.2's default 16 GT/s the guest waits for
        # Data Link Layer Link Active after a bus reset, times out, and hot reset fails.
        -device pcie-root-port,id=rp1,chassis=1,slot=1,x-speed=5
        -drive "file=$OUT/nvme-A.img,if=none,id=d0,format=raw"
        -device nvme,serial=A,drive=d0,bus=rp1,addr=0.0,multifunction=on
        -drive "file=$OUT/nvme-B.img,if=none,id=d1,format=raw"
        -device nvme,serial=B,drive=d1,bus=rp1,addr=0.1
        -device pcie-root-port,id=rp2,chassis=2,slot=2,x-speed=5
        -drive "file=$OUT/nvme-C.img,if=none,id=d2,format=raw"
        -device nvme,serial=C,drive=d2,bus=rp2
        # A heterogeneous slot: an NVMe function (serial D) and an 82576 (igb) function in one
        # multifunction device, so one reset group (harness.rs: HET_NVME, IGB_A). The NVMe is
        # function 0: behind an igb (ARI, next function 0) function 1 would not be enumerated.
        -device pcie-root-port,id=rp3,chassis=3,slot=3,x-speed=5
        -drive "file=$OUT/nvme-D.img,if=none,id=d3,format=raw"
        -device nvme,serial=D,drive=d3,bus=rp3,addr=0.0,multifunction=on
        -netdev hubport,id=hub0a,hubid=0
        -device igb,netdev=hub0a,mac=52:54:00:00:03:01,bus=rp3,addr=0.1
        # A second 82576 on the same QEMU hub: what one sends the other receives (IGB_B).
        -device pcie-root-port,id=rp4,chassis=4,slot=4,x-speed=5
        -netdev hubport,id=hub0b,hubid=0
        -device igb,netdev=hub0b,mac=52:54:00:00:04:00,bus=rp4
        -kernel "$kernel" -initrd "$initrd" -append "$cmdline"
    )
}

fresh_disks() {
    local s
    for s in A B C D; do
        rm -f "$OUT/nvme-$s.img"
        truncate -s 128M "$OUT/nvme-$s.img"
    done
}

# pick_accel KERNEL INITRD: KVM only when a probe boot of that kernel reaches /init and powers off.
pick_accel() {
    local kernel="$1" initrd="$2"
    case "$ACCEL" in
        tcg | kvm) log "accelerator $ACCEL (USERPCI_VM_ACCEL)"; return ;;
        auto) ;;
        *) die "USERPCI_VM_ACCEL=$ACCEL: expected auto, tcg or kvm" ;;
    esac
    ACCEL=tcg
    if [[ ! -r /dev/kvm || ! -w /dev/kvm ]]; then
        log "accelerator tcg (no usable /dev/kvm)"
        return
    fi
    fresh_disks
    qemu_args kvm "$kernel" "$initrd" \
        "console=ttyS0 intel_iommu=on no_timer_check panic=-1 userpci.mode=probe"
    # (the braces keep bash's "Aborted" job message out of the output: QEMU 7.2 aborts here)
    if { timeout --kill-after=5 30 qemu-system-x86_64 "${QEMU_ARGS[@]}" </dev/null \
        >"$OUT/kvm-probe.log" 2>&1; } 2>/dev/null &&
        tr -d '\r' <"$OUT/kvm-probe.log" | grep -q '^USERPCI-VMTEST-END mode=probe status=0'; then
        ACCEL=kvm
        log "accelerator kvm (probe boot worked)"
    else
        log "accelerator tcg (KVM probe failed: $(tr -d '\r' <"$OUT/kvm-probe.log" | grep -v '^$' | tail -1 | cut -c1-160))"
    fi
}

# run_mode MODE: boots the guest, collects its console, adds its results to PASSED/FAILED.
run_mode() {
    local mode="$1" kernel log cmdline rc=0 t0=$SECONDS
    case "$mode" in
        cdev) kernel="$KERNEL" ;;
        group) kernel="$STOCK_ROOT/boot/vmlinuz-$STOCK_KVER" ;;
    esac
    log="$OUT/console-$mode.log"
    # no_timer_check: under TCG on a loaded host the kernel's boot-time check of the IO-APIC
    # timer can time out and panic ("timer doesn't work through Interrupt-remapped IO-APIC").
    cmdline="console=ttyS0 intel_iommu=on no_timer_check panic=-1 userpci.mode=$mode"
    [[ -z $FILTER ]] || cmdline+=" userpci.filter=$FILTER"
    [[ $SHELL_AFTER != 1 ]] || cmdline+=" userpci.shell=1"
    fresh_disks
    qemu_args "$ACCEL" "$kernel" "$OUT/initramfs-$mode.cpio" "$cmdline"
    log "$mode: booting $(basename "$kernel") under $ACCEL (console: ${log#"$REPO"/})"
    if [[ $SHELL_AFTER == 1 ]]; then
        qemu-system-x86_64 "${QEMU_ARGS[@]}" 2>&1 | tee "$log" || rc=$?
    else
        timeout --kill-after=10 "$TIMEOUT" qemu-system-x86_64 "${QEMU_ARGS[@]}" </dev/null \
            >"$log" 2>&1 || rc=$?
    fi
    local secs=$((SECONDS - t0))

    # Results. Kernel messages can share a console line with ours, so match anywhere in it.
    local text ok bad summary end problems=()
    text="$(tr -d '\r' <"$log")"
    # A kernel panic before any test ran is the boot, not userpci (TCG flakes under host
    # load): boot once more, keeping the first console.
    if [[ ${BOOT_RETRIED:-} != *" $mode"* ]] && grep -q 'Kernel panic' <<<"$text" &&
        ! grep -q 'vmtest ' <<<"$text"; then
        BOOT_RETRIED+=" $mode"
        mv "$log" "${log%.log}.boot-panic.log"
        log "$mode: the guest kernel panicked at boot, before any test: booting once more \
(first console: ${log%.log}.boot-panic.log)"
        run_mode "$mode"
        return
    fi
    grep -oE 'vmtest [a-z0-9_]+ \.\.\. (ok|FAILED.*|ignored.*)$' <<<"$text" | sed "s/^/  [$mode] /" || true
    ok="$(grep -cE 'vmtest [a-z0-9_]+ \.\.\. ok$' <<<"$text" || true)"
    bad="$(grep -cE 'vmtest [a-z0-9_]+ \.\.\. FAILED' <<<"$text" || true)"
    summary="$(grep -oE 'vmtest summary: mode=[a-z]+ [0-9]+ passed, [0-9]+ failed, [0-9]+ ignored' <<<"$text" | tail -1 || true)"
    end="$(grep -oE 'USERPCI-VMTEST-END mode=[a-z]+ status=[0-9]+' <<<"$text" | tail -1 || true)"

    if [[ $rc == 124 || $rc == 137 ]]; then
        problems+=("guest killed after the ${TIMEOUT} s timeout")
    elif [[ $rc != 0 ]]; then
        problems+=("qemu exited with status $rc")
    fi
    if [[ -z $end ]]; then
        problems+=("guest did not finish (no USERPCI-VMTEST-END line)")
    fi
    if [[ -z $summary ]]; then
        problems+=("no 'vmtest summary' line: the test binary did not complete")
    elif [[ $summary != "vmtest summary: mode=$mode $ok passed, $bad failed,"* ]]; then
        problems+=("summary '$summary' disagrees with the result lines ($ok ok, $bad FAILED)")
    fi
    if [[ -n $end && $end != "USERPCI-VMTEST-END mode=$mode status=0" && $bad == 0 ]]; then
        problems+=("guest ended with '$end' but no test failed")
    fi
    if ((ok + bad == 0)) && [[ -z $FILTER ]]; then
        problems+=("no test ran")
    fi
    keep_timeline "$mode" "$text" || problems+=("the timeline JSON on the console is not valid JSON")
    if grep -qE 'Kernel panic|Call Trace:' <<<"$text"; then
        log "$mode: WARNING: the guest kernel logged a panic or a call trace, see ${log#"$REPO"/}"
    fi

    # A guest run that went wrong counts as one failure, however many symptoms it shows.
    local broken=$((${#problems[@]} > 0 ? 1 : 0))
    PASSED=$((PASSED + ok))
    FAILED=$((FAILED + bad + broken))
    if ((${#problems[@]})); then
        local p
        for p in "${problems[@]}"; do
            echo "  [$mode] FAILED: $p"
        done
        echo "  [$mode] last console lines (${log#"$REPO"/}):"
        tr -d '\r' <"$log" | tail -n 25 | sed 's/^/    | /'
    elif ((bad)); then
        echo "  [$mode] console: ${log#"$REPO"/}"
    fi
    log "$mode: $ok passed, $((bad + broken)) failed in ${secs} s"
}

# The heterogeneous reset test prints its ResetReport as JSON between markers; keep it as
# target/vm/timeline-<mode>.json (a CI artifact). Kernel messages can land between its lines:
# those are dropped. Fails only when a timeline was printed and is not valid JSON.
keep_timeline() {
    local mode="$1" text="$2" file="$OUT/timeline-$mode.json"
    rm -f "$file"
    grep -q '^USERPCI-TIMELINE-BEGIN$' <<<"$text" || return 0
    sed -n '/^USERPCI-TIMELINE-BEGIN$/,/^USERPCI-TIMELINE-END$/p' <<<"$text" |
        sed '1d;$d' | grep -vE '^\[ *[0-9]+\.[0-9]+\]' >"$file.tmp"
    if python3 -m json.tool "$file.tmp" >/dev/null 2>&1; then
        mv "$file.tmp" "$file"
        log "$mode: reset timeline kept in ${file#"$REPO"/}"
    else
        mv "$file.tmp" "$file.invalid"
        return 1
    fi
}

# ---------------------------------------------------------------------------------------------

main() {
    trap on_exit EXIT
    local modes=("$@") m
    ((${#modes[@]})) || modes=(cdev group)
    for m in "${modes[@]}"; do
        [[ $m == cdev || $m == group ]] || die "unknown mode '$m' (expected cdev or group)"
    done
    mkdir -p "$OUT" "$CACHE"

    step "packages"
    install_packages
    install_qemu

    local need_cdev=0 need_group=0
    for m in "${modes[@]}"; do
        [[ $m == cdev ]] && need_cdev=1
        [[ $m == group ]] && need_group=1
    done
    # One run at a time fills the cache (clones on one machine share it).
    exec 9>"$CACHE/.lock"
    flock -w 3600 9 || die "cannot lock $CACHE/.lock"
    if [[ $need_group == 1 ]]; then
        step "stock kernel"
        stock_kernel
    fi
    if [[ $need_cdev == 1 ]]; then
        step "guest kernel"
        build_kernel
    fi
    flock -u 9

    step "guest binary"
    build_guest_binary

    step "initramfs"
    for m in "${modes[@]}"; do
        make_initramfs "$m"
    done

    step "accelerator"
    if [[ ${modes[0]} == cdev ]]; then
        pick_accel "$KERNEL" "$OUT/initramfs-cdev.cpio"
    else
        pick_accel "$STOCK_ROOT/boot/vmlinuz-$STOCK_KVER" "$OUT/initramfs-group.cpio"
    fi

    for m in "${modes[@]}"; do
        step "run $m"
        run_mode "$m"
    done
    step end

    local timings="" s
    for s in "${STEP_ORDER[@]}"; do
        timings+="$s ${STEP_SECONDS[$s]}s, "
    done
    log "timings: ${timings}total ${SECONDS}s"
    DONE=1
    echo "$PASSED passed, $FAILED failed"
    ((FAILED == 0 && PASSED > 0))
}

# On one line, so bash has read it before main runs: editing this file during a run cannot
# make bash execute whatever then lies past the old end.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then main "$@"; exit; fi
