"""CPU seconds a benchmark used, its own process's and the machine's."""

import os
import resource


class CPUClock(object):
    """CPU seconds used since it was made: by this process, by all.

    The machine's busy time (/proc/stat) holds this process's and what
    else runs: LXD, the containers, a cloud's services.
    """

    def __init__(self):
        self.start = self._now()

    @staticmethod
    def _now():
        usage = resource.getrusage(resource.RUSAGE_SELF)
        with open('/proc/stat') as stat:
            ticks = [int(v) for v in stat.readline().split()[1:9]]
        busy = sum(ticks) - ticks[3] - ticks[4]     # less idle, iowait
        return (usage.ru_utime + usage.ru_stime,
                busy / os.sysconf('SC_CLK_TCK'))

    def used(self):
        """(this process's CPU seconds, the machine's)."""
        return tuple(n - s for n, s in zip(self._now(), self.start))
