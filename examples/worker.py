#!/usr/bin/env python3
"""The reference opsgraph worker: claims the operations of one worker pool
and runs them as plain processes on this machine.

    python3 examples/worker.py --token ogt_… --pool ci

It speaks nothing but GraphQL over HTTP (Python's standard library only),
which is all a worker in any language needs; see examples/WORKERS.md.

Steps, by kind:
  BUILD                 the service's buildCommand, to its end
  RELEASE               the releaseCommand, to its end
  START_INSTANCES,
  PREPARE_INSTANCE      starts `instances` copies of the startCommand (for a
                        SCALE, the ones missing up to its target)
  HEALTH_CHECK          the new processes are still alive after the grace
                        (and, with a port, accept a TCP connection)
  SWITCH                the new processes become the service's current ones
  STOP_OLD_INSTANCES,
  STOP_INSTANCES        stops the previous (or all; for a SCALE down, the
                        ones beyond its target) processes
  HAND_OVER_DATA,
  REMOVE_SERVICE        nothing to do here

Commands run with `sh -c` in --work-dir/<service id>, with COMMIT,
SERVICE_ID, OPERATION_ID and (for instances) PORT and INSTANCE set. Their
output goes to the operation's log with appendLogs. A failed step is rolled
back (new processes stopped) and the operation completed as FAILED; a
cancel, read from the answer to each call, stops the running command and
completes it as CANCELLED. SIGTERM or SIGINT stops the worker and every
process it started.
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

LEASE_FIELDS = """
  id expiresAt cancelRequested
  operation { id type status commit previousCommit targetInstances steps { kind status } }
  service { id name spec { buildCommand releaseCommand startCommand port instances
            healthCheck { graceMs timeoutMs } stopGraceMs } }
