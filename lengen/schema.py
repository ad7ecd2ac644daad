"""The train config's schema: every key's type and range in one declarative place.

Each section of ``conf/config.yaml`` is a dataclass below; each field's ``Annotated`` type
carries the :class:`Rule` its value must obey (and :data:`OPTIONAL` if the key may be absent). :func:`check` walks a
composed config against these dataclasses and raises :class:`~lengen.errors.ConfigError` with
one line naming the key, the bad value and what is allowed, e.g.::

    trainer.max_steps='abc' must be an integer >= 1
    trainer.precision='fp64' is not one of 32-true, bf16-mixed, 16-mixed, ...
    unknown key trainer.foo; valid keys of trainer: accelerator, batch_size, ...

Values are checked as Hydra parsed them: ``1.5`` is not an integer and ``'yes'`` is not a
boolean. Digit-only words (``study=2024``) arrive as integers and are accepted where a name or
path is expected. The ``task`` and ``pe`` sections differ per option: only their ``name`` and the
length keys every task has are checked here; the task and PE constructors check the rest.

Adding a config key = one field here (plus its yaml default).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Annotated, Any, ClassVar, get_args, get_origin, get_type_hints

from omegaconf import DictConfig, ListConfig, OmegaConf

from lengen.errors import ConfigError
from lengen.model.config import ACTIVATIONS, NORMS  # light: no torch

__all__ = ["AnalyzeSchema", "TrainSchema", "check", "check_options", "described_keys", "keys_of"]

MAX_NAME = 100


# -- rules: what one value may be ---------------------------------------------------------------


class Rule:
    """A constraint on one value; ``problem`` is ``None`` when the value obeys it."""

    def describe(self, plural: bool = False) -> str:
        raise NotImplementedError

    def ok(self, value: Any) -> bool:
        raise NotImplementedError

    def problem(self, value: Any) -> str | None:
        return None if self.ok(value) else f"must be {self.describe()}"


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _bounds(lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> str:
    if lo is not None and hi is not None:
        return f"in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
    if lo is not None:
        return f"{'>' if lo_open else '>='} {lo}"
    if hi is not None:
        return f"{'<' if hi_open else '<='} {hi}"
    return ""


@dataclass(frozen=True)
class Int(Rule):
    lo: int | None = None
    hi: int | None = None

    def describe(self, plural: bool = False) -> str:
        noun = "integers" if plural else "an integer"
        return f"{noun} {_bounds(self.lo, self.hi, False, False)}".strip()

    def ok(self, value: Any) -> bool:
        return (
            _is_int(value)
            and (self.lo is None or value >= self.lo)
            and (self.hi is None or value <= self.hi)
        )


@dataclass(frozen=True)
class Float(Rule):
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False

    def describe(self, plural: bool = False) -> str:
        noun = "numbers" if plural else "a number"
        return f"{noun} {_bounds(self.lo, self.hi, self.lo_open, self.hi_open)}".strip()

    def ok(self, value: Any) -> bool:
        if not _is_number(value):
            return False
        if self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo):
            return False
        return not (self.hi is not None and (value >= self.hi if self.hi_open else value > self.hi))


@dataclass(frozen=True)
class Bool(Rule):
    def describe(self, plural: bool = False) -> str:
        return "booleans (true or false)" if plural else "true or false"

    def ok(self, value: Any) -> bool:
        return isinstance(value, bool)


@dataclass(frozen=True)
class Choice(Rule):
    options: tuple[Any, ...]

    def shown(self) -> str:
        return ", ".join(dict.fromkeys(map(str, self.options)))  # 32 and '32' read the same

    def describe(self, plural: bool = False) -> str:
        return f"{'values' if plural else 'one'} of {self.shown()}"

    def ok(self, value: Any) -> bool:
        # ``type`` too: True == 1 and 1.0 == 1 must not pass as the choice 1.
        return isinstance(value, (str, int)) and any(
            type(value) is type(o) and value == o for o in self.options
        )

    def problem(self, value: Any) -> str | None:
        return None if self.ok(value) else f"is not one of {self.shown()}"


def _text(value: Any) -> str | None:
    """A string, or a digit-only word that Hydra read as an integer; ``None`` for anything else."""
    if isinstance(value, str):
        return value
    return str(value) if _is_int(value) else None


def _printable(s: str) -> bool:
    return s.isprintable() and "\t" not in s


@dataclass(frozen=True)
class Text(Rule):
    """One printable line of 1 to ``max_len`` characters (a W&B project, a path)."""

    max_len: int = 200
    noun: tuple[str, str] = ("a string", "strings")
    numbers: bool = True  # accept a digit-only word that Hydra read as an integer (study=2024)

    def describe(self, plural: bool = False) -> str:
        return f"{self.noun[plural]} of 1 to {self.max_len} printable characters"

    def ok(self, value: Any) -> bool:
        s = _text(value) if self.numbers else value if isinstance(value, str) else None
        return s is not None and 0 < len(s) <= self.max_len and _printable(s)


@dataclass(frozen=True)
class Name(Text):
    """One path component (a study, a run id): never climbs out of or nests below its folder."""

    max_len: int = MAX_NAME
    noun: tuple[str, str] = ("a name", "names")

    def describe(self, plural: bool = False) -> str:
        return f"{super().describe(plural)} usable as one folder, without '/' or '\\', not '.' or '..'"

    def ok(self, value: Any) -> bool:
        return super().ok(value) and not any(c in str(value) for c in "/\\") and str(value) not in (".", "..")


PATH = Text(4096, ("a path", "paths"))


@dataclass(frozen=True)
class Nullable(Rule):
    inner: Rule

    def describe(self, plural: bool = False) -> str:
        return f"null or {self.inner.describe(plural)}"

    def ok(self, value: Any) -> bool:
        return value is None or self.inner.ok(value)


@dataclass(frozen=True)
class ListOf(Rule):
    item: Rule
    length: int | None = None  # exact length; otherwise any non-empty list

    def describe(self, plural: bool = False) -> str:
        n = f"{self.length}" if self.length is not None else "1 or more"
        return f"{'lists' if plural else 'a list'} of {n} {self.item.describe(plural=True)}"

    def ok(self, value: Any) -> bool:
        return (
            isinstance(value, list)
            and (len(value) == self.length if self.length is not None else len(value) > 0)
            and all(self.item.ok(v) for v in value)
        )


@dataclass(frozen=True)
class AnyOf(Rule):
    rules: tuple[Rule, ...]
    text: str

    def describe(self, plural: bool = False) -> str:
        return self.text

    def ok(self, value: Any) -> bool:
        return any(r.ok(value) for r in self.rules)


#: Lightning's precisions (not transformer-engine); Hydra reads precision=32 as an integer
PRECISIONS = ("32-true", "bf16-mixed", "16-mixed", "bf16-true", "16-true", "64-true", 32, 16, 64, "32", "16", "bf16",
              "64")
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")
SCHEDULES = ("cosine", "linear", "constant")  # lengen.training.lr_lambda
DEVICES = AnyOf(
    (Int(1), Choice((-1, "auto")), ListOf(Int(0))),
    "an integer >= 1, -1 (all), 'auto' or a list of device indices",
)


# -- sections: which keys exist and what each may hold ------------------------------------------


#: marks a key that may be absent (added with ``+section.key=...``)
OPTIONAL = "optional"


@dataclass(frozen=True)
class Variants:
    """A section whose keys depend on its ``name`` (the logger): one schema per name."""

    by_name: dict[str, type[Section]]


class Section:
    #: extra keys are left to another checker (the task / PE constructors)
    open: ClassVar[bool] = False

    @classmethod
    def cross(cls, v: dict[str, Any], path: str) -> str | None:
        """A problem between keys (each already valid on its own), as a full message."""
        return None


@dataclass
class DataSchema(Section):
    n_train: Annotated[int, Int(1)]
    n_val_per_length: Annotated[int, Int(1)]
    cache_dir: Annotated[str | None, Nullable(PATH)]
    pack_width: Annotated[int, Int(0)]
    bucket_batches: Annotated[int, Int(1)]


@dataclass
class ModelSchema(Section):
    d_model: Annotated[int, Int(1)]
    n_heads: Annotated[int, Int(1)]
    n_layers: Annotated[int, Int(1)]
    d_ff: Annotated[int, Int(1)]
    activation: Annotated[str, Choice(ACTIVATIONS)]
    norm: Annotated[str, Choice(NORMS)]
    bias: Annotated[bool, Bool()]
    dropout: Annotated[float, Float(0, 1, hi_open=True)]
    tie_embeddings: Annotated[bool, Bool()]
    norm_eps: Annotated[float, Float(0, lo_open=True), OPTIONAL]
    bias_block_elements: Annotated[int, Int(1), OPTIONAL]

    @classmethod
    def cross(cls, v: dict[str, Any], path: str) -> str | None:
        if v["d_model"] % v["n_heads"]:
            return (
                f"{path}.d_model={v['d_model']} is not divisible by {path}.n_heads={v['n_heads']}; "
                f"pick n_heads dividing d_model"
            )
        return None


@dataclass
class TrainerSchema(Section):
    accelerator: Annotated[str, Choice(ACCELERATORS)]
    devices: Annotated[Any, DEVICES]
    num_nodes: Annotated[int, Int(1), OPTIONAL]  # absent = 1 (lengen.trainer)
    precision: Annotated[str, Choice(PRECISIONS)]
    max_steps: Annotated[int, Int(1)]
    batch_size: Annotated[int, Int(1)]
    val_every: Annotated[int, Int(1)]
    gradient_clip: Annotated[float, Float(0)]
    lr: Annotated[float, Float(0, lo_open=True)]
    weight_decay: Annotated[float, Float(0)]
    betas: Annotated[list[float], ListOf(Float(0, 1, hi_open=True), length=2)]
    warmup: Annotated[float, Float(0, 1, hi_open=True)]
    schedule: Annotated[str, Choice(SCHEDULES)]
    min_lr_ratio: Annotated[float, Float(0, 1)]
    enable_progress_bar: Annotated[bool, Bool()]
    deterministic: Annotated[bool, Bool()]
    threads: Annotated[int | None, Nullable(Int(1))]
    compile: Annotated[bool, Bool(), OPTIONAL]  # absent = false

    @classmethod
    def cross(cls, v: dict[str, Any], path: str) -> str | None:
        devices = len(v["devices"]) if isinstance(v["devices"], list) else v["devices"]
        if isinstance(devices, int) and devices > 0:  # (-1 / auto: checked once the processes are known)
            world = devices * v.get("num_nodes", 1)
            if v["batch_size"] % world:
                return (f"{path}.batch_size={v['batch_size']} is the global batch (all processes together) and must "
                        f"be divisible by the {world} processes ({path}.devices x {path}.num_nodes)")
        return accelerator_problem(v["accelerator"], path)


@dataclass
class EvalSchema(Section):
    min_len: Annotated[int, Int(1)]
    max_len: Annotated[int, Int(1)]
    lengths: Annotated[list[int] | None, Nullable(ListOf(Int(1)))]
    n_per_length: Annotated[int, Int(1)]
    batch_size: Annotated[int, Int(1)]
    checkpoint: Annotated[str, Choice(("best", "last"))]
    samples: Annotated[int, Int(0)]

    @classmethod
    def cross(cls, v: dict[str, Any], path: str) -> str | None:
        if v["lengths"] is None and v["min_len"] > v["max_len"]:
            return (
                f"empty evaluation range {path}.min_len={v['min_len']} {path}.max_len={v['max_len']}; "
                f"need min_len <= max_len"
            )
        return None


@dataclass
class WandbLoggerSchema(Section):
    name: Annotated[str, Choice(("wandb",))]
    mode: Annotated[str, Choice(("offline", "online", "disabled"))]
    project: Annotated[str, Text()]
    entity: Annotated[str | None, Nullable(Text())]
    group: Annotated[str | None, Nullable(Text())]
    init_timeout: Annotated[float, Float(lo=0, lo_open=True), OPTIONAL]


@dataclass
class PlainLoggerSchema(Section):
    name: Annotated[str, Choice(("csv", "none"))]


#: logger sections differ by ``logger.name``
LOGGERS: dict[str, type[Section]] = {"wandb": WandbLoggerSchema, "csv": PlainLoggerSchema, "none": PlainLoggerSchema}


@dataclass
class TaskSchema(Section):
    open: ClassVar[bool] = True
    name: Annotated[str, Name(noun=("a string", "strings"), numbers=False)]
    train_min: Annotated[int, Int(1), OPTIONAL]
    train_max: Annotated[int, Int(1), OPTIONAL]
    eval_max: Annotated[int, Int(1), OPTIONAL]
    train_lengths: Annotated[list[int] | None, Nullable(ListOf(Int(1))), OPTIONAL]
    eval_lengths: Annotated[list[int] | None, Nullable(ListOf(Int(1))), OPTIONAL]
    # a task's own position ids (position coupling: addition), absent = default
    positions: Annotated[str, Choice(("default", "coupled")), OPTIONAL]
    positions_max: Annotated[int | None, Nullable(Int(2)), OPTIONAL]

    @classmethod
    def cross(cls, v: dict[str, Any], path: str) -> str | None:
        lo, hi = v.get("train_min"), v.get("train_max")
        if not v.get("train_lengths") and lo is not None and hi is not None and lo > hi:
            return f"empty training range {path}.train_min={lo} {path}.train_max={hi}; need 1 <= train_min <= train_max"
        return None


@dataclass
class PeSchema(Section):
    open: ClassVar[bool] = True
    name: Annotated[str, Name(noun=("a string", "strings"), numbers=False)]
    # every PE: randomized positions (lengen.model.random_positions), absent = off
    randomize: Annotated[bool, Bool(), OPTIONAL]
    max_positions_random: Annotated[int, Int(1), OPTIONAL]
    randomize_eval: Annotated[bool, Bool(), OPTIONAL]

    @classmethod
    def cross(cls, v: dict[str, Any], path: str) -> str | None:
        if v.get("randomize_eval") and not v.get("randomize"):
            return f"{path}.randomize_eval=true needs {path}.randomize=true (positions are plain in training)"
        return None


@dataclass
class TrainSchema(Section):
    """The top level of ``conf/config.yaml``."""

    seed: Annotated[int, Int(0, 2**32 - 1)]
    study: Annotated[str, Name()]
    runs_root: Annotated[str, PATH]
    run_id: Annotated[str, Name()]
    run_dir: Annotated[str, PATH]
    task: TaskSchema
    pe: PeSchema
    model: ModelSchema
    trainer: TrainerSchema
    data: DataSchema
    eval: EvalSchema
    logger: Annotated[Section, Variants(LOGGERS)]


@dataclass
class AnalyzeSchema(Section):
    """The top level of ``conf/analyze.yaml`` (``lengen analyze``; checked by :func:`check_options`)."""

    out: Annotated[str, PATH]
    lengths: Annotated[list[int] | None, Nullable(ListOf(Int(1)))]
    min_len: Annotated[int, Int(1)]
    max_len: Annotated[int | None, Nullable(Int(1))]
    n_per_length: Annotated[int, Int(1)]
    batch_size: Annotated[int, Int(1)]
    checkpoint: Annotated[str, Choice(("best", "last"))]
    reference: Annotated[str | None, Nullable(Name(numbers=False))]
    pairs: Annotated[str, Choice(("reference", "all"))]
    data_seed: Annotated[int | None, Nullable(Int(0, 2**32 - 1))]
    ridge: Annotated[float, Float(0, lo_open=True)]
    accelerator: Annotated[str, Choice(("auto", "cpu", "cuda"))]
    threads: Annotated[int | None, Nullable(Int(1))]
    plots: Annotated[bool, Bool()]
    title: Annotated[str | None, Nullable(Text())]

    @classmethod
    def cross(cls, v: dict[str, Any], path: str) -> str | None:
        if v["lengths"] is None and v["max_len"] is not None and v["min_len"] > v["max_len"]:
            return f"empty length range min_len={v['min_len']} max_len={v['max_len']}; need min_len <= max_len"
        return None


#: keys Hydra itself may leave in a config (``return_hydra_config=True``)
IGNORED_TOP = ("hydra",)


def accelerator_problem(accelerator: str, path: str = "trainer") -> str | None:
    """A GPU asked for on a machine without one (imports torch only then)."""
    if accelerator in ("gpu", "cuda"):
        import torch

        if not torch.cuda.is_available():
            return (
                f"{path}.accelerator={accelerator!r} but torch sees no CUDA GPU on this machine; "
                f"use {path}.accelerator=cpu (or auto)"
            )
    if accelerator == "mps":
        import torch

        if not torch.backends.mps.is_available():
            return (
                f"{path}.accelerator='mps' but torch sees no Apple MPS device on this machine; "
                f"use {path}.accelerator=cpu (or auto)"
            )
    return None


@dataclass(frozen=True)
class Key:
    """One declared key of a section: its rule, or the schema(s) of the nested section it holds."""

    name: str
    rule: Rule | None = None
    optional: bool = False
    sections: dict[str, type[Section]] | None = None  # by ``name`` when it varies; else under ""


@functools.cache
def keys_of(schema: type[Section]) -> tuple[Key, ...]:
    """The declared keys of a section dataclass, read from its ``Annotated`` field types."""
    hints = get_type_hints(schema, include_extras=True)
    out = []
    for f in fields(schema):
        hint = hints[f.name]
        extras = get_args(hint)[1:] if get_origin(hint) is Annotated else ()
        rule = next((x for x in extras if isinstance(x, Rule)), None)
        variants = next((x.by_name for x in extras if isinstance(x, Variants)), None)
        if rule is None and variants is None:
            variants = {"": hint}
        out.append(Key(f.name, rule, OPTIONAL in extras, variants))
    return tuple(out)


def described_keys() -> dict[str, str]:
    """Every checked key (dotted) and what it may hold: for help texts and tests."""
    out: dict[str, str] = {}
    for top in keys_of(TrainSchema):
        if top.rule is not None:
            out[top.name] = top.rule.describe()
            continue
        sections = top.sections or {}
        if "" not in sections:
            out[f"{top.name}.name"] = Choice(tuple(sections)).describe()
        for schema in sections.values():
            for k in keys_of(schema):
                if k.rule is not None:
                    out.setdefault(f"{top.name}.{k.name}", k.rule.describe())
    return out


# -- walking a config -----------------------------------------------------------------------------


class _Unresolvable:
    """A value that needs Hydra's runtime (``${hydra:...}``) while checking outside a Hydra app."""


