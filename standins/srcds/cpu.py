"""How srcds learns the CPU's clock speed at start-up, and how it fails without /proc.

Valve's tier0 (`CalculateCPUFreq` in tier0/cpu_posix.cpp, `CalculateClockSpeed` and
`GetCPUInformation` in tier0/cpu.cpp; public copies of the 2007- and 2013-era sources,
e.g. nillerusr/source-engine, read for behaviour only), in this order:

1. the environment variable `CPU_MHZ` (whole MHz), taken as it is;
2. `/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq` (kHz; only where the kernel
   runs a frequency-scaling driver, rarely in a VM; the 2007-era code lacks this step);
3. measuring the TSC against gettimeofday over 5 ms sleeps until three periods agree
   within 40 kHz (at most 600 tries, ~3 s) - a busy or throttled host may never agree;
4. only then `/proc/cpuinfo`'s first `cpu MHz` line.

If all give nothing, tier0 calls `Error("Unable to determine CPU Frequency")` and the server
ends. Under systemd's `ProcSubset=pid` `/proc/cpuinfo` does not exist. tier0 also counts
processors from `/proc/cpuinfo` and falls back to one logical and one physical CPU
silently when it cannot read it.

Python cannot read the TSC, so step 3 is a switch: it converges unless
`SRCDS_SIM_TSC_UNSTABLE=1` / `-sim_tsc_unstable` (a loaded or virtualised host). The
stand-in reads the same files as tier0 (`SRCDS_SIM_SYSFS_CPUFREQ` and
`SRCDS_SIM_PROC_CPUINFO` name other paths, for tests).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

SYSFS_MAX_FREQ = "/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq"
PROC_CPUINFO = "/proc/cpuinfo"
MEASURED_MHZ = 2400  # what the (simulated) TSC measurement finds
EXIT_NO_CPU_FREQUENCY = 1


@dataclass(frozen=True)
class CpuInfo:
    mhz: int
    source: str
    logical: int


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as handle:
            return handle.read(1 << 20)
    except OSError:
        return None


def mhz_from_cpuinfo(text: str) -> int:
    """The first `cpu MHz` line's value, as tier0's GetCPUFreqFromPROC reads it (0: none)."""
    for line in text.splitlines():
        if "cpu MHz" in line and ":" in line:
            try:
                return int(float(line.split(":", 1)[1].split()[0]))
            except (ValueError, IndexError):
                continue
    return 0


def logical_from_cpuinfo(text: str | None) -> int:
    if text is None:
        return 1  # tier0's silent fallback
    return max(1, sum(1 for line in text.splitlines()
                      if line.split(":", 1)[0].strip().lower() == "processor"))


def detect(tsc_unstable: bool) -> CpuInfo | None:
    """tier0's sequence; None where tier0 calls Error()."""
    env = os.environ
    cpuinfo = _read(env.get("SRCDS_SIM_PROC_CPUINFO", PROC_CPUINFO))
    logical = logical_from_cpuinfo(cpuinfo)
    given = env.get("CPU_MHZ")
    if given is not None:
        try:
            mhz = int(given.strip())
        except ValueError:
            mhz = 0  # atoi("abc") is 0: as good as none, and tier0 takes it anyway
        return CpuInfo(mhz, "CPU_MHZ", logical) if mhz else None
    sysfs = _read(env.get("SRCDS_SIM_SYSFS_CPUFREQ", SYSFS_MAX_FREQ))
    if sysfs and sysfs.strip().isdigit() and int(sysfs.strip()):
        return CpuInfo(int(sysfs.strip()) // 1000, "cpufreq", logical)
    if not tsc_unstable:
        return CpuInfo(MEASURED_MHZ, "tsc", logical)
    mhz = mhz_from_cpuinfo(cpuinfo or "")
    return CpuInfo(mhz, "/proc/cpuinfo", logical) if mhz else None