"""


class Lost(Exception):
    """The server refused the lease (CONFLICT): stop working on it."""


class Cancelled(Exception):
    """The operation is being cancelled."""


class Api:
    def __init__(self, url, token):
        self.url = url
        self.token = token

    def call(self, query, variables=None, attempts=5):
        """Runs one request; retries transport failures (every call of the
        protocol may be retried). Returns `data`, raises on errors."""
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        for attempt in range(attempts):
            request = urllib.request.Request(self.url, data=body, method="POST", headers={
                "content-type": "application/json",
                "authorization": f"Bearer {self.token}",
            })
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    reply = json.loads(response.read())
            except urllib.error.HTTPError as e:
                reply = json.loads(e.read() or b"{}")
            except (urllib.error.URLError, ConnectionError, TimeoutError) as e:
                if attempt + 1 == attempts:
                    raise
                log(f"request failed ({e}); retrying")
                time.sleep(0.2 * (attempt + 1))
                continue
            errors = reply.get("errors")
            if errors:
                code = errors[0].get("extensions", {}).get("code")
                if code == "CONFLICT":
                    raise Lost(errors[0]["message"])
                raise RuntimeError(f"{code}: {errors[0]['message']}")
            return reply["data"]
        raise RuntimeError("unreachable")


def log(message):
    print(f"worker: {message}", file=sys.stderr, flush=True)


class Worker:
    def __init__(self, api, pool, worker_id, work_dir, poll):
        self.api = api
        self.pool = pool
        self.worker_id = worker_id
        self.work_dir = work_dir
        self.poll = poll
        # Per service: the processes serving it now.
        self.current = {}
        self.new = []
        self.stopping = threading.Event()

    # The protocol -----------------------------------------------------

    def claim(self):
        data = self.api.call(
            f"mutation($p: String!, $w: String!) {{ claimOperation(input: {{ pool: $p, workerId: $w }}) {{ {LEASE_FIELDS} }} }}",
            {"p": self.pool, "w": self.worker_id})
        return data["claimOperation"]

    def lease_call(self, field, extra=""):
        data = self.api.call(
            f"mutation($l: ID!) {{ {field}(input: {{ leaseId: $l {extra} }}) {{ id expiresAt cancelRequested operation {{ status }} }} }}",
            {"l": self.lease_id})
        reply = data[field]
        self.renew_at = self.renew_time(reply["expiresAt"])
        self.status = reply["operation"]["status"]
        return reply

    def renew_time(self, expires_at):
        # Renew a third of the way through what is left of the lease.
        left = parse_time(expires_at) - time.time()
        return time.time() + max(0.05, left / 3)

    def start_step(self, index):
        try:
            reply = self.lease_call("startStep", f", step: {index}")
        except RuntimeError:
            # Refused: cancelled since the last answer?
            if self.lease_call("renewLease")["cancelRequested"]:
                raise Cancelled()
            raise
        if reply["cancelRequested"]:
            raise Cancelled()

    def finish_step(self, index, status, message):
        self.api.call(
            "mutation($l: ID!, $s: Int!, $st: StepReport!, $m: String) { finishStep(input: { leaseId: $l, step: $s, status: $st, message: $m }) { id } }",
            {"l": self.lease_id, "s": index, "st": status, "m": message[:10000]})

    def complete(self, outcome, rollback):
        self.api.call(
            "mutation($l: ID!, $o: WorkerOutcome!, $r: RollbackOutcome!) { completeOperation(input: { leaseId: $l, outcome: $o, rollback: $r }) { id } }",
            {"l": self.lease_id, "o": outcome, "r": rollback})

    def append(self, lines, stream):
        if lines:
            # A key per batch: a retry after a lost reply appends nothing twice.
            self.batches += 1
            self.api.call(
                "mutation($o: ID!, $l: [String!]!, $s: LogStream, $k: String) { appendLogs(operationId: $o, lines: $l, stream: $s, idempotencyKey: $k) { lastSeq } }",
                {"o": self.op["id"], "l": lines, "s": stream, "k": f"{self.lease_id}/{self.batches}"})

    def keep_lease(self):
        """Renews when due; raises Cancelled once a cancel was asked for."""
        if time.time() >= self.renew_at:
            reply = self.lease_call("renewLease")
            if reply["cancelRequested"]:
                raise Cancelled()

    # Running an operation ----------------------------------------------

    def run_forever(self):
        log(f"`{self.worker_id}` polling pool `{self.pool}` at {self.api.url}")
        while not self.stopping.is_set():
            try:
                lease = self.claim()
            except Exception as e:  # the server may be restarting
                log(f"claim failed: {e}")
                lease = None
            if lease is None:
                self.stopping.wait(self.poll)
                continue
            try:
                self.run(lease)
            except Lost as e:
                log(f"lease lost: {e}")
                stop_all(self.new, 1)
            except Exception as e:
                log(f"operation {lease['operation']['id']} stopped: {e}")

    def run(self, lease):
        self.lease_id = lease["id"]
        self.op = lease["operation"]
        self.svc = lease["service"]
        self.renew_at = self.renew_time(lease["expiresAt"])
        self.new = []
        self.old = []
        self.batches = 0
        self.status = self.op["status"]
        log(f"running {self.op['type']} {self.op['id']} of {self.svc['name'] if self.svc else '?'} ({self.lease_id})")
        if lease["cancelRequested"]:
            return  # cancelled before its first step: nothing to do
        done = []
        outcome = "SUCCEEDED"
        for index, step in enumerate(self.op["steps"]):
            try:
                self.start_step(index)
                done.append(index)
                message = self.run_step(step["kind"])
                self.finish_step(index, "SUCCEEDED", message)
            except Cancelled:
                if done and done[-1] == index:
                    self.finish_step(index, "CANCELLED", "stopped by the cancel")
                outcome = "CANCELLED"
                break
            except StepFailed as e:
                self.finish_step(index, "FAILED", str(e))
                outcome = "FAILED"
                break
        rollback = "NOT_NEEDED"
        if outcome != "SUCCEEDED":
            rollback = self.roll_back(done)
        if self.status == "CANCELLED":
            log(f"{self.op['id']} was cancelled before its first step")
            return
        self.complete(outcome, rollback)
        log(f"{self.op['id']}: {outcome}")

    def roll_back(self, done):
        """Undoes what can be undone: the new processes are stopped."""
        rollback = "NOT_NEEDED"
        for index in reversed(done):
            kind = self.op["steps"][index]["kind"]
            if kind in ("START_INSTANCES", "PREPARE_INSTANCE") and self.new:
                stop_all(self.new, self.grace())
                self.new = []
                rollback = "SUCCEEDED"
                # The step that failed or was cancelled keeps that status.
                if index != done[-1]:
                    self.finish_step(index, "ROLLED_BACK", "new instances stopped")
        return rollback

    def run_step(self, kind):
        spec = self.svc["spec"] if self.svc else {}
        if kind == "BUILD":
            return self.command(spec.get("buildCommand"), "build")
        if kind == "RELEASE":
            return self.command(spec.get("releaseCommand"), "release")
        if kind in ("START_INSTANCES", "PREPARE_INSTANCE"):
            return self.start_instances(spec)
        if kind == "HEALTH_CHECK":
            return self.health_check(spec)
        if kind == "SWITCH":
            old = self.current.get(self.svc["id"], [])
            if self.op["type"] == "SCALE":
                # The new instances join the ones serving.
                self.current[self.svc["id"]] = old + self.new
            else:
                self.current[self.svc["id"]] = self.new
                self.old = old
            self.new = []
            return f"{len(self.current[self.svc['id']])} instance(s) now serve"
        if kind == "STOP_OLD_INSTANCES":
            stop_all(self.old, self.grace())
            return "previous instances stopped"
        if kind == "STOP_INSTANCES":
            serving = self.current.pop(self.svc["id"], [])
            keep = self.op.get("targetInstances") if self.op["type"] == "SCALE" else 0
            keep = keep or 0
            stop_all(serving[keep:], self.grace())
            if keep:
                self.current[self.svc["id"]] = serving[:keep]
            return f"{len(serving[keep:])} instance(s) stopped"
        return "nothing to do on this worker"

    def grace(self):
        return (self.svc["spec"].get("stopGraceMs") or 5000) / 1000 if self.svc else 5

    def directory(self):
        path = os.path.join(self.work_dir, self.svc["id"] if self.svc else "none")
        os.makedirs(path, exist_ok=True)
        return path

    def environment(self, extra=None):
        env = dict(os.environ)
        env.update({"COMMIT": self.op.get("commit") or "", "SERVICE_ID": self.svc["id"] if self.svc else "",
                    "OPERATION_ID": self.op["id"]})
        env.update(extra or {})
        return env

    def command(self, command, what):
        """Runs `command` to its end, its output to the operation's log."""
        if not command:
            return f"no {what} command"
        process = subprocess.Popen(["sh", "-c", command], cwd=self.directory(), env=self.environment(),
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   start_new_session=True)
        lines = {"STDOUT": [], "STDERR": []}
        lock = threading.Lock()

        def read(pipe, stream):
            for line in pipe:
                with lock:
                    lines[stream].append(line.rstrip("\n"))

        readers = [threading.Thread(target=read, args=(process.stdout, "STDOUT"), daemon=True),
                   threading.Thread(target=read, args=(process.stderr, "STDERR"), daemon=True)]
        for reader in readers:
            reader.start()

        def flush():
            for stream in ("STDOUT", "STDERR"):
                with lock:
                    batch, lines[stream] = lines[stream], []
                self.append(batch, stream)

        try:
            while process.poll() is None:
                time.sleep(0.1)
                flush()
                self.keep_lease()
        except BaseException:
            stop_all([process], 1)
            raise
        for reader in readers:
            reader.join()
        flush()
        if process.returncode != 0:
            raise StepFailed(f"{what} command exited with {process.returncode}")
        return f"{what} command succeeded"

    def start_instances(self, spec):
        command = spec.get("startCommand")
        if not command:
            return "no start command"
        count = spec.get("instances") or 1
        if self.op["type"] == "SCALE":
            serving = len(self.current.get(self.svc["id"], []))
            count = max(0, (self.op.get("targetInstances") or count) - serving)
        serving = self.current.get(self.svc["id"], [])
        used = {p.port for p in serving if p.port}
        first = len(serving) if self.op["type"] == "SCALE" else 0
        for n in range(first, first + count):
            extra = {"INSTANCE": str(n)}
            # New instances start beside the serving ones: each takes the
            # lowest free port at or above the service's.
            port = free_port(spec["port"], used) if spec.get("port") is not None else None
            if port:
                used.add(port)
                extra["PORT"] = str(port)
            process = subprocess.Popen(["sh", "-c", command], cwd=self.directory(),
                                       env=self.environment(extra), stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL, start_new_session=True)
            process.port = port
            self.new.append(process)
        return f"{count} instance(s) started"

    def health_check(self, spec):
        grace = (spec.get("healthCheck") or {}).get("graceMs") or 0
        deadline = time.time() + grace / 1000
        while time.time() < deadline:
            time.sleep(0.05)
            self.keep_lease()
        for n, process in enumerate(self.new):
            if process.poll() is not None:
                raise StepFailed(f"instance {n} exited with {process.returncode}")
            if process.port:
                try:
                    socket.create_connection(("127.0.0.1", process.port), timeout=2).close()
                except OSError as e:
                    raise StepFailed(f"instance {n}: port {process.port} does not accept connections ({e})")
        return f"{len(self.new)} instance(s) healthy"

    def shutdown(self):
        self.stopping.set()
        for processes in self.current.values():
            stop_all(processes, 1)
        stop_all(self.new, 1)


