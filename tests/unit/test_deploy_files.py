"""Static checks of the deployment files: compose, Dockerfiles, Prometheus rules and Grafana dashboards.

No Docker engine is needed: the files are parsed and cross-checked against each other and the repository.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.timescaledb import TESTED_POSTGRESQL_MAJOR, TESTED_TIMESCALEDB

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "compose.yml"
DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"
DOCKERFILE_DEV = ROOT / "deploy" / "docker" / "Dockerfile.dev"
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
ALERT_RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
GRAFANA_DATASOURCES = ROOT / "deploy" / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
GRAFANA_PROVIDERS = ROOT / "deploy" / "grafana" / "provisioning" / "dashboards" / "dashboards.yml"
DASHBOARD_DIR = ROOT / "deploy" / "grafana" / "dashboards"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERIGNORE = ROOT / ".dockerignore"

# The metric names the service documents (docs/monitoring.md), as a scrape shows them: a counter
# is exposed with `_total` (rate_limit_requests_allowed too), a histogram as its base name here.
DOCUMENTED_METRICS = frozenset(
    {
        "http_requests_total",
        "http_request_duration_seconds",
        "http_requests_in_flight",
        "api_graphql_queries_total",
        "api_rest_requests_total",
        "api_auth_failures_total",
        "rate_limit_exceeded_total",
        "rate_limit_requests_allowed_total",
        "cache_hits_total",
        "cache_misses_total",
        "cache_size_bytes",
        "db_pool_connections",
        "db_query_duration_seconds",
        "observatory_api_build_info",
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
    }
)
# Series Prometheus adds to every scrape itself; the service does not export them.
SCRAPE_METRICS = frozenset({"up"})

# Environment variables the service reads (settings.ENV_KEYS): .env.example documents each one.
SERVICE_ENV_VARS = (
    "ENVIRONMENT",
    "API_HOST",
    "API_PORT",
    "API_WORKERS",
    "API_METRICS_PORT",
    "DATABASE_URL",
    "DB_READONLY_USER",
    "DB_READONLY_PASSWORD",
    "REDIS_URL",
    "REDIS_PASSWORD",
    "JWT_SECRET",
    "SECRET_KEY",
    "CORS_ORIGINS",
    "GRAPHQL_ENABLED",
    "GRAPHQL_PLAYGROUND",
    "GRAPHQL_INTROSPECTION",
    "RATE_LIMIT_ENABLED",
    "RATE_LIMIT_REQUESTS",
    "RATE_LIMIT_WINDOW",
    "SENTRY_DSN",
    "LOG_LEVEL",
    "LOG_FORMAT",
    "TRACING_OTLP_ENDPOINT",
    "INGEST_ENABLED",
    "INGEST_GRPC_PORT",
)

EXPECTED_SERVICES = {
    "timescaledb",
    "migrate",
    "redis",
    "api",
    "ingest",
    "api-dev",
    "prometheus",
    "grafana",
    "jaeger",
}


# ---------------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------------


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as a mapping, whichever of the two compose forms it uses."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def volume_mounts(service: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    """(type, source, target) for each mount, from the short `src:dst[:mode]` or the long form."""
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            yield volume.get("type", "volume"), volume.get("source", ""), volume["target"]
            continue
        source, _, rest = volume.partition(":")
        target = rest.split(":", 1)[0]
        kind = "bind" if source.startswith((".", "/", "~")) else "volume"
        yield kind, source, target


def dockerfile_stages(path: Path) -> list[list[tuple[str, str]]]:
    """Instructions grouped by build stage: [[("FROM", "..."), ("RUN", "..."), ...], ...]."""
    logical: list[str] = []
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not pending):
            continue  # comments (also inside continuations) and blank lines
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    if pending:
        logical.append(pending)
    stages: list[list[tuple[str, str]]] = []
    for line in logical:
        keyword, _, value = line.partition(" ")
        instruction = (keyword.upper(), value.strip())
        if instruction[0] == "FROM":
            stages.append([instruction])
        elif stages:
            stages[-1].append(instruction)
    return stages


def values_of(stage: list[tuple[str, str]], keyword: str) -> list[str]:
    return [value for kw, value in stage if kw == keyword]


_PROMQL_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_PROMQL_MATCHERS = re.compile(r"\{[^{}]*\}")
_PROMQL_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_PROMQL_VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+")  # Grafana: $__rate_interval, ${instance}
_PROMQL_IDENTIFIER = re.compile(r"(?<![\w:.])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![\w:])(?!\s*\()")
_PROMQL_KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "and", "or", "unless"}
    | {"atan2", "inf", "nan", "start", "end"}
)
_HISTOGRAM_SUFFIX = re.compile(r"_(?:bucket|sum|count)$")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads, with histogram suffixes (_bucket/_sum/_count) removed.

    Strings, label matchers, grouping clauses and dashboard variables are removed first; what is left
    that is neither a function call (name followed by `(`) nor a keyword is a metric name.
    """
    text = _PROMQL_STRING.sub('""', expr)
    text = _PROMQL_MATCHERS.sub("{}", text)
    text = _PROMQL_GROUPING.sub(" ", text)
    text = _PROMQL_VARIABLE.sub("", text)
    names = {match.group(1) for match in _PROMQL_IDENTIFIER.finditer(text)}
    return {_HISTOGRAM_SUFFIX.sub("", name) for name in names - _PROMQL_KEYWORDS}


