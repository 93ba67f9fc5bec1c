"""docker-compose.yml end to end: the images built offline (deploy/build.py), the stack brought up under
its own project name and ports, the nightly deployment triggered through the Prefect API, its flow run
followed to Completed and its records read back; the stack and its volumes removed whatever happens."""

import json
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.docker, pytest.mark.prefect]

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "audioprobe-test"
API_PORT = int(os.environ.get("AUDIOPROBE_TEST_COMPOSE_PORT", "4425"))
PG_PORT = int(os.environ.get("AUDIOPROBE_TEST_COMPOSE_PG_PORT", "54325"))
API = f"http://127.0.0.1:{API_PORT}/api"
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def api(path: str, body: dict | None = None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(API + path, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"null")


def wait_for(predicate, timeout: float, what: str, logs):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except OSError:  # not answering yet, or a 404 for a deployment not yet registered
            value = None
        if value:
            return value
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{logs()}")


@pytest.fixture
def stack(tmp_path):
    assert shutil.which("docker-compose"), "scripts/setup.sh docker installs Debian's docker-compose"
    from deploy.build import build

    build()
    data = tmp_path / "data"
    data.mkdir()
    env = {
        **os.environ,
        "AUDIOPROBE_COMPOSE_PORT": str(API_PORT),
        "AUDIOPROBE_COMPOSE_PG_PORT": str(PG_PORT),
        "AUDIOPROBE_COMPOSE_DATA": str(data),
        "AUDIOPROBE_COMPOSE_MODEL": "baseline/template",
    }
    compose = ["docker-compose", "-p", PROJECT, "-f", str(ROOT / "docker-compose.yml")]

    def logs() -> str:
        proc = subprocess.run(
            [*compose, "logs", "--no-color", "--tail", "40"],
            env=env,
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
        )
        return proc.stdout[-6000:]

    try:
        up = subprocess.run(
            [*compose, "up", "-d"], env=env, check=False, capture_output=True, text=True, timeout=300
        )
        assert up.returncode == 0, up.stderr[-3000:] + logs()
        yield data, logs
    finally:
        subprocess.run(
            [*compose, "down", "-v", "--remove-orphans", "--timeout", "10"],
            env=env,
            check=False,
            capture_output=True,
            timeout=180,
        )
        # Checked here, after `down`, whatever the test did: nothing of the test project is left.
        for kind in (["ps", "-a"], ["volume", "ls"]):
            left = subprocess.run(
                ["docker", *kind, "-q", "--filter", f"label=com.docker.compose.project={PROJECT}"],
                check=False,
                capture_output=True,
                text=True,
                timeout=30,
            )
            assert left.stdout.strip() == "", f"docker {' '.join(kind)}: the test project's left behind"


def test_compose_stack_runs_the_nightly_deployment(stack):
    data, logs = stack
    assert wait_for(lambda: api("/health"), 120, "the Prefect API of the stack", logs)
    deployment = wait_for(
        lambda: api("/deployments/name/nightly-benchmark/nightly"),
        180,
        "the worker to serve the nightly deployment",
        logs,
    )
    params = {"models": ["baseline/template"], "tiers": ["notes"], "limit": 1}
    started = api(f"/deployments/{deployment['id']}/create_flow_run", {"parameters": params})

    def final():
        run = api(f"/flow_runs/{started['id']}")
        return run if run["state_type"] in FINAL else None

    done = wait_for(final, 240, "the nightly flow run's final state", logs)
    assert done["state_type"] == "COMPLETED", (done["state"], logs())
    assert done["name"].startswith("nightly-"), done["name"]
    run_id = done["name"].removeprefix("nightly-")
    run_dir = data / "runs" / run_id
    outcomes = sorted((run_dir / "outcomes").glob("*.json"))
    assert len(outcomes) == 1, f"one item of one tier: {outcomes}"
    outcome = json.loads(outcomes[0].read_text())
    assert outcome["generation"]["raw_text"], "the baseline answered"
    assert outcome["execution"]["status"] == "ok", outcome["execution"]
    assert outcome["judgements"], "the worker's judges scored the sandbox's audio"