UNRESOLVABLE = _Unresolvable()


def _show(value: Any, limit: int = 60) -> str:
    """The value as one short line (``repr`` escapes newlines and other unprintable characters)."""
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]!r}... ({len(value)} characters)"
    text = repr(value)
    return text if len(text) <= limit + 20 else f"{text[:limit]}... ({len(text)} characters)"


def _key_text(name: Any) -> str:
    s = str(name)
    return s if s and s.isprintable() and " " not in s and len(s) <= MAX_NAME else _show(s)


def _first_line(e: BaseException) -> str:
    text = " ".join(str(e).split("full_key:")[0].split())  # OmegaConf appends full_key/object_type lines
    return (text[:160] + "...") if len(text) > 160 else text or type(e).__name__


def _value(node: DictConfig, name: str, path: str) -> Any:
    """``node[name]`` resolved into plain Python, or :data:`UNRESOLVABLE`; ConfigError otherwise."""
    from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

    try:
        value = node[name]
        if isinstance(value, (DictConfig, ListConfig)):
            value = OmegaConf.to_container(value, resolve=True)
        return value
    except MissingMandatoryValue:
        raise ConfigError(f"{path} has no value (???); set {path}=...") from None
    except OmegaConfBaseException as e:
        if "HydraConfig was not set" in str(e):
            return UNRESOLVABLE
        raise ConfigError(f"{path} cannot be resolved: {_first_line(e)}") from None


