#!/usr/bin/python3
"""A message header announcing a huge message costs nothing up front.

In transaction mode tidepool waits for whole Parse/Bind/Describe/Close/
Execute/Sync messages (it rewrites statement names). CLIENTS clients each send
only the 5-byte header of a Parse announcing almost 1 GB (below the 1 GB
limit) and a few bytes of it: the daemon's virtual memory must not grow by
anything near what they announced (it used to reserve the whole announced
size at once: found by tests/fuzz/fuzz_client). The daemon stays up and
serves a normal query afterwards.
"""

import os
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tpharness as h  # noqa: E402

CLIENTS = 8
ANNOUNCED = 0x3FFFFF00  # just under the 1 GB message limit


def vm_size_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1])
    raise AssertionError("no VmSize")


class HugeHeader(h.TestCase):
    def test_announced_size_is_not_reserved(self):
        with h.Cluster() as pg, h.Tidepool(pg, pools={"inventorydb": {"pool_mode": "transaction"}}) as tp:
            warm = tp.raw()
            self.assertEqual(warm.fetch("SELECT 1"), [("1",)])
            before = vm_size_kb(tp.proc.pid)
            conns = [tp.raw() for _ in range(CLIENTS)]
            for c in conns:
                c.sock.sendall(b"P" + struct.pack("!I", ANNOUNCED) + b"stmt\0SELECT ")
            time.sleep(1.0)
            after = vm_size_kb(tp.proc.pid)
            grown_mb = (after - before) / 1024
            h.log(f"{CLIENTS} clients announced {CLIENTS * ANNOUNCED / 2**20:.0f} MB: "
                  f"VmSize {before // 1024} MB -> {after // 1024} MB (+{grown_mb:.1f} MB)")
            self.assertLess(grown_mb, 256, "the announced sizes were reserved up front")
            self.assertTrue(tp.running, "tidepool died")
            for c in conns:
                c.close()
            self.assertEqual(warm.fetch("SELECT 2"), [("2",)])
            warm.close()


if __name__ == "__main__":
    h.main()
