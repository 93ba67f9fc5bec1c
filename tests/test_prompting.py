import hashlib
from pathlib import Path

import pytest

from audioprobe.schema import ProbeItem
from tasks.tiers import tier_methods
from audioprobe.settings import PROMPTS_DIR, REPO_ROOT
from tasks import prompting
from tasks.prompting import PromptError, render

PAPER = REPO_ROOT.parent / "shared" / "paper.txt"


def note(**kw) -> ProbeItem:
    base = {
        "id": "nsynth:guitar_acoustic_010-060-100",
        "tier": "notes",
        "label": "guitar_acoustic",
        "dataset": "nsynth",
        "note_id": "guitar_acoustic_010-060-100",
        "pitch": 60,
        "note_name": "C4",
        "velocity": 100,
        "amplitude": 100 / 127,
        "instrument_family": "guitar",
        "instrument_source": "acoustic",
        "qualities": ["bright"],
        "quality_descriptions": ["A large amount of high frequency content"],
    }
    return ProbeItem(**base | kw)


def env(**kw) -> ProbeItem:
    base = {
        "id": "fsd50k:Alarm",
        "tier": "environmental",
        "label": "Alarm",
        "dataset": "fsd50k",
        "display_name": "Alarm",
        "description": "A loud sound or signal used to warn of danger or to wake someone, such as a fire "
        "alarm or burglar alarm.",
    }
    return ProbeItem(**base | kw)


def word(**kw) -> ProbeItem:
    base = {
        "id": "speech:yes",
        "tier": "speech",
        "label": "yes",
        "dataset": "speech_commands",
        "description": "Y EH1 S: a palatal glide, a stressed open-mid front vowel, a voiceless alveolar fricative",
    }
    return ProbeItem(**base | kw)


@pytest.mark.parametrize("tier,method", [(t, m) for t, ms in tier_methods().items() for m in ms])
def test_every_tier_and_method_has_a_template(tier, method):
    assert (PROMPTS_DIR / f"{tier}.{method}.txt").is_file()


@pytest.mark.skipif(not PAPER.exists(), reason="shared/paper.txt is not beside the repo")
def test_templates_are_the_papers_text():
    paper = PAPER.read_text()
    for name in ("notes.paper.txt", "environmental.detailed.txt", "speech.paper.txt"):
        text = (PROMPTS_DIR / name).read_text().rstrip("\n")
        assert text.replace("{sound_id}", "\\{sound_id\\}") in paper, name
    # "+ Description" is the detailed prompt with the description appended to each input placeholder.
    detailed = (PROMPTS_DIR / "environmental.detailed.txt").read_text()
    assert (PROMPTS_DIR / "environmental.detailed_description.txt").read_text() == detailed.replace(
        "{input}", "{input} - {description}"
    )


def test_notes_render_fills_every_field_and_names_the_file():
    p = render(note(), "notes", "paper", contract=False)
    assert "{" not in p.text and "}" not in p.text
    for fragment in (
        "pitch - 60",
        "velocity - 100",
        "note - C4",
        "amplitude - 0.787",
        "instrument - guitar",
        "method of production - acoustic",
        "quality description - A large amount of high",
        "named guitar_acoustic_010-060-100.WAV.",
    ):
        assert fragment in p.text
    assert p.output_name == "guitar_acoustic_010-060-100.WAV"  # the paper's own upper-case extension
    assert p.template == "notes.paper.txt"
    assert p.template_sha256 == hashlib.sha256((PROMPTS_DIR / "notes.paper.txt").read_bytes()).hexdigest()
    assert p.contract_line is None and p.method == "paper"


def test_contract_off_is_the_template_exactly_and_on_only_appends():
    off = render(env(), "environmental", "detailed", contract=False)
    template = (PROMPTS_DIR / "environmental.detailed.txt").read_text()
    assert off.text == template.replace("{input}", "Alarm")
    assert off.output_name is None
    on = render(env(), "environmental", "detailed", contract=True)
    assert on.text.startswith(off.text.rstrip("\n"))
    assert on.contract_line and on.text.rstrip("\n").endswith(on.contract_line)
    assert "44100 Hz" in on.contract_line and "3 seconds" in on.contract_line
    assert on.output_name == "fsd50k_Alarm.wav" and "fsd50k_Alarm.wav" in on.contract_line


def test_contract_is_configurable_and_notes_keep_their_file_name():
    p = render(note(), "notes", "paper", contract=True)
    assert "guitar_acoustic_010-060-100.WAV" in p.contract_line and "16000 Hz" in p.contract_line
    custom = prompting.OutputContract("out.wav", 22050, 1.5)
    q = render(note(), "notes", "paper", contract=True, contract_spec=custom)
    assert q.output_name == "out.wav" and "22050 Hz" in q.contract_line and "1.5 seconds" in q.contract_line


def test_description_method_appends_the_class_description():
    p = render(env(), "environmental", "detailed_description", contract=False)
    assert "for the sound of Alarm - A loud sound or signal used to warn of danger" in p.text
    assert p.text.count("Alarm - A loud sound") == 3


def test_speech_renders_word_and_description():
    p = render(word(), "speech", "paper", contract=False)
    assert "represent the word yes based on the following detailed phonetic description Y EH1 S" in p.text
    assert p.output_name is None


@pytest.mark.parametrize(
    "item,tier,method,missing",
    [
        (note(pitch=None), "notes", "paper", "pitch"),
        (note(instrument_family=None), "notes", "paper", "instrument"),
        (env(description=None), "environmental", "detailed_description", "description"),
        (word(description=""), "speech", "paper", "description"),
    ],
)
def test_a_missing_value_fails_loudly(item, tier, method, missing):
    with pytest.raises(PromptError, match=missing):
        render(item, tier, method, contract=False)


def test_detailed_prompt_does_not_need_a_description():
    assert "Alarm" in render(env(description=None), "environmental", "detailed").text


def test_an_unknown_placeholder_fails_loudly(tmp_path: Path, monkeypatch):
    (tmp_path / "notes.paper.txt").write_text("Make {instrument} at {tempo} bpm\n")
    monkeypatch.setattr(prompting, "PROMPTS_DIR", tmp_path)
    with pytest.raises(PromptError, match="tempo"):
        render(note(), "notes", "paper")


def test_a_stray_brace_fails_loudly(tmp_path: Path, monkeypatch):
    (tmp_path / "notes.paper.txt").write_text("Make {instrument} with {{ care }\n")
    monkeypatch.setattr(prompting, "PROMPTS_DIR", tmp_path)
    with pytest.raises(PromptError, match="brace"):
        render(note(), "notes", "paper")


def test_unknown_method_or_wrong_tier():
    with pytest.raises(PromptError, match="no method"):
        render(note(), "notes", "detailed")
    with pytest.raises(PromptError, match="tier"):
        render(note(), "speech", "paper")


def test_sound_id_is_file_name_safe():
    p = render(note(note_id="../../etc/pass wd;rm -rf"), "notes", "paper")
    assert p.output_name == "etc_pass_wd_rm_-rf.WAV"
    assert "/" not in p.output_name


def test_notes_without_qualities_say_none():
    p = render(note(qualities=[], quality_descriptions=[]), "notes", "paper")
    assert "quality description - none" in p.text