def _section(cfg: DictConfig, name: str) -> Any:
    """``cfg[name]`` left as a DictConfig (resolved when it is an interpolation)."""
    from omegaconf.errors import OmegaConfBaseException

    try:
        return cfg[name]
    except OmegaConfBaseException as e:
        raise ConfigError(f"{name} cannot be resolved: {_first_line(e)}") from None


def _names(node: DictConfig) -> list[str]:
    # Not ``name in node``: for a DictConfig that is False when the value is ``???``.
    return list(node.keys())


def _check_key(node: DictConfig, k: Key, path: str) -> Any:
    """The value of key ``k`` in ``node`` if its rule admits it (``UNRESOLVABLE`` or absent: skipped)."""
    dotted = f"{path}.{k.name}" if path else k.name
    rule = k.rule
    assert rule is not None
    try:
        if k.name not in _names(node):
            if k.optional:
                return UNRESOLVABLE
            raise ConfigError(f"{dotted} is missing; it must be {rule.describe()}")
        value = _value(node, k.name, dotted)
        problem = None if value is UNRESOLVABLE else rule.problem(value)
    except ConfigError:
        raise
    except Exception as e:  # an exotic value the rule did not foresee: still one line naming the key
        raise ConfigError(f"cannot check {dotted}: {type(e).__name__}: {_first_line(e)}") from None
    if problem:
        raise ConfigError(f"{dotted}={_show(value)} {problem}")
    return value


