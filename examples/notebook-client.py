#!/usr/bin/env python3
"""A small client of `drover serve`'s API, with Python's standard library only.

From a notebook:

    from importlib.machinery import SourceFileLoader
    drover = SourceFileLoader("drover", "examples/notebook-client.py").load_module()
    d = drover.Drover("http://127.0.0.1:8765", token="…")   # the token `drover serve` printed
    job = d.submit(["--name", "chunk-3", "--", "sage", "compute.sage", "3"])
    for stream, text in d.output(job):                      # live, across re-runs
        print(text, end="")
    print(d.wait(job)["state"])

From a shell: notebook-client.py --url URL --token TOKEN run -- echo hello
(the token may also come from $DROVER_TOKEN, or from a full URL with ?token=).
"""
import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request


class DroverError(Exception):
    """A refusal of the server, with its message (the same as the command line's)."""


class Drover:
    def __init__(self, url, token=None):
        parts = urllib.parse.urlsplit(url)
        query = urllib.parse.parse_qs(parts.query)
        self.base = f"{parts.scheme}://{parts.netloc}"
        self.token = token or query.get("token", [None])[0] or os.environ.get("DROVER_TOKEN")
        if not self.token:
            raise DroverError("no token: pass the URL `drover serve` printed, or token=…")

    def _request(self, method, path, body=None, stream=False, headers=None):
        data = None if body is None else json.dumps(body).encode()
        h = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        if data is not None:
            h["Content-Type"] = "application/json"
        h.update(headers or {})
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=h)
        try:
            reply = urllib.request.urlopen(req, timeout=None if stream else 60)
        except urllib.error.HTTPError as e:
            try:
                message = json.loads(e.read().decode()).get("error", str(e))
            except ValueError:
                message = str(e)
            raise DroverError(message) from None
        if stream:
            return reply
        with reply:
            text = reply.read().decode()
            return json.loads(text) if reply.headers.get_content_type() == "application/json" else text

    def submit(self, args):
        """Queues a job from the words of `drover submit` (options, "--", the command); its id."""
        return self._request("POST", "/api/jobs", {"args": list(args)})["job"]

    def submit_batch(self, path, args=()):
        """Queues a batch file (its content is sent); {"batch", "jobs": {id: job}, "kept"}."""
        with open(path) as f:
            return self._request("POST", "/api/batches", {"content": f.read(), "file": path, "args": list(args)})

    def job(self, job):
        return self._request("GET", f"/api/jobs/{job}")

    def cancel(self, job):
        return self._request("POST", f"/api/jobs/{job}/cancel", {})

    def events(self, path, last_event_id=None):
        """Server-sent events of `path` as (event, id, data) until the server ends them."""
        headers = {"Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        with self._request("GET", path, stream=True, headers=headers) as reply:
            event, ident, data = "message", None, []
            for raw in reply:
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                if not line:
                    if data:
                        yield event, ident, "\n".join(data)
                    event, data = "message", []
                    continue
                field, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if field == "event":
                    event = value
                elif field == "data":
                    data.append(value)
                elif field == "id":
                    ident = value

    def output(self, job):
        """The job's output as ("stdout"|"stderr", text) pairs, live until the job ends."""
        for event, _, data in self.events(f"/api/jobs/{job}/output/stream"):
            if event in ("stdout", "stderr"):
                yield event, json.loads(data)
            elif event == "end":
                return

    def wait(self, job):
        """Blocks until the job is over (woken by the server's event stream); its record."""
        record = self.job(job)["job"]
        if record["state"] in ("succeeded", "failed", "cancelled", "skipped"):
            return record
        for event, _, data in self.events(f"/api/events/stream?after=now&job={job}"):
            record = self.job(job)["job"]
            if record["state"] in ("succeeded", "failed", "cancelled", "skipped"):
                return record


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--url", required=True, help="the URL drover serve printed (with or without ?token=)")
    p.add_argument("--token", help="the token (default: from the URL or $DROVER_TOKEN)")
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="submit a job, stream its output, wait for it")
    run.add_argument("args", nargs=argparse.REMAINDER, help="drover submit's words: [options] -- command")
    w = sub.add_parser("wait", help="wait for a job")
    w.add_argument("job")
    b = sub.add_parser("batch", help="submit a batch file")
    b.add_argument("file")
    a = p.parse_args()
    d = Drover(a.url, a.token)
    try:
        if a.command == "run":
            args = a.args if "--" in a.args else ["--"] + a.args
            job = d.submit(args)
            print(f"job {job}", file=sys.stderr)
            for stream, text in d.output(job):
                (sys.stdout if stream == "stdout" else sys.stderr).write(text)
            record = d.wait(job)
            print(f"job {job} {record['state']}")
            return 0 if record["state"] == "succeeded" else 1
        if a.command == "wait":
            record = d.wait(a.job)
            print(f"job {record['id']} {record['state']}")
            return 0 if record["state"] == "succeeded" else 1
        if a.command == "batch":
            print(json.dumps(d.submit_batch(a.file)))
            return 0
    except DroverError as e:
        print(f"drover: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
