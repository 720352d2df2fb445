"""The composition root's settings: every bad value names its variable and exits 78, a chosen
adapter that is not installed names its pip package, and only chosen adapters are imported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from codeexec_server.cli import main
from codeexec_server.container import Container
from codeexec_server.deployment import (
    ALL_ROLES,
    EX_CONFIG,
    ConfigError,
    Deployment,
    MissingAdapter,
)
from codeexec_server.gateways import Gateways, check_deployment
from codeexec_server.settings import ServerSettings

from codeexec.adapters.fake_sandbox import FakeSandbox
from codeexec.adapters.memory_bus import InMemoryEventBus

KAFKA = {"CODEEXEC_BUS": "kafka", "CODEEXEC_KAFKA_BOOTSTRAP": "broker-1:9092,broker-2:9092"}
PG = {"CODEEXEC_STORE": "postgres", "POSTGRES_DBNAME": "cx", "POSTGRES_HOST": "db.internal"}


def test_defaults_are_the_embedded_ones() -> None:
    deployment = Deployment.from_env({})
    assert (deployment.bus, deployment.store, deployment.sandbox) == ("memory", "sqlite", "local")
    assert deployment.data_dir == Path(".codeexec") and deployment.worker_id is None


def test_variables_are_read_and_flags_win_over_them(tmp_path: Path) -> None:
    environ = {**KAFKA, **PG, "CODEEXEC_SANDBOX": "fake", "CODEEXEC_WORKER_ID": "w-7"}
    deployment = Deployment.from_env(environ, data_dir=tmp_path, sandbox=None)
    assert (
        deployment.bus == "kafka"
        and deployment.kafka_bootstrap == KAFKA["CODEEXEC_KAFKA_BOOTSTRAP"]
    )
    assert (deployment.store, deployment.sandbox, deployment.worker_id) == (
        "postgres",
        "fake",
        "w-7",
    )
    assert deployment.data_dir == tmp_path
    assert Deployment.from_env(environ, bus="memory", store="sqlite").bus == "memory"


@pytest.mark.parametrize("module", ["eventsourcing.postgres", "codeexec.adapters.postgres_store"])
def test_a_postgres_module_exported_alone_means_the_postgres_store(module: str) -> None:
    environ = {"PERSISTENCE_MODULE": module}
    assert Deployment.from_env(environ).store == "postgres"
    assert Deployment.from_env({**environ, "CODEEXEC_STORE": "sqlite"}).store == "sqlite"


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"CODEEXEC_BUS": "nats"}, "CODEEXEC_BUS must be one of memory, kafka, not 'nats'"),
        ({"CODEEXEC_STORE": "oracle"}, "CODEEXEC_STORE must be one of"),
        ({"CODEEXEC_SANDBOX": "docker"}, "CODEEXEC_SANDBOX must be one of local, fake, kubernetes"),
        ({"CODEEXEC_BUS": "kafka"}, "CODEEXEC_BUS=kafka needs CODEEXEC_KAFKA_BOOTSTRAP"),
        ({**KAFKA, "CODEEXEC_KAFKA_BOOTSTRAP": "broker-1"}, "CODEEXEC_KAFKA_BOOTSTRAP must be"),
        ({**KAFKA, "CODEEXEC_KAFKA_BOOTSTRAP": "b:99999"}, "CODEEXEC_KAFKA_BOOTSTRAP must be"),
        ({"CODEEXEC_WORKER_ID": "w" * 129}, "CODEEXEC_WORKER_ID must be 1-128 characters"),
    ],
)
def test_a_bad_value_names_its_variable(environ: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named.replace("(", r"\(")):
        Deployment.from_env(environ)


def test_a_bad_value_exits_78_with_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("CODEEXEC_STORE", "oracle")
    assert main(["serve", "--data-dir", str(tmp_path)]) == EX_CONFIG
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "CODEEXEC_STORE must be one of" in err
    monkeypatch.setenv("CODEEXEC_STORE", "postgres")  # without POSTGRES_DBNAME/HOST
    assert main(["role", *ALL_ROLES, "--data-dir", str(tmp_path)]) == EX_CONFIG
    assert "CODEEXEC_STORE=postgres needs POSTGRES_DBNAME and POSTGRES_HOST" in (
        capsys.readouterr().err
    )


def test_a_bad_kafka_setting_fails_before_anything_starts(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in {**KAFKA, **PG, "CODEEXEC_KAFKA_COMPRESSION": "brotli"}.items():
        monkeypatch.setenv(name, value)
    assert main(["role", "worker"]) == EX_CONFIG
    assert "CODEEXEC_KAFKA_COMPRESSION: 'brotli' is not one of" in capsys.readouterr().err


def test_a_missing_kafka_adapter_names_its_package_and_exits_78(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "codeexec_kafka", None)  # as if not installed
    deployment = Deployment(bus="kafka", kafka_bootstrap="broker:9092", store="postgres")
    with pytest.raises(MissingAdapter, match="pip install codeexec-kafka"):
        deployment.check_adapters()
    for name, value in {**KAFKA, **PG}.items():
        monkeypatch.setenv(name, value)
    assert main(["role", "worker"]) == EX_CONFIG
    assert capsys.readouterr().err == (
        "codeexec: CODEEXEC_BUS=kafka needs the codeexec-kafka package, which is not "
        "installed: pip install codeexec-kafka\n"
    )


@pytest.mark.parametrize(
    ("environ", "package"),
    [
        ({"CODEEXEC_STORE": "mongo"}, "codeexec-mongo"),
        ({"CODEEXEC_SANDBOX": "kubernetes"}, "codeexec-kubernetes"),
    ],
)
def test_adapters_not_installed_fail_cleanly_naming_their_package(
    environ: dict[str, str], package: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, package.replace("-", "_"), None)  # as if not installed
    deployment = Deployment.from_env({**environ, "CODEEXEC_DATA_DIR": str(tmp_path)})
    with pytest.raises(MissingAdapter, match=f"needs the {package} package.*pip install {package}"):
        check_deployment(deployment)


def test_roles_in_separate_processes_need_a_shared_bus_and_store() -> None:
    some = frozenset({"worker"})
    with pytest.raises(ConfigError, match="CODEEXEC_BUS=memory reaches only this process"):
        Deployment(bus="memory", store="postgres").check_split(some)
    with pytest.raises(ConfigError, match="no roles \\(the API only\\)"):
        Deployment(bus="memory", store="postgres").check_split(frozenset())
    kafka_sqlite = Deployment(bus="kafka", kafka_bootstrap="b:9092", store="sqlite")
    with pytest.raises(ConfigError, match="CODEEXEC_STORE=sqlite keeps the events in this"):
        kafka_sqlite.check_split(some)
    Deployment(bus="memory", store="sqlite").check_split(frozenset(ALL_ROLES))  # serve
    Deployment(bus="kafka", kafka_bootstrap="b:9092", store="postgres").check_split(some)


def test_unknown_role_names_exit_2_naming_the_valid_ones(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["role", "worker", "janitor"]) == 2
    assert capsys.readouterr().err == (
        "codeexec: unknown role janitor; the roles are "
        "coordinator, saga, worker, projections, relay, dead-letters, replay\n"
    )


def test_the_selectors_give_each_port_its_chosen_adapter(tmp_path: Path) -> None:
    gateways = Gateways(deployment=Deployment(sandbox="fake", store="memory", data_dir=tmp_path))
    assert isinstance(gateways.bus(), InMemoryEventBus)
    assert isinstance(gateways.sandbox(), FakeSandbox)
    assert gateways.read_model() is None  # the runtime folds its own: nothing is shared
    assert gateways.store().kind == "memory"


def test_an_adapter_is_imported_only_when_chosen(tmp_path: Path) -> None:
    """In a fresh interpreter: starting and stopping a memory-bus server never imports
    codeexec_kafka, nor opens the Resources of unchosen adapters; choosing Kafka imports it."""
    probe = f"""
