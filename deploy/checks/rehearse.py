"""A local rehearsal of a rollout, without Kubernetes: what the dev overlay
deploys, run as processes on this machine and configured from what the chart
renders, then rolled under steady load, counting the requests lost.

- The chart is rendered for deploy/overlays/dev with Helm's own engine, as
  check_deploy.py renders it. Each process gets its container's `env` from
  the rendered pod spec, `secretKeyRef`s resolved against the rendered
  Secret, and its ConfigMaps written where the container mounts them. What
  only a cluster has is replaced, and listed in the report: the image's paths
  (components, migrations, the frontend) by the repository's, the host
  Service's name by the replicas' addresses, mount paths by folders here, and
  DATABASE_URL by a fresh database on the PostgreSQL server given.
- The setup Job's command runs first (migrations, first superuser); then the
  host replicas (as many as the HPA's minimum, each on its own loopback
  address with the pod's ports, as pods have their own IPs); then the proxy
  on 127.0.0.1, its upstream the replicas' addresses.
- Load: a few clients with keep-alive connections send GETs through the proxy
  the whole time, public and with the first superuser's token.
- Phases: warm-up; a rolling restart of the host replicas (SIGTERM to one,
  wait for it to exit, start it again as a new pod, its emptyDirs empty, wait
  until it is ready and the proxy's health check sees it, then the next); a graceful upgrade of the proxy (a
  new one with --upgrade, SIGQUIT to the old, wait for it to drain and exit);
  cool-down.
- A request is lost when it was sent and got no 200, whatever happened to
  it. One that could not be written on a kept-alive connection the server
  had already closed never reached it: it is sent again on a new connection
  and counted as resent. A refused connection to the proxy is lost.

Exits 1 if a request was lost or a process misbehaved. Logs are left in
target/rehearsal.

Run by `cargo xtask test` on its private PostgreSQL server; by hand, with
the binaries built (`cargo build -p proxy -p host -p setup`), the components
built (`cargo xtask build-plugins`) and the venv made by `cargo xtask test`:

    GATEHOUSE_REHEARSAL_DATABASE_URL=postgres://USER:PASSWORD@127.0.0.1:5432/postgres \\
        target/deploy-venv/bin/python deploy/checks/rehearse.py

The URL names a server where that user may create databases; the rehearsal
drops and creates `gatehouse_rehearsal` there. Options: --bin-dir (default
target/debug, or GATEHOUSE_REHEARSAL_BIN_DIR), --components-dir (default
target/wasm32-wasip2/release, or GATEHOUSE_COMPONENTS_DIR).
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import check_deploy  # noqa: E402
import helm_python as helm  # noqa: E402
from check_deploy import DEPLOY, NAMESPACE, RELEASE, ROOT, config_map_file, deployed_migrations_path, named, pod_spec  # noqa: E402

DATABASE = "gatehouse_rehearsal"
WORK = ROOT / "target" / "rehearsal"
# Each host replica on its own loopback address, as each pod has its own IP.
REPLICA_ADDRESSES = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"]
SERVICE_HOST = f"{RELEASE}-host.{NAMESPACE}.svc.cluster.local"
WARM_UP = COOL_DOWN = 2.0
CLIENT_RATE = 40.0  # requests a second, per client
STARTUP_TIMEOUT = 60.0


def log(message: str) -> None:
    print(f"[{time.monotonic() - STARTED:6.1f}s] {message}", flush=True)


STARTED = time.monotonic()


class RehearsalError(Exception):
    pass


# --- the rendered chart ---------------------------------------------------

def render_dev() -> list[dict]:
    with check_deploy.helm_quietly():
        chart = helm.Chart.load(str(check_deploy.CHART))
    return check_deploy.render(chart, check_deploy.variants()["dev"])


def secret_value(objects: list[dict], name: str, key: str) -> str | None:
    secret = named(objects, "Secret", name)
    if key in (secret.get("stringData") or {}):
        return secret["stringData"][key]
    if key in (secret.get("data") or {}):
        return base64.b64decode(secret["data"][key]).decode()
    return None


def container_env(objects: list[dict], container: dict) -> tuple[dict[str, str], list[str]]:
    """The container's environment as the kubelet would set it, and where
    the values from a Secret came from ("secret/KEY")."""
    env: dict[str, str] = {}
    from_secrets: list[str] = []
    for source in container.get("envFrom", []):
        if "secretRef" in source:
            secret = named(objects, "Secret", source["secretRef"]["name"])
            keys = set(secret.get("data") or {}) | set(secret.get("stringData") or {})
            for key in sorted(keys):
                env[key] = secret_value(objects, secret["metadata"]["name"], key)
                from_secrets.append(f"{secret['metadata']['name']}/{key}")
        elif "configMapRef" in source:
            env.update(named(objects, "ConfigMap", source["configMapRef"]["name"])["data"])
    for var in container.get("env", []):
        name = var["name"]
        if "value" in var:
            env[name] = str(var["value"])
            continue
        ref = var.get("valueFrom", {})
        if "secretKeyRef" in ref:
            key_ref = ref["secretKeyRef"]
            value = secret_value(objects, key_ref["name"], key_ref["key"])
            if value is None:
                if key_ref.get("optional"):
                    continue
                raise RehearsalError(f"{container['name']}: {name} names {key_ref['key']}, not in Secret {key_ref['name']}")
            env[name] = value
            from_secrets.append(f"{key_ref['name']}/{key_ref['key']}")
        elif "configMapKeyRef" in ref:
            key_ref = ref["configMapKeyRef"]
            env[name] = named(objects, "ConfigMap", key_ref["name"])["data"][key_ref["key"]]
        else:
            raise RehearsalError(f"{container['name']}: {name} comes from {sorted(ref)}, which the rehearsal cannot resolve")
    return env, from_secrets


def entrypoint(image: str) -> list[str]:
    """The ENTRYPOINT of the image's Dockerfile (deploy/docker/NAME.Dockerfile)."""
    name = image.split("@")[0].rsplit("/", 1)[-1].split(":")[0]
    found = re.search(r"^ENTRYPOINT (\[.*\])$", (DEPLOY / "docker" / f"{name}.Dockerfile").read_text(), re.M)
    if not found:
        raise RehearsalError(f"deploy/docker/{name}.Dockerfile has no ENTRYPOINT")
    return json.loads(found[1])


