# A stand-in for a gate on the other end of mpremote: a littlefs image (as on the ESP32) mounted at
# "/" in the unix-port MicroPython, the host filesystem at "/host" for copies.
#   micropython standin_device.py IMAGE exec CODE | cp HOSTFILE DEVPATH | cpr HOSTDIR DEVDIR | ls DEVPATH
# The image persists between invocations, like the gate's flash.
import os
import sys

BS = 4096
NBLOCKS = 128


class RAMBlockDev:
    def __init__(self, data):
        self.data = data

    def readblocks(self, n, buf, off=0):
        a = n * BS + off
        buf[:] = self.data[a:a + len(buf)]

    def writeblocks(self, n, buf, off=0):
        a = n * BS + off
        self.data[a:a + len(buf)] = buf

    def ioctl(self, op, arg):
        if op == 4:
            return NBLOCKS
        if op == 5:
            return BS
        if op == 6:
            return 0
        return None


def main():
    img, cmd = sys.argv[1], sys.argv[2]
    args = sys.argv[3:]
    try:
        with open(img, "rb") as f:
            data = bytearray(f.read())
        fresh = False
    except OSError:
        data = bytearray(BS * NBLOCKS)
        fresh = True
    bdev = RAMBlockDev(data)
    if fresh:
        os.VfsLfs2.mkfs(bdev)
    os.umount("/")
    os.mount(os.VfsLfs2(bdev), "/")
    os.mount(os.VfsPosix("/"), "/host")
    os.chdir("/")
    sys.path[:] = ["", "/", ".frozen"]
    try:
        if cmd == "exec":
            exec(args[0], {"__name__": "__main__"})
        elif cmd == "cp":
            copy("/host" + args[0], args[1])
        elif cmd == "cpr":
            copytree("/host" + args[0], args[1])
        elif cmd == "ls":
            for name in sorted(os.listdir(args[0])):
                print(name)
    finally:
        with open("/host" + img, "wb") as f:
            f.write(data)


def copy(src, dst):
    with open(src, "rb") as f:
        d = f.read()
    with open(dst, "wb") as f:
        f.write(d)


def copytree(src, dst):
    try:
        os.mkdir(dst)
    except OSError:
        pass
    for ent in os.ilistdir(src):
        name, typ = ent[0], ent[1]
        if typ == 0x4000:
            copytree(src + "/" + name, dst + "/" + name)
        else:
            copy(src + "/" + name, dst + "/" + name)


main()
