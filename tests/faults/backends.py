"""The fault suite's own backends, which it may kill and pause without hurting anyone else's: a Kafka broker on
127.0.0.2:9092 and a Cassandra node on 127.0.0.3:9042 (data, logs and run files under .local/faults, the jars
of .local/jars), and the second Docker engine of deploy/scripts/second-engine.sh (.local/run/docker2.sock).
The shared dev backends (127.0.0.1:9092, 127.0.0.1:9042, /var/run/docker.sock) are never signalled.

Kafka and Cassandra run as `<script> foreground` in a session of their own: the harness owns the process group
(the bash wrapper and the JVM it starts) and kills it whole with -9, or stops only the JVM with SIGSTOP."""

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import docker
from confluent_kafka.admin import AdminClient

ROOT = Path(__file__).resolve().parents[2]
FAULTS_DIR = ROOT / ".local" / "faults"
SCRIPTS = ROOT / "deploy" / "scripts"
KAFKA_ADDR = "127.0.0.2"
CASSANDRA_ADDR = "127.0.0.3"
CASSANDRA_JMX_PORT = 7299  # the shared node's JMX has 7199 on 127.0.0.1
ENGINE_SOCK = ROOT / ".local" / "run" / "docker2.sock"
ENGINE_PIDFILE = ROOT / ".local" / "run" / "docker2.pid"
ENGINE_URL = f"unix://{ENGINE_SOCK}"
ENGINE_EXEC_ROOT = ROOT / ".local" / "run" / "docker2-exec"


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout):
        return True
    return False


def wait_until(probe: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe():
            return
        time.sleep(0.5)
    raise RuntimeError(f"{what} not ready within {timeout}s")


class JvmBackend:
    """Kafka or Cassandra started by its deploy script in the foreground, in a process group of its own."""

    def __init__(
        self,
        name: str,
        script: str,
        address: str,
        port: int,
        ready_timeout: float,
        args: tuple[str, ...] = ("foreground",),
        log_dir: Path = FAULTS_DIR / "logs",
        **env: str,
    ) -> None:
        self.name = name
        self.script = SCRIPTS / script
        self.args = args
        self.address = address
        self.port = port
        self.ready_timeout = ready_timeout
        self.env = os.environ | {
            "FASTLANE_LOCAL_DIR": str(FAULTS_DIR),
            "FASTLANE_JARS_DIR": str(ROOT / ".local" / "jars"),
            "FASTLANE_BIND_ADDR": address,
            **env,
        }
        self.log = log_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if port_open(self.address, self.port):
            raise RuntimeError(f"something already listens on {self.address}:{self.port}; stop it first")
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [str(self.script), *self.args],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def ready(self) -> bool:
        return port_open(self.address, self.port)

    def wait_ready(self) -> None:
        def probe() -> bool:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited; see {self.log}")
            return self.ready()

        wait_until(probe, self.ready_timeout, f"{self.name} on {self.address}:{self.port}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def jvm_pid(self) -> int:
        """The JVM: the child of the script's bash wrapper."""
        assert self.proc is not None
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout.split()
        if not out:
            raise RuntimeError(f"{self.name}: no JVM under wrapper {self.proc.pid}")
        return int(out[0])

    def kill(self) -> None:
        """kill -9 of the whole group: wrapper and JVM, no shutdown of any kind."""
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def restart(self) -> None:
        self.start()

    def pause(self) -> None:
        os.kill(self.jvm_pid(), signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.jvm_pid(), signal.SIGCONT)

    def stop(self) -> None:
        """SIGTERM to the group (the JVM drains), SIGKILL after 60 s."""
        if not self.alive():
            return
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGCONT)
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


class KafkaBackend(JvmBackend):
    def __init__(self) -> None:
        super().__init__("kafka", "kafka.sh", KAFKA_ADDR, 9092, ready_timeout=120)

    @property
    def bootstrap(self) -> str:
        return f"{self.address}:{self.port}"

    def ready(self) -> bool:
        if not port_open(self.address, self.port):
            return False
        try:
            AdminClient({"bootstrap.servers": self.bootstrap}).list_topics(timeout=3)
        except Exception:
            return False
        return True


class CassandraBackend(JvmBackend):
    def __init__(self) -> None:
        super().__init__(
            "cassandra",
            "cassandra.sh",
            CASSANDRA_ADDR,
            9042,
            ready_timeout=240,
            FASTLANE_CASSANDRA_JMX_PORT=str(CASSANDRA_JMX_PORT),
        )


class Engine:
    """The second dockerd (deploy/scripts/second-engine.sh). What kill -9 does to it (seen with dockerd 20.10):
    its containerd, a child it manages, dies with it; the containers' shims and processes go on running while
    it is down, and their output written meanwhile is lost (nobody reads the FIFOs); the restarted dockerd
    (no live-restore) kills the containers it finds still running (exit 137) and keeps them, with the logs
    written before the kill; the engine's in-memory event history starts again empty. The shims of the killed
    containerd stay behind, idle (no container under them), after the restart: `stop` ends them."""

    name = "dockerd"

    def start(self) -> None:
        subprocess.run([str(SCRIPTS / "second-engine.sh"), "start", "fastlane-test:latest"], check=True, timeout=180)

    def pid(self) -> int:
        return int(ENGINE_PIDFILE.read_text().strip())

    def ready(self) -> bool:
        try:
            client = docker.DockerClient(base_url=ENGINE_URL, timeout=3)
            try:
                return bool(client.ping())
            finally:
                client.close()
        except Exception:
            return False

    def alive(self) -> bool:
        try:
            os.kill(self.pid(), 0)
        except (OSError, ValueError):
            return False
        return True

    def wait_ready(self) -> None:
        wait_until(self.ready, 120, "the second dockerd")

    def kill(self) -> None:
        pid = self.pid()
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)

    def restart(self) -> None:
        self.start()

    def pause(self) -> None:
        os.kill(self.pid(), signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.pid(), signal.SIGCONT)

    def stop(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            os.kill(self.pid(), signal.SIGCONT)
        subprocess.run([str(SCRIPTS / "second-engine.sh"), "stop"], check=False, timeout=120)
        if not self.ready():  # the engine is down: shims still pointing at its exec-root are strays of a kill -9
            found = subprocess.run(
                ["pgrep", "-f", f"containerd-shim.*{ENGINE_EXEC_ROOT}"], capture_output=True, text=True
            )
            for pid in found.stdout.split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
