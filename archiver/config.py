"""Effective configuration: flag > environment > TOML file > default, with the origin of each value.

`Config` is frozen and passed explicitly to every layer; nothing reads the environment later.
The provider sections and their defaults come from the provider registry (`archiver.providers`),
imported only when a command reads them or the file or environment sets one (`ProviderTable`).
This module stays import-light (no httpx/sqlalchemy, no provider module, tomllib only for a file
with something in it) because every command loads it.
"""

from __future__ import annotations

import math
import os
import re
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from .errors import ConfigError
from .redact import REDACTED, redact, redact_url, register, url_secrets

GIB = 1024**3
MAX_SECONDS = 365 * 24 * 3600.0  # a timeout or interval beyond a year is a typo, not a wish
TAG_FIELDS: frozenset[str] = frozenset(
    {"source", "model", "task_id", "title", "style", "task_title", "track", "tracks"})
TAG_NUMBERS: frozenset[str] = frozenset({"track", "tracks"})  # filled as integers: "{track:02}" works


@dataclass(frozen=True)
class ProviderSettings:
    """One `[providers.NAME]` section as a command uses it (a docstring also spares dataclass a
    signature lookup at import)."""

    name: str
    base_url: str
    token: str | None = field(default=None, repr=False)
    batch_size: int = 50  # ids per batch request; the provider's default comes from the registry
    concurrency: int = 4
    interval: float | None = None  # base poll interval; None = the source's documented one

    def __repr__(self) -> str:  # never show the token, even by accident
        token = REDACTED if self.token else None
        return (
            f"ProviderSettings(name={self.name!r}, base_url={redact_url(self.base_url)!r}, token={token!r}, "
            f"batch_size={self.batch_size}, concurrency={self.concurrency}, interval={self.interval})"
        )


class ProviderTable(Mapping[str, ProviderSettings]):
    """Provider settings built on first read: the registry imports every provider module, which
    the read commands (`show`, `ls`, `search` ...) never need."""

    def __init__(self, build: Callable[[], dict[str, ProviderSettings]]) -> None:
        self._build = build
        self._table: dict[str, ProviderSettings] | None = None

    def _settings(self) -> dict[str, ProviderSettings]:
        if self._table is None:
            self._table = self._build()
        return self._table

    def __getitem__(self, name: str) -> ProviderSettings:
        return self._settings()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._settings())

    def __len__(self) -> int:
        return len(self._settings())

    def __repr__(self) -> str:
        return repr(self._settings())


@dataclass(frozen=True)
class Config:
    """Every setting, resolved once, with where each value came from (`origins`)."""

    library: Path
    db_url: str = field(repr=False)  # may hold a database password
    providers: Mapping[str, ProviderSettings]
    config_file: Path | None = None
    path_template: str | None = None  # None = archiver.paths.DEFAULT_TEMPLATE
    jobs: int = 4
    max_file_size: int = GIB
    id3_version: int = 3
    lyrics_sidecar: bool = False
    folder_cover: bool = True  # cover.<ext> in a task's own folder; only templates that give one (folder_art)
    tag_artist: str | None = None  # None: DEFAULT_ARTIST, and so on
    tag_album: str | None = None
    tag_albumartist: str | None = None
    tag_track: str | None = None
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    retry_budget: int = 100
    max_backoff: float = 3600.0
    lease: float = 60.0  # PostgreSQL fleet: seconds a worker's claim lasts unless renewed (claims.py)
    serve_token: str | None = field(default=None, repr=False)  # required by `serve` off loopback
    origins: Mapping[str, str] = field(default_factory=dict, compare=False)

    def provider(self, name: str) -> ProviderSettings:
        return self.providers[name]

    @property
    def db_path(self) -> Path | None:
        prefix = "sqlite:///"
        if self.db_url.startswith(prefix) and self.db_url != "sqlite:///:memory:":
            return Path(self.db_url[len(prefix):])
        return None

    def redacted(self) -> dict[str, Any]:
        """The effective configuration as plain data, tokens replaced, with origins."""
        out: dict[str, Any] = {}
        for key, spec in TOP_KEYS.items():
            value = _plain(getattr(self, spec.attr))
            if key == "db" and isinstance(value, str):
                value = redact_url(value)
            elif spec.secret and value:
                value = REDACTED
            elif value is None:
                value = _default_text(key)
            out[key] = {"value": value, "from": self.origins.get(key, "default")}
        out["providers"] = {}
        for name, prov in self.providers.items():
            entry: dict[str, Any] = {}
            for key in PROVIDER_KEYS:
                value = getattr(prov, key)
                if key == "token":
                    value = REDACTED if value else None
                elif key == "base_url":
                    value = redact_url(value)
                elif key == "interval" and value is None:
                    value = _documented_interval(name)
                entry[key] = {"value": _plain(value), "from": self.origins.get(f"providers.{name}.{key}", "default")}
            out["providers"][name] = entry
        return out


