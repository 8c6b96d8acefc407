"""Slow clients against `hybrid-search serve` (docs/benchmarks.md, "Slow clients").

For each count N of stalled connections: N attacking connections each send a search's whole
head with `Content-Length: 100` and one byte of body, then stall; a connection the server drops
is opened again at once, so N stay open for the whole phase. Meanwhile one normal client runs
hybrid searches one after another. Printed per phase (one JSON line): the normal client's
latency (p50, p95, max, in ms) and answers other than 200, the server's RSS (VmRSS, MiB) at the
end of the phase and its peak (VmHWM), connections the server dropped, and /health's answer.

Usage: python3 benches/slowloris.py URL PID COLLECTION QUERIES.jsonl [SECONDS] [N ...]
"""

import json
import socket
import sys
import threading
import time
import urllib.error
import urllib.request


def rss_mib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key):
                return round(int(line.split()[1]) / 1024, 1)
    return None


def attack(host, port, collection, count, stop, dropped):
    head = (
        f"POST /collections/{collection}/search HTTP/1.1\r\nHost: {host}:{port}\r\n"
        "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
    ).encode()
    open_ = []

    def one():
        s = socket.create_connection((host, port))
        s.sendall(head)
        s.setblocking(False)
        return s

    for _ in range(count):
        open_.append(one())
    while not stop.is_set():
        for i, s in enumerate(open_):
            try:
                data = s.recv(4096)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            # An answer (408) or a close: the server dropped it; open another.
            if data == b"" or data:
                s.close()
                dropped[0] += 1
                open_[i] = one()
        time.sleep(0.05)
    for s in open_:
        s.close()


def search(url, collection, query):
    body = json.dumps({"query": query, "k": 10}).encode()
    req = urllib.request.Request(
        f"{url}/collections/{collection}/search",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def health(url):
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=10) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        return json.loads(e.read())


def main():
    url, pid, collection, queries = sys.argv[1:5]
    seconds = float(sys.argv[5]) if len(sys.argv) > 5 else 30
    counts = [int(n) for n in sys.argv[6:]] or [0, 64, 500]
    host, port = url.removeprefix("http://").rsplit(":", 1)
    port = int(port)
    texts = [json.loads(line)["text"] for line in open(queries)]
    for count in counts:
        stop = threading.Event()
        dropped = [0]
        attacker = threading.Thread(
            target=attack, args=(host, port, collection, count, stop, dropped)
        )
        attacker.start()
        time.sleep(1)
        latencies, failures, i = [], 0, 0
        started = time.time()
        while time.time() - started < seconds:
            t = time.perf_counter()
            status = search(url, collection, texts[i % len(texts)])
            latencies.append((time.perf_counter() - t) * 1e3)
            failures += status != 200
            i += 1
        h = health(url)
        rss = rss_mib(pid, "VmRSS")
        stop.set()
        attacker.join()
        latencies.sort()
        pick = lambda q: round(latencies[min(len(latencies) - 1, int(q * len(latencies)))], 2)
        print(
            json.dumps(
                {
                    "stalled": count,
                    "searches": len(latencies),
                    "not_200": failures,
                    "p50_ms": pick(0.5),
                    "p95_ms": pick(0.95),
                    "max_ms": round(latencies[-1], 2),
                    "rss_mib": rss,
                    "peak_rss_mib": rss_mib(pid, "VmHWM"),
                    "dropped_by_server": dropped[0],
                    "health": h,
                }
            ),
            flush=True,
        )
        time.sleep(2)


main()
