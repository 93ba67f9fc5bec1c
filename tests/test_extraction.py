"""Code extraction: real recorded answers of the embedded model, then the corner cases built by hand."""

import ast
import json
from pathlib import Path

import pytest

from tasks.generation.extract import extract, fenced_blocks, undefined_names

# single answers with their expected extraction (the repair fixture holds whole conversations)
RECORDED = [p for p in sorted((Path(__file__).parent / "fixtures" / "responses").glob("*.json"))
            if "expected_status" in json.loads(p.read_text())]


def test_there_are_recorded_answers_of_several_shapes():
    statuses = {json.loads(p.read_text())["expected_status"] for p in RECORDED}
    assert len(RECORDED) >= 6 and {"single_block", "no_code"} <= statuses, statuses


@pytest.mark.parametrize("path", RECORDED, ids=lambda p: p.stem)
def test_recorded_answer(path: Path):
    rec = json.loads(path.read_text())
    got = extract(rec["raw_text"])
    assert got.status == rec["expected_status"], got.note
    if got.status in ("single_block", "multiple_blocks", "unfenced", "prose_with_code"):
        assert got.code.strip() and got.code.strip() in rec["raw_text"] or got.status == "multiple_blocks"
        assert "```" not in got.code
        if rec.get("finish_reason") != "length":
            ast.parse(got.code)
    else:
        assert got.code == ""


PROGRAM = "import numpy as np\nfrom scipy.io import wavfile\nx = np.zeros(16000)\nwavfile.write('a.wav', 16000, x)\n"


def test_single_block_with_prose_around():
    got = extract(f"Here you go:\n\n```python\n{PROGRAM}```\n\nThis writes silence.")
    assert (got.status, got.code) == ("single_block", PROGRAM)


def test_py_tag_and_tilde_fence():
    assert extract(f"~~~py\n{PROGRAM}~~~").code == PROGRAM


def test_several_blocks_choose_the_complete_audio_program():
    text = (
        "First install:\n```bash\npip install numpy scipy\n```\nA sketch:\n```python\nimport numpy as np\n```\n"
        f"The program:\n```python\n{PROGRAM}```\nUsage example:\n```python\nprint('done')\n```\n"
    )
    got = extract(text)
    assert got.status == "multiple_blocks" and got.code == PROGRAM
    assert "block 2 of 3" in got.note and "bash" in got.note


def test_several_blocks_prefer_the_later_of_equals():
    v1 = PROGRAM.replace("a.wav", "b.wav")
    got = extract(f"```python\n{PROGRAM}```\nCorrected:\n```python\n{v1}```")
    assert got.code == v1


def test_blocks_that_only_work_together_are_joined():
    text = (
        "```python\nimport numpy as np\nfrom scipy.io import wavfile\n```\nThen:\n"
        "```python\ndef tone():\n    return np.zeros(10)\n```\nFinally:\n"
        "```python\nwavfile.write('x.wav', 16000, tone())\n```"
    )
    got = extract(text)
    assert got.status == "multiple_blocks" and "joined all 3" in got.note
    ast.parse(got.code)
    assert "import numpy" in got.code and "wavfile.write" in got.code


def test_no_block_parses_keeps_the_longest_and_says_so():
    got = extract("```python\ndef f(:\n```\n```python\nfor x in :\n    pass pass\n```")
    assert got.status == "multiple_blocks" and "none parses" in got.note


def test_unclosed_fence_runs_to_the_end():
    got = extract("```python\nimport numpy as np\nx = np.zeros(3)\n")
    assert got.status == "single_block" and got.code == "import numpy as np\nx = np.zeros(3)\n"
    assert fenced_blocks("```python\na = 1\n```\ntext\n```\nb = 2") == [
        ("python", "a = 1\n"),
        ("", "b = 2\n"),
    ]


def test_unfenced_program():
    got = extract(PROGRAM)
    assert (got.status, got.code) == ("unfenced", PROGRAM)


def test_prose_with_code_without_fences():
    text = f"Sure! Below is the program you asked for.\n{PROGRAM}\nRun it with python3 and it writes a.wav."
    got = extract(text)
    assert got.status == "prose_with_code" and got.code == PROGRAM


def test_empty_answers():
    for raw in ("", "   \n\t", None, "<think>hmm, let me see</think>\n"):
        assert extract(raw).status == "empty"


def test_refusals():
    for raw in (
        "I'm sorry, but I can't help with that.",
        "I cannot assist with creating that kind of software.",
        "As an AI language model, I am unable to write that program.",
    ):
        got = extract(raw)
        assert (got.status, got.code) == ("refusal", "")


def test_refusal_wording_with_code_is_still_code():
    assert extract(f"Sorry for the delay! Here it is:\n```python\n{PROGRAM}```").status == "single_block"


def test_plain_prose_is_no_code():
    for raw in ("Sorry", "A bell rings with a bright attack and a long decay.", "Hello world"):
        assert extract(raw).status == "no_code", raw


def test_think_sections_are_dropped():
    got = extract(f"<think>\n```python\nprint('draft')\n```\n</think>\n```python\n{PROGRAM}```")
    assert got.status == "single_block" and got.code == PROGRAM


def test_undefined_names():
    assert undefined_names(PROGRAM) == set()
    assert undefined_names("wavfile.write('a.wav', sr, y)") == {"wavfile", "sr", "y"}
    assert undefined_names("from numpy import *\nx = zeros(3)") == set()


def test_parse_survives_threads_that_collect_garbage_mid_parse():
    """CPython 3.11's AST constructor keeps its recursion depth interpreter-wide: a garbage collection
    during one thread's parse runs finalizers, another thread parses meanwhile, and ast.parse raises
    SystemError (python/cpython#106905; 44 of 2,400 raw parses in a scratch run here). extract.parse serialises them."""
    import ast
    import gc
    import sys
    import threading

    from tasks.generation.extract import parse

    code = "import numpy as np\n" + "".join(f"def f{i}(x):\n    return [np.sin(x * {i}) for _ in range(3)]\n"
                                            for i in range(40))

    class Cyclic:
        def __del__(self):
            sum(range(50))

    def hammer(parse_fn, errors):
        for _ in range(200):
            a, b = Cyclic(), Cyclic()
            a.other, b.other = b, a
            try:
                parse_fn(code)
            except SystemError as exc:
                errors.append(exc)

    def run(parse_fn) -> list:
        errors: list = []
        threads = [threading.Thread(target=hammer, args=(parse_fn, errors)) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return errors

    interval, thresholds = sys.getswitchinterval(), gc.get_threshold()
    sys.setswitchinterval(1e-6)
    gc.set_threshold(50, 5, 5)
    try:
        raw = run(ast.parse) if sys.version_info < (3, 12) else []
        guarded = run(parse)
    finally:
        sys.setswitchinterval(interval)
        gc.set_threshold(*thresholds)
    assert guarded == [], guarded[:1]
    if sys.version_info < (3, 12):
        assert raw, "the race did not show with ast.parse itself: this test no longer shows the guard matters"
