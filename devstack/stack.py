"""The local platform as one object: `Stack(options).start()` … `.stop()`.

`make dev` and the test suite's session fixture both use this, so tests run against exactly
what developers run. Every child process gets a free port and is stopped by PID.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import importlib.util
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import httpx

from devstack import preflight
from devstack.ports import free_port
from devstack.procs import ManagedProcess, ProcessGroup
from devstack.provision import (
    provision_buckets,
    provision_pubsub,
    provision_queues,
    register_firestore_trigger,
)
from shared.settings import Settings
from shared.topology import Topology, load_topology

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
TriggerKind = Literal["http", "pubsub", "storage", "firestore"]
# The model name the local workers ask the scripted model server for (raw benchmark runs use
# it too, so both sides run codex with the same model configuration).
SCRIPTED_MODEL = "scripted-model"

# A fresh emulator JVM spends most of its first minutes of CPU in the optimising JIT compiler,
# on a machine whose two cores the functions, workers and codex need too. The quick compiler
# alone and the serial collector cost far less CPU for what a local stack lives for (with the
# optimising compiler the Firestore emulator still spent 3x the CPU per job after 40 jobs).
EMULATOR_JVM_FLAGS = tuple(
    os.environ.get(
        "CODEX_CLOUD_EMULATOR_JVM_FLAGS", "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
    ).split()
)


@dataclass(frozen=True)
class FunctionSpec:
    """A function deployed like production: one functions-framework process per function."""

    name: str
    source: str
    target: str
    trigger: TriggerKind
    subscription: str | None = None  # topology key of the push subscription feeding it
    bucket: str | None = None  # topology key of the bucket whose finalize events it gets
    document: str | None = None  # Firestore document pattern

    def available(self) -> bool:
        return (REPO_ROOT / self.source).is_file()


DEFAULT_FUNCTIONS = (
    FunctionSpec("ingest", "functions/ingest.py", "ingest", "pubsub", subscription="ingest"),
    FunctionSpec(
        "on_upload",
        "functions/on_upload.py",
        "on_upload",
        "storage",
        subscription="upload_finalize",
        bucket="uploads",
    ),
    FunctionSpec(
        "on_job_written",
        "functions/on_job_written.py",
        "on_job_written",
        "firestore",
        document="jobs/{jobId}",
    ),
    FunctionSpec("sweeper", "functions/sweeper.py", "sweeper", "http"),
)

# Records every CloudEvent it gets; lets tests see exactly what a function receives.
PROBE_FUNCTION = FunctionSpec("probe", "devstack/probe_function.py", "probe", "http")


@dataclass
class StackOptions:
    project: str = "codex-cloud-local"
    state_dir: Path | None = None
    functions: tuple[FunctionSpec, ...] = DEFAULT_FUNCTIONS
    probe: bool = False
    workers: int = 1
    worker_slots: int = 2
    api: bool = True
    model_server: bool = True
    sweep_interval_s: float = 5.0
    name_prefix: str = ""
    extra_env: dict[str, str] = field(default_factory=dict)


def _module_available(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # the parent package does not exist
        return False


class Stack:
    def __init__(self, options: StackOptions | None = None) -> None:
        self.options = options or StackOptions()
        run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]
        self.state_dir = (self.options.state_dir or REPO_ROOT / ".devstack") / run_id
        self.group = ProcessGroup()
        self.ports: dict[str, int] = {}
        self.urls: dict[str, str] = {}
        self.env: dict[str, str] = {}
        self.topology: Topology = load_topology(self.options.name_prefix)
        self.processes: dict[str, ManagedProcess] = {}
        self.probe_log = self.state_dir / "probe-events.jsonl"
        # Job workspaces live outside the checkout, as on a worker pod: codex treats an
        # enclosing repository as the project and pays for walking it on every turn.
        self.workspace_root = Path(tempfile.gettempdir()) / f"codex-cloud-{run_id}"
        self._stop_sweeper = threading.Event()
        self._sweeper_thread: threading.Thread | None = None
        self._running = False

    # ---- lifecycle -----------------------------------------------------------------------

    def start(self) -> Stack:
        """Start everything; a stack already running is returned as it is, so
        `with Stack(...).start() as stack:` does not start a second copy beside the first."""
        if self._running:
            return self
        preflight.require_runtime()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        self._running = True
        return self

    def stop(self) -> None:
        self._running = False
        self._stop_sweeper.set()
        if self._sweeper_thread is not None:
            self._sweeper_thread.join(timeout=5)
        self.group.stop_all()
        self.processes.clear()
        shutil.rmtree(self.workspace_root, ignore_errors=True)

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- start-up ------------------------------------------------------------------------

    def _allocate_ports(self) -> None:
        names = [
            "pubsub",
            "firestore",
            "gcs",
            "tasks",
            "redis",
            "eventarc",
            "model",
            "api",
            "workflows",
        ]
        names += [f"fn-{f.name}" for f in self._functions()]
        names += [f"worker-{i}" for i in range(self.options.workers)]
        if self._pooled():
            names.append("worker-pool")
        self.ports = {name: free_port() for name in names}

    def _pooled(self) -> bool:
        """Several workers get a load-balanced front, as the pool has in production."""
        return self.options.workers > 1

    def _functions(self) -> list[FunctionSpec]:
        functions = [f for f in self.options.functions if f.available()]
        if self.options.probe:
            functions.append(PROBE_FUNCTION)
        return functions

    def _base_env(self) -> dict[str, str]:
        p = self.ports
        pool = "worker-pool" if self._pooled() else "worker-0"
        env = {
            "CODEX_CLOUD_ENVIRONMENT": "local",
            "GOOGLE_CLOUD_PROJECT": self.options.project,
            "CODEX_CLOUD_PROJECT_ID": self.options.project,
            "CODEX_CLOUD_NAME_PREFIX": self.options.name_prefix,
            "PUBSUB_EMULATOR_HOST": f"{HOST}:{p['pubsub']}",
            "FIRESTORE_EMULATOR_HOST": f"{HOST}:{p['firestore']}",
            "STORAGE_EMULATOR_HOST": f"http://{HOST}:{p['gcs']}",
            "CODEX_CLOUD_TASKS_EMULATOR_HOST": f"{HOST}:{p['tasks']}",
            "CODEX_CLOUD_REDIS_URL": f"redis://{HOST}:{p['redis']}/0",
            "CODEX_CLOUD_API_BASE_URL": f"http://{HOST}:{p['api']}",
            # The pool's load-balanced URL: where a job that continues no session is sent.
            "CODEX_CLOUD_WORKER_URL": f"http://{HOST}:{p[pool]}" if self.options.workers else "",
            "CODEX_CLOUD_WORKER_URLS": ",".join(
                f"http://{HOST}:{p[f'worker-{i}']}" for i in range(self.options.workers)
            ),
            "CODEX_CLOUD_WORKFLOWS_EMULATOR_URL": f"http://{HOST}:{p['workflows']}",
            "CODEX_CLOUD_WEBHOOK_ALLOW_PRIVATE": "true",
            "CODEX_CLOUD_WORKER_SLOTS": str(self.options.worker_slots),
            "CODEX_CLOUD_LEASE_SECONDS": "10",
            "CODEX_CLOUD_HEARTBEAT_SECONDS": "2",
            "CODEX_CLOUD_DISPATCH_STALE_SECONDS": "30",
            "CODEX_CLOUD_WORKSPACE_ROOT": str(self.workspace_root),
            "PYTHONUNBUFFERED": "1",
        }
        if "fn-sweeper" in p:
            # Internal control routes (webhook retries, workflow callbacks) live on the sweeper.
            env["CODEX_CLOUD_CONTROL_URL"] = f"http://{HOST}:{p['fn-sweeper']}"
        if self.options.model_server and not os.environ.get("CODEX_CLOUD_OPENAI_API_KEY"):
            env["CODEX_CLOUD_MODEL_BASE_URL"] = f"http://{HOST}:{p['model']}/v1"
            env["CODEX_CLOUD_MODEL"] = SCRIPTED_MODEL
        env.update(self.options.extra_env)
        return env

    def _spawn(
        self, name: str, argv: list[str], env: dict[str, str] | None = None
    ) -> ManagedProcess:
        proc = ManagedProcess(
            name=name,
            argv=argv,
            log_path=self.state_dir / "logs" / f"{name}.log",
            env={**self.env, **(env or {})},
            cwd=REPO_ROOT,
        )
        self.group.add(proc)
        self.processes[name] = proc
        proc.start()
        return proc

    def _start(self) -> None:
        t0 = time.monotonic()
        self._allocate_ports()
        self.env = self._base_env()
        # Emulator-facing clients in this process (provisioning) use the same endpoints.
        os.environ.update({k: v for k, v in self.env.items() if k.endswith("_EMULATOR_HOST")})
        os.environ["GOOGLE_CLOUD_PROJECT"] = self.options.project
        settings = self._settings = Settings.model_validate(
            {
                "project_id": self.options.project,
                "tasks_emulator_host": self.env["CODEX_CLOUD_TASKS_EMULATOR_HOST"],
                "name_prefix": self.options.name_prefix,
            }
        )
        functions = self._functions()
        self._start_eventarc(functions)
        self._start_emulators()
        self._wait_emulators()
        self._provision(settings, functions)
        self._start_gcs()
        self._start_services(functions)
        self._wait_services(functions)
        self._start_sweeper_schedule(functions)
        self.write_env_file()
        log.info(
            "local stack ready", extra={"fields": {"seconds": round(time.monotonic() - t0, 2)}}
        )

    def _start_eventarc(self, functions: list[FunctionSpec]) -> None:
        triggers: dict[str, dict[str, str | None]] = {}
        for fn in functions:
            url = f"http://{HOST}:{self.ports[f'fn-{fn.name}']}/"
            # Function subscriptions are pulled by the stand-in (devstack/eventarc_pull.py).
            subscription = (
                f"projects/{self.options.project}/subscriptions/"
                f"{self.topology.subscriptions[fn.subscription].name}"
                if fn.subscription
                else None
            )
            if fn.trigger == "pubsub" and fn.subscription:
                sub = self.topology.subscriptions[fn.subscription]
                triggers[fn.name] = {
                    "kind": "pubsub",
                    "url": url,
                    "topic": self.topology.topics[sub.topic].name,
                    "subscription": subscription,
                }
            elif fn.trigger == "storage" and fn.bucket:
                triggers[fn.name] = {
                    "kind": "storage",
                    "url": url,
                    "bucket": self.topology.bucket(fn.bucket),
                    "subscription": subscription,
                }
            elif fn.trigger == "firestore":
                triggers[fn.name] = {"kind": "firestore", "url": url}
        if self.options.probe:
            url = f"http://{HOST}:{self.ports['fn-probe']}/"
            triggers["probe-pubsub"] = {
                "kind": "pubsub",
                "url": url,
                "topic": self.topology.topic("jobs"),
            }
            triggers["probe-storage"] = {
                "kind": "storage",
                "url": url,
                "bucket": self.topology.bucket("uploads"),
            }
            triggers["probe-firestore"] = {"kind": "firestore", "url": url}
        config = self.state_dir / "eventarc.json"
        config.write_text(json.dumps({"project": self.options.project, "triggers": triggers}))
        self._triggers = triggers
        self._spawn(
            "eventarc",
            [sys.executable, "-m", "devstack.eventarc", str(config), str(self.ports["eventarc"])],
        )

    def _start_emulators(self) -> None:
        p = self.ports
        self._spawn(
            "pubsub",
            [str(preflight.pubsub_emulator_bin()), f"--host={HOST}", f"--port={p['pubsub']}"],
            env={"JAVA_OPTS": " ".join(EMULATOR_JVM_FLAGS)},  # its launcher script reads it
        )
        self._spawn(
            "firestore",
            [
                preflight.java_bin(),
                *EMULATOR_JVM_FLAGS,
                "-Duser.language=en",
                "-cp",
                str(preflight.firestore_emulator_jar()),
                "com.google.cloud.datastore.emulator.firestore.CloudFirestore",
                "--host",
                HOST,
                "--port",
                str(p["firestore"]),
                "--project_id",
                self.options.project,
                "--functions_emulator",
                f"{HOST}:{p['eventarc']}",
            ],
        )
        self._spawn(
            "redis",
            [
                preflight.redis_bin(),
                "--bind",
                HOST,
                "--port",
                str(p["redis"]),
                "--save",
                "",
                "--appendonly",
                "no",
            ],
        )
        self._spawn(
            "tasks",
            [
                # The emulator woken by each new task, with Cloud-Tasks-like retry backoff
                # (decision 0015).
                str(preflight.tasks_emulator_python()),
                str(Path(__file__).with_name("tasks_emulator.py")),
                "start",
                "--port",
                str(p["tasks"]),
                "-q",
                # Bounded (backoff 0.1 s doubling to 2 s: about a minute); the sweeper
                # redispatches anything that runs out of attempts here.
                "--max-retries",
                "30",
            ],
            env={"PYTHONWARNINGS": "ignore"},
        )

    def _wait_emulators(self) -> None:
        for name, port_name in (
            ("eventarc", "eventarc"),
            ("pubsub", "pubsub"),
            ("firestore", "firestore"),
            ("redis", "redis"),
            ("tasks", "tasks"),
        ):
            self.processes[name].wait_port(HOST, self.ports[port_name], timeout_s=60)

    def _provision(self, settings: Settings, functions: list[FunctionSpec]) -> None:
        base = f"http://{HOST}:{self.ports['eventarc']}"
        # The functions' subscriptions are pull subscriptions here: the Eventarc stand-in pulls
        # them (devstack/eventarc_pull.py), as it is told in eventarc.json.
        provision_pubsub(settings, self.topology, {})
        if self.options.probe:
            from devstack.provision import add_push_subscription

            add_push_subscription(
                settings, self.topology.topic("jobs"), "probe-jobs", f"{base}/pubsub/probe-pubsub"
            )
            add_push_subscription(
                settings,
                self.topology.topic("uploads_events"),
                "probe-uploads",
                f"{base}/storage/probe-storage",
            )
        provision_queues(settings, self.topology)
        fs_host = self.env["FIRESTORE_EMULATOR_HOST"]
        jobs = self.topology.firestore.jobs_collection
        for trigger_id, spec in self._triggers.items():
            if spec["kind"] == "firestore":
                register_firestore_trigger(
                    fs_host, self.options.project, trigger_id, f"{jobs}/{{jobId}}"
                )

    def _start_gcs(self) -> None:
        port = self.ports["gcs"]
        proc = self._spawn(
            "gcs",
            [
                str(preflight.fake_gcs_bin()),
                "-scheme",
                "http",
                "-host",
                HOST,
                "-port",
                str(port),
                "-backend",
                "memory",
                "-log-level",
                "warn",
                "-event.pubsub-project-id",
                self.options.project,
                "-event.pubsub-topic",
                self.topology.topic("uploads_events"),
                "-event.list",
                "finalize",
                "-event.bucket",
                self.topology.bucket("uploads"),
            ],
        )
        proc.wait_port(HOST, port, timeout_s=30)
        provision_buckets(self._settings, self.topology)

    def _start_services(self, functions: list[FunctionSpec]) -> None:
        ff = str(Path(sys.executable).with_name("functions-framework"))
        for fn in functions:
            env = {"CODEX_CLOUD_SERVICE_NAME": fn.name}
            if fn is PROBE_FUNCTION:
                env["CODEX_CLOUD_PROBE_LOG"] = str(self.probe_log)
            self._spawn(
                f"fn-{fn.name}",
                [
                    ff,
                    "--source",
                    str(REPO_ROOT / fn.source),
                    "--target",
                    fn.target,
                    "--host",
                    HOST,
                    "--port",
                    str(self.ports[f"fn-{fn.name}"]),
                ],
                env,
            )
        if self.options.model_server and _module_available("modelserver"):
            self._spawn(
                "model",
                [
                    sys.executable,
                    "-m",
                    "modelserver",
                    "--host",
                    HOST,
                    "--port",
                    str(self.ports["model"]),
                ],
            )
        if _module_available("worker.service"):
            for i in range(self.options.workers):
                self._spawn(
                    f"worker-{i}",
                    [
                        sys.executable,
                        "-m",
                        "worker",
                        "--host",
                        HOST,
                        "--port",
                        str(self.ports[f"worker-{i}"]),
                    ],
                    {"CODEX_CLOUD_WORKER_ID": f"worker-{i}", "CODEX_CLOUD_SERVICE_NAME": "worker"},
                )
        if self._pooled() and _module_available("worker.service"):
            self._spawn(
                "worker-pool",
                [
                    sys.executable,
                    "-m",
                    "devstack.workerpool",
                    "--host",
                    HOST,
                    "--port",
                    str(self.ports["worker-pool"]),
                    *(
                        f"http://{HOST}:{self.ports[f'worker-{i}']}"
                        for i in range(self.options.workers)
                    ),
                ],
            )
        if self.options.api and _module_available("api.app"):
            self._spawn(
                "api",
                [sys.executable, "-m", "api", "--host", HOST, "--port", str(self.ports["api"])],
                {"CODEX_CLOUD_SERVICE_NAME": "api"},
            )
        wf = REPO_ROOT / "workflows" / "long_job.yaml"
        if wf.is_file() and preflight.workflows_emulator_bin().is_file():
            self._spawn(
                "workflows",
                [
                    str(preflight.workflows_emulator_bin()),
                    "--source",
                    str(wf),
                    "serve",
                    "--port",
                    str(self.ports["workflows"]),
                ],
                {"PYTHONWARNINGS": "ignore"},
            )

    def _wait_services(self, functions: list[FunctionSpec]) -> None:
        waits = [(f"fn-{fn.name}", self.ports[f"fn-{fn.name}"]) for fn in functions]
        for name in (
            "model",
            "api",
            "workflows",
            *[f"worker-{i}" for i in range(self.options.workers)],
            "worker-pool",
        ):
            if name in self.processes:
                waits.append((name, self.ports[name]))
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            futures = [
                pool.submit(self.processes[n].wait_port, HOST, port, 90) for n, port in waits
            ]
            for fut in futures:
                fut.result()
        for fn in functions:
            self.urls[fn.name] = f"http://{HOST}:{self.ports[f'fn-{fn.name}']}/"
        for name in ("api", "model", "workflows"):
            if name in self.processes:
                self.urls[name] = f"http://{HOST}:{self.ports[name]}"
        for name in (*[f"worker-{i}" for i in range(self.options.workers)], "worker-pool"):
            if name in self.processes:
                self.urls[name] = f"http://{HOST}:{self.ports[name]}"
        self.urls["eventarc"] = f"http://{HOST}:{self.ports['eventarc']}"

    def _start_sweeper_schedule(self, functions: list[FunctionSpec]) -> None:
        """Cloud Scheduler stand-in: POST the sweeper function periodically."""
        if not any(fn.name == "sweeper" for fn in functions) or self.options.sweep_interval_s <= 0:
            return
        url = self.urls["sweeper"]

        def loop() -> None:
            with httpx.Client(timeout=30) as client:
                while not self._stop_sweeper.wait(self.options.sweep_interval_s):
                    with contextlib.suppress(httpx.HTTPError):
                        client.post(url, json={"source": "local-scheduler"})

        self._sweeper_thread = threading.Thread(target=loop, name="sweeper-schedule", daemon=True)
        self._sweeper_thread.start()

    # ---- helpers for clients and tests ---------------------------------------------------

    def client_env(self) -> dict[str, str]:
        return dict(self.env)

    def write_env_file(self) -> Path:
        path = self.state_dir / "env.sh"
        path.write_text("".join(f"export {k}={json.dumps(v)}\n" for k, v in self.env.items()))
        latest = self.state_dir.parent / "env.sh"
        with contextlib.suppress(OSError):
            shutil.copyfile(path, latest)
        return path

    def reset_state(self) -> None:
        """Clean slate without restarting emulators: Firestore, Redis, buckets, pull subs."""
        from devstack.reset import reset_all

        reset_all(self)

    @contextlib.contextmanager
    def applied_env(self) -> Iterator[None]:
        saved = dict(os.environ)
        os.environ.update(self.env)
        try:
            yield
        finally:
            os.environ.clear()
            os.environ.update(saved)