def image_paths() -> dict[str, str]:
    """Where the repository has what the images hold, the inverse of the
    mapping check_deploy.py holds the rendered manifests to."""
    host_file = tomllib.loads((DEPLOY / "host.toml").read_text())
    proxy_file = tomllib.loads((DEPLOY / "proxy.toml").read_text())
    paths: dict[str, str] = {}
    for component in host_file["component"].values():
        for folder in component.get("migrations", {}).values():
            paths[deployed_migrations_path(folder)] = str((DEPLOY / folder).resolve())
    for database in host_file.get("database", {}).values():
        if "migrations" in database:
            paths[deployed_migrations_path(database["migrations"])] = str((DEPLOY / database["migrations"]).resolve())
    for files in proxy_file.get("files", {}).values():
        # As the proxy image's COPY puts the frontend's export.
        paths["/opt/gatehouse/frontend"] = str((DEPLOY / files["root"]).resolve())
    return paths


def toml_string(value: str) -> str:
    return json.dumps(value)


def replace_once(text: str, old: str, new: str, what: str) -> str:
    if text.count(old) != 1:
        raise RehearsalError(f"{what}: expected `{old}` once in the rendered file, found it {text.count(old)} times")
    return text.replace(old, new)


def changes(before: dict, after: dict) -> list[str]:
    return [line.replace(" != ", " -> ") for line in check_deploy.diff(before, after)]


# --- processes --------------------------------------------------------------