def _check_unknown(node: DictConfig, allowed: list[str], path: str, extra: tuple[str, ...] = ()) -> None:
    ignored = extra if path else (*IGNORED_TOP, *extra)
    unknown = [n for n in _names(node) if n not in allowed and n not in ignored]
    if unknown:
        where = f"key {path}.{_key_text(unknown[0])}" if path else f"top-level key {_key_text(unknown[0])}"
        of = f"of {path}" if path else "at the top level"
        raise ConfigError(f"unknown {where}; valid keys {of}: {', '.join(sorted(allowed))}")


def _check_section(node: Any, schema: type[Section], path: str) -> None:
    declared = keys_of(schema)
    if not isinstance(node, DictConfig):
        shown = _show(OmegaConf.to_container(node) if isinstance(node, ListConfig) else node)
        raise ConfigError(f"{path}={shown} must be a mapping with keys {', '.join(k.name for k in declared)}")
    if not schema.open:
        _check_unknown(node, [k.name for k in declared], path)
    values = {}
    for k in declared:
        value = _check_key(node, k, path)
        if value is not UNRESOLVABLE:
            values[k.name] = value
    if all(k.name in values for k in declared if not k.optional):
        try:
            problem = schema.cross(values, path)
        except Exception as e:
            raise ConfigError(f"cannot check {path}: {type(e).__name__}: {_first_line(e)}") from None
        if problem:
            raise ConfigError(problem)


