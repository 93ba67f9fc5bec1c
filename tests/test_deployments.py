"""The ways a user runs a benchmark besides `audioprobe run`, end to end against real processes: the
served nightly deployment (triggered through the API, by its printed command in a fresh shell, and by
its own schedule), the retry deployment's form, a process work pool from prefect.yaml, the reports over
http, and runs that must stop before they start (a missing key, an unknown model, a dead api_base).

The models are the template baseline (no LLM) and litellm strings that never reach a provider, so
these tests cost the sandbox and the judges only."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.browser import launch as launch_browser
from tests.fixtures_flows import PREFECT_TEST_PORT, Cli, wait_for
from tests.fixtures_llm import free_port

pytestmark = [pytest.mark.prefect, pytest.mark.docker, pytest.mark.judges, pytest.mark.browser]

REPO = Path(__file__).resolve().parents[1]
BASELINE = ("--model", "baseline/template", "--tier", "notes", "--limit", "2")


@pytest.fixture(scope="module")
def cli(tmp_path_factory, prefect_server) -> Cli:
    env = {
        **os.environ,
        "AUDIOPROBE_DATA_DIR": str(tmp_path_factory.mktemp("deploy-data")),
        "AUDIOPROBE_PREFECT_API_URL": prefect_server,
        "AUDIOPROBE_PREFECT_PORT": str(PREFECT_TEST_PORT),
        "AUDIOPROBE_REPORT_PORT": str(free_port()),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("PREFECT_API_URL", None)
    return Cli(env)


def outcomes_of(run_dir: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((run_dir / "outcomes").glob("*.json"))}


def verdicts(run_dir: Path) -> dict[str, tuple]:
    """What a run measured, item by item: failure, gate and each judge's verdict."""
    return {
        key: (
            o["failure"],
            o["gate"]["ok"] if o["gate"] else None,
            sorted((j["judge"], j["correct"]) for j in o["judgements"]),
        )
        for key, o in outcomes_of(run_dir).items()
    }


def flow_run(cli: Cli, flow_run_id: str) -> dict:
    return cli.api(f"/flow_runs/{flow_run_id}")


def final(cli: Cli, flow_run_id: str, timeout: float = 300) -> dict:
    done = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")
    return wait_for(
        lambda: (r := flow_run(cli, flow_run_id))["state_type"] in done and r,
        timeout,
        f"flow run {flow_run_id} to finish",
    )


def logs_of(cli: Cli, flow_run_ids: list[str]) -> list[str]:
    return [
        entry["message"]
        for entry in cli.api("/logs/filter", {"logs": {"flow_run_id": {"any_": flow_run_ids}}, "limit": 200})
    ]


def children(cli: Cli, parent_id: str) -> list[dict]:
    return cli.api("/flow_runs/filter", {"flow_runs": {"parent_flow_run_id": {"any_": [parent_id]}}})


def new_run_dir(cli: Cli, before: set[Path]) -> Path:
    (run_dir,) = set((cli.data_dir / "runs").glob("*")) - before
    return run_dir


class Served:
    """`audioprobe serve ...` in its own process group, its stderr collected for the printed lines."""

    def __init__(self, cli: Cli, *args: str):
        self.proc = cli.start("serve", *args)
        self.lines: list[str] = []
        threading.Thread(target=lambda: self.lines.extend(self.proc.stderr), daemon=True).start()

    def deployment(self, cli: Cli, name: str) -> dict:
        def served():
            try:
                found = cli.api(f"/deployments/name/{name}")
            except OSError:
                return None
            return (
                found
                if "audioprobe" in (found.get("tags") or []) and not found.get("work_pool_name")
                else None
            )

        return wait_for(served, 120, f"deployment {name} served")

    def stop(self) -> None:
        if self.proc.poll() is None:
            Cli.kill(self.proc)


@pytest.fixture(scope="module")
def served(cli):
    server = Served(cli, *BASELINE, "--cron", "0 2 * * *")
    server.deployment(cli, "nightly-benchmark/nightly")
    server.deployment(cli, "retry/retry")
    wait_for(
        lambda: any("start the nightly run now" in line for line in server.lines), 60, "the trigger line"
    )
    yield server
    server.stop()


