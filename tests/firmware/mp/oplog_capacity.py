# The default operation log on real littlefs (os.VfsLfs2, 4096-byte blocks as on an ESP32's flash):
# one full segment of the default size takes exactly its 4 data blocks (littlefs' CTZ pointers
# are inside the 16 bytes the size leaves out), so the default log's 62 segments take 248 blocks
# (0.97 MiB) for 31,558 records. Prints one JSON line. Usage: micropython oplog_capacity.py
import json
import os
import sys

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from powercut_bdev import PowerCutBdev  # noqa: E402
from offgate.config import SCHEMA  # noqa: E402
from offgate.log.oplog import OpLog  # noqa: E402

BS = 4096
bdev = PowerCutBdev(BS, 64)
os.VfsLfs2.mkfs(bdev)
os.mount(os.VfsLfs2(bdev), "/cap")


def used():
    st = os.statvfs("/cap")
    return st[2] - st[3]  # blocks - free blocks


seg = SCHEMA["log_segment_bytes"][0]
nseg = SCHEMA["log_max_segments"][0]
lg = OpLog("/cap/oplog", seg, nseg)
lg.recover()
before = used()
for i in range(lg.per_seg):  # one full segment
    lg.append(1800000000 + i, (i % 500).to_bytes(8, "big"), i + 1, "OPEN" if i % 5 else "DENY", 0 if i % 5 else 14)
lg.close()
one = used() - before
size = os.stat("/cap/oplog/00000001.seg")[6]
lg.append(1800001000, None, 0, "DENY", 14)  # the next segment starts: the first is closed as it was
lg.close()
print(json.dumps({"segment_bytes": seg, "segments": nseg, "per_segment": lg.per_seg, "file_bytes": size,
                  "blocks_one_segment": one, "records": nseg * lg.per_seg,
                  "log_blocks": nseg * one, "log_bytes": nseg * one * BS}))