def _default_text(key: str) -> str | None:
    """What an unset template falls back to, so that `archiver config` shows the value in effect."""
    if key == "path_template":
        from .paths import DEFAULT_TEMPLATE

        return DEFAULT_TEMPLATE
    return {"artist": DEFAULT_ARTIST, "album": DEFAULT_ALBUM, "albumartist": DEFAULT_ALBUMARTIST,
            "track": DEFAULT_TRACK}.get(key)


def _documented_interval(provider: str) -> float | None:
    """The poll interval a provider's sources document (None if they differ: each polls at its own)."""
    from .providers import sources_of

    intervals = {source.interval for source in sources_of(provider)}
    return intervals.pop() if len(intervals) == 1 else None


def _plain(value: Any) -> Any:
    return str(value) if isinstance(value, Path) else value


# What a player shows by default: each generation task is one album (its clips are the takes of
# one song idea), all albums under one album artist, so the collection is not split by model.
DEFAULT_ARTIST = "{model}"
DEFAULT_ALBUM = "{task_title}"
DEFAULT_ALBUMARTIST = "archiver"
DEFAULT_TRACK = "{track}"

SECONDS_HINT = f"seconds, a finite number > 0 and <= {MAX_SECONDS:.0f}"


class _Key:
    """How one setting is read: its Config attribute, type, variable, conversion and checks (a plain
    class: every command defines it, and a dataclass or NamedTuple costs a millisecond more)."""

    __slots__ = ("attr", "check", "convert", "env", "explain", "hint", "kind", "secret")

    def __init__(self, attr: str, kind: type | tuple[type, ...], env: str | None = None,
                 convert: Callable[[Any], Any] | None = None, check: Callable[[Any], bool] | None = None,
                 hint: str = "", explain: Callable[[Any], str | None] | None = None, secret: bool = False) -> None:
        self.attr, self.kind, self.env, self.convert = attr, kind, env, convert
        self.check, self.hint = check, hint
        self.explain = explain  # why a value is invalid, None when valid
        self.secret = secret  # never echoed in an error message


def _positive(value: Any) -> bool:
    return value > 0


def _seconds(value: Any) -> bool:
    """inf and nan pass a plain `> 0` check, and then no timeout or sleep ever ends (or all fail)."""
    return math.isfinite(value) and 0 < value <= MAX_SECONDS


_TOKEN = re.compile(r"[\x21-\x7e]+")


def _token(value: Any) -> bool:
    """What an HTTP header can carry: printable ASCII, no blank, no line break."""
    return value == "" or _TOKEN.fullmatch(value) is not None


def tag_template_problem(template: str) -> str | None:
    """Why a tag template (`artist`, `album`, ...) cannot be filled, or None when it can.

    Only plain `{field}` names from TAG_FIELDS: positional `{0}`, attribute or index access, or a
    nested field would otherwise fail (or leak objects) on every clip, at tagging time.
    """
    import string  # its import compiles a regex: only a tag template in the config needs it

    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        return str(exc)
    for _literal, name, spec, _conversion in parts:
        if name is None:
            continue
        if name not in TAG_FIELDS:
            return f"unknown field {{{name}}} (fields: {', '.join(sorted(TAG_FIELDS))})"
        if spec and ("{" in spec or "}" in spec):
            return f"a nested field in {{{name}:{spec}}}"
    try:
        template.format_map({name: 1 if name in TAG_NUMBERS else "x" for name in TAG_FIELDS})
    except (ValueError, KeyError, IndexError, AttributeError, TypeError) as exc:
        return f"cannot be filled ({exc})"
    return None