def test_deployment_triggered_through_the_api_records_what_the_cli_records(cli, served):
    by_cli = Path(cli.last_json(cli("run", *BASELINE, "--new"))["run_dir"])
    before = set((cli.data_dir / "runs").glob("*"))
    deployment = cli.api("/deployments/name/nightly-benchmark/nightly")
    assert deployment["parameters"] == {"models": ["baseline/template"], "tiers": ["notes"], "limit": 2}

    started = cli.api(f"/deployments/{deployment['id']}/create_flow_run", {})
    done = final(cli, started["id"])
    assert done["state_type"] == "COMPLETED", done["state"]["message"]
    by_deployment = new_run_dir(cli, before)
    assert done["name"] == f"nightly-{by_deployment.name}", "the flow run is named after its run"
    assert verdicts(by_deployment) == verdicts(by_cli), "the deployment measures what the CLI measures"
    assert json.loads((by_deployment / "run.json").read_text())["finished"]
    (benchmark,) = children(cli, started["id"])
    wait_for(
        lambda: any(f"run {by_deployment.name} complete" in m for m in logs_of(cli, [benchmark["id"]])),
        30,
        "the final line in the flow run's Logs tab",
    )


def test_the_printed_trigger_line_works_in_a_fresh_shell(cli, served):
    line = next(line for line in served.lines if "start the nightly run now" in line)
    command = line.split(":", 1)[1].strip()
    before = set((cli.data_dir / "runs").glob("*"))
    fresh = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root")}
    proc = subprocess.run(["bash", "-c", command], env=fresh, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    flow_run_id = re.search(r"UUID: ([0-9a-f-]{36})", proc.stdout).group(1)
    assert final(cli, flow_run_id)["state_type"] == "COMPLETED"
    assert len(outcomes_of(new_run_dir(cli, before))) == 2


def test_retry_from_the_deployment_form_reruns_the_timed_out_programs(cli, served):
    tight = cli.env | {"AUDIOPROBE_LIMITS__TIMEOUT_S": "0.05"}
    proc = audioprobe_run(tight, *BASELINE, "--new")
    run_dir = Path(json.loads(proc.stdout.strip().splitlines()[-1])["run_dir"])
    timed_out = {k for k, o in outcomes_of(run_dir).items() if o["failure"] == "timeout"}
    assert timed_out, "a 0.05 s limit times the programs out"
    deployment = cli.api("/deployments/name/retry/retry")

    refused = cli.api(
        f"/deployments/{deployment['id']}/create_flow_run",
        {"parameters": {"run_id": run_dir.name, "status": ["timeot"]}},
    )
    bad = final(cli, refused["id"])
    assert bad["state_type"] == "FAILED" and "unknown --status 'timeot'" in bad["state"]["message"]
    assert "timeout" in bad["state"]["message"], "the valid names are listed"

    form = {"run_id": run_dir.name, "only": "execution", "status": ["timeout"]}
    started = cli.api(f"/deployments/{deployment['id']}/create_flow_run", {"parameters": form})
    done = final(cli, started["id"])
    assert done["state_type"] == "COMPLETED", done["state"]["message"]
    after = outcomes_of(run_dir)
    assert all(after[k]["failure"] != "timeout" for k in timed_out), "the served limit lets them finish"
    assert len(list((run_dir / "outcomes.retried").glob("*.json"))) == len(timed_out), "replaced records kept"


def test_the_report_link_in_the_ui_opens_over_http(cli, served):
    result = cli.last_json(cli("run", *BASELINE))
    (artifact,) = cli.api(
        "/artifacts/filter",
        {"artifacts": {"key": {"any_": ["benchmark-report"]}}, "sort": "CREATED_DESC", "limit": 1},
    )
    link = re.search(r"\((http://[^)]+)\)", artifact["data"]).group(1)
    base = f"http://127.0.0.1:{cli.env['AUDIOPROBE_REPORT_PORT']}"
    assert link == f"{base}/{result['run_id']}/report/index.html", "an http link, not file://"
    with urllib.request.urlopen(link, timeout=10) as response:  # `audioprobe serve` serves the reports
        assert response.status == 200 and result["run_id"] in response.read().decode()
    for forbidden in ("/", f"/{result['run_id']}/run.json", f"/{result['run_id']}/report/../run.json"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(base + forbidden, timeout=10)
        assert refused.value.code == 404
    summary = cli.api(
        "/artifacts/filter",
        {"artifacts": {"key": {"any_": ["benchmark-summary"]}}, "sort": "CREATED_DESC", "limit": 1},
    )[0]["data"]
    deployment = cli.api("/deployments/name/retry/retry")
    assert f"/deployments/deployment/{deployment['id']}" in summary, "the run's page links to the retry form"


def test_a_schedule_fires_on_its_own(cli, served):
    served.stop()  # one served nightly at a time: this one replaces the cron schedule by a short interval
    before = set((cli.data_dir / "runs").glob("*"))
    every = Served(cli, *BASELINE, "--interval", "15")
    try:
        deployment = every.deployment(cli, "nightly-benchmark/nightly")

        def a_scheduled_run_completed():
            runs = cli.api(
                "/flow_runs/filter",
                {
                    "flow_runs": {
                        "deployment_id": {"any_": [deployment["id"]]},
                        "state": {"type": {"any_": ["COMPLETED"]}},
                    },
                    "sort": "EXPECTED_START_TIME_DESC",
                    "limit": 5,
                },
            )
            return [r for r in runs if r["auto_scheduled"]]

        fired = wait_for(a_scheduled_run_completed, 240, "a scheduled run to complete")
        assert fired[0]["name"].startswith("nightly-20")
        assert set((cli.data_dir / "runs").glob("*")) - before, "the scheduled run recorded a run"
    finally:
        every.stop()


def test_prefect_yaml_deploys_to_a_process_work_pool(cli, tmp_path):
    env = cli.env | {"PREFECT_API_URL": cli.env["AUDIOPROBE_PREFECT_API_URL"]}
    prefect = str(Path(sys.executable).with_name("prefect"))

    def prefect_cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [prefect, *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout
        )
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        return proc

    prefect_cli("work-pool", "create", "audioprobe", "--type", "process", "--overwrite")
    prefect_cli("--no-prompt", "deploy", "--all")
    deployment = cli.api("/deployments/name/nightly-benchmark/nightly")
    assert deployment["work_pool_name"] == "audioprobe" and deployment["parameters"]["limit"] == 2
    assert deployment["pull_steps"][0]["prefect.deployments.steps.set_working_directory"]["directory"] == str(
        REPO
    )
    started = prefect_cli(
        "deployment",
        "run",
        "nightly-benchmark/nightly",
        "--param",
        'models=["baseline/template"]',
        "--param",
        'tiers=["speech"]',
        "--param",
        "limit=1",
    )
    flow_run_id = re.search(r"UUID: ([0-9a-f-]{36})", started.stdout).group(1)
    prefect_cli("worker", "start", "--pool", "audioprobe", "--run-once", timeout=400)
    done = final(cli, flow_run_id)
    assert done["state_type"] == "COMPLETED", done["state"]["message"]
    assert "1 items: ok 1" in done["state"]["message"]
    prefect_cli("deployment", "delete", "nightly-benchmark/nightly")


# --------------------------------------------------------------------------- runs that cannot start


class CountingServer(ThreadingHTTPServer):
    """An OpenAI-compatible address on loopback that counts what reaches it and answers 401."""

    def __init__(self):
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _count(self):
                outer.requests += 1
                self.send_response(401)
                self.end_headers()

            do_GET = do_POST = _count

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


def audioprobe_run(env: dict, *args: str) -> subprocess.CompletedProcess:
    """`audioprobe run ARGS` with an environment of the test's own (a tighter limit, a model's settings)."""
    return subprocess.run([sys.executable, "-m", "audioprobe", "run", *args], env=env, capture_output=True,
                          text=True, timeout=600)


def run_expecting_exit_3(cli: Cli, env: dict, *args: str) -> tuple[subprocess.CompletedProcess, Path]:
    proc = audioprobe_run(env, *args, "--tier", "notes", "--limit", "1", "--new")
    assert proc.returncode == 3, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    return proc, Path(json.loads(proc.stdout.strip().splitlines()[-1])["run_dir"])


def ui_text(url: str) -> str:
    """The text a person sees on a page of the Prefect UI (a Vue app: rendered by headless chromium)."""
    from playwright import sync_api as playwright

    with playwright.sync_playwright() as p:
        browser = launch_browser(p)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(url, wait_until="networkidle")
            page.wait_for_selector("text=prefect.flow_runs", timeout=30_000)
            return page.inner_text("body")
        finally:
            browser.close()


def benchmark_flow_run(cli: Cli, run_id: str) -> dict:
    (found,) = cli.api("/flow_runs/filter", {"flow_runs": {"name": {"any_": [f"benchmark-{run_id}"]}}})
    return found


@pytest.mark.parametrize(
    "model, reason",
    [
        ("openai/gpt-4o", "no API key for 'openai/gpt-4o': set OPENAI_API_KEY"),
        ("gpt4o", "unknown model 'gpt4o': litellm knows no provider for it"),
        ("nosuchprovider/some-model", "unknown model 'nosuchprovider/some-model'"),
    ],
)
def test_a_model_that_cannot_be_asked_stops_the_run_named(cli, model, reason):
    env = {k: v for k, v in cli.env.items() if k != "OPENAI_API_KEY"}
    proc, run_dir = run_expecting_exit_3(cli, env, "--model", model, "--model", "baseline/template")
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"audioprobe: run {run_dir.name} incomplete") and reason in last
    outcomes = outcomes_of(run_dir)
    asked = [o for o in outcomes.values() if o["model"] == model]
    assert asked and all(o["failure"] == "not_attempted" for o in asked), "not attempted, with the reason"
    assert all(reason in o["generation"]["error"] for o in asked)
    others = [o for o in outcomes.values() if o["model"] == "baseline/template"]
    assert others and all(o["failure"] is None for o in others), "the other model carries on"
    benchmark = benchmark_flow_run(cli, run_dir.name)
    assert benchmark["state_type"] == "FAILED" and reason in benchmark["state"]["message"]
    tier_runs = [
        r
        for r in children(cli, benchmark["id"])
        if f"-{model.replace('/', '-')}-" in r["name"] or f"-{model}-" in r["name"]
    ]
    assert tier_runs and all(r["state_type"] == "FAILED" for r in tier_runs)
    wait_for(
        lambda: any(reason in m for m in logs_of(cli, [benchmark["id"]])), 30, "the reason in the Logs tab"
    )
    if (
        model == "openai/gpt-4o"
    ):  # looked at once, as a person would: the flow run's page opens on its Logs tab
        page = ui_text(f"http://127.0.0.1:{PREFECT_TEST_PORT}/runs/flow-run/{benchmark['id']}")
        assert "Failed" in page and "Logs" in page and f"model '{model}' unavailable: {reason}" in page


def test_a_missing_key_and_a_dead_api_base_send_no_request(cli):
    counting = CountingServer()
    dead = free_port()
    models = {
        "openai/keyed": {
            "api_base": counting.api_base,
            "api_key_env": "AUDIOPROBE_TEST_SECRET",
            "max_concurrency": 1,
        },
        "openai/dead": {"api_base": f"http://127.0.0.1:{dead}/v1"},
    }
    env = {k: v for k, v in cli.env.items() if k != "AUDIOPROBE_TEST_SECRET"} | {
        "AUDIOPROBE_MODELS": json.dumps(models)
    }
    try:
        proc, _ = run_expecting_exit_3(cli, env, "--model", "openai/keyed")
        assert "the settings name $AUDIOPROBE_TEST_SECRET, which is not set" in proc.stderr.splitlines()[-1]
        proc, _ = run_expecting_exit_3(cli, env, "--model", "openai/dead")
        assert f"connection refused at http://127.0.0.1:{dead}/v1" in proc.stderr.splitlines()[-1]
        assert counting.requests == 0, "nothing was sent"

        # With a key the provider refuses (401), the first answer trips the model's breaker at once.
        revoked = env | {"AUDIOPROBE_TEST_SECRET": "sk-revoked"}
        proc = audioprobe_run(revoked, "--model", "openai/keyed", "--tier", "notes", "--limit", "2", "--new")
        assert proc.returncode == 3 and "auth" in proc.stderr.splitlines()[-1], proc.stderr[-2000:]
        failures = sorted(o["failure"] for o in outcomes_of(Path(cli.last_json(proc)["run_dir"])).values())
        assert failures == ["llm_error", "not_attempted"], "one refused answer, the other item not attempted"
        assert counting.requests == 2, "the check's GET and one completion, no retries"
    finally:
        counting.shutdown()


def test_a_baselines_only_run_never_calls_an_llm(cli):
    listening = CountingServer()  # where the embedded model would be asked (and its server started)
    env = cli.env | {
        "AUDIOPROBE_LOCAL_PORT": str(listening.server_address[1]),
        "AUDIOPROBE_DESCRIBER_MODEL": "local",
    }
    try:
        proc = audioprobe_run(env, "--model", "baseline/template", "--tier", "environmental", "--method",
                              "detailed_description", "--limit", "1", "--new")
        assert proc.returncode == 0, proc.stderr[-2000:]
        run_dir = Path(cli.last_json(proc)["run_dir"])
        (item,) = json.loads((run_dir / "items-environmental.json").read_text())["items"]
        assert not (item["description_source"] or "").startswith("llm:"), "the ontology's text, no describer"
        assert listening.requests == 0, "no LLM was asked"
        llama = subprocess.run(
            ["pgrep", "-f", f"llama_cpp.server.*--port {listening.server_address[1]}"], capture_output=True
        )
        assert llama.returncode == 1, "no LLM server was started"
    finally:
        listening.shutdown()
