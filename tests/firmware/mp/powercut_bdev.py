# A RAM block device for os.VfsLfs2 (extended interface: offsets, erase by ioctl 6) that behaves
# like NOR flash and can "cut the power" at the N-th erase or program.
#
# NOR semantics: erase sets a whole block to 0xFF; program can only clear bits (new = old & data).
# Counts erases, programs and programmed bytes (per operation, so benchmarks can diff them).
# Cut at op N (1-based over erases + programs): a program applies only a prefix of its bytes and,
# in the next byte, only some of the 1->0 bit transitions; an erase leaves the block half erased
# (the rest keeps its old bytes). After the cut every write fails with EIO (-5) and changes
# nothing, so littlefs sees an I/O error (no exception thrown through C) and the test can take
# the surviving bytes, as they were at the cut, and mount them again.
import os

EIO = -5


def mount(bdev, mnt, fmt=False):
    """Mount bdev (littlefs v2) at mnt, formatting it first if fmt."""
    if fmt:
        os.VfsLfs2.mkfs(bdev)
    os.mount(os.VfsLfs2(bdev), mnt)


def umount(mnt):
    try:
        os.umount(mnt)
    except OSError:
        pass


class PowerCutBdev:
    def __init__(self, block_size, block_count, data=None, cut_at=0, cut_seed=0):
        self.bs = block_size
        self.count = block_count
        self.mem = bytearray(data) if data is not None else bytearray(b"\xff" * (block_size * block_count))
        self.cut_at = cut_at      # 0: never
        self.cut_seed = cut_seed  # varies how much of the cut operation lands
        self.ops = 0
        self.erases = 0
        self.programs = 0
        self.prog_bytes = 0
        self.reads = 0
        self.dead = False
        self.overprogram = 0      # programs onto bytes that were not erased (littlefs never should)

    def readblocks(self, block, buf, off=0):
        a = block * self.bs + off
        buf[:] = self.mem[a:a + len(buf)]
        self.reads += 1

    def _tick(self):
        """Count one erase/program; True if the power goes at this one."""
        if self.dead:
            return None
        self.ops += 1
        return self.cut_at and self.ops == self.cut_at

    def writeblocks(self, block, buf, off=0):
        cut = self._tick()
        if cut is None:
            return EIO
        n = len(buf)
        a = block * self.bs + off
        mem = self.mem
        if cut:
            # a partial program: a prefix of the bytes, then one byte with some bits landed
            k = (self.cut_seed * 7 + 3) % (n + 1)
            self._prog(a, buf, k)
            if k < n:
                mem[a + k] &= buf[k] | (0x55 if self.cut_seed & 1 else 0xF0)
            self.dead = True
            return EIO
        self.programs += 1
        self.prog_bytes += n
        self._prog(a, buf, n)
        return 0

    def _prog(self, a, buf, n):
        mem = self.mem
        if mem[a:a + n] == b"\xff" * n:
            mem[a:a + n] = buf[:n]        # the usual case: programming erased bytes
        else:
            self.overprogram += 1
            for i in range(n):
                mem[a + i] &= buf[i]

    def ioctl(self, op, arg):
        if op == 4:
            return self.count
        if op == 5:
            return self.bs
        if op == 6:  # erase block `arg`
            cut = self._tick()
            if cut is None:
                return EIO
            a = arg * self.bs
            if cut:
                h = self.bs // 2
                self.mem[a:a + h] = b"\xff" * h
                self.dead = True
                return EIO
            self.erases += 1
            self.mem[a:a + self.bs] = b"\xff" * self.bs
            return 0
        return 0  # init, deinit, sync

    def counters(self):
        return {"erases": self.erases, "programs": self.programs, "prog_bytes": self.prog_bytes}
