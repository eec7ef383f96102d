#!/usr/bin/python3
"""bench/idle_clients.py: open N idle PostgreSQL client connections and hold them.

Used by bench/bench.py for scenario S5 (memory per idle client). Each
connection does the startup exchange (trust, cleartext or md5 password) up to
ReadyForQuery over raw sockets, then stays idle. Connections are opened with at
most --concurrency handshakes in flight.

Protocol with the caller: when every connection has been tried, one JSON line
is printed on stdout ({"opened": n, "failed": k, "errors": [...], "seconds": s});
the connections are then held until stdin is closed (or a line is read from
it) or --hold seconds pass, then closed, and the program exits.

Loopback benchmarking only; nothing here is a general client.
"""

import argparse
import asyncio
import hashlib
import json
import resource
import struct
import sys
import threading
import time


def startup_message(user, database):
    body = struct.pack("!i", 196608)
    for k, v in (("user", user), ("database", database), ("application_name", "idle_clients")):
        body += k.encode() + b"\0" + v.encode() + b"\0"
    body += b"\0"
    return struct.pack("!i", len(body) + 4) + body


def password_message(secret):
    body = secret.encode() + b"\0"
    return b"p" + struct.pack("!i", len(body) + 4) + body


async def read_message(reader):
    head = await reader.readexactly(5)
    typ = head[:1]
    (length,) = struct.unpack("!i", head[1:])
    body = await reader.readexactly(length - 4) if length > 4 else b""
    return typ, body


async def login(args):
    reader, writer = await asyncio.open_connection(args.host, args.port)
    try:
        writer.write(startup_message(args.user, args.dbname))
        await writer.drain()
        while True:
            typ, body = await read_message(reader)
            if typ == b"R":
                (code,) = struct.unpack("!i", body[:4])
                if code == 0:
                    continue
                if code == 3:
                    writer.write(password_message(args.password))
                elif code == 5:
                    salt = body[4:8]
                    inner = hashlib.md5((args.password + args.user).encode()).hexdigest()
                    outer = hashlib.md5(inner.encode() + salt).hexdigest()
                    writer.write(password_message("md5" + outer))
                else:
                    raise RuntimeError(f"unsupported authentication request {code}")
                await writer.drain()
            elif typ == b"E":
                fields = [f for f in body.split(b"\0") if f]
                msg = next((f[1:].decode(errors="replace") for f in fields if f[:1] == b"M"), "?")
                raise RuntimeError(f"server error: {msg}")
            elif typ == b"Z":
                return reader, writer
            # S (ParameterStatus), K (BackendKeyData), N (notice): ignored
    except BaseException:
        writer.close()
        raise


async def main_async(args, conns):
    sem = asyncio.Semaphore(args.concurrency)
    errors = []
    failed = 0

    async def one():
        nonlocal failed
        async with sem:
            try:
                conns.append(await asyncio.wait_for(login(args), args.connect_timeout))
            except Exception as e:  # noqa: BLE001 - every failure is counted and reported
                failed += 1
                if len(errors) < 5:
                    errors.append(f"{type(e).__name__}: {e}")

    await asyncio.gather(*(one() for _ in range(args.count)))
    return failed, errors


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", default="")
    ap.add_argument("--dbname", required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--connect-timeout", type=float, default=30.0)
    ap.add_argument("--hold", type=float, default=120.0, help="seconds to hold at most")
    args = ap.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = args.count + 64
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))

    conns = []
    loop = asyncio.new_event_loop()
    t0 = time.monotonic()
    failed, errors = loop.run_until_complete(main_async(args, conns))
    seconds = time.monotonic() - t0
    print(json.dumps({"opened": len(conns), "failed": failed, "errors": errors,
                      "seconds": round(seconds, 3)}), flush=True)

    # Hold: the connections stay open (the loop is not running; the kernel keeps
    # anything sent to us) until the caller closes stdin or the hold expires.
    done = threading.Event()

    def wait_stdin():
        try:
            sys.stdin.readline()
        finally:
            done.set()

    threading.Thread(target=wait_stdin, daemon=True).start()
    done.wait(args.hold)

    for _, writer in conns:
        try:
            writer.write(b"X\0\0\0\4")
            writer.close()
        except Exception:  # noqa: BLE001 - closing anyway
            pass
    loop.run_until_complete(asyncio.sleep(0))
    loop.close()


if __name__ == "__main__":
    main()