def _path_template_problem(template: str) -> str | None:
    from .paths import template_problem  # its rules and sanitizing live there, loaded only when one is set

    return template_problem(template)


def track_template_problem(template: str) -> str | None:
    """A track number must come out as a number (or empty: no track numbers at all)."""
    problem = tag_template_problem(template)
    if problem:
        return problem
    filled = template.format_map({name: 1 if name in TAG_NUMBERS else "x" for name in TAG_FIELDS}).strip()
    if filled and not (filled.isascii() and filled.isdigit()):
        return f"gives {filled!r}, not a number (use {{track}} or {{tracks}})"
    return None


TOP_KEYS: dict[str, _Key] = {
    "library": _Key("library", str, "ARCHIVER_LIBRARY", lambda v: Path(v).expanduser()),
    "db": _Key("db_url", str, "ARCHIVER_DB"),
    "path_template": _Key("path_template", str, "ARCHIVER_PATH_TEMPLATE",
                          explain=_path_template_problem),
    "jobs": _Key("jobs", int, "ARCHIVER_JOBS", check=_positive, hint="a positive integer"),
    "max_file_size": _Key("max_file_size", int, check=_positive, hint="bytes, a positive integer"),
    "id3_version": _Key("id3_version", int, check=lambda v: v in (3, 4), hint="3 or 4"),
    "lyrics_sidecar": _Key("lyrics_sidecar", bool),
    "folder_cover": _Key("folder_cover", bool),
    "artist": _Key("tag_artist", str, explain=tag_template_problem),
    "album": _Key("tag_album", str, explain=tag_template_problem),
    "albumartist": _Key("tag_albumartist", str, explain=tag_template_problem),
    "track": _Key("tag_track", str, explain=track_template_problem),
    "connect_timeout": _Key("connect_timeout", (int, float), check=_seconds, convert=float, hint=SECONDS_HINT),
    "read_timeout": _Key("read_timeout", (int, float), check=_seconds, convert=float, hint=SECONDS_HINT),
    "retry_budget": _Key("retry_budget", int, check=lambda v: v >= 0, hint="an integer >= 0"),
    "max_backoff": _Key("max_backoff", (int, float), check=_seconds, convert=float, hint=SECONDS_HINT),
    "lease": _Key("lease", (int, float), "ARCHIVER_LEASE", check=lambda v: v >= 1, convert=float, hint="seconds, at least 1"),
    "serve_token": _Key("serve_token", str, "ARCHIVER_SERVE_TOKEN", check=_token,
                        hint="printable ASCII without blanks or line breaks", secret=True),
}

PROVIDER_KEYS: dict[str, _Key] = {
    "token": _Key("token", str, check=_token, hint="printable ASCII without blanks or line breaks", secret=True),
    "base_url": _Key("base_url", str, check=lambda v: v.startswith(("http://", "https://")), hint="an http(s) URL"),
    "batch_size": _Key("batch_size", int, check=_positive, hint="a positive integer"),
    "concurrency": _Key("concurrency", int, check=_positive, hint="a positive integer"),
    "interval": _Key("interval", (int, float), check=_seconds, convert=float, hint=SECONDS_HINT),
}


def default_config_path() -> Path:
    """platformdirs' answer; on Linux without XDG_CONFIG_HOME that is ~/.config, known without
    importing platformdirs (which loads tempfile and random: a tenth of an idle cron sync)."""
    if sys.platform == "linux" and not os.environ.get("XDG_CONFIG_HOME") and "ANDROID_DATA" not in os.environ:
        return Path(os.path.expanduser("~/.config")) / "archiver" / "config.toml"
    from platformdirs import user_config_dir

    return Path(user_config_dir("archiver")) / "config.toml"


def default_library() -> Path:
    from platformdirs import user_music_dir

    return Path(user_music_dir()) / "archiver"


