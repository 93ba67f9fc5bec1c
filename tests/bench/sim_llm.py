"""A simulated hosted model: an OpenAI-compatible server on 127.0.0.1 for the paper-size bench.

    .venv/bin/python -m tests.bench.sim_llm [--port 0] [--latency 2.0] [--jitter 0.5] [--rate-limit 0.05]

POST /v1/chat/completions answers each conversation with a program drawn from a mix (MIXES) by the
hash of (model, messages, seed): the same ask always gets the same kind of answer, so a repeated
request is visible and a rerun is reproducible. Kinds: a correct program (the template baseline's, for
the item the prompt describes), an invented API, a missing module, a runtime error, a timeout (sleeps
past any sandbox limit), a huge output, a refusal, a truncated answer (finish_reason "length").
Hosted behaviour: a latency of `latency` s x (1 +- jitter), and a 429 with Retry-After for the first
ask of a `rate_limit` share of keys; an ask of that key before Retry-After has passed gets another 429
and counts as an early retry. GET /v1/models lists the mixes; GET /stats returns the counts.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MIXES = {
    "sim-strong": {"correct": 70, "invented_api": 7, "missing_module": 5, "runtime_error": 6, "timeout": 1,
                   "huge_output": 2, "refusal": 3, "truncated": 6},
    "sim-weak": {"correct": 25, "invented_api": 20, "missing_module": 15, "runtime_error": 15, "timeout": 2,
                 "huge_output": 5, "refusal": 8, "truncated": 10},
}  # fmt: skip
OUT = "sound.wav"  # environmental and speech prompts leave the file name to the model


def key_of(model: str, body: dict) -> str:
    ask = json.dumps([model, body.get("messages"), body.get("seed")], sort_keys=True)
    return hashlib.sha256(ask.encode()).hexdigest()


def kind_of(model: str, key: str) -> str:
    weights = MIXES[model]
    u = int(key[:12], 16) / 16**12 * sum(weights.values())
    for kind, w in weights.items():
        if u < w:
            return kind
        u -= w
    return "correct"


def item_of(prompt: str):
    """The probe item a tier prompt describes, as far as the template baseline needs it."""
    from audioprobe.schema import ProbeItem

    if m := re.search(r"pitch - (\d+).*?amplitude - ([\d.]+).*?named (\S+?\.WAV)", prompt, re.S):
        item = ProbeItem(id="sim", tier="notes", label="sim", dataset="sim", pitch=int(m[1]), amplitude=float(m[2]))
        return item, m[3]
    if m := re.search(r"represent the word (\S+) based on the following detailed phonetic description (.*)", prompt, re.S):
        return ProbeItem(id="sim", tier="speech", label=m[1], dataset="sim", description=m[2]), OUT
    m = re.search(r"for the sound of (.+?)(?: - |\. Follow)", prompt, re.S)
    return ProbeItem(id="sim", tier="environmental", label=m[1] if m else "sound", dataset="sim"), OUT


def answer(kind: str, prompt: str, key: str) -> tuple[str, str]:
    """(content, finish_reason) of one answer of `kind` to the conversation's first prompt."""
    from tasks.generation.baseline import program_for

    item, out = item_of(prompt)
    code = program_for(item, out)
    pick = int(key[12:16], 16)
    if kind == "invented_api":
        code = ("import numpy as np\ntone = np.audio.tone(440.0, seconds=2.0)\n",
                "from scipy.signal import synthesize_instrument\n")[pick % 2] + code
    elif kind == "missing_module":
        module = ("pydub", "pyttsx3", "synthesizer")[pick % 3]
        code = f"import {module}\n" + code
    elif kind == "runtime_error":
        code = code.replace("import numpy as np\n", "import numpy as np\nstep = 1 / int('0')\n", 1)
    elif kind == "timeout":
        code = "import time\ntime.sleep(3600)  # long past any sandbox limit\n" + code
    elif kind == "huge_output":
        code = "import sys\nfor _ in range(400000):\n    sys.stdout.write('x' * 250 + '\\n')\n" + code
    elif kind == "refusal":
        return "I'm sorry, but I can't help with writing a program that generates this audio.", "stop"
    text = f"Here is the program:\n\n```python\n{code}```\n"
    if kind == "truncated":
        return text[: len(text) // 2], "length"
    return text, "stop"


class Sim:
    def __init__(self, latency: float = 2.0, jitter: float = 0.5, rate_limit: float = 0.05,
                 retry_after: float = 1.0):
        self.latency, self.jitter, self.rate_limit, self.retry_after = latency, jitter, rate_limit, retry_after
        self.lock = threading.Lock()
        self.limited: dict[str, float] = {}  # key -> when its Retry-After ends
        self.answered: dict[str, int] = {}
        self.stats: dict = {"requests": 0, "answered": 0, "rate_limited": 0, "early_retries": 0, "repeated": 0,
                            "models": {m: {"requests": 0, "kinds": {}} for m in MIXES}}

    def complete(self, body: dict) -> tuple[int, dict, dict]:
        """(status, headers, JSON body) for one chat completion request."""
        model = str(body.get("model", "")).removeprefix("openai/")
        if model not in MIXES:
            return 404, {}, {"error": {"message": f"model {model!r} not found", "type": "invalid_request_error"}}
        key = key_of(model, body)
        now = time.monotonic()
        with self.lock:
            self.stats["requests"] += 1
            self.stats["models"][model]["requests"] += 1
            until = self.limited.get(key)
            first = until is None and key not in self.answered
            if (first and int(key[16:24], 16) / 16**8 < self.rate_limit) or (until and now < until):
                if until and now < until:
                    self.stats["early_retries"] += 1
                self.limited[key] = now + self.retry_after
                self.stats["rate_limited"] += 1
                return 429, {"Retry-After": f"{self.retry_after:g}"}, {
                    "error": {"message": "rate limit reached, retry later", "type": "rate_limit_exceeded"}}
        time.sleep(max(0.0, self.latency * (1 + self.jitter * random.Random(key).uniform(-1, 1))))
        messages = body.get("messages") or [{}]
        prompt = next((m.get("content", "") for m in messages if m.get("role") == "user"), "")
        kind = kind_of(model, key)
        content, finish = answer(kind, str(prompt), key)
        with self.lock:
            self.stats["answered"] += 1
            self.answered[key] = self.answered.get(key, 0) + 1
            self.stats["repeated"] += self.answered[key] > 1
            kinds = self.stats["models"][model]["kinds"]
            kinds[kind] = kinds.get(kind, 0) + 1
        usage = {"prompt_tokens": len(str(messages)) // 4, "completion_tokens": len(content) // 4}
        return 200, {}, {
            "id": f"chatcmpl-{key[:24]}", "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish}],
            "usage": usage | {"total_tokens": sum(usage.values())},
        }

    def snapshot(self) -> dict:
        with self.lock:
            return json.loads(json.dumps(self.stats))


def serve(sim: Sim, port: int = 0) -> ThreadingHTTPServer:
    """Started in a daemon thread on 127.0.0.1; `server.server_address[1]` is the port."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # one line per request would drown the bench's output
            pass

        def _send(self, status: int, body: dict, headers: dict | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            for k, v in {"Content-Type": "application/json", **(headers or {})}.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            try:
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the asker is gone (killed mid-request): the answer was made, and is counted

        def do_GET(self) -> None:
            if self.path.rstrip("/") in ("/v1/models", "/models"):
                self._send(200, {"object": "list", "data": [{"id": m, "object": "model"} for m in MIXES]})
            elif self.path == "/stats":
                self._send(200, sim.snapshot())
            else:
                self._send(404, {"error": {"message": f"no route {self.path}"}})

        def do_POST(self) -> None:
            if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
                return self._send(404, {"error": {"message": f"no route {self.path}"}})
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            except json.JSONDecodeError as exc:
                return self._send(400, {"error": {"message": f"bad JSON: {exc}"}})
            status, headers, out = sim.complete(body)
            self._send(status, out, headers)

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--latency", type=float, default=2.0, help="mean seconds per answer")
    ap.add_argument("--jitter", type=float, default=0.5, help="latency x (1 +- jitter), uniform")
    ap.add_argument("--rate-limit", type=float, default=0.05, help="share of asks whose first try gets a 429")
    ap.add_argument("--retry-after", type=float, default=1.0, help="seconds named by Retry-After")
    args = ap.parse_args(argv)
    server = serve(Sim(args.latency, args.jitter, args.rate_limit, args.retry_after), args.port)
    print(json.dumps({"api_base": f"http://127.0.0.1:{server.server_address[1]}/v1"}), flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
