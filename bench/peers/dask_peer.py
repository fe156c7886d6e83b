#!/usr/bin/env python3
"""Dask distributed on the testbed hosts (SSHCluster over asyncssh), measured like Drover.

Usage: dask_peer.py SCENARIO --testbed DIR [options]; prints one JSON object on stdout.
  throughput --jobs N --command true|sleep   N tasks that each run the command as a process
  latency --samples N                        one task at a time: submit->start, submit->result
  deadhost --victim hN --cap SECONDS          power off a host under load: time to worker removal
                                              and to its tasks running elsewhere (null = not within cap)
  idle                                        RSS of each worker, idle
  all --jobs N --samples M --trials T         throughput (true and sleep, T trials each), latency and
                                              idle on one cluster: {"throughput": {...}, "latency": {...}, "idle": {...}}
Scheduler on h1, one worker per host with 4 threads (the same 3 x 4 slots Drover gets).
"""
import argparse, asyncio, json, logging, os, subprocess, sys, time

logging.disable(logging.WARNING)  # dask logs every reconnect attempt; the figures are on stdout


def hosts_of(testbed):
    with open(os.path.join(testbed, "hosts.json")) as f:
        inv = json.load(f)
    return [(h["name"], h["address"]) for h in inv["hosts"]]


def run_command(kind):
    argv = ["true"] if kind == "true" else ["sleep", "0.01"]
    return subprocess.run(argv).returncode


def started_at(_):
    return time.time()


def long_job(_):
    # A process that outlives nothing but itself: sleep as a child of the worker.
    subprocess.run(["sleep", "6004"])
    return os.uname().nodename


def start_cluster(testbed):
    from dask.distributed import Client, SSHCluster
    hosts = hosts_of(testbed)
    addresses = [a for _, a in hosts]
    cluster = SSHCluster(
        [addresses[0]] + addresses,
        connect_options={"known_hosts": os.path.join(testbed, "known_hosts"),
                         "client_keys": [os.path.join(testbed, "id_ed25519")], "username": "dtest"},
        worker_options={"nthreads": 4, "n_workers": 1, "memory_limit": 0},
        scheduler_options={"port": 0, "dashboard_address": None},
        remote_python=sys.executable,
    )
    client = Client(cluster)
    client.wait_for_workers(len(hosts), timeout=60)
    return cluster, client, dict(hosts)


TESTBED_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts", "testbed")


def bed_hosts_other(hosts, victim):
    return [name for name in hosts if name != victim]


def worker_of(client, address):
    for w, info in client.scheduler_info(n_workers=-1)["workers"].items():
        if info["host"] == address:
            return w
    return None


def throughput(client, jobs, command):
    start = time.time()
    codes = client.gather(client.map(run_command, [command] * jobs, pure=False))
    failed = sum(1 for c in codes if c != 0)
    if failed:
        raise SystemExit(f"dask: {failed} of {jobs} tasks failed")
    return {"seconds": time.time() - start, "jobs": jobs, "failed": failed}


def latency(client, samples):
    starts, results = [], []
    for _ in range(samples):
        t = time.time()
        s = client.submit(started_at, t, pure=False).result()
        results.append(time.time() - t)
        starts.append(s - t)
    return {"start_s": starts, "result_s": results}


def idle(client):
    time.sleep(2)  # let the workers report memory at rest
    return {"worker_rss": [v["metrics"]["memory"] for v in client.scheduler_info(n_workers=-1)["workers"].values()]}


def deadhost(client, hosts, a):
    out = {}
    victim = hosts[a.victim]
    w = worker_of(client, victim)
    futures = [client.submit(long_job, i, pure=False) for i in range(12)]
    deadline = time.time() + 60
    while sum(len(v) for v in client.processing().values()) < 12:
        if time.time() > deadline:
            raise SystemExit("dask: the 12 tasks did not all start")
        time.sleep(0.05)
    # Only the victim's tasks stay, so the other workers have free threads for them.
    victims = set(client.processing()[w])
    client.cancel([f for f in futures if f.key not in victims])
    for ws in bed_hosts_other(hosts, a.victim):
        subprocess.run([TESTBED_SCRIPT, "exec", ws, "pkill", "-f", "^sleep 6004"],
                       stdout=subprocess.DEVNULL)
    killed = time.time()
    subprocess.run([TESTBED_SCRIPT, "kill", a.victim],
                   check=True, stdout=subprocess.DEVNULL, env=dict(os.environ))
    detect = replace = None
    while time.time() - killed < a.cap and (detect is None or replace is None):
        info = client.scheduler_info(n_workers=-1)["workers"]
        if detect is None and w not in info:
            detect = time.time() - killed
        if detect is not None and replace is None:
            elsewhere = {k for ws, keys in client.processing().items() if ws != w for k in keys}
            if victims <= elsewhere:
                replace = time.time() - killed
        time.sleep(0.1)
    out["detect_s"], out["replace_s"], out["cap_s"] = detect, replace, a.cap
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("scenario", choices=["throughput", "latency", "deadhost", "idle", "all"])
    p.add_argument("--trials", type=int, default=1)
    p.add_argument("--testbed", required=True)
    p.add_argument("--jobs", type=int, default=2000)
    p.add_argument("--command", default="true")
    p.add_argument("--samples", type=int, default=20)
    p.add_argument("--victim", default="h3")
    p.add_argument("--cap", type=float, default=360)
    a = p.parse_args()
    t0 = time.time()
    cluster, client, hosts = start_cluster(a.testbed)
    out = {"cluster_start_s": time.time() - t0}
    try:
        if a.scenario == "all":
            out["throughput"] = {c: [throughput(client, a.jobs, c)["seconds"] for _ in range(a.trials)] for c in ("true", "sleep")}
            out["latency"] = latency(client, a.samples)
            out["idle"] = idle(client)
        elif a.scenario == "throughput":
            out.update(throughput(client, a.jobs, a.command))
        elif a.scenario == "latency":
            out.update(latency(client, a.samples))
        elif a.scenario == "idle":
            out.update(idle(client))
        elif a.scenario == "deadhost":
            out.update(deadhost(client, hosts, a))
    finally:
        try:
            client.close(timeout=10)
            cluster.close(timeout=20)
        except Exception:
            pass
    print(json.dumps(out))


if __name__ == "__main__":
    main()