def dashboard_files() -> list[Path]:
    return sorted(DASHBOARD_DIR.glob("*.json"))


def dashboard_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])  # panels inside collapsed rows


def dashboard_expressions(dashboard: dict[str, Any]) -> Iterator[str]:
    for panel in dashboard_panels(dashboard):
        for target in panel.get("targets", []):
            if target.get("expr"):
                yield target["expr"]
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        query = query.get("query", "") if isinstance(query, dict) else query or ""
        # label_values(<series selector>, <label>): only the selector names a metric.
        match = re.fullmatch(r"\s*label_values\((.*),\s*\w+\s*\)\s*", query)
        if match:
            yield match.group(1)


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(ALERT_RULES)["groups"] for rule in group["rules"]]


def provisioned_datasource_uid() -> str:
    datasources = load_yaml(GRAFANA_DATASOURCES)["datasources"]
    (prometheus,) = [ds for ds in datasources if ds["type"] == "prometheus"]
    return prometheus["uid"]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_yaml(COMPOSE_FILE)


@pytest.fixture(scope="module")
def exposed_metrics(tmp_path_factory: pytest.TempPathFactory) -> frozenset[str]:
    """The metric names a live scrape shows: the real app (embedded SQLite) answers a request,
    then its registry is scraped over HTTP from the same metrics server `serve` runs.

    Names come from the `# TYPE` lines, so metrics without samples yet (no 429 so far) count too.
    """
    from litestar.testing import TestClient
    from prometheus_client import REGISTRY

    from observatory_api.app import create_app
    from observatory_api.observability.metrics_server import start_metrics_server
    from observatory_api.settings import DatabaseSettings, Settings

    database = DatabaseSettings(sqlite_path=str(tmp_path_factory.mktemp("scrape") / "observatory.db"))
    server = start_metrics_server("127.0.0.1", 0, REGISTRY)
    try:
        with TestClient(create_app(Settings(environment="test", database=database))) as client:
            assert client.get("/no/such/route").status_code == 404  # open to anyone, and counted
            response = httpx.get(f"http://127.0.0.1:{server.port}/metrics", timeout=10)
    finally:
        server.close()
    assert response.status_code == 200
    names = frozenset(re.findall(r"^# TYPE (\S+) \w+$", response.text, flags=re.M))
    assert "http_requests_total" in names, "the scrape holds no request metrics"
    return names


# ---------------------------------------------------------------------------------------------------
# compose.yml
# ---------------------------------------------------------------------------------------------------


def test_compose_parses_with_all_services(compose: dict[str, Any]) -> None:
    assert isinstance(compose, dict)
    assert set(services(compose)) >= EXPECTED_SERVICES