def db_url_for(value: str, library: Path) -> str:
    """An SQLAlchemy URL from `--db`: an SQLite or PostgreSQL URL, or else a file path.

    PostgreSQL is reached through psycopg 3 (the `postgres` extra) whatever driver the URL
    names or leaves out; any other database is refused here rather than by a missing driver.
    """
    if "://" in value:
        scheme, _, rest = value.partition("://")
        dialect = scheme.split("+", 1)[0].lower()
        if dialect in ("postgresql", "postgres"):
            return f"postgresql+psycopg://{rest}"
        if dialect != "sqlite":
            raise ConfigError(f"db: unsupported database {redact(scheme)!r}: give a file path, "
                              "sqlite:///FILE or a postgresql+psycopg:// URL")
        return f"{scheme.lower()}://{rest}"
    return f"sqlite:///{Path(value).expanduser().resolve()}"


def _coerce(where: str, key: str, spec: _Key, value: Any) -> Any:
    kinds = spec.kind if isinstance(spec.kind, tuple) else (spec.kind,)
    ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
    if not ok:
        names = " or ".join(k.__name__ for k in kinds)
        shown = f"{type(value).__name__} {_shown(spec, value)}"
        raise ConfigError(f"{where}: {key} must be {spec.hint or names}, got {shown}")
    if spec.check and not spec.check(value):
        raise ConfigError(f"{where}: {key} must be {spec.hint or 'valid'}, got {_shown(spec, value)}")
    if spec.explain and (why := spec.explain(value)):
        raise ConfigError(f"{where}: {key} = {_shown(spec, value)} is not a valid template: {why}")
    return spec.convert(value) if spec.convert else value


def _shown(spec: _Key, value: Any) -> str:
    """A rejected value as an error message may show it: one line, never a secret."""
    return "(value not shown)" if spec.secret else redact(repr(value))


def _from_env(env: Mapping[str, str], name: str, key: str, spec: _Key) -> Any:
    raw = env[name]
    kinds = spec.kind if isinstance(spec.kind, tuple) else (spec.kind,)
    value: Any = raw
    try:
        if int in kinds and float not in kinds:
            value = int(raw)
        elif float in kinds:
            value = float(raw)
        elif bool in kinds:
            value = raw.strip().lower() in ("1", "true", "yes", "on")
    except ValueError:
        hint = spec.hint or "a number"
        raise ConfigError(f"environment {name}: {key} must be {hint}, got {_shown(spec, raw)}") from None
    return _coerce(f"environment {name}", key, spec, value)


def _read_toml(path: Path, explicit: bool) -> dict[str, Any]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        if explicit:
            raise ConfigError(f"{path}: config file not found") from None
        return {}
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from None
    if not data.replace(b"\r\n", b"\n").strip(b" \t\n"):  # an empty document, without the parser
        return {}
    import tomllib

    try:
        parsed = tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    _warn_if_exposed(path, parsed)
    return parsed


def _warn_if_exposed(path: Path, parsed: Mapping[str, Any]) -> None:
    """Tokens in a file others can read deserve a warning (like ssh does for keys)."""
    if os.name != "posix":
        return
    table = parsed.get("providers")
    has_token = isinstance(table, Mapping) and any(isinstance(v, Mapping) and v.get("token") for v in table.values())
    has_token = has_token or bool(parsed.get("serve_token"))
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if has_token and mode & (stat.S_IRGRP | stat.S_IROTH):
        print(
            f"warning: {path} holds API tokens and is readable by other users; run: chmod 600 {path}",
            file=sys.stderr,
        )