def _pe_options() -> str:
    from lengen.compose import conf_dir

    return ", ".join(sorted(p.stem for p in (conf_dir() / "pe").glob("*.yaml")))


def _pick(sections: dict[str, type[Section]], node: Any, path: str) -> type[Section]:
    """The schema of a section that varies by its ``name`` (``logger``)."""
    if "" in sections:
        return sections[""]
    if not isinstance(node, DictConfig) or "name" not in _names(node):
        raise ConfigError(f"{path}.name is missing; it must be one of {', '.join(sections)}")
    name = _value(node, "name", f"{path}.name")
    choice = Choice(tuple(sections))
    if not choice.ok(name):
        raise ConfigError(f"{path}.name={_show(name)} {choice.problem(name)}")
    return sections[name]


def _check(cfg: DictConfig, pe: bool, extra: tuple[str, ...]) -> None:
    if not isinstance(cfg, DictConfig):
        raise ConfigError(f"the config must be a mapping, not {type(cfg).__name__}")
    top = keys_of(TrainSchema)
    _check_unknown(cfg, [k.name for k in top], "", extra)
    has_pe = "pe" in _names(cfg) and _section(cfg, "pe") is not None
    if pe and not has_pe:
        raise ConfigError(f"no positional encoding chosen: add +pe=NAME with NAME one of {_pe_options()}")
    for k in top:
        if k.rule is not None:
            _check_key(cfg, k, "")
    for k in top:
        if k.sections is not None and (k.name != "pe" or has_pe):
            if k.name not in _names(cfg):
                raise ConfigError(f"config section {k.name} is missing")
            node = _section(cfg, k.name)
            _check_section(node, _pick(k.sections, node, k.name), k.name)


