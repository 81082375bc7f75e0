#!/usr/bin/env bash
# userpci against the kernel's own drivers in the VM guest, on the same boot and the same QEMU
# devices (issue 9 item 6; tests/vm/BENCH.md). Boots the VM tier's machine (run.sh's
# topology, QEMU 10 TCG, 1 GiB) on Debian's stock kernel N times; each boot runs
# `userpci-vmtest --bench group`:
#   NVMe 02:00.0: userpci 4 KiB randread QD1/QD32 (raw polled API, async API), then the kernel's
#                 nvme driver (poll_queues=1) with fio io_uring QD1/QD32, with and without --hipri
#   igb 04:00.0:  60-byte frames to igb 03:00.1 (userpci counts what arrives): userpci's igb
#                 driver, then the kernel's igb driver with the pktgen module
# and prints one JSON object: every figure per boot, the medians, the ratios userpci/kernel.
#
#   bash tests/vm/bench.sh
#
# Environment:
#   USERPCI_BENCH_BOOTS=3        boots (TCG varies up to 25 % between boots)
#   USERPCI_BENCH_SECONDS=4      seconds per measurement (12 measurements per boot)
#   USERPCI_BENCH_TIMEOUT=300    seconds per boot before the guest is killed
#   USERPCI_VM_ACCEL=tcg         as run.sh (default here: tcg, what the figures are for)
#   USERPCI_VM_CACHE             as run.sh
#   USERPCI_BENCH_APPEND=""      more guest kernel parameters, for experiments (for example
#                                iommu.passthrough=1: the kernel's drivers without IOMMU mappings)
#
# Output: the JSON object on stdout (last line) and in target/vm/bench/bench.json; each boot's
# console in target/vm/bench/console-<n>.log. Exit 0 only if every boot gave every figure.
set -euo pipefail

VM_LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# run.sh's functions and settings; its main runs only when run.sh is executed, not sourced.
# shellcheck source=tests/vm/run.sh
source "$VM_LIB_DIR/run.sh"

BENCH_OUT="$OUT/bench"
BOOTS="${USERPCI_BENCH_BOOTS:-3}"
BENCH_SECONDS="${USERPCI_BENCH_SECONDS:-4}"
BOOT_TIMEOUT="${USERPCI_BENCH_TIMEOUT:-300}"
BENCH_APPEND="${USERPCI_BENCH_APPEND:-}"
ACCEL="${USERPCI_VM_ACCEL:-tcg}"
PACKAGES+=(fio)
# The stock kernel's modules for the bench: the kernel's own nvme and igb drivers, pktgen.
STOCK_MODULES=(vfio_iommu_type1 vfio_pci nvme igb pktgen)
# The nvme driver with a poll queue, so that fio's --hipri polls.
NVME_PARAMS="poll_queues=1"

bench_die() {
    echo "vm bench: ERROR: $*" >&2
    exit 1
}