def load_config(
    *,
    config_file: str | os.PathLike[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> Config:
    """Build the effective Config. `overrides` are command-line values (None = not given)."""
    env = os.environ if env is None else env
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    origins: dict[str, str] = {}

    if config_file is not None:
        path, explicit, origin = Path(config_file).expanduser(), True, "flag --config"
    elif env.get("ARCHIVER_CONFIG"):
        path, explicit, origin = Path(env["ARCHIVER_CONFIG"]).expanduser(), True, "environment ARCHIVER_CONFIG"
    else:
        path, explicit, origin = default_config_path(), False, "default"
    data = _read_toml(path, explicit)
    file_label = f"file {path}"
    origins["config"] = origin

    values: dict[str, Any] = {}
    for key, value in data.items():
        if key == "providers":
            continue
        if key not in TOP_KEYS:
            raise ConfigError(f"{path}: unknown key {key!r} (known: {', '.join([*TOP_KEYS, 'providers'])})")
        values[key] = _coerce(f"{path}", key, TOP_KEYS[key], value)
        origins[key] = file_label
    for key, spec in TOP_KEYS.items():
        if spec.env and env.get(spec.env):
            values[key] = _from_env(env, spec.env, key, spec)
            origins[key] = f"environment {spec.env}"
        if key in overrides:
            values[key] = _coerce("command line", key, spec, overrides[key])
            origins[key] = "flag"

    table = data.get("providers", {})
    providers: Mapping[str, ProviderSettings]
    if table or not isinstance(table, Mapping) or _sets_a_provider(env):
        providers = _registered(_providers(path, table, env, origins, file_label))
    else:  # defaults only: nothing here can fail, so the registry waits for a command that reads them
        providers = ProviderTable(lambda: _registered(_providers(path, {}, {}, {}, file_label)))

    library = values.pop("library", None) or default_library()
    library = Path(library).expanduser()
    db_value = values.pop("db", None)
    db_url = db_url_for(db_value, library) if db_value else f"sqlite:///{library.resolve() / 'archiver.db'}"
    if not db_value:
        origins["db"] = "default (<library>/archiver.db)"
    kwargs = {TOP_KEYS[k].attr: v for k, v in values.items()}
    register([*url_secrets(db_url), values.get("serve_token")])
    return Config(
        library=library,
        db_url=db_url,
        providers=providers,
        config_file=path if path.exists() else None,
        origins=origins,
        **kwargs,
    )


def _sets_a_provider(env: Mapping[str, str]) -> bool:
    """Whether a variable could be ARCHIVER_<PROVIDER>_<KEY>: judged without the registry's names."""
    ends = tuple(f"_{key.upper()}" for key in PROVIDER_KEYS)
    return any(value and name.startswith("ARCHIVER_") and name.endswith(ends) for name, value in env.items())


def _registered(providers: dict[str, ProviderSettings]) -> dict[str, ProviderSettings]:
    """The tokens, and passwords in base URLs, join the secrets every output is scrubbed of."""
    register([*(p.token for p in providers.values()),
              *(s for p in providers.values() for s in url_secrets(p.base_url))])
    return providers


def _providers(
    path: Path, table: Any, env: Mapping[str, str], origins: dict[str, str], file_label: str
) -> dict[str, ProviderSettings]:
    if not isinstance(table, Mapping):
        raise ConfigError(f"{path}: providers must be a table like [providers.ccapi]")
    from .providers import provider_defaults

    known = provider_defaults()
    for name in table:
        if name not in known:
            raise ConfigError(f"{path}: unknown key 'providers.{name}' (known providers: {', '.join(known)})")
    result: dict[str, ProviderSettings] = {}
    for name, defaults in known.items():
        section = table.get(name, {})
        if not isinstance(section, Mapping):
            raise ConfigError(f"{path}: providers.{name} must be a table")
        fields: dict[str, Any] = {"base_url": defaults.base_url, "batch_size": defaults.batch_size}
        for key, value in section.items():
            full = f"providers.{name}.{key}"
            if key not in PROVIDER_KEYS:
                raise ConfigError(f"{path}: unknown key {full!r} (known: {', '.join(PROVIDER_KEYS)})")
            fields[key] = _coerce(str(path), full, PROVIDER_KEYS[key], value)
            origins[full] = file_label
        for key, spec in PROVIDER_KEYS.items():
            env_name = f"ARCHIVER_{name.upper()}_{key.upper()}"
            if env.get(env_name):
                fields[key] = _from_env(env, env_name, f"providers.{name}.{key}", spec)
                origins[f"providers.{name}.{key}"] = f"environment {env_name}"
        result[name] = ProviderSettings(name=name, **{PROVIDER_KEYS[k].attr: v for k, v in fields.items()})
    return result
