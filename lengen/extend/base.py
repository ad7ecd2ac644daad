"""The interface of an evaluation-time length-extension method (``lengen eval extend=NAME``).

A method is one class with a ``name``, its options (``OPTIONS``: name -> default, restated in
``conf/extend/<name>.yaml``) and the PEs it applies to. :meth:`Extension.install` changes a
trained model in place through the model's hooks, never its weights:

- rotary frequencies (``Rotary.set_frequencies``: PI, NTK, YaRN, ABF, Giraffe);
- a logit scale, ``logit_scale(q_pos)`` (temperature, YaRN's attention factor);
- an attention band, ``band(q_pos, k_pos)`` (LM-Infinite, Self-Extend, sliding window).

Every method knows the training length ``original_length`` (positions of the longest training
sequence; read from the run's training data unless given). Options common to every method:
``factor`` (the extension factor; ignored, and recorded as NaN, by methods without one, so one
sweep ``extend=none,pi,abf extend.factor=2,4`` covers them all) and ``original_length``.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from lengen.errors import ConfigError
from lengen.registry import Registry

#: which PEs a method applies to.
ROTARY, RELATIVE, ANY = "rotary", "relative", "any"
COMMON = {"factor": None, "original_length": None}


class Extension:
    #: the ``extend=NAME`` choice (and ``conf/extend/<name>.yaml``).
    name: ClassVar[str] = ""
    #: ROTARY (rope), RELATIVE (rope, t5, alibi, nope: logits depend on position differences) or ANY.
    applies_to: ClassVar[str] = ANY
    #: the method's own options and their defaults (``None`` = derived from the run, see each class).
    OPTIONS: ClassVar[dict[str, Any]] = {}
    #: whether ``factor`` means anything to this method (else it is ignored and recorded as NaN).
    uses_factor: ClassVar[bool] = False
    #: factor when ``factor`` is null.
    default_factor: ClassVar[float] = 2.0
    #: one line for ``--help`` and the README: what it does, and the paper.
    summary: ClassVar[str] = ""

    def __init__(self, **options: Any) -> None:
        valid = {**COMMON, **self.OPTIONS}
        unknown = sorted(set(options) - set(valid))
        if unknown:
            raise ConfigError(f"extend={self.name} got unknown option(s) {', '.join('extend.' + k for k in unknown)}; "
                              f"valid: {', '.join(sorted(valid))}")
        self.given = {k: v for k, v in options.items() if v is not None}
        self.opts = {**valid, **self.given}
        self.original_length: int | None = None
        for key in ("factor", "original_length"):
            value = self.opts[key]
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or value <= 0):
                raise ConfigError(f"extend.{key}={value!r} must be a positive number")
        if self.uses_factor and self.factor < 1:
            raise ConfigError(f"extend.factor={self.factor} must be >= 1 (the target length / the training length)")
        self.validate()

    # -- options -------------------------------------------------------------------------------------
    def validate(self) -> None:
        """Check the method's own options (raise ConfigError naming the key)."""

    @property
    def factor(self) -> float:
        f = self.opts["factor"]
        return float(self.default_factor if f is None else f)

    def number(self, key: str, *, minimum: float = 0.0, integer: bool = False, strict: bool = True) -> None:
        """Check ``extend.<key>``: a number (an int when ``integer``) above (or at) ``minimum``, or null."""
        value = self.opts[key]
        if value is None:
            return
        bad = isinstance(value, bool) or not isinstance(value, int | float) or (integer and value != int(value))
        if bad or (value <= minimum if strict else value < minimum):
            kind = "an integer" if integer else "a number"
            raise ConfigError(f"extend.{key}={value!r} must be {kind} {'>' if strict else '>='} {minimum:g}")

    # -- applying ------------------------------------------------------------------------------------
    def check(self, pe) -> None:
        """Refuse, in one line, a run whose PE this method cannot apply to."""
        from lengen.model.positional.rope import Rotary

        name = getattr(pe, "name", type(pe).__name__)
        if self.applies_to == ROTARY and not isinstance(pe, Rotary):
            raise ConfigError(f"extend={self.name} changes rotary frequencies and needs a rope run; this run's "
                              f"pe={name}")
        if self.applies_to == RELATIVE:
            rotary_ok = not pe.has_rotate or isinstance(pe, Rotary)
            if not pe.relative or pe.has_embed or not rotary_ok:
                raise ConfigError(f"extend={self.name} remaps relative positions and needs a relative PE "
                                  f"(rope, t5, alibi, nope); this run's pe={name}")

    @property
    def needs_length(self) -> bool:
        return self.name != "none"

    def install(self, model, original_length: int | None = None) -> None:
        """Apply to ``model`` (in place, weights untouched); ``original_length`` = training positions."""
        self.check(model.pe)
        given = self.opts["original_length"]
        length = int(given) if given is not None else original_length
        if self.needs_length and (length is None or length < 2):
            raise ConfigError(f"extend={self.name} needs the training length (extend.original_length=N positions)")
        self.original_length = length
        self.setup(model)

    def setup(self, model) -> None:
        """Install the hooks (``self.original_length`` is known here)."""

    def remove(self, model) -> None:
        """Undo :meth:`install`."""
        model.extension = None
        if hasattr(model.pe, "set_frequencies"):
            model.pe.set_frequencies(None)

    # -- what the rows record ------------------------------------------------------------------------
    def resolved(self) -> dict[str, Any]:
        """Every option the method used, with the values derived from the run filled in."""
        return {}

    def label(self) -> str:
        """``yarn(factor=4)``: the name with the factor and every option set away from its default."""
        shown = {k: v for k, v in self.given.items() if k in self.OPTIONS and v != self.OPTIONS[k]}
        if self.uses_factor:
            shown = {"factor": self.factor, **shown}
        if not shown:
            return self.name
        return f"{self.name}({','.join(f'{k}={_fmt(v)}' for k, v in shown.items())})"

    def columns(self) -> dict[str, Any]:
        """The result columns: ``extend``, ``extend_factor`` (NaN without one), ``extend_options``."""
        opts = {**({"factor": self.factor} if self.uses_factor else {}), **self.resolved()}
        if self.original_length is not None:
            opts["original_length"] = self.original_length
        return {"extend": self.name, "extend_factor": self.factor if self.uses_factor else math.nan,
                "extend_options": ",".join(f"{k}={_fmt(v)}" for k, v in opts.items())}


def _fmt(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return f"{value:g}" if isinstance(value, float) else str(value)


EXTEND_REGISTRY: Registry[type[Extension]] = Registry("length-extension method", "lengen.extend")
register = EXTEND_REGISTRY.register
