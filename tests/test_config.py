"""Configuration precedence (flag > env > file > default), errors, and token redaction."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from archiver.config import load_config
from archiver.errors import ConfigError

TOKEN = "sk-secret-token-123456789"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    return path


def test_defaults(tmp_path: Path) -> None:
    config = load_config(env={"XDG_CONFIG_HOME": str(tmp_path)})
    assert config.library.name == "archiver"
    assert config.db_url.endswith("/archiver/archiver.db")
    assert {n: p.base_url for n, p in config.providers.items()} == {
        "ccapi": "https://api.ccapi.ai/", "mountsea": "https://api.mountsea.ai/",
        "acedata": "https://api.acedata.cloud/", "aimusicapi": "https://api.aimusicapi.ai/"}
    assert all(p.batch_size == 50 for p in config.providers.values())


def test_precedence_flag_env_file_default(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.toml", f'library = "{tmp_path}/from-file"\njobs = 3\n'
                '[providers.acedata]\ntoken = "file-token"\nbase_url = "http://file.example/"\n')
    env = {"ARCHIVER_LIBRARY": str(tmp_path / "from-env"), "ARCHIVER_ACEDATA_TOKEN": "env-token"}
    config = load_config(config_file=cfg, env=env, overrides={"library": str(tmp_path / "from-flag")})
    assert config.library == tmp_path / "from-flag"
    assert config.origins["library"] == "flag"
    assert config.providers["acedata"].token == "env-token"
    assert config.origins["providers.acedata.token"] == "environment ARCHIVER_ACEDATA_TOKEN"
    assert config.providers["acedata"].base_url == "http://file.example/"
    assert config.origins["providers.acedata.base_url"].startswith("file ")
    assert config.jobs == 3
    config = load_config(config_file=cfg, env=env)
    assert config.library == tmp_path / "from-env"
    config = load_config(config_file=cfg, env={})
    assert config.library == tmp_path / "from-file"
    assert config.providers["acedata"].token == "file-token"


def test_config_env_var_selects_file(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.toml", "jobs = 7\n")
    assert load_config(env={"ARCHIVER_CONFIG": str(cfg)}).jobs == 7


def test_db_path_and_url(tmp_path: Path) -> None:
    config = load_config(env={"ARCHIVER_DB": str(tmp_path / "x.db")})
    assert config.db_url == f"sqlite:///{tmp_path / 'x.db'}"
    config = load_config(env={}, overrides={"db": "sqlite:////tmp/y.db"})
    assert config.db_url == "sqlite:////tmp/y.db"


@pytest.mark.parametrize("text,needle", [
    ("jobs = [", "not valid TOML"),
    ("colour = 1\n", "unknown key 'colour'"),
    ("jobs = 'many'\n", "jobs must be"),
    ("jobs = 0\n", "jobs must be"),
    ("[providers.nope]\ntoken = 'x'\n", "providers.nope"),
    ("[providers.ccapi]\ntokn = 'x'\n", "providers.ccapi.tokn"),
    ("[providers.ccapi]\nbatch_size = true\n", "providers.ccapi.batch_size"),
    ("[providers.ccapi]\nbase_url = 'ftp://x'\n", "providers.ccapi.base_url"),
])
def test_bad_files_name_file_and_key(tmp_path: Path, text: str, needle: str) -> None:
    cfg = write(tmp_path / "bad.toml", text)
    with pytest.raises(ConfigError) as info:
        load_config(config_file=cfg, env={})
    assert str(cfg) in str(info.value) and needle in str(info.value)
    assert info.value.exit_code == 2


def test_missing_explicit_file_is_an_error_default_is_fine(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(config_file=tmp_path / "missing.toml", env={})
    load_config(env={"XDG_CONFIG_HOME": str(tmp_path / "nothing-here")})


def test_bad_env_value(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ARCHIVER_JOBS"):
        load_config(env={"ARCHIVER_JOBS": "lots"})


def test_repr_and_redacted_never_show_token(tmp_path: Path) -> None:
    config = load_config(env={"ARCHIVER_CCAPI_TOKEN": TOKEN})
    assert TOKEN not in repr(config)
    assert TOKEN not in json.dumps(config.redacted())
    assert config.redacted()["providers"]["ccapi"]["token"]["value"] == "<redacted>"


def test_cli_config_command_redacts(run_cli, tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.toml", f'[providers.mountsea]\ntoken = "{TOKEN}"\n')
    result = run_cli("--config", str(cfg), "config", "--format", "json")
    assert result.exit_code == 0, result.output
    assert TOKEN not in result.output
    data = json.loads(result.output)
    assert data["providers"]["mountsea"]["token"]["value"] == "<redacted>"
    assert data["providers"]["mountsea"]["token"]["from"] == f"file {cfg}"


def test_cli_config_shows_the_value_in_effect_for_every_unset_key(run_cli, tmp_path: Path) -> None:
    """An unset template or interval is shown as the default archiver applies, not as a blank."""
    from archiver.paths import DEFAULT_TEMPLATE
    from archiver.providers import sources_of

    cfg = write(tmp_path / "c.toml", "")
    result = run_cli("--config", str(cfg), "config", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    blank = [key for key, entry in data.items() if key != "providers" and entry["value"] in (None, "")]
    blank += [f"{name}.{key}" for name, section in data["providers"].items()
              for key, entry in section.items() if entry["value"] in (None, "")]
    assert sorted(blank) == sorted(["serve_token", *(f"{name}.token" for name in data["providers"])])
    assert data["path_template"] == {"value": DEFAULT_TEMPLATE, "from": "default"}
    for name, section in data["providers"].items():
        assert {section["interval"]["value"]} == {source.interval for source in sources_of(name)}
    table = run_cli("--config", str(cfg), "config").output
    assert f"path_template\t{DEFAULT_TEMPLATE}\tdefault" in table.splitlines()


@pytest.mark.parametrize("template, reason", [("{nosuch}/{title}", "unknown field {nosuch}"),
                                              ("/abs/{title}", "relative to the library"),
                                              ("{title", "cannot be parsed")])
def test_a_bad_path_template_names_where_it_was_set(run_cli, tmp_path: Path, template: str, reason: str) -> None:
    cfg = write(tmp_path / "c.toml", f"path_template = {json.dumps(template)}\n")
    result = run_cli("--config", str(cfg), "sync", "--no-download")
    assert result.exit_code == 2
    assert result.output.startswith(f"error: {cfg}: path_template = ") and reason in result.output, result.output
    env = run_cli("ls", env={"ARCHIVER_PATH_TEMPLATE": template})
    assert env.exit_code == 2 and "environment ARCHIVER_PATH_TEMPLATE: path_template" in env.output


def test_cli_config_error_exit_2(run_cli, tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.toml", "unknown_thing = 1\n")
    result = run_cli("--config", str(cfg), "ls")
    assert result.exit_code == 2
    assert "unknown_thing" in result.output and str(cfg) in result.output
    assert "Traceback" not in result.output


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_world_readable_token_file_warns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[providers.ccapi]\ntoken = "{TOKEN}"\n')
    cfg.chmod(0o644)
    load_config(config_file=cfg, env={})
    err = capsys.readouterr().err
    assert "readable by other users" in err and TOKEN not in err
    cfg.chmod(0o600)
    load_config(config_file=cfg, env={})
    assert capsys.readouterr().err == ""


@pytest.mark.skipif(not os.uname().sysname == "Linux", reason="the shortcut is Linux's")
@pytest.mark.parametrize("xdg", [None, "", "/srv/conf"])
def test_default_config_path_is_platformdirs_answer(tmp_path: Path, xdg: str | None) -> None:
    """Without XDG_CONFIG_HOME the path is known without importing platformdirs, and it is the same."""
    import subprocess
    import sys

    probe = ("import json, sys; from archiver.config import default_config_path; ours = str(default_config_path()); "
             "loaded = 'platformdirs' in sys.modules; from platformdirs import user_config_dir; "
             "print(json.dumps([ours, str(Path(user_config_dir('archiver')) / 'config.toml'), loaded]))")
    env = {k: v for k, v in os.environ.items() if k != "XDG_CONFIG_HOME"} | {"HOME": str(tmp_path)}
    if xdg is not None:
        env["XDG_CONFIG_HOME"] = xdg
    out = subprocess.run([sys.executable, "-c", "from pathlib import Path; " + probe], env=env,
                         capture_output=True, text=True, check=True)
    ours, theirs, loaded = json.loads(out.stdout)
    assert ours == theirs
    assert loaded == bool(xdg)  # only a set XDG_CONFIG_HOME asks platformdirs


@pytest.mark.parametrize("text, env", [
    ("", {}), ("  \r\n\t\n", {}), ("# only a comment\n", {}), ("[providers]\n", {}),
    ("[providers.acedata]\nbatch_size = 7\n", {}), ("", {"ARCHIVER_MOUNTSEA_TOKEN": TOKEN}),
])
def test_provider_modules_load_when_a_provider_is_set_or_read(tmp_path: Path, text: str, env: dict[str, str]) -> None:
    """Read commands never read the provider settings: unless the file or the environment sets one
    (then a mistake stops every command at once), the registry and its modules wait, and the
    settings they give are the registry's defaults either way."""
    import subprocess
    import sys

    cfg = write(tmp_path / "c.toml", text)
    probe = ("import json, sys; from archiver.config import load_config; "
             "config = load_config(config_file=sys.argv[1], env=json.loads(sys.argv[2])); "
             "early = sorted(m for m in sys.modules if m.startswith('archiver.providers') or m == 'tomllib'); "
             "table = {n: [p.base_url, p.batch_size, bool(p.token)] for n, p in config.providers.items()}; "
             "print(json.dumps([early, 'archiver.providers.acedata' in sys.modules, table]))")
    out = subprocess.run([sys.executable, "-c", probe, str(cfg), json.dumps(env)], capture_output=True, text=True,
                         check=True)
    early, loaded, table = json.loads(out.stdout)
    configured = "providers." in text or bool(env)
    assert ("archiver.providers" in early) is configured, early
    assert ("tomllib" in early) is ("#" in text or "[" in text), early  # an empty file needs no parser
    assert loaded  # reading the settings imports the registry
    assert table["acedata"] == ["https://api.acedata.cloud/", 7 if "= 7" in text else 50, False]
    assert table["mountsea"][2] is bool(env) and list(table) == ["ccapi", "mountsea", "acedata", "aimusicapi"]


@pytest.mark.parametrize("text, env, key", [
    ("[providers.ccapy]\ntoken = 'sk-1234567890'\n", {}, "providers.ccapy"),
    ("", {"ARCHIVER_ACEDATA_BATCH_SIZE": "lots"}, "ARCHIVER_ACEDATA_BATCH_SIZE"),
    ("providers = []\n", {}, "providers must be a table"),
])
def test_a_bad_provider_setting_stops_a_command_that_reads_none(run_cli, tmp_path: Path, text: str,
                                                                 env: dict[str, str], key: str) -> None:
    cfg = write(tmp_path / "c.toml", text)
    result = run_cli("--config", str(cfg), "show", "no-such-clip", env=env)
    assert result.exit_code == 2 and key in result.output, result.output
