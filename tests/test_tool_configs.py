"""The tools find the experiment configs through one resolver: an explicit folder (--configs, $GAN_COLOR_CONFIGS)
or the configs installed with the package (gan_color.configs), and a missing one is a one-line error naming it."""

from __future__ import annotations

from pathlib import Path

import pytest

from gan_color.tools.configs import ENV_VAR, ConfigNotFoundError, config_files, config_path, configs_dir

ROOT = Path(__file__).resolve().parents[1]


def test_installed_configs_are_the_checkouts_or_a_copy_of_them(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    path = config_path("baselines/regression_cnn_l2_lab.yaml")
    assert path.read_text() == (ROOT / "configs" / "baselines" / "regression_cnn_l2_lab.yaml").read_text()
    names = [p.name for p in config_files("baselines")]
    assert names == sorted(p.name for p in (ROOT / "configs" / "baselines").glob("*.yaml"))


def test_explicit_folder_wins_over_the_environment_and_the_package(tmp_path, monkeypatch):
    (tmp_path / "mine" / "baselines").mkdir(parents=True)
    (tmp_path / "mine" / "baselines" / "x.yaml").write_text("name: x\n")
    (tmp_path / "env").mkdir()
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "env"))
    assert configs_dir() == tmp_path / "env"
    assert config_path("baselines/x.yaml", tmp_path / "mine") == tmp_path / "mine" / "baselines" / "x.yaml"
    assert config_files("baselines", tmp_path / "mine") == [tmp_path / "mine" / "baselines" / "x.yaml"]


def test_a_missing_config_is_one_line_naming_what_was_looked_for(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    with pytest.raises(ConfigNotFoundError) as error:
        config_path("baselines/nope.yaml")
    message = str(error.value)
    assert "\n" not in message and str(tmp_path / "baselines" / "nope.yaml") in message and ENV_VAR in message
    with pytest.raises(ConfigNotFoundError, match="--configs"):
        config_files("baselines", tmp_path / "elsewhere")
    assert isinstance(error.value, FileNotFoundError)  # the commands' existing one-line error path catches it