# copy_with_libraries ROOT BINARY: BINARY and every shared library ldd names, at their paths.
copy_with_libraries() {
    local root="$1" bin="$2" lib
    install -D -m 0755 "$bin" "$root$bin"
    while read -r lib; do
        [[ -n $lib ]] || continue
        install -D -m 0755 "$(readlink -f "$lib")" "$root$lib"
    done < <(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
}

# The group-mode initramfs of run.sh plus fio and its libraries, the nvme parameter, and the
# extra modules -> $BENCH_OUT/initramfs-bench.cpio
make_bench_initramfs() {
    OUT="$BENCH_OUT" make_initramfs group
    local root="$BENCH_OUT/initramfs-group.d"
    grep -qx 'nvme.ko' "$root/lib/modules/load-order" ||
        bench_die "no nvme.ko line in the initramfs's load-order"
    sed -i "s/^nvme\.ko\$/nvme.ko $NVME_PARAMS/" "$root/lib/modules/load-order"
    local fio
    fio="$(command -v fio)" || bench_die "no fio after installing the package"
    copy_with_libraries "$root" "$fio"
    [[ $fio == /usr/bin/fio ]] || ln -sf "$fio" "$root/usr/bin/fio"
    (cd "$root" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet) \
        >"$BENCH_OUT/initramfs-bench.cpio"
    rm -f "$BENCH_OUT/initramfs-group.cpio"
    log "bench initramfs: $(du -m "$BENCH_OUT/initramfs-bench.cpio" | cut -f1) MiB, \
modules $(tr '\n' ' ' <"$root/lib/modules/load-order")"
}

# Host CPU seconds busy so far, all CPUs (user nice system irq softirq steal of /proc/stat).
host_busy_seconds() {
    awk -v hz="$(getconf CLK_TCK)" '$1 == "cpu" { printf "%.2f", ($2 + $3 + $4 + $7 + $8 + $9) / hz }' /proc/stat
}

# CPU seconds of this shell's waited-for children so far (user + system, `times`' second line;
# `times` runs in this shell, through a file: in a pipe it would be a fresh subshell's).
children_cpu_seconds() {
    times >"$BENCH_OUT/.times"
    awk 'NR == 2 { gsub(/[ms]/, " "); print $1 * 60 + $2 + $3 * 60 + $4 }' "$BENCH_OUT/.times"
}

# sample_qemu_threads TIMEOUT_PID CONSOLE OUT: while the guest runs, CPU time of each QEMU
# thread (by name) per bench phase (the guest's `bench: phase <name>` console lines), every
# 0.2 s; writes {phase: {wall_s, busy: {thread: CPUs busy on average}}} to OUT.
sample_qemu_threads() {
    python3 - "$@" <<'PY'
import json, os, re, sys, time

timeout_pid, log, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
hz = os.sysconf("SC_CLK_TCK")

def stat_fields(path):
    with open(path) as f:
        text = f.read()
    return text[text.index("(") + 1:text.rindex(")")], text[text.rindex(")") + 2:].split()

def child_of(pid):
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                _, fields = stat_fields(f"/proc/{d}/stat")
            except OSError:
                continue
            if int(fields[1]) == pid:
                return int(d)
    return None

def threads(pid):
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    found = {}
    for tid in tids:
        try:
            comm, fields = stat_fields(f"/proc/{pid}/task/{tid}/stat")
        except OSError:
            continue
        found[tid] = (comm, int(fields[11]) + int(fields[12]))
    return found

qemu = None
for _ in range(200):
    qemu = child_of(timeout_pid)
    if qemu:
        break
    time.sleep(0.05)
phases, phase, pos = {}, "boot", 0
marker = re.compile(rb"bench: phase (\S+)")
prev = threads(qemu) if qemu else None
prev_t = time.monotonic()
while prev is not None:
    time.sleep(0.2)
    now, t = threads(qemu), time.monotonic()
    if now is None:
        break
    acc = phases.setdefault(phase, {"wall_s": 0.0, "cpu_s": {}})
    acc["wall_s"] += t - prev_t
    for tid, (comm, ticks) in now.items():
        acc["cpu_s"][comm] = acc["cpu_s"].get(comm, 0.0) + (ticks - prev.get(tid, (comm, 0))[1]) / hz
    prev, prev_t = now, t
    try:
        with open(log, "rb") as f:
            f.seek(pos)
            data = f.read()
    except OSError:
        continue
    complete = data.rfind(b"\n") + 1
    pos += complete
    for m in marker.finditer(data[:complete]):
        phase = m.group(1).decode()
result = {
    name: {"wall_s": round(p["wall_s"], 2),
           "busy": {c: round(s / p["wall_s"], 2) for c, s in sorted(p["cpu_s"].items()) if s > 0}}
    for name, p in phases.items() if p["wall_s"] > 0
}
with open(out, "w") as f:
    json.dump(result, f)
PY
}

# boot_once N: one guest; its result line's JSON into $BENCH_OUT/boot-N.json.
boot_once() {
    local n="$1" log="$BENCH_OUT/console-$1.log" rc=0 t0=$SECONDS line load
    local busy0 busy1 own0 own1 other
    load="$(cut -d' ' -f1-3 /proc/loadavg)"
    busy0="$(host_busy_seconds)"
    children_cpu_seconds >"$BENCH_OUT/.own0"
    OUT="$BENCH_OUT" fresh_disks
    OUT="$BENCH_OUT" qemu_args "$ACCEL" "$STOCK_ROOT/boot/vmlinuz-$STOCK_KVER" \
        "$BENCH_OUT/initramfs-bench.cpio" \
        "console=ttyS0 intel_iommu=on panic=-1 userpci.mode=bench userpci.seconds=$BENCH_SECONDS${BENCH_APPEND:+ $BENCH_APPEND}"
    # Named threads (main loop, "CPU n/TCG" or "ALL CPUs/TCG", "worker"), for the sampler.
    QEMU_ARGS+=(-name "bench-$n,debug-threads=on")
    log "boot $n of $BOOTS (load average $load; console: ${log#"$REPO"/})"
    timeout --kill-after=10 "$BOOT_TIMEOUT" qemu-system-x86_64 "${QEMU_ARGS[@]}" </dev/null \
        >"$log" 2>&1 &
    local guest=$!
    sample_qemu_threads "$guest" "$log" "$BENCH_OUT/threads-$n.json" &
    local sampler=$!
    wait "$guest" || rc=$?
    wait "$sampler" || log "boot $n: the QEMU thread sampler failed"
    busy1="$(host_busy_seconds)"
    children_cpu_seconds >"$BENCH_OUT/.own1"
    own0="$(cat "$BENCH_OUT/.own0")"
    own1="$(cat "$BENCH_OUT/.own1")"
    # CPUs kept busy by everything but this guest, on average over the boot (0 to nproc).
    other="$(awk -v b0="$busy0" -v b1="$busy1" -v o0="$own0" -v o1="$own1" -v w="$((SECONDS - t0))" \
        'BEGIN { v = (b1 - b0 - (o1 - o0)) / (w > 0 ? w : 1); printf "%.2f", v < 0 ? 0 : v }')"
    log "boot $n: other host work kept $other CPUs busy on average"
    tr -d '\r' <"$log" | grep -E '^bench: ' | grep -v '^bench: phase ' | sed "s/^/  [boot $n] /" || true
    line="$(tr -d '\r' <"$log" | grep -oE 'USERPCI-BENCH-RESULT \{.*\}$' | tail -1 || true)"
    if [[ -z $line ]]; then
        echo "  [boot $n] no result line (qemu status $rc); last console lines:"
        tr -d '\r' <"$log" | tail -n 25 | sed 's/^/    | /'
        return 1
    fi
    python3 - "$n" "$((SECONDS - t0))" "$load" "$other" "${line#USERPCI-BENCH-RESULT }" \
        "$BENCH_OUT/threads-$n.json" \
        >"$BENCH_OUT/boot-$n.json" <<'PY'
import json, sys
import os
n, wall, load, other, text, threads = sys.argv[1:]
result = json.loads(text)
if os.path.exists(threads):
    with open(threads) as f:
        result["qemu_threads_busy"] = json.load(f)
result["boot"] = int(n)
result["wall_seconds"] = int(wall)
result["host_load_average_at_start"] = load
result["host_other_busy_cpus"] = float(other)
print(json.dumps(result))
PY
    log "boot $n: done in $((SECONDS - t0)) s"
    [[ $rc == 0 ]] || log "boot $n: qemu exited with status $rc"
    tr -d '\r' <"$log" | grep -q 'USERPCI-VMTEST-END mode=bench status=0'
}

summarise() {
    python3 - "$BENCH_OUT" "$BOOTS" "$(qemu-system-x86_64 --version | awk 'NR == 1 { print $4 }')" \
        "$(nproc)" "$(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)" \
        "$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)" \
        "$BENCH_SECONDS" "$BENCH_APPEND" <<'PY'
import datetime, json, os, statistics, sys

out, boots, qemu, cpus, mem, cpu_model, seconds, append = sys.argv[1:]
runs = []
for n in range(1, int(boots) + 1):
    path = os.path.join(out, f"boot-{n}.json")
    if os.path.exists(path):
        with open(path) as f:
            runs.append(json.load(f))

def get(run, *path):
    v = run
    for p in path:
        if not isinstance(v, dict) or p not in v:
            return None
        v = v[p]
    return v

# (figure name, path in one boot's object)
figures = {}
for api in ("raw", "async"):
    for qd in (1, 32):
        figures[f"nvme_userpci_{api}_qd{qd}_iops"] = ("nvme", "userpci", f"{api}_qd{qd}", "iops")
for poll in ("", "_hipri"):
    for qd in (1, 32):
        figures[f"nvme_kernel_io_uring{poll}_qd{qd}_iops"] = (
            "nvme", "kernel", f"io_uring{poll}_qd{qd}", "iops")
figures["net_userpci_rx_pps"] = ("net", "userpci", "rx_pps")
figures["net_userpci_tx_pps"] = ("net", "userpci", "tx_pps")
for b in ("burst1", "burst32"):
    figures[f"net_kernel_pktgen_{b}_rx_pps"] = ("net", "kernel", f"pktgen_{b}", "rx_pps")
    figures[f"net_kernel_pktgen_{b}_tx_pps"] = ("net", "kernel", f"pktgen_{b}", "tx_pps")

def median(values):
    values = [v for v in values if isinstance(v, (int, float))]
    return round(statistics.median(values), 1) if values else None

medians = {name: median([get(r, *path) for r in runs]) for name, path in figures.items()}

# userpci / kernel, per boot (same boot, same device) and the median of those.
pairs = {}
for api in ("raw", "async"):
    for qd in (1, 32):
        pairs[f"nvme_{api}_qd{qd}_vs_kernel_hipri"] = (
            f"nvme_userpci_{api}_qd{qd}_iops", f"nvme_kernel_io_uring_hipri_qd{qd}_iops")
        pairs[f"nvme_{api}_qd{qd}_vs_kernel_irq"] = (
            f"nvme_userpci_{api}_qd{qd}_iops", f"nvme_kernel_io_uring_qd{qd}_iops")
for b in ("burst1", "burst32"):
    pairs[f"net_rx_pps_vs_kernel_pktgen_{b}"] = (
        "net_userpci_rx_pps", f"net_kernel_pktgen_{b}_rx_pps")
ratios = {}
per_boot_ratios = []
for r in runs:
    row = {"boot": r.get("boot")}
    for name, (num, den) in pairs.items():
        a, b = get(r, *figures[num]), get(r, *figures[den])
        row[name] = round(a / b, 3) if isinstance(a, (int, float)) and b else None
    per_boot_ratios.append(row)
for name in pairs:
    vals = [row[name] for row in per_boot_ratios if row[name] is not None]
    ratios[name] = round(statistics.median(vals), 3) if vals else None

goal = {
    "nvme_qd1_polled_1_5x": None if ratios["nvme_raw_qd1_vs_kernel_hipri"] is None
    else ratios["nvme_raw_qd1_vs_kernel_hipri"] >= 1.5,
    "nvme_qd32_polled_1_5x": None if ratios["nvme_raw_qd32_vs_kernel_hipri"] is None
    else ratios["nvme_raw_qd32_vs_kernel_hipri"] >= 1.5,
    "net_ahead_of_kernel": None if ratios["net_rx_pps_vs_kernel_pktgen_burst32"] is None
    else ratios["net_rx_pps_vs_kernel_pktgen_burst32"] > 1.0
    and (ratios["net_rx_pps_vs_kernel_pktgen_burst1"] or 0) > 1.0,
}
summary = {
    "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    "command": "bash tests/vm/bench.sh",
    "machine": {"host_cpus": int(cpus), "host_memory": mem, "host_cpu": cpu_model,
                "qemu": qemu, "accel": "tcg (one thread)", "guest": "2 vCPUs, 1 GiB"},
    "seconds_per_measurement": float(seconds),
    "extra_kernel_parameters": append,
    "boots_requested": int(boots),
    "boots_complete": len(runs),
    "medians": medians,
    "ratios_userpci_over_kernel": ratios,
    "goal_met": goal,
    "per_boot_ratios": per_boot_ratios,
    "boots": runs,
}
with open(os.path.join(out, "bench.json"), "w") as f:
    json.dump(summary, f, indent=2)
print(json.dumps(summary))
PY
}

bench_main() {
    [[ $BOOTS =~ ^[1-9][0-9]*$ ]] || bench_die "USERPCI_BENCH_BOOTS=$BOOTS: expected a count"
    mkdir -p "$OUT" "$CACHE" "$BENCH_OUT"
    rm -f "$BENCH_OUT"/boot-*.json "$BENCH_OUT"/console-*.log "$BENCH_OUT/bench.json"
    local t0=$SECONDS
    install_packages
    install_qemu
    exec 9>"$CACHE/.lock"
    flock -w 3600 9 || bench_die "cannot lock $CACHE/.lock"
    stock_kernel
    flock -u 9
    build_guest_binary
    make_bench_initramfs
    log "accelerator $ACCEL; $BOOTS boots, $BENCH_SECONDS s per measurement"
    local n complete=0
    for ((n = 1; n <= BOOTS; n++)); do
        if boot_once "$n"; then
            complete=$((complete + 1))
        else
            log "boot $n: incomplete (see $BENCH_OUT/console-$n.log)"
        fi
    done
    log "bench: $complete of $BOOTS boots complete in $((SECONDS - t0)) s"
    summarise
    ((complete == BOOTS))
}

# On one line, so bash has read it before bench_main runs (editing this file during a run
# cannot make bash execute whatever then lies past the old end).
bench_main "$@"; exit
