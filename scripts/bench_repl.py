#!/usr/bin/env python3
"""bench_repl.py - replication lag and catch-up speed between two ternd DCs.

Not a test: it prints figures for docs/replication.md. Starts dc1 and dc2
(one real ternd each, loopback, temp dirs, killed by PID at the end), then:

1. lag: publishes RATE msg/s for SECS seconds into dc1 (`ternctl pub`, stdin
   lines paced by this script) while `ternctl sub --json` reads the topic in
   dc2; lag of a message = the time this script reads it from dc2 minus its
   timestamp_ns (dc1's receive time; same host, same clock). Prints p50, p99,
   max.
2. catch-up: pauses the dc1 <-> dc2 link (`ternctl peers pause`), publishes N
   messages into dc1, resumes, and times until dc2 holds them all: msgs/s.

Usage: scripts/bench_repl.py BIN_DIR [--rate 2000] [--secs 10] [--backlog 100000]
"""
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Node:
    def __init__(self, bindir, n, ports, root):
        self.bindir = bindir
        self.n = n
        self.ep = "tcp://127.0.0.1:%d" % ports[n]["client"]
        self.repl = "tcp://127.0.0.1:%d" % ports[n]["repl"]
        other = 2 if n == 1 else 1
        self.args = [
            os.path.join(bindir, "ternd"), "--data", os.path.join(root, "dc%d" % n),
            "--listen", self.ep, "--metrics", "off", "--node-id", str(n), "--dc", "dc%d" % n,
            "--repl-listen", self.repl,
            "--peer", "dc%d=tcp://127.0.0.1:%d" % (other, ports[other]["repl"]),
        ]
        self.log = open(os.path.join(root, "dc%d.log" % n), "w")
        self.proc = subprocess.Popen(self.args, stdout=self.log, stderr=self.log)

    def ctl(self, *args, repl=False, timeout=60):
        cmd = [os.path.join(self.bindir, "ternctl"), "-s", self.repl if repl else self.ep,
               "--json"] + list(args)
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)

    def msgs(self, topic):
        r = self.ctl("topic", "info", topic)
        try:
            return json.loads(r.stdout)["msgs"]
        except (ValueError, KeyError):
            return -1

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def pct(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p / 100))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bindir")
    ap.add_argument("--rate", type=int, default=2000)
    ap.add_argument("--secs", type=int, default=10)
    ap.add_argument("--backlog", type=int, default=100000)
    args = ap.parse_args()
    root = tempfile.mkdtemp(prefix="tern-bench-repl-")
    ports = {n: {"client": free_port(), "repl": free_port()} for n in (1, 2)}
    nodes = [Node(args.bindir, 1, ports, root), Node(args.bindir, 2, ports, root)]
    try:
        time.sleep(1.5)
        dc1, dc2 = nodes
        # 1. lag at a steady rate
        sub = subprocess.Popen(
            [os.path.join(args.bindir, "ternctl"), "-s", dc2.ep, "--json", "sub", "lag", "--wait",
             "--timeout", "%ds" % (args.secs + 10)],
            stdout=subprocess.PIPE, text=True, bufsize=1)
        lags = []
        total = args.rate * args.secs

        def reader():
            for line in sub.stdout:
                now = time.time_ns()
                try:
                    ts = json.loads(line)["timestamp_ns"]
                except (ValueError, KeyError):
                    continue
                lags.append((now - ts) / 1e6)
                if len(lags) >= total:
                    break

        t = threading.Thread(target=reader)
        t.start()
        time.sleep(1.0)
        pub = subprocess.Popen(
            [os.path.join(args.bindir, "ternctl"), "-s", dc1.ep, "pub", "lag"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, bufsize=1)
        start = time.time()
        for i in range(total):
            due = start + i / args.rate
            delay = due - time.time()
            if delay > 0:
                time.sleep(delay)
            pub.stdin.write("m%d\n" % i)
        pub.stdin.close()
        pub.wait(60)
        t.join(args.secs + 15)
        sub.terminate()
        sub.wait()
        print("lag at %d msg/s for %d s: %d samples, p50 %.2f ms, p99 %.2f ms, max %.2f ms"
              % (args.rate, args.secs, len(lags), pct(lags, 50), pct(lags, 99),
                 max(lags) if lags else float("nan")))
        # 2. catch-up after a partition
        dc1.ctl("peers", "pause", "dc2", repl=True)
        dc2.ctl("peers", "pause", "dc1", repl=True)
        r = dc1.ctl("pub", "catchup", "--size", "1024", "--count", str(args.backlog), timeout=300)
        if r.returncode != 0:
            print("pub failed:", r.stderr)
            return 1
        before = dc2.msgs("catchup")
        start = time.time()
        dc1.ctl("peers", "resume", "dc2", repl=True)
        dc2.ctl("peers", "resume", "dc1", repl=True)
        while dc2.msgs("catchup") < args.backlog and time.time() - start < 300:
            time.sleep(0.05)
        took = time.time() - start
        print("catch-up of %d x 1 KiB records (dc2 had %d): %.2f s, %.0f msgs/s"
              % (args.backlog, max(before, 0), took, args.backlog / took))
    finally:
        for n in nodes:
            n.stop()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