@dataclass
class Proc:
    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    popen: subprocess.Popen | None = None
    started_at: float = 0.0

    def start(self) -> Proc:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log_file:
            # Its own session: a Ctrl-C here reaches the rehearsal, which stops them.
            self.popen = subprocess.Popen(self.argv, env=self.env, stdout=log_file, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, cwd=WORK, start_new_session=True)
        self.started_at = time.monotonic()
        return self

    def signal(self, sig: int) -> None:
        if self.popen and self.popen.poll() is None:
            self.popen.send_signal(sig)

    def wait(self, timeout: float) -> int | None:
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, timeout: float = 15.0) -> int | None:
        if not self.alive():
            return self.popen.returncode if self.popen else None
        self.signal(signal.SIGTERM)
        code = self.wait(timeout)
        if code is None:
            self.popen.kill()
            self.popen.wait()
        return code

    def tail(self, lines: int = 15) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join("      " + line[:300] for line in text[-lines:])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(address: str, path: str, timeout: float = 2.0) -> tuple[int, str]:
    host, port = address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        conn.close()


def wait_until(what: str, condition, timeout: float, proc: Proc | None = None) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if proc is not None and not proc.alive():
            raise RehearsalError(f"{proc.name} exited ({proc.popen.returncode}) before {what}:\n{proc.tail()}")
        try:
            if condition():
                return time.monotonic() - started
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(0.05)
    raise RehearsalError(f"timed out after {timeout:.0f}s waiting for {what}" + (f":\n{proc.tail()}" if proc else ""))


def ready(address: str) -> bool:
    return http_get(address, "/readyz")[0] == 200


def proxy_sees_healthy(admin: str, upstream: str) -> bool:
    status, text = http_get(admin, "/metrics")
    return status == 200 and re.search(
        rf'^gatehouse_proxy_upstream_healthy\{{upstream="runtime",address="{re.escape(upstream)}"\}} 1$', text, re.M) is not None


def metric_total(admin: str, name: str) -> float:
    status, text = http_get(admin, "/metrics")
    return sum(float(m) for m in re.findall(rf"^{name}(?:\{{[^}}]*\}})? (\S+)$", text, re.M)) if status == 200 else 0.0


# --- the database -------------------------------------------------------------

def psql_env(url: str) -> dict[str, str]:
    parts = urllib.parse.urlsplit(url)
    env = {**os.environ, "PGHOST": parts.hostname or "127.0.0.1", "PGPORT": str(parts.port or 5432),
           "PGDATABASE": parts.path.lstrip("/") or "postgres"}
    if parts.username:
        env["PGUSER"] = urllib.parse.unquote(parts.username)
    if parts.password:
        env["PGPASSWORD"] = urllib.parse.unquote(parts.password)
    sslmode = urllib.parse.parse_qs(parts.query).get("sslmode")
    if sslmode:
        env["PGSSLMODE"] = sslmode[0]
    return env


def psql(url: str, sql: str) -> None:
    program = shutil.which("psql") or next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin/psql"), reverse=True)), None)
    if program is None:
        raise RehearsalError("no psql (PostgreSQL's client) on PATH")
    result = subprocess.run([str(program), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql], env=psql_env(url),
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise RehearsalError(f"psql `{sql}` failed: {result.stderr.strip()}")


def database_url(server_url: str, database: str) -> str:
    parts = urllib.parse.urlsplit(server_url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, ""))


# --- the load ------------------------------------------------------------------

@dataclass
class Result:
    phase: str
    client: str
    request_id: str
    started: float
    latency: float
    status: int
    error: str | None