def test_compose_build_contexts_and_dockerfiles_exist(compose: dict[str, Any]) -> None:
    built = 0
    for name, service in services(compose).items():
        build = service.get("build")
        if build is None:
            continue
        built += 1
        context = ROOT / (build if isinstance(build, str) else build.get("context", "."))
        assert context.is_dir(), f"{name}: build context {context} does not exist"
        dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
        assert (context / dockerfile).is_file(), f"{name}: dockerfile {dockerfile} not found in {context}"
    assert built >= 3  # migrate, api, api-dev


def test_compose_bind_mounts_exist_and_named_volumes_are_declared(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    binds = 0
    for name, service in services(compose).items():
        for kind, source, target in volume_mounts(service):
            if kind == "bind":
                binds += 1
                assert (ROOT / source).exists(), f"{name}: bind-mounted {source} (-> {target}) is missing"
            elif source:
                assert source in declared, f"{name}: named volume {source} is not declared"
    assert binds >= 6
    assert {"timescaledb-data", "prometheus-data", "grafana-data"} <= declared


def test_api_can_scale_and_is_hardened(compose: dict[str, Any]) -> None:
    api = services(compose)["api"]
    assert "container_name" not in api, "a fixed container name breaks --scale api=N"
    # Replicas publish nothing on the host (they would collide): clients go through `proxy`.
    assert "ports" not in api
    assert str(api["deploy"]["replicas"]) == "${API_REPLICAS:-2}"
    assert api["read_only"] is True
    assert any(str(mount).split(":")[0] == "/tmp" for mount in api["tmpfs"])
    assert "no-new-privileges:true" in api["security_opt"]
    assert api["cap_drop"] == ["ALL"]
    assert api["cap_add"] == ["NET_BIND_SERVICE"]
    limits = api["deploy"]["resources"]["limits"]
    assert str(limits["cpus"]) == "2"
    assert str(limits["memory"]).upper() == "2G"
    assert "/alive" in " ".join(api["healthcheck"]["test"])
    assert api["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert api["depends_on"]["redis"]["condition"] == "service_healthy"


def test_api_reads_with_the_readonly_role_and_only_migrate_and_ingest_get_the_owner(compose: dict[str, Any]) -> None:
    api_env = environment(services(compose)["api"])
    migrate_env = environment(services(compose)["migrate"])
    assert "DB_READONLY_USER" in api_env
    assert "DB_READONLY_PASSWORD" in api_env
    assert "DB_READONLY_PASSWORD" in api_env["DATABASE_URL"]
    assert "@timescaledb:5432/" in api_env["DATABASE_URL"]
    assert "redis:6379" in api_env["REDIS_URL"]
    assert not any("OBSERVATORY_OWNER_PASSWORD" in value for value in api_env.values())
    assert "OBSERVATORY_OWNER_PASSWORD" in migrate_env["DATABASE_URL"]
    owners = {
        name
        for name, service in services(compose).items()
        if any("OBSERVATORY_OWNER_PASSWORD" in value for value in environment(service).values())
    }
    assert owners == {"timescaledb", "migrate", "ingest"}


def host_ports(service: dict[str, Any]) -> dict[str, str]:
    """Container port -> published host port (without the host IP) of a service."""
    published = {}
    for mapping in service.get("ports") or []:
        host, _, container = str(mapping).rpartition(":")
        published[container] = host.rsplit(":", 1)[-1]
    return published


def test_ingest_receives_otlp_on_the_standard_ports_with_write_credentials(compose: dict[str, Any]) -> None:
    ingest, api = services(compose)["ingest"], services(compose)["api"]
    env = environment(ingest)
    assert ingest["build"] == api["build"] and ingest["image"] == api["image"], "ingest runs the production image"
    assert env["INGEST_ENABLED"] == "true"
    assert "OBSERVATORY_OWNER_PASSWORD" in env["DATABASE_URL"] and "@timescaledb:5432/" in env["DATABASE_URL"]
    # The read engine (API keys) keeps the read-only role; Redis is shared with api (one key cache, one budget).
    assert "DB_READONLY_PASSWORD" in env and env["REDIS_URL"] == environment(api)["REDIS_URL"]
    grpc_port = env["INGEST_GRPC_PORT"]
    ports = host_ports(ingest)
    assert ports[grpc_port] == "4317", "OTLP/gRPC must be on the host's 4317"
    assert ports["8080"] == "4318", "OTLP/HTTP must be on the host's 4318"
    assert ingest["read_only"] is True and ingest["cap_drop"] == ["ALL"]
    assert "/alive" in " ".join(ingest["healthcheck"]["test"])
    assert ingest["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_no_two_services_publish_the_same_host_port(compose: dict[str, Any]) -> None:
    seen: dict[int, str] = {}
    for name, service in services(compose).items():
        for host in host_ports(service).values():
            first, _, last = host.partition("-")
            for port in range(int(first), int(last or first) + 1):
                assert port not in seen, f"host port {port}: {seen[port]} and {name}"
                seen[port] = name


def test_the_service_traces_itself_to_jaeger_inside_the_network(compose: dict[str, Any]) -> None:
    jaeger = services(compose)["jaeger"]
    endpoint = environment(services(compose)["api"])["TRACING_OTLP_ENDPOINT"]
    assert "http://jaeger:4318" in endpoint
    assert "4318" in host_ports(jaeger) and host_ports(jaeger)["4318"] != "4318"
    assert environment(services(compose)["ingest"])["TRACING_OTLP_ENDPOINT"] == endpoint


def test_migrate_is_a_one_shot_job_after_the_database(compose: dict[str, Any]) -> None:
    migrate = services(compose)["migrate"]
    api = services(compose)["api"]
    assert str(migrate["restart"]) == "no"
    assert migrate["command"][-1] == "migrate"
    assert migrate["depends_on"]["timescaledb"]["condition"] == "service_healthy"
    assert migrate["build"] == api["build"], "migrate must run the production image"


def test_timescaledb_runs_the_role_script_on_init(compose: dict[str, Any]) -> None:
    db = services(compose)["timescaledb"]
    # Deploy what is tested: the version the TimescaleDB pass of .ci/run runs on.
    assert db["image"] == f"timescale/timescaledb:{TESTED_TIMESCALEDB}-pg{TESTED_POSTGRESQL_MAJOR}"
    targets = {target: source for _, source, target in volume_mounts(db)}
    assert targets["/docker-entrypoint-initdb.d/10-roles.sh"] == "./deploy/docker/initdb/10-roles.sh"
    sql_dir = environment(db)["OBSERVATORY_SQL_DIR"]
    assert (ROOT / targets[sql_dir] / "create_readonly_role.sql").is_file()
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])


def test_redis_requires_a_password(compose: dict[str, Any]) -> None:
    redis = services(compose)["redis"]
    command = redis["command"]
    assert command[command.index("--requirepass") + 1].startswith("${REDIS_PASSWORD:?")
    assert "healthcheck" in redis


def test_api_dev_is_only_in_the_dev_profile(compose: dict[str, Any]) -> None:
    dev = services(compose)["api-dev"]
    assert dev["profiles"] == ["dev"]
    assert dev["build"]["dockerfile"].endswith("Dockerfile.dev")
    assert ("bind", "./src", "/app/src") in set(volume_mounts(dev))
    assert "5555:5555" in [str(port) for port in dev["ports"]]
    others = {name for name, service in services(compose).items() if "profiles" in service}
    assert others == {"api-dev"}, "only the dev service may be left out of a plain `docker compose up`"


def test_api_dev_gets_real_secrets_because_it_listens_on_all_addresses(compose: dict[str, Any]) -> None:
    # Development refuses the public placeholders on a non-loopback address (settings/environment_checks.py).
    (stage,) = dockerfile_stages(DOCKERFILE_DEV)
    command = json.loads(values_of(stage, "CMD")[-1])
    assert command[command.index("--host") + 1] == "0.0.0.0"
    env = environment(services(compose)["api-dev"])
    assert env["JWT_SECRET"].startswith("${JWT_SECRET:?") and env["SECRET_KEY"].startswith("${SECRET_KEY:?")


def test_observability_mounts_match_their_configs(compose: dict[str, Any]) -> None:
    prometheus = {target: source for _, source, target in volume_mounts(services(compose)["prometheus"])}
    assert prometheus["/etc/prometheus/prometheus.yml"] == "./deploy/prometheus/prometheus.yml"
    assert prometheus["/etc/prometheus/alerts.yml"] == "./deploy/prometheus/alerts.yml"
    grafana = {source: target for _, source, target in volume_mounts(services(compose)["grafana"])}
    provider_paths = {p["options"]["path"] for p in load_yaml(GRAFANA_PROVIDERS)["providers"]}
    assert grafana["./deploy/grafana/dashboards"] in provider_paths
    assert grafana["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    jaeger = services(compose)["jaeger"]
    assert environment(jaeger)["COLLECTOR_OTLP_ENABLED"] == "true"
    assert any(str(port).endswith(":16686") for port in jaeger["ports"])


def test_every_compose_variable_is_in_env_example() -> None:
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    # `$${X}` / `$$X` are escapes for the container's shell, not compose variables.
    used = set(re.findall(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)", text))
    used |= set(re.findall(r"(?<!\$)\$([A-Za-z_][A-Za-z0-9_]*)", text))
    assert used, "compose.yml uses no variables: the regex is broken"
    missing = used - env_example_variables()
    assert not missing, f"compose.yml uses variables missing from .env.example: {sorted(missing)}"


def test_required_secrets_have_no_defaults() -> None:
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    for secret in (
        "POSTGRES_PASSWORD",
        "OBSERVATORY_OWNER_PASSWORD",
        "DB_READONLY_PASSWORD",
        "REDIS_PASSWORD",
    ):
        uses = re.findall(rf"\$\{{{secret}(:?[?-])", text)
        assert uses, f"{secret} is not used"
        assert set(uses) == {":?"}, f"{secret} must be required (${{{secret}:?...}}), never defaulted"
    for secret in ("JWT_SECRET", "SECRET_KEY", "GRAFANA_ADMIN_PASSWORD"):
        assert f"${{{secret}:?" in text


# ---------------------------------------------------------------------------------------------------
# .env.example and .dockerignore
# ---------------------------------------------------------------------------------------------------


def env_example_variables() -> set[str]:
    return set(re.findall(r"^([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE.read_text(encoding="utf-8"), flags=re.M))


def test_env_example_documents_every_service_variable_with_a_comment() -> None:
    missing = set(SERVICE_ENV_VARS) - env_example_variables()
    assert not missing, f".env.example lacks {sorted(missing)}"
    lines = ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
    for index, line in enumerate(lines):
        if re.match(r"^[A-Z][A-Z0-9_]*=", line):
            assert index > 0, f"no comment above {line!r}"
            assert lines[index - 1].startswith("#"), f"no comment above {line!r}"


def test_env_example_holds_no_usable_secret() -> None:
    values = dict(
        line.split("=", 1) for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines() if re.match(r"^[A-Z]", line)
    )
    for name in ("JWT_SECRET", "SECRET_KEY"):
        # Below the production minimum of 32 characters: the service refuses to start with it.
        assert len(values[name]) < 32, f"{name} placeholder would pass the production check"


def test_dockerignore_keeps_the_build_inputs() -> None:
    patterns = {line.strip() for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines() if line.strip()}
    assert {".venv", ".git"} <= patterns
    assert "*" not in patterns
    assert "**" not in patterns
    for needed in ("pyproject.toml", "README.md", "api-config.yml", "src", "migrations"):
        assert needed not in patterns, f".dockerignore drops {needed}"
        assert f"/{needed}" not in patterns, f".dockerignore drops {needed}"


# ---------------------------------------------------------------------------------------------------
# Dockerfiles
# ---------------------------------------------------------------------------------------------------


def test_dockerfile_is_multi_stage() -> None:
    stages = dockerfile_stages(DOCKERFILE)
    assert len(stages) >= 2
    assert all("slim" in stage[0][1] or "PYTHON_IMAGE" in stage[0][1] for stage in stages)


def test_dockerfile_final_stage_runs_as_uid_1000() -> None:
    final = dockerfile_stages(DOCKERFILE)[-1]
    users = values_of(final, "USER")
    assert users, "the final stage sets no USER: it would run as root"
    user = users[-1].split(":", 1)[0]
    if not user.isdigit():
        runs = " ".join(values_of(final, "RUN"))
        assert re.search(rf"useradd\b[^&;|]*(?:--uid[ =]|-u )1000\b[^&;|]*\b{re.escape(user)}\b", runs), (
            f"USER {user} is not created with uid 1000"
        )
    else:
        assert user == "1000"
    last_user_index = max(i for i, (kw, _) in enumerate(final) if kw == "USER")
    assert not any(kw == "RUN" for kw, _ in final[last_user_index:]), "RUN after USER would run as the app user"


def test_dockerfile_healthcheck_uses_alive_without_curl() -> None:
    final = dockerfile_stages(DOCKERFILE)[-1]
    (healthcheck,) = values_of(final, "HEALTHCHECK")
    assert "/alive" in healthcheck
    assert "urllib" in healthcheck
    assert "curl" not in healthcheck


def test_dockerfile_final_stage_has_no_compilers() -> None:
    final = dockerfile_stages(DOCKERFILE)[-1]
    for run in values_of(final, "RUN"):
        assert not re.search(r"\b(gcc|g\+\+|clang|build-essential)\b", run), run


def test_dockerfile_final_stage_settings() -> None:
    final = dockerfile_stages(DOCKERFILE)[-1]
    env = " ".join(values_of(final, "ENV"))
    assert "PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus" in env
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert values_of(final, "WORKDIR")[-1] == "/app"
    assert any("api-config.yml" in copy for copy in values_of(final, "COPY"))
    assert set(" ".join(values_of(final, "EXPOSE")).split()) == {"8080", "9090"}
    assert json.loads(values_of(final, "CMD")[-1]) == [
        "observatory-api",
        "serve",
        "--host",
        "0.0.0.0",
        "--port",
        "8080",
    ]
    labels = " ".join(values_of(final, "LABEL"))
    assert "org.opencontainers.image.title" in labels
    installs = " ".join(values_of(final, "RUN"))
    assert "--no-index" in installs, "the runtime stage must install only the wheels built before"
    # compose turns tracing on (TRACING_OTLP_ENDPOINT), which refuses to start without the extra.
    assert "observatory-api[otel,sentry]" in installs
    builder_runs = " ".join(values_of(dockerfile_stages(DOCKERFILE)[0], "RUN"))
    assert "extras['otel']" in builder_runs
    assert "extras['sentry']" in builder_runs


def test_dockerfile_dependency_layer_is_built_before_the_source_is_copied() -> None:
    builder = dockerfile_stages(DOCKERFILE)[0]
    steps = [f"{kw} {value}" for kw, value in builder]

    def first(pattern: str) -> int:
        return next(i for i, step in enumerate(steps) if re.search(pattern, step))

    assert first(r"^COPY .*pyproject\.toml") < first(r"^RUN .*pip wheel") < first(r"^COPY .*\bsrc\b")


def test_dockerfile_dev_hot_reloads_the_mounted_source() -> None:
    (stage,) = dockerfile_stages(DOCKERFILE_DEV)
    cmd = json.loads(values_of(stage, "CMD")[-1])
    assert cmd[:2] == ["observatory-api", "serve"]
    assert "--reload" in cmd
    assert cmd[cmd.index("--port") + 1] == "5555"
    runs = " ".join(values_of(stage, "RUN"))
    assert re.search(r"pip install [^&]*-e", runs), "the project must be installed editable"
    assert "[dev]" in runs
    env = " ".join(values_of(stage, "ENV"))
    for setting in (
        "ENVIRONMENT=development",
        "LOG_LEVEL=DEBUG",
        "LOG_FORMAT=console",
        "GRAPHQL_PLAYGROUND=true",
        "GRAPHQL_INTROSPECTION=true",
        "RATE_LIMIT_ENABLED=false",
    ):
        assert setting in env, setting


# ---------------------------------------------------------------------------------------------------
# Prometheus
# ---------------------------------------------------------------------------------------------------


def test_prometheus_scrapes_every_api_replica_through_dns() -> None:
    config = load_yaml(PROMETHEUS_CONFIG)
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "observatory-api"]
    (dns,) = job["dns_sd_configs"]
    assert dns["names"] == ["api", "ingest"]
    assert dns["type"] == "A"
    assert dns["port"] == 9090
    assert job.get("metrics_path", "/metrics") == "/metrics"
    for rule_file in config["rule_files"]:
        assert (PROMETHEUS_CONFIG.parent / rule_file).is_file(), rule_file


def test_every_alert_rule_is_complete() -> None:
    rules = alert_rules()
    assert len(rules) >= 4
    for rule in rules:
        name = rule.get("alert")
        assert name, f"rule without an alert name: {rule}"
        assert rule.get("expr", "").strip(), name
        assert re.fullmatch(r"\d+[smh]", str(rule.get("for", ""))), f"{name}: missing or bad `for`"
        assert rule.get("labels", {}).get("severity") in {"critical", "warning", "info"}, name
        assert rule.get("annotations", {}).get("summary"), name
    assert len({rule["alert"] for rule in rules}) == len(rules), "duplicate alert names"


@pytest.mark.parametrize(
    ("topic", "pattern"),
    [
        (
            "error rate",
            r'http_requests_total\{[^}]*status_class="5xx"[^}]*\}.*/.*http_requests_total.*>\s*0\.05',
        ),
        ("p95 latency", r"histogram_quantile\(\s*0\.95,.*http_request_duration_seconds_bucket.*>\s*1\b"),
        ("rate limiting", r"rate\(rate_limit_exceeded_total\{[^}]*\}\[5m\]\)"),
        ("database pool", r'db_pool_connections\{[^}]*state="overflow"'),
    ],
)
def test_required_alerts_exist(topic: str, pattern: str) -> None:
    expressions = [" ".join(rule["expr"].split()) for rule in alert_rules()]
    assert any(re.search(pattern, expr) for expr in expressions), f"no alert covers {topic}"


def test_metric_name_extraction() -> None:
    expr = (
        "histogram_quantile(0.95, sum by (le, route) (rate(http_request_duration_seconds_bucket"
        '{job="api", route=~"/a(b)[c]"}[$__rate_interval])))'
    )
    assert metric_names(expr) == {"http_request_duration_seconds"}
    assert metric_names("up == 0") == {"up"}
    assert metric_names(
        'max by (instance) (db_pool_connections{state="overflow"}) > 0 and on (instance) other_total'
    ) == {"db_pool_connections", "other_total"}
    assert metric_names("sum(rate(cache_hits_total[5m])) / (sum(rate(cache_misses_total[5m])))") == {
        "cache_hits_total",
        "cache_misses_total",
    }
    assert metric_names("topk(10, rate(db_query_duration_seconds_count[1m] offset 5m))") == {
        "db_query_duration_seconds"
    }


def test_documented_metrics_are_exposed(exposed_metrics: frozenset[str]) -> None:
    missing = DOCUMENTED_METRICS - exposed_metrics
    assert not missing, f"documented but not exposed: {sorted(missing)}"


def test_alerts_use_only_exposed_metrics(exposed_metrics: frozenset[str]) -> None:
    used = set().union(*(metric_names(rule["expr"]) for rule in alert_rules()))
    assert used, "no metric names found in the alert rules"
    unknown = used - exposed_metrics - SCRAPE_METRICS
    assert not unknown, f"alerts use metrics the service does not expose: {sorted(unknown)}"


# ---------------------------------------------------------------------------------------------------
# Grafana
# ---------------------------------------------------------------------------------------------------


def test_grafana_provisioning_parses() -> None:
    assert provisioned_datasource_uid()
    (datasource,) = load_yaml(GRAFANA_DATASOURCES)["datasources"]
    assert datasource["url"] == "http://prometheus:9090"
    providers = load_yaml(GRAFANA_PROVIDERS)["providers"]
    assert providers
    assert all(p["type"] == "file" for p in providers)


def test_api_overview_dashboard_exists() -> None:
    assert (DASHBOARD_DIR / "api-overview.json") in dashboard_files()


@pytest.mark.parametrize("path", dashboard_files(), ids=lambda path: path.name)
def test_dashboard_is_valid(path: Path) -> None:
    dashboard = json.loads(path.read_text(encoding="utf-8"))
    assert dashboard["uid"]
    assert dashboard["title"]
    assert 36 <= dashboard["schemaVersion"] <= 41
    uid = provisioned_datasource_uid()
    panels = list(dashboard_panels(dashboard))
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, f"{panel['title']}: wider than the grid"
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == uid, f"{panel['title']}: unknown datasource"
        assert panel["targets"], f"{panel['title']}: no query"
        for target in panel["targets"]:
            assert target.get("datasource", panel["datasource"])["uid"] == uid
            assert target["expr"].count("(") == target["expr"].count(")"), target["expr"]
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            assert variable["datasource"]["uid"] == uid


@pytest.mark.parametrize("path", dashboard_files(), ids=lambda path: path.name)
def test_dashboard_uses_only_exposed_metrics(path: Path, exposed_metrics: frozenset[str]) -> None:
    dashboard = json.loads(path.read_text(encoding="utf-8"))
    used = set().union(*(metric_names(expr) for expr in dashboard_expressions(dashboard)))
    assert used, "no metric names found in the dashboard"
    unknown = used - exposed_metrics - SCRAPE_METRICS
    assert not unknown, f"{path.name} uses metrics the service does not expose: {sorted(unknown)}"


def test_api_overview_covers_traffic_errors_limits_cache_and_database() -> None:
    dashboard = json.loads((DASHBOARD_DIR / "api-overview.json").read_text(encoding="utf-8"))
    expressions = list(dashboard_expressions(dashboard))
    used = set().union(*(metric_names(expr) for expr in expressions))
    assert {
        "http_requests_total",
        "http_request_duration_seconds",
        "rate_limit_exceeded_total",
        "cache_hits_total",
        "cache_misses_total",
        "db_query_duration_seconds",
        "db_pool_connections",
    } <= used
    latency = [expr for expr in expressions if "http_request_duration_seconds_bucket" in expr]
    quantiles = {q for expr in latency for q in re.findall(r"histogram_quantile\((0\.\d+)", expr)}
    assert {"0.5", "0.95", "0.99"} <= quantiles


def test_the_proxy_balances_the_api_replicas_with_the_tested_settings(compose: dict[str, Any], tmp_path: Path) -> None:
    proxy = services(compose)["proxy"]
    assert host_ports(proxy) == {"8080": "8080"}
    mounts = {str(volume).split(":")[1]: str(volume).split(":")[0] for volume in proxy["volumes"]}
    assert mounts == {
        "/etc/nginx/nginx.conf": "./deploy/nginx/nginx.conf",
        "/etc/nginx/observatory-proxy.conf": "./deploy/nginx/observatory-proxy.conf",
    }
    # The API believes X-Forwarded-For from the proxy's fixed address only.
    address = proxy["networks"]["default"]["ipv4_address"]
    assert environment(services(compose)["api"])["API_TRUSTED_PROXIES"] == f"{address}/32"
    subnet = compose["networks"]["default"]["ipam"]["config"][0]["subnet"]
    assert ipaddress.ip_address(address) in ipaddress.ip_network(subnet)
    config = (ROOT / "deploy" / "nginx" / "nginx.conf").read_text()
    # The same proxy settings the many-instances tests run (tests/e2e/nginx.py includes the file).
    assert "include /etc/nginx/observatory-proxy.conf;" in config
    assert "proxy_pass $api_instances;" in config and "http://api:8080" in config
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        if os.environ.get("CI"):
            pytest.fail("nginx is not installed; CI needs it to check deploy/nginx")
        pytest.skip("nginx is not installed")
    shutil.copy(ROOT / "deploy" / "nginx" / "observatory-proxy.conf", tmp_path)
    local = config.replace("/etc/nginx/observatory-proxy.conf", str(tmp_path / "observatory-proxy.conf"))
    (tmp_path / "nginx.conf").write_text(local)
    checked = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stderr
