"""``hordebot worker``: every start problem an operator can fix is one ``error:`` line, exit 2.

These run the real command (``bots.app.main``) on config files written here; none of them gets as
far as loading torch, except the broken-model case, which proves a model that does not load stops
the start instead of faulting every job.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bots.app import main
from worker_node.config import parse_worker_config
from worker_node.node import loop_settings

KEY_ENV = "HORDEBOT_WORKER_API_KEY"


def write(tmp_path: Path, body: str) -> str:
    path = tmp_path / "hordebot.toml"
    path.write_text(body, encoding="utf-8")
    return str(path)


def model_table(path: Path | str, name: str = "tiny-sd") -> str:
    return f'[[worker.models]]\nname = "{name}"\npath = "{path}"\n'


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["worker", *args])
    return code, capsys.readouterr().err


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline"}')
    return folder


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "a-worker-key")


@pytest.mark.parametrize(
    ("body", "names"),
    [
        ("[worker]\nbogus = 1\n", "worker.bogus"),
        ("[worker]\nmax_threads = 0\n", "worker.max_threads"),
        ("[worker]\nqueue_size = 99\n", "worker.queue_size"),
        ('[worker]\nhorde_url = "ftp://x"\n', "worker.horde_url"),
        ('[worker]\nasset_failure = "ignore"\n', "worker.asset_failure"),
        ('[worker]\n[[worker.models]]\nname = "m"\npath = "m.ckpt"\n', "worker.models.0.path"),
        ("[worker]\n", "worker.models"),
        ("[worker\n", "not valid TOML"),
    ],
)
def test_bad_config_is_one_error_line_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], body: str, names: str
) -> None:
    code, err = run(capsys, "--config", write(tmp_path, body))
    assert code == 2
    assert err.startswith("error: ")
    assert err.count("\n") == 1
    assert names in err


def test_a_missing_config_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(capsys, "--config", str(tmp_path / "nope.toml"))
    assert (code, err.count("\n")) == (2, 1)
    assert "nope.toml not found" in err


def test_a_model_path_that_does_not_exist_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = "[worker]\n" + model_table(tmp_path / "missing")
    code, err = run(capsys, "--config", write(tmp_path, body))
    assert (code, err.count("\n")) == (2, 1)
    assert "worker.models[0].path" in err
    assert "does not exist" in err


def test_the_embedded_horde_placeholder_needs_hordebot_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], model_dir: Path
) -> None:
    body = '[worker]\nhorde_url = "embedded"\n' + model_table(model_dir)
    code, err = run(capsys, "--config", write(tmp_path, body))
    assert (code, err.count("\n")) == (2, 1)
    assert "hordebot run" in err


def test_a_folder_that_is_not_a_model_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty").mkdir()
    code, err = run(
        capsys, "--config", write(tmp_path, "[worker]\n" + model_table(tmp_path / "empty"))
    )
    assert (code, err.count("\n")) == (2, 1)
    assert "not a diffusers folder" in err


def test_without_an_api_key_the_variable_to_set_is_named(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    model_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(KEY_ENV)
    code, err = run(capsys, "--config", write(tmp_path, "[worker]\n" + model_table(model_dir)))
    assert (code, err.count("\n")) == (2, 1)
    assert KEY_ENV in err


def test_a_safety_model_that_is_not_a_folder_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], model_dir: Path
) -> None:
    body = f'[worker]\nsafety_model = "{tmp_path / "nsfw"}"\n' + model_table(model_dir)
    code, err = run(capsys, "--config", write(tmp_path, body))
    assert (code, err.count("\n")) == (2, 1)
    assert "worker.safety_model" in err


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_model_that_does_not_load_stops_the_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], model_dir: Path
) -> None:
    body = '[worker]\nhorde_url = "http://127.0.0.1:9/api"\n' + model_table(model_dir)
    code, err = run(capsys, "--config", write(tmp_path, body))
    assert code == 2
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1
    assert "tiny-sd" in lines[0]
    assert "Traceback" not in err


def test_the_config_becomes_the_pop_the_worker_sends() -> None:
    config = parse_worker_config(
        {
            "name": "my-worker",
            "models": [{"name": "Deliberate", "path": "/m/deliberate.safetensors"}],
            "max_power": 18,
            "max_threads": 2,
            "nsfw": True,
            "blacklist": ["spider"],
            "allow_lora": False,
            "allow_img2img": False,
            "allow_post_processing": True,
        }
    )
    pop = loop_settings(config).pop_input()
    assert pop.name == "my-worker"
    assert pop.models == ["Deliberate"]
    assert pop.max_pixels == 18 * 8 * 64 * 64
    assert pop.threads == 2
    assert (pop.nsfw, pop.allow_lora, pop.allow_img2img) == (True, False, False)
    assert pop.blacklist == ["spider"]
    # the engine has no post-processors: advertising them would be a lie
    assert pop.allow_post_processing is False
    assert pop.bridge_agent.startswith("hordebot-worker:0.")