@dataclass
class Load:
    address: str
    token: str
    phase: str = "warm-up"
    results: list[Result] = field(default_factory=list)
    resent: Counter = field(default_factory=Counter)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    CLIENTS = [
        ("items-health", "/items/health", False),
        ("users-health", "/users/health", False),
        ("items", "/api/v1/items/", True),
        ("users-me", "/users/api/v1/users/me", True),
    ]

    def start(self) -> list[threading.Thread]:
        threads = [threading.Thread(target=self.client, args=(i, *c), daemon=True) for i, c in enumerate(self.CLIENTS)]
        for thread in threads:
            thread.start()
        return threads

    def client(self, index: int, name: str, path: str, authenticated: bool) -> None:
        host, port = self.address.rsplit(":", 1)
        conn: http.client.HTTPConnection | None = None
        n = 0
        interval = 1.0 / CLIENT_RATE
        while not self.stop.is_set():
            began = time.monotonic()
            phase = self.phase
            n += 1
            request_id = f"rehearsal-{index}-{n}"
            headers = {"x-request-id": request_id, "accept": "application/json"}
            if authenticated:
                headers["authorization"] = f"Bearer {self.token}"
            status, error = 0, None
            for attempt in range(2):
                reused = conn is not None
                if conn is None:
                    conn = http.client.HTTPConnection(host, int(port), timeout=10)
                try:
                    try:
                        conn.request("GET", path, headers=headers)
                    except (BrokenPipeError, ConnectionResetError) as e:
                        # Not written: the server had closed this connection.
                        conn.close()
                        conn = None
                        if reused and attempt == 0:
                            with self.lock:
                                self.resent[phase] += 1
                            continue
                        raise e
                    response = conn.getresponse()
                    response.read()
                    status = response.status
                    if response.will_close:
                        conn.close()
                        conn = None
                except (OSError, http.client.HTTPException) as e:
                    error = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
                    if conn is not None:
                        conn.close()
                    conn = None
                break
            latency = time.monotonic() - began
            with self.lock:
                self.results.append(Result(phase, name, request_id, began, latency, status, error))
            time.sleep(max(0.0, interval - latency))
        if conn is not None:
            conn.close()


def login(address: str, username: str, password: str) -> str:
    host, port = address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        body = urllib.parse.urlencode({"username": username, "password": password})
        conn.request("POST", "/auth/api/v1/login/access-token", body=body,
                     headers={"content-type": "application/x-www-form-urlencoded"})
        response = conn.getresponse()
        text = response.read()
        if response.status != 200:
            raise RehearsalError(f"logging in as the first superuser answered {response.status}")
        return json.loads(text)["access_token"]
    finally:
        conn.close()


def access_log(paths: list[Path]) -> dict[str, dict]:
    """The proxies' access log lines by request id."""
    entries: dict[str, dict] = {}
    for path in paths:
        for line in path.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            fields = entry.get("fields", {})
            if entry.get("target") == "gatehouse::access" and str(fields.get("request_id", "")).startswith("rehearsal-"):
                entries[fields["request_id"]] = {**fields, "proxy": path.parent.name}
    return entries


# --- the rehearsal ---------------------------------------------------------------

