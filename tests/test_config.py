import pytest

from pipeline.config import Config, config_from_dict, load_config, replace, to_dict
from pipeline.errors import ConfigError


def test_defaults_and_shipped_configs_load():
    assert load_config(None) == Config()
    for name in ("configs/default.yaml", "configs/gpu.yaml"):
        cfg = load_config(name)
        assert isinstance(cfg, Config)


def test_unknown_key_is_an_error_naming_the_key():
    with pytest.raises(ConfigError, match="bogus"):
        config_from_dict({"asr": {"bogus": 1}})
    with pytest.raises(ConfigError, match="nosuchsection"):
        config_from_dict({"nosuchsection": {}})


@pytest.mark.parametrize("section,key,value", [
    ("asr", "beam_size", "five"), ("asr", "beam_size", True), ("tagging", "threshold", "high"),
    ("tagging", "enabled", "yes"), ("exports", "formats", "html"), ("models", "asr", 3),
    ("asr", "speech_regions", "silero"),
])
def test_wrong_types_are_errors(section, key, value):
    with pytest.raises(ConfigError):
        config_from_dict({section: {key: value}})


def test_int_is_accepted_for_float_and_optional_none(tmp_path):
    cfg = config_from_dict({"tagging": {"threshold": 1}, "asr": {"language": None}})
    assert cfg.tagging.threshold == 1.0 and isinstance(cfg.tagging.threshold, float)
    assert cfg.asr.language is None


def test_yaml_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("asr: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    lst = tmp_path / "list.yaml"
    lst.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(lst)


def test_replace_and_to_dict_round_trip():
    cfg = replace(Config(), diarization={"num_speakers": 2})
    assert cfg.diarization.num_speakers == 2
    assert config_from_dict(to_dict(cfg)) == cfg