class StepFailed(Exception):
    pass


def stop_all(processes, grace):
    """SIGTERM to each process group, SIGKILL after `grace` seconds."""
    for process in processes:
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.time() + grace
    for process in processes:
        try:
            process.wait(timeout=max(0, deadline - time.time()))
        except subprocess.TimeoutExpired:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait()


def free_port(start, used):
    """The lowest port at or above `start` that is not in `used` and can be
    bound now; with `start` 0, any free port."""
    if start == 0:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            return probe.getsockname()[1]
    port = start
    while True:
        if port not in used:
            with socket.socket() as probe:
                try:
                    probe.bind(("127.0.0.1", port))
                    return port
                except OSError:
                    pass
        port += 1


def parse_time(text):
    from datetime import datetime
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=os.environ.get("OPSGRAPH_URL", "http://127.0.0.1:8000/graphql"))
    parser.add_argument("--token", default=os.environ.get("OPSGRAPH_WORKER_TOKEN"),
                        help="a WORKER token (or OPSGRAPH_WORKER_TOKEN)")
    parser.add_argument("--pool", required=True, help="the pool to claim from (a service's executor)")
    parser.add_argument("--worker-id", default=f"{socket.gethostname()}-{os.getpid()}")
    parser.add_argument("--work-dir", default=os.path.join(os.getcwd(), "worker-data"))
    parser.add_argument("--poll", type=float, default=1.0, help="seconds between claims when idle")
    args = parser.parse_args()
    if not args.token:
        parser.error("--token (or OPSGRAPH_WORKER_TOKEN) is required")
    worker = Worker(Api(args.url, args.token), args.pool, args.worker_id, args.work_dir, args.poll)

    def stop(signum, frame):
        worker.shutdown()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    worker.run_forever()


if __name__ == "__main__":
    main()