class Rehearsal:
    def __init__(self, server_url: str, bin_dir: Path, components_dir: Path) -> None:
        self.server_url = server_url
        self.bin_dir = bin_dir
        self.components_dir = components_dir
        self.procs: list[Proc] = []
        self.problems: list[str] = []

    def prepare(self) -> None:
        for binary in ("gatehouse-proxy", "gatehouse-host", "gatehouse-setup"):
            if not (self.bin_dir / binary).is_file():
                raise RehearsalError(f"{self.bin_dir / binary} is missing: cargo build -p proxy -p host -p setup")
        if WORK.exists():
            shutil.rmtree(WORK)
        WORK.mkdir(parents=True)
        self.socket_dir = Path(tempfile.mkdtemp(prefix="gatehouse-rehearsal-"))
        log("rendering the chart for the dev overlay (Helm's engine)")
        objects = render_dev()
        self.objects = objects
        self.host_deployment = named(objects, "Deployment", f"{RELEASE}-host")
        self.proxy_deployment = named(objects, "Deployment", f"{RELEASE}-proxy")
        self.setup_job = named(objects, "Job", f"{RELEASE}-setup")
        hpa = [o for o in objects if o["kind"] == "HorizontalPodAutoscaler" and o["spec"]["scaleTargetRef"]["name"] == self.host_deployment["metadata"]["name"]]
        replicas = hpa[0]["spec"]["minReplicas"] if hpa else self.host_deployment["spec"].get("replicas", 1)
        self.replica_hosts = REPLICA_ADDRESSES[:replicas]
        if len(self.replica_hosts) < replicas:
            raise RehearsalError(f"the dev overlay asks for {replicas} host replicas; the rehearsal has addresses for {len(REPLICA_ADDRESSES)}")

        manifest = config_map_file(objects, RELEASE, "host.toml")
        self.host_port = int(manifest["server"]["listen"].rsplit(":", 1)[1])
        self.host_admin_port = int(manifest["server"]["admin_listen"].rsplit(":", 1)[1])
        self.replicas = [f"{h}:{self.host_port}" for h in self.replica_hosts]
        proxy_config = config_map_file(objects, RELEASE, "proxy.toml")
        upstream = proxy_config["upstream"]["runtime"]
        self.health_check_seconds = upstream.get("health_check_seconds", 2)
        if upstream.get("health_check_port") != self.host_admin_port or upstream.get("health_check_path") != "/readyz":
            raise RehearsalError(f"the proxy checks the replicas at {upstream.get('health_check_port')}{upstream.get('health_check_path')}, not at their /readyz")
        self.proxy_address = f"127.0.0.1:{free_port()}"
        self.proxy_admin = f"127.0.0.1:{free_port()}"
        self.upgrade_socket = self.socket_dir / "proxy-upgrade.sock"
        self.config_changes: dict[str, list[str]] = {}
        self.notes: dict[str, list[str]] = {}

    def rewrite(self, config_map: str, key: str, text: str) -> str:
        """A rendered file with what only a cluster has replaced; every change listed."""
        original = tomllib.loads(text)
        paths = image_paths()
        for component in original.get("component", {}).values():
            image = component["file"]
            local = self.components_dir / Path(image).name
            if not local.is_file():
                raise RehearsalError(f"{local} is missing: cargo xtask build-plugins")
            paths[image] = str(local)
        for image, local in paths.items():
            text = text.replace(toml_string(image), toml_string(local))
        service = f"{SERVICE_HOST}:{self.host_port}"
        if key == "proxy.toml":
            text = replace_once(text, f"addresses = [{toml_string(service)}]",
                                "addresses = [" + ", ".join(toml_string(r) for r in self.replicas) + "]", key)
            # The key set, from the Service in a cluster: from the first replica here.
            text = replace_once(text, f"//{service}/", f"//{self.replicas[0]}/", key)
            text = f"upgrade_socket = {toml_string(str(self.upgrade_socket))}\n" + text
        for leftover in ("/opt/gatehouse", ".svc.cluster.local"):
            if leftover in text:
                raise RehearsalError(f"{config_map}/{key}: `{leftover}` left after the rewrite")
        self.config_changes[f"{config_map}/{key}"] = changes(original, tomllib.loads(text))
        return text

    def mounts(self, proc_name: str, workload: str, spec: dict, container: dict) -> dict[str, Path]:
        """The container's volumes as folders here: ConfigMaps written (with
        their files rewritten), emptyDirs empty. Mount path -> folder."""
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        mapped: dict[str, Path] = {}
        for mount in container.get("volumeMounts", []):
            volume = volumes[mount["name"]]
            if "configMap" in volume:
                # One folder per workload: its pods share the mounted files.
                folder = WORK / "config" / workload / mount["name"]
                if not folder.exists():
                    folder.mkdir(parents=True)
                    data = named(self.objects, "ConfigMap", volume["configMap"]["name"])["data"]
                    items = volume["configMap"].get("items") or [{"key": k, "path": k} for k in data]
                    for item in items:
                        (folder / item["path"]).write_text(self.rewrite(volume["configMap"]["name"], item["key"], data[item["key"]]))
            elif "emptyDir" in volume:
                folder = WORK / proc_name / mount["name"]
                folder.mkdir(parents=True, exist_ok=True)
            else:
                raise RehearsalError(f"{proc_name}: volume {mount['name']} is neither a ConfigMap nor an emptyDir")
            mapped[mount["mountPath"]] = folder
        return mapped

    def process(self, name: str, workload: dict, env_here: dict[str, str], args: list[str]) -> Proc:
        """A container of a rendered workload as a process (a pod: `name`
        tells its emptyDirs apart): its command with the binary and mount
        paths mapped, its environment resolved."""
        spec = pod_spec(workload)
        container = spec["containers"][0]
        mounts = self.mounts(name, workload["metadata"]["name"], spec, container)

        def local(value: str) -> str:
            for mount_path, folder in sorted(mounts.items(), key=lambda m: -len(m[0])):
                if value == mount_path or value.startswith(mount_path.rstrip("/") + "/"):
                    return str(folder) + value[len(mount_path.rstrip("/")):]
            return value

        rendered, from_secrets = container_env(self.objects, container)
        env = {k: local(v) for k, v in rendered.items()}
        mapped = [k for k in env if env[k] != rendered[k]]
        env.update(env_here)
        if "DATABASE_URL" in env:
            env["DATABASE_URL"] = database_url(self.server_url, DATABASE)
        command = (container.get("command") or entrypoint(container["image"])) + container.get("args", [])
        argv = [str(self.bin_dir / Path(command[0]).name)] + [local(a) for a in command[1:]] + args
        base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/"),
                "TMPDIR": str(mounts.get("/tmp", WORK))}
        self.notes.setdefault(workload["metadata"]["name"], [
            f"from Secrets: {', '.join(sorted(from_secrets)) or 'nothing'}",
            "set here: " + ", ".join([f"{k} (a mount path)" for k in mapped] + [f"{k} ({v})" for k, v in env_here.items()]
                                     + (["DATABASE_URL (the rehearsal's database)"] if "DATABASE_URL" in env else [])
                                     + (["TMPDIR (the /tmp emptyDir)"] if "/tmp" in mounts else [])),
            f"command: {' '.join(command)}" + (f", with {' '.join(args)}" if args else ""),
        ])
        return Proc(name, argv, {**base, **env}, WORK / name / "log")

    def host(self, index: int, generation: int) -> Proc:
        """A host replica; a new generation is a new pod, with empty
        emptyDirs (so it compiles the components again, as a new pod does)."""
        address = self.replica_hosts[index]
        proc = self.process(f"host-{'abcdefgh'[index]}.{generation}", self.host_deployment, {},
                            ["--listen", f"{address}:{self.host_port}", "--admin-listen", f"{address}:{self.host_admin_port}"])
        proc.name = f"host-{'abcdefgh'[index]}"
        return proc

    def proxy(self, generation: int, upgrade: bool) -> Proc:
        return self.process(f"proxy.{generation}", self.proxy_deployment, {"GATEHOUSE_PROXY_ADMIN_LISTEN": self.proxy_admin},
                            ["--listen", self.proxy_address] + (["--upgrade"] if upgrade else []))

    def track(self, proc: Proc) -> Proc:
        self.procs.append(proc)
        return proc.start()

    def start_platform(self) -> None:
        log(f"database: dropping and creating {DATABASE}")
        psql(self.server_url, f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        psql(self.server_url, f'CREATE DATABASE "{DATABASE}"')

        setup = self.track(self.process("setup", self.setup_job, {}, []))
        code = setup.wait(120)
        if code != 0:
            raise RehearsalError(f"the setup Job's command failed ({code}):\n{setup.tail()}")
        log(f"setup: migrations and first superuser done in {time.monotonic() - setup.started_at:.1f}s")
        env, _ = container_env(self.objects, pod_spec(self.setup_job)["containers"][0])
        self.superuser = (env["FIRST_SUPERUSER"], env["FIRST_SUPERUSER_PASSWORD"])

        for address in self.replica_hosts:
            for port in (self.host_port, self.host_admin_port):
                with socket.socket() as s:
                    s.settimeout(0.2)
                    if s.connect_ex((address, port)) == 0:
                        raise RehearsalError(f"{address}:{port} is taken: something listens there (on 0.0.0.0?)")
        self.hosts = [self.track(self.host(i, 1)) for i in range(len(self.replica_hosts))]
        for i, proc in enumerate(self.hosts):
            wait_until(f"{proc.name} to be ready", lambda: ready(f"{self.replica_hosts[i]}:{self.host_admin_port}"), STARTUP_TIMEOUT, proc)
            log(f"{proc.name} ({self.replicas[i]}) ready after {time.monotonic() - proc.started_at:.1f}s")
        self.current_proxy = self.track(self.proxy(1, upgrade=False))
        wait_until("the proxy to be ready", lambda: ready(self.proxy_admin), STARTUP_TIMEOUT, self.current_proxy)
        for replica in self.replicas:
            wait_until(f"the proxy to see {replica} healthy", lambda: proxy_sees_healthy(self.proxy_admin, replica),
                       self.health_check_seconds * 3 + 5, self.current_proxy)
        log(f"proxy ready on {self.proxy_address} (admin {self.proxy_admin}), upstream {', '.join(self.replicas)}")

    def rolling_restart(self) -> None:
        for i, old in enumerate(list(self.hosts)):
            replica = self.replicas[i]
            began = time.monotonic()
            old.signal(signal.SIGTERM)
            log(f"SIGTERM to {old.name} ({replica})")
            code = old.wait(60)
            if code is None:
                self.problems.append(f"{old.name} did not exit within 60 s of SIGTERM")
                old.popen.kill()
                old.wait(5)
            elif code != 0:
                self.problems.append(f"{old.name} exited {code} after SIGTERM")
            log(f"{old.name} exited ({code}) after {time.monotonic() - began:.1f}s; starting it again")
            new = self.track(self.host(i, 2))
            self.hosts[i] = new
            took = wait_until(f"{new.name} to be ready again", lambda: ready(f"{self.replica_hosts[i]}:{self.host_admin_port}"), STARTUP_TIMEOUT, new)
            log(f"{new.name} ready after {took:.1f}s")
            seen = wait_until(f"the proxy to see {replica} healthy", lambda: proxy_sees_healthy(self.proxy_admin, replica),
                              self.health_check_seconds * 3 + 5, new)
            # One check interval more: the proxy's health check has surely
            # run since the replica turned ready.
            time.sleep(self.health_check_seconds + 0.5)
            log(f"the proxy saw {replica} healthy {seen:.1f}s later; next")

    def proxy_upgrade(self) -> None:
        old = self.current_proxy
        self.retries_before_upgrade = metric_total(self.proxy_admin, "gatehouse_proxy_upstream_retries_total")
        new = self.track(self.proxy(2, upgrade=True))
        log("new proxy started with --upgrade")
        wait_until("the new proxy's upgrade socket", self.upgrade_socket.exists, 30, new)
        began = time.monotonic()
        old.signal(signal.SIGQUIT)
        log("SIGQUIT to the old proxy")
        code = old.wait(60)
        if code is None:
            self.problems.append("the old proxy did not exit within 60 s of SIGQUIT")
            old.popen.kill()
            old.wait(5)
        elif code != 0:
            self.problems.append(f"the old proxy exited {code} after SIGQUIT")
        drained = "drained: no client connection left" in old.log_path.read_text(errors="replace")
        if not drained:
            self.problems.append("the old proxy never logged that it drained")
        log(f"old proxy exited ({code}) {time.monotonic() - began:.1f}s after SIGQUIT{' (drained)' if drained else ''}")
        wait_until("the new proxy to be ready", lambda: ready(self.proxy_admin), 30, new)
        self.current_proxy = new
        log("new proxy ready")

    def run(self) -> int:
        self.prepare()
        self.start_platform()
        token = login(self.proxy_address, *self.superuser)
        load = Load(self.proxy_address, token)
        self.load_started = time.monotonic()
        threads = load.start()
        log("load started: warm-up")
        time.sleep(WARM_UP)
        load.phase = "rolling restart"
        log("phase: rolling restart of the host replicas")
        self.rolling_restart()
        load.phase = "proxy upgrade"
        log("phase: proxy graceful upgrade")
        self.proxy_upgrade()
        load.phase = "cool-down"
        log("phase: cool-down")
        time.sleep(COOL_DOWN)
        load.stop.set()
        for thread in threads:
            thread.join(15)
        log("load stopped")
        self.retries_after_upgrade = metric_total(self.proxy_admin, "gatehouse_proxy_upstream_retries_total")
        self.stop_all()
        return self.report(load)

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            if proc.alive():
                code = proc.stop()
                if code not in (0, None) and proc.name != "setup":
                    self.problems.append(f"{proc.name} exited {code} on SIGTERM at the end")

    def report(self, load: Load) -> int:
        entries = access_log(sorted(WORK.glob("proxy.*/log")))
        names = {r: f"host-{'abcdefgh'[i]} ({r})" for i, r in enumerate(self.replicas)}
        print("\n--- configured from the chart's dev rendering ---")
        for workload, notes in self.notes.items():
            print(f"{workload}:" + "".join(f"\n  {note}" for note in notes))
        for name, lines in self.config_changes.items():
            print(f"{name}, changed from the rendering:" + ("".join(f"\n  {line}" for line in lines) if lines else " nothing"))
        print("\n--- requests by phase ---")
        print(f"{'phase':<16} {'requests':>8} {'lost':>5} {'resent':>6}  served by")
        lost_total = 0
        phases = ["warm-up", "rolling restart", "proxy upgrade", "cool-down"]
        for phase in phases:
            results = [r for r in load.results if r.phase == phase]
            lost = [r for r in results if r.status != 200]
            lost_total += len(lost)
            served = Counter(names.get(entries.get(r.request_id, {}).get("upstream"), "not in the access log") for r in results)
            proxies = Counter(entries[r.request_id]["proxy"] for r in results if r.request_id in entries)
            served_text = ", ".join(f"{k}: {v}" for k, v in sorted(served.items()))
            if phase == "proxy upgrade":
                served_text += "; " + ", ".join(f"{k}: {v}" for k, v in sorted(proxies.items()))
            print(f"{phase:<16} {len(results):>8} {len(lost):>5} {load.resent[phase]:>6}  {served_text}")
        latencies = sorted(r.latency for r in load.results)
        if latencies:
            p50 = latencies[len(latencies) // 2] * 1e3
            p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1e3
            print(f"{'all':<16} {len(latencies):>8} {lost_total:>5} {sum(load.resent.values()):>6}  latency p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {latencies[-1] * 1e3:.0f} ms")
        print(f"requests the proxies tried again on another replica: {self.retries_before_upgrade:.0f} (proxy.1), {self.retries_after_upgrade:.0f} (proxy.2)")
        lost = [r for r in load.results if r.status != 200]
        if lost:
            print("\nlost requests:")
            for reason, count in Counter(f"{r.phase}: {r.client}: {r.error or f'status {r.status}'}" for r in lost).most_common(15):
                print(f"  {count:5}  {reason}")
            for r in lost[:10]:
                entry = entries.get(r.request_id)
                where = f"proxy {entry['proxy']} logged status {entry.get('status')} upstream {entry.get('upstream')} error {entry.get('error')}" if entry else "not in the proxies' access logs"
                print(f"  {r.request_id} at {r.started - self.load_started:.2f}s: {where}")
        for problem in self.problems:
            print(f"problem: {problem}")
        verdict = "no request lost" if not lost and not self.problems else f"{len(lost)} requests lost" + (f", {len(self.problems)} problems" if self.problems else "")
        print(f"\nrehearsal: {verdict} ({len(load.results)} requests in {time.monotonic() - self.load_started:.0f}s); logs in {WORK.relative_to(ROOT)}")
        return 1 if lost or self.problems else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("GATEHOUSE_REHEARSAL_DATABASE_URL"),
                        help="a PostgreSQL server's URL (env GATEHOUSE_REHEARSAL_DATABASE_URL)")
    parser.add_argument("--bin-dir", type=Path, default=Path(os.environ.get("GATEHOUSE_REHEARSAL_BIN_DIR", ROOT / "target" / "debug")))
    parser.add_argument("--components-dir", type=Path,
                        default=Path(os.environ.get("GATEHOUSE_COMPONENTS_DIR", ROOT / "target" / "wasm32-wasip2" / "release")))
    args = parser.parse_args()
    if not args.database_url:
        parser.error("no database: set GATEHOUSE_REHEARSAL_DATABASE_URL or pass --database-url")
    rehearsal = Rehearsal(args.database_url, args.bin_dir.resolve(), args.components_dir.resolve())
    try:
        return rehearsal.run()
    except RehearsalError as e:
        print(f"rehearsal failed: {e}\n(logs in {WORK.relative_to(ROOT)})", flush=True)
        return 1
    except KeyboardInterrupt:
        print("rehearsal interrupted", flush=True)
        return 130
    finally:
        for proc in rehearsal.procs:
            if proc.alive():
                proc.popen.kill()
                proc.popen.wait()
        if hasattr(rehearsal, "socket_dir"):
            shutil.rmtree(rehearsal.socket_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