import asyncio, sys
from pathlib import Path
from dependency_injector import providers
from codeexec_server.container import Container, provided, shutdown
from codeexec_server.deployment import Deployment
from codeexec_server.settings import ServerSettings
settings = ServerSettings(data_dir=Path({str(tmp_path)!r}), sandbox="fake")
async def start_and_stop():  # what a server's lifespan does
    memory = Deployment(sandbox="fake", data_dir=settings.data_dir)
    container = Container(settings=settings, deployment=memory)
    await provided(container.keystore())
    await provided(container.runtime())
    ports = container.gateways
    opened = sorted(
        name
        for selector in (ports.bus, ports.read_model)
        for name, provider in selector.providers.items()
        if isinstance(provider, providers.Resource) and provider.initialized
    )
    await shutdown(container)
    return opened
opened = asyncio.run(start_and_stop())
print("codeexec_kafka" in sys.modules, opened)
kafka = Deployment(bus="kafka", kafka_bootstrap="127.0.0.1:1", sandbox="fake",
                   store="postgres", data_dir=settings.data_dir)
from codeexec_server.gateways import kafka_settings
print(type(kafka_settings(kafka)).__name__, "codeexec_kafka" in sys.modules)
"""
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    lines = done.stdout.splitlines()
    # No Resource of an unchosen adapter was opened either (a Kafka bus, a shared read model).
    assert lines[0] == "False []", lines
    assert lines[1:] == ["KafkaSettings True"]


def test_the_container_reads_the_deployment_from_the_server_settings(tmp_path: Path) -> None:
    container = Container(settings=ServerSettings(data_dir=tmp_path, sandbox="fake"))
    deployment = container.deployment()
    assert (deployment.sandbox, deployment.data_dir) == ("fake", tmp_path)
    assert container.roles() == frozenset(ALL_ROLES)
