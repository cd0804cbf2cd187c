"""The deployment files are accepted by the real tools that will read them.

* deploy/thermostat.service is checked with `systemd-analyze verify`. That command only *warns* about
  an unknown (typo'd) key and still exits 0, so the check fails on any output at all, not just on the
  exit code; a deliberately broken copy shows that the check can fail.
  `verify` also fails when ExecStart's binary does not exist on the checking machine, and
  /opt/thermostat/venv/bin/thermostat exists only on an installed host. So the test verifies a copy, in a
  temporary directory, whose ExecStart binary is rewritten to an executable that exists here
  (sys.executable); every other line is the file as shipped.
* deploy/mosquitto/mosquitto.conf is started with the real mosquitto (test-only changes: a free
  loopback port, a temporary password file made with mosquitto_passwd, the current user), which must
  listen, refuse an anonymous client and a wrong password, and accept the right password.

A missing systemd-analyze skips the unit checks on a workstation but fails them in CI (CI=true);
a missing mosquitto always fails, as in conftest.py. scripts/test.sh installs both.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import find_mosquitto, free_port, wait_port

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "deploy" / "thermostat.service"
MOSQUITTO_CONF = ROOT / "deploy" / "mosquitto" / "mosquitto.conf"
SHIPPED_EXEC = "/opt/thermostat/venv/bin/thermostat"


# --------------------------------------------------------------------------- systemd unit


def systemd_analyze() -> str:
    path = shutil.which("systemd-analyze") or (
        "/usr/bin/systemd-analyze" if Path("/usr/bin/systemd-analyze").exists() else None
    )
    if path is None:
        message = "systemd-analyze is not installed (Debian/Ubuntu package: systemd); scripts/test.sh installs it"
        pytest.fail(message)
    return path


def unit_directives(text: str) -> dict[str, list[str]]:
    """`Section.Key` -> values in file order (systemd allows a key more than once)."""
    out: dict[str, list[str]] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, sep, value = line.partition("=")
        assert sep, f"not a Key=Value line: {raw!r}"
        out.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return out


def checkable_unit(tmp_path: Path, text: str | None = None) -> Path:
    """A copy of the unit whose ExecStart binary exists on this machine (see the module docstring)."""
    text = UNIT.read_text() if text is None else text
    assert text.count(f"ExecStart={SHIPPED_EXEC} ") == 1
    path = tmp_path / "thermostat.service"
    path.write_text(text.replace(f"ExecStart={SHIPPED_EXEC} ", f"ExecStart={sys.executable} "))
    return path


def verify(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [systemd_analyze(), "verify", str(path)], capture_output=True, text=True, timeout=30, cwd=path.parent
    )


def test_unit_verifies_without_any_output(tmp_path: Path) -> None:
    result = verify(checkable_unit(tmp_path))
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_unit_check_catches_a_typo_that_systemd_only_warns_about(tmp_path: Path) -> None:
    broken = UNIT.read_text().replace("\nRestartSec=", "\nRestartSecs=", 1)
    assert "RestartSecs=" in broken
    result = verify(checkable_unit(tmp_path, broken))
    assert "RestartSecs" in result.stdout + result.stderr  # output, even though the exit code may be 0


def test_unit_keeps_its_contract() -> None:
    d = unit_directives(UNIT.read_text())
    s = {k.removeprefix("Service."): v[-1] for k, v in d.items() if k.startswith("Service.")}
    assert s["ExecStart"] == f"{SHIPPED_EXEC} run --config /etc/thermostat/house.yaml"
    assert s["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert s["KillSignal"] == "SIGTERM"
    assert (s["Restart"], s["RestartSec"], s["TimeoutStopSec"]) == ("on-failure", "10", "30")
    assert s["DynamicUser"] == "yes"
    assert (s["StateDirectory"], s["ConfigurationDirectory"]) == ("thermostat", "thermostat")
    assert s["UMask"] == "0077"
    assert s["CapabilityBoundingSet"] == ""
    assert s["RestrictAddressFamilies"] == "AF_INET AF_INET6 AF_UNIX"
    assert d["Service.SystemCallFilter"][0] == "@system-service"
    for key in (
        "NoNewPrivileges",
        "ProtectHome",
        "PrivateTmp",
        "PrivateDevices",
        "ProtectKernelTunables",
        "ProtectKernelModules",
        "ProtectKernelLogs",
        "ProtectControlGroups",
        "ProtectClock",
        "ProtectHostname",
        "RestrictNamespaces",
        "RestrictRealtime",
        "RestrictSUIDSGID",
        "LockPersonality",
        "MemoryDenyWriteExecute",
    ):
        assert s[key] == "yes", key
    assert s["ProtectSystem"] == "strict"
    assert s["SystemCallArchitectures"] == "native"
    assert d["Unit.After"] == ["network-online.target mosquitto.service"]
    assert d["Unit.Wants"] == ["network-online.target"]
    assert d["Install.WantedBy"] == ["multi-user.target"]


def test_unit_starts_without_a_password_file_and_hands_its_copy_to_the_config() -> None:
    """`LoadCredential=ID:PATH` with an absolute PATH fails the start when the file is missing; with a credential
    name instead, systemd searches /etc/credstore/, /run/credstore/, /usr/lib/credstore/ and skips a credential
    found in none of them (systemd.exec(5), LoadCredential=). So a home without an MQTT password runs the unit
    unchanged, and the example configuration reads the copy where systemd puts it."""
    from ruamel.yaml import YAML

    loads = unit_directives(UNIT.read_text())["Service.LoadCredential"]
    assert loads == ["mqtt.pass:thermostat.mqtt.pass"]
    ident, _, source = loads[0].partition(":")
    assert not source.startswith("/") and "/" not in source  # a credential-store name, never a path
    example = YAML(typ="safe").load((ROOT / "deploy" / "house.example.yaml").read_text())
    assert example["mqtt"]["password_file"] == f"/run/credentials/thermostat.service/{ident}"
    guide = (ROOT / "docs" / "getting-started.md").read_text()
    assert f"/etc/credstore/{source}" in guide
    assert "> /etc/thermostat/mqtt.pass" not in guide and "/etc/thermostat/mqtt.pass" not in UNIT.read_text()


def test_example_uses_the_mqtt_user_the_docs_create() -> None:
    from ruamel.yaml import YAML

    example = YAML(typ="safe").load((ROOT / "deploy" / "house.example.yaml").read_text())
    guide = (ROOT / "docs" / "getting-started.md").read_text()
    created = re.findall(r"mosquitto_passwd -c \S+ (\w+)", guide)
    assert created and set(created) == {example["mqtt"]["username"]} == {"thermostat"}
    assert "mqtt.username: thermostat" in (ROOT / "deploy" / "compose.yaml").read_text()


def test_compose_and_the_guide_agree_on_the_password_file_mode() -> None:
    compose = (ROOT / "deploy" / "compose.yaml").read_text()
    guide = (ROOT / "docs" / "getting-started.md").read_text()
    docker_part = guide[guide.index("## Docker Compose"):]
    assert "mode 0400" in compose
    assert "chmod 0400 mqtt.pass" in docker_part and "0600 mqtt.pass" not in docker_part


def test_unit_exposure_score_stays_low(tmp_path: Path) -> None:
    """`systemd-analyze security` rates the sandbox from 0 (locked down) to 10 (unprotected)."""
    binary = systemd_analyze()
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout
    match = re.match(r"systemd (\d+)", version)
    if not match or int(match.group(1)) < 250:
        pytest.skip(f"`systemd-analyze security --offline` needs systemd >= 250, have {version.splitlines()[:1]}")
    unit = checkable_unit(tmp_path)
    result = subprocess.run(
        [binary, "security", "--offline=true", "--no-pager", unit.name],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
    )
    score = re.search(r"Overall exposure level for thermostat\.service: (\d+\.\d+)", result.stdout)
    assert score, result.stdout + result.stderr
    assert float(score.group(1)) <= 2.0, result.stdout


# --------------------------------------------------------------------------- container files
# Docker is not available where the tests run, so these check the files against each other and the repo.


def test_dockerfile_installs_the_package_and_runs_the_service_unprivileged() -> None:
    text = (ROOT / "deploy" / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", text, re.M)
    assert 'ENTRYPOINT ["thermostat"]' in text
    assert 'CMD ["run", "--config", "/config/house.yaml"]' in text
    assert "VOLUME /var/lib/thermostat" in text
    users = re.findall(r"^USER (\S+)$", text, re.M)
    assert users and users[-1] not in ("root", "0"), users
    ignore = (ROOT / "deploy" / "Dockerfile.dockerignore").read_text().split()
    copies = re.findall(r"^COPY (.+) \S+$", text, re.M)
    assert copies
    for line in copies:
        for src in line.split():
            assert (ROOT / src).exists(), src
            assert f"!{src}" in ignore or f"!{src}/" in ignore, f"{src} is excluded from the build context"


def test_compose_file_wires_the_broker_and_the_service() -> None:
    from ruamel.yaml import YAML

    deploy = ROOT / "deploy"
    compose = YAML(typ="safe").load((deploy / "compose.yaml").read_text())
    broker, service = compose["services"]["mosquitto"], compose["services"]["thermostat"]
    assert broker["image"] == "eclipse-mosquitto:2"
    assert "./mosquitto/mosquitto.conf:/mosquitto/config/mosquitto.conf:ro" in broker["volumes"]
    assert any(v.startswith("./mosquitto/passwd:/etc/mosquitto/passwd") for v in broker["volumes"])
    assert (deploy / service["build"]["context"] / service["build"]["dockerfile"]).resolve() == (
        deploy / "Dockerfile"
    ).resolve()
    assert "network_mode" not in service  # the default bridge reaches the miners by IP
    assert service["stop_grace_period"] == "30s"  # same bound as TimeoutStopSec in the unit
    assert any(v.endswith(":/var/lib/thermostat") for v in service["volumes"])


# --------------------------------------------------------------------------- mosquitto example


def _remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _utf8(s: str) -> bytes:
    b = s.encode()
    return struct.pack("!H", len(b)) + b


def connack_code(port: int, username: str | None = None, password: str | None = None) -> int:
    """Send a bare MQTT 3.1.1 CONNECT and return the CONNACK return code (0 accepted, 4/5 refused)."""
    flags = 0x02  # clean session
    payload = _utf8(f"deploy-test-{os.getpid()}")
    if username is not None:
        flags |= 0x80
        payload += _utf8(username)
    if password is not None:
        flags |= 0x40
        payload += _utf8(password)
    variable = _utf8("MQTT") + bytes([4, flags]) + struct.pack("!H", 30)
    body = variable + payload
    with socket.create_connection(("127.0.0.1", port), timeout=3) as sock:
        sock.sendall(b"\x10" + _remaining_length(len(body)) + body)
        reply = b""
        while len(reply) < 4:
            chunk = sock.recv(4 - len(reply))
            if not chunk:
                break
            reply += chunk
    assert len(reply) == 4 and reply[:2] == b"\x20\x02", f"not a CONNACK: {reply!r}"
    return reply[3]


def broker_config_for_test(text: str, port: int, passwd: Path) -> str:
    """The example config with only what a test run must change; each original line must be present."""
    for line in ("listener 1883", "allow_anonymous false", "password_file /etc/mosquitto/passwd", "persistence true"):
        assert re.search(rf"^{re.escape(line)}$", text, re.M), f"{MOSQUITTO_CONF.name} lost: {line}"
    text = re.sub(r"^listener 1883$", f"listener {port} 127.0.0.1", text, flags=re.M)
    text = re.sub(r"^password_file /etc/mosquitto/passwd$", f"password_file {passwd}", text, flags=re.M)
    # Run as whoever runs the tests: as root, mosquitto would otherwise switch to the `mosquitto` user,
    # which cannot read pytest's private temporary directory.
    return text + f"\nuser {pwd.getpwuid(os.geteuid()).pw_name}\n"


@dataclass
class ExampleBroker:
    port: int
    workdir: Path
    proc: subprocess.Popen[bytes]

    def log(self) -> str:
        return (self.workdir / "mosquitto.log").read_text()


@pytest.fixture
def example_broker(tmp_path: Path) -> Iterator[ExampleBroker]:
    binary = find_mosquitto()
    passwd_tool = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    passwd = tmp_path / "passwd"
    subprocess.run(
        [passwd_tool, "-c", "-b", str(passwd), "thermostat", "s3cret"], check=True, timeout=10, capture_output=True
    )
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(broker_config_for_test(MOSQUITTO_CONF.read_text(), port, passwd))
    with (tmp_path / "mosquitto.log").open("wb") as out:
        # cwd: with no persistence_location the database goes to the working directory (compose relies on it)
        proc = subprocess.Popen([binary, "-c", str(conf)], stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path)
    broker = ExampleBroker(port, tmp_path, proc)
    try:
        try:
            wait_port(port)
        except RuntimeError:
            pytest.fail(f"mosquitto did not start with the example config:\n{broker.log()}")
        yield broker
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_example_broker_requires_a_password(example_broker: ExampleBroker) -> None:
    port = example_broker.port
    assert connack_code(port) == 5  # anonymous: not authorised
    assert connack_code(port, "thermostat", "wrong") in (4, 5)  # bad user name or password / not authorised
    assert connack_code(port, "thermostat", "s3cret") == 0


def test_example_broker_persists_into_its_working_directory(example_broker: ExampleBroker) -> None:
    assert connack_code(example_broker.port, "thermostat", "s3cret") == 0
    example_broker.proc.send_signal(signal.SIGTERM)  # a clean stop saves the in-memory database
    assert example_broker.proc.wait(5) == 0, example_broker.log()
    assert (example_broker.workdir / "mosquitto.db").exists(), example_broker.log()
    assert "Error" not in example_broker.log(), example_broker.log()


def test_first_demo_run_shows_install_progress() -> None:
    """scripts/demo.sh: the first install (minutes on a fresh machine) is not silent; later runs may be."""
    script = (ROOT / "scripts" / "demo.sh").read_text()
    assert subprocess.run(["sh", "-n", str(ROOT / "scripts" / "demo.sh")], timeout=10).returncode == 0
    first_run = script[script.index("else\n"):script.index("\nfi\nexec")]
    installs = [line for line in first_run.splitlines() if "pip install" in line]
    assert installs and not [line for line in installs if " -q" in line or ">/dev/null" in line], installs
    assert "echo" in first_run  # says what is happening before pip starts