def check(cfg: DictConfig, *, pe: bool = True, extra: Sequence[str] = ()) -> None:
    """Raise :class:`ConfigError` (one line) at the first key whose value the schema refuses.

    Run it on the composed train config before anything else (data, model, run dir). ``pe=False``:
    a command that needs no model (``lengen data``) may leave the PE out. ``extra``: top-level
    keys a command adds to the train config and checks itself (``lengen data``'s ``n``, ``out``,
    ...). Keys resolved only inside a Hydra app (``run_id``, ``run_dir``) are skipped when checked
    outside one.
    """
    try:
        _check(cfg, pe, tuple(extra))
    except ConfigError as e:
        raise ConfigError(" ".join(str(e).split())) from None
    except Exception as e:  # a schema bug or an exotic value: still one line, never a traceback
        raise ConfigError(f"cannot check the config: {type(e).__name__}: {_first_line(e)}") from None


def check_options(cfg: DictConfig, schema: type[Section]) -> None:
    """Check the top level of a command's own config (``conf/analyze.yaml``) against ``schema``:
    :class:`ConfigError` with one line at the first unknown key or refused value."""
    try:
        _check_section(cfg, schema, "")
    except ConfigError as e:
        raise ConfigError(" ".join(str(e).split())) from None
    except Exception as e:
        raise ConfigError(f"cannot check the options: {type(e).__name__}: {_first_line(e)}") from None
