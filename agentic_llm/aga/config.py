"""AGAConfig: every knob of the knowledge-injection plugin, frozen and validated.

A config can be built directly, from a flat dict, from the nested YAML layout (an
optional top-level ``aga:`` key and sections such as ``gate:``, ``decay:``,
``retriever:``, ``slot_governance:``, ``instrumentation:``, ``streaming:``), or from a
YAML file. Nested sections are flattened: section keys that already carry their
section's prefix keep their name (``gate.gate1_enabled`` -> ``gate1_enabled``), the
others get the section prefix (``decay.gamma`` -> ``decay_gamma``). Unknown keys are
refused with the list of valid names, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from agentic_llm.errors import AgenticError, ErrorCode

__all__ = ["AGAConfig", "flatten_config"]

UncertaintySource = Literal["prev_entropy", "hidden_variance", "constant"]
DecayStrategy = Literal["exponential", "linear", "adaptive"]

# Section name -> prefix given to its keys when flattened.
_SECTION_PREFIX: dict[str, str] = {
    "gate": "",
    "decay": "decay_",
    "retriever": "retriever_",
    "slot_governance": "",
    "instrumentation": "",
    "streaming": "streaming_",
    "encoder": "encoder_",
}


@dataclass(frozen=True)
class AGAConfig:
    """Configuration of :class:`~agentic_llm.aga.AGAPlugin`.

    Model shape:
        hidden_dim: width of the host model's attention output (must match it).
        bottleneck_dim: width of the routing space that queries and slot keys live in.
        num_heads: informational; kept for the seed's config layout.
        value_bottleneck_dim: rank of the optional value adapter.
        layers: decoder layers to hook; negative counts from the end; empty means one
            layer at two thirds of the depth.
    Capacity and placement:
        max_slots: preallocated knowledge slots.
        device: ``"auto"`` follows the host model, else a torch device string.
        dtype: ``"auto"`` follows the host model, else ``float32``/``float16``/``bfloat16``.
        seed: seed of the fixed random query projection.
    Gates (Gate-0 namespace prior, Gate-1 uncertainty, Gate-2 top-k routing):
        gate1_uncertainty_source: ``prev_entropy`` (the row's next-token entropy at the
            previous step), ``hidden_variance`` (variance of the attention output), or
            ``constant`` (always ``gate1_unknown_uncertainty``).
        gate1_unknown_uncertainty: uncertainty used where the previous step's entropy is
            unknown (a prompt's prefill); defaults to ``tau_high`` (fully uncertain).
        tau_low / tau_high: below tau_low the gate is closed, it ramps linearly to
            ``max_gate`` at tau_high.
        gate2_top_k: slots mixed per token; gate2_min_score: cosine similarity a slot
            needs to be routed at all; gate2_temperature: softmax temperature.
        early_exit_threshold: gates below it are forced to exactly zero.
    See docs/aga.md for the remaining fields (decay, retriever, governance, safety).
    """

    hidden_dim: int = 4096
    bottleneck_dim: int = 64
    num_heads: int = 32
    value_bottleneck_dim: int = 256
    layers: tuple[int, ...] = ()
    max_slots: int = 256
    device: str = "auto"
    dtype: str = "auto"
    seed: int = 0
    # gate
    gate0_enabled: bool = True
    gate1_enabled: bool = True
    gate1_uncertainty_source: UncertaintySource = "prev_entropy"
    gate1_unknown_uncertainty: float | None = None
    gate2_top_k: int = 8
    gate2_min_score: float = 0.8
    gate2_temperature: float = 0.05
    tau_low: float = 0.5
    tau_high: float = 2.0
    max_gate: float = 0.8
    early_exit_enabled: bool = True
    early_exit_threshold: float = 0.05
    # decay across hooked layers
    decay_enabled: bool = True
    decay_strategy: DecayStrategy = "exponential"
    decay_gamma: float = 0.9
    decay_hard_reset_threshold: float = 3.0
    # retriever
    retriever_backend: str = "null"
    retriever_top_k: int = 5
    retriever_min_score: float = 0.3
    retriever_auto_inject: bool = True
    retriever_timeout_ms: float = 10.0
    # slot governance
    pin_registered: bool = True
    retriever_slot_ratio: float = 0.3
    retriever_cooldown_steps: int = 5
    retriever_dedup_similarity: float = 0.95
    slot_stability_threshold: float = 0.5
    # safety
    fail_open: bool = True
    max_forward_timeout_ms: float = 50.0
    # norm control
    enable_norm_clipping: bool = True
    key_norm_target: float = 5.0
    value_norm_target: float = 3.0
    # instrumentation
    instrumentation_enabled: bool = True
    event_buffer_size: int = 10000
    audit_log_level: str = "INFO"
    audit_log_size: int = 10000
    # streaming
    streaming_diagnostics_buffer_size: int = 1000
    # knowledge encoder
    encoder_steps: int = 40
    encoder_lr: float = 0.5
    encoder_margin: float = 3.0
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(int(x) for x in self.layers))
        problems = list(self._problems())
        if problems:
            raise AgenticError(
                ErrorCode.INVALID_CONFIG, "invalid AGA config: " + "; ".join(problems)
            )

    def _problems(self) -> list[str]:
        out: list[str] = []
        positive_ints = ("hidden_dim", "bottleneck_dim", "num_heads", "value_bottleneck_dim",
                         "max_slots", "gate2_top_k", "retriever_top_k", "audit_log_size",
                         "streaming_diagnostics_buffer_size", "encoder_steps")
        for name in positive_ints:
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                out.append(f"{name} must be a positive integer, got {v!r}")
        for name in ("event_buffer_size", "retriever_cooldown_steps"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 0:
                out.append(f"{name} must be an integer >= 0, got {v!r}")
        if not self.tau_low < self.tau_high:
            out.append(f"tau_low ({self.tau_low}) must be below tau_high ({self.tau_high})")
        unit = ("max_gate", "early_exit_threshold", "retriever_slot_ratio",
                "retriever_dedup_similarity", "slot_stability_threshold")
        for name in unit:
            v = getattr(self, name)
            if not (isinstance(v, int | float) and 0.0 <= v <= 1.0):
                out.append(f"{name} must be in [0, 1], got {v!r}")
        if not -1.0 <= self.gate2_min_score <= 1.0:
            out.append(f"gate2_min_score is a cosine similarity in [-1, 1], got {self.gate2_min_score}")
        if not 0.0 < self.decay_gamma <= 1.0:
            out.append(f"decay_gamma must be in (0, 1], got {self.decay_gamma}")
        positive = ("gate2_temperature", "decay_hard_reset_threshold", "retriever_timeout_ms",
                    "max_forward_timeout_ms", "key_norm_target", "value_norm_target",
                    "encoder_lr")
        for name in positive:
            v = getattr(self, name)
            if not (isinstance(v, int | float) and v > 0 and math.isfinite(v)):
                out.append(f"{name} must be a positive number, got {v!r}")
        choices = {
            "gate1_uncertainty_source": ("prev_entropy", "hidden_variance", "constant"),
            "decay_strategy": ("exponential", "linear", "adaptive"),
            "dtype": ("auto", "float32", "float16", "bfloat16"),
            "audit_log_level": ("DEBUG", "INFO", "WARNING", "ERROR"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                out.append(f"{name} must be one of {list(allowed)}, got {getattr(self, name)!r}")
        if self.gate2_top_k > self.max_slots:
            out.append(f"gate2_top_k ({self.gate2_top_k}) cannot exceed max_slots ({self.max_slots})")
        return out

    @property
    def unknown_uncertainty(self) -> float:
        """Uncertainty assumed where the previous step's entropy is unknown."""
        v = self.gate1_unknown_uncertainty
        return self.tau_high if v is None else float(v)

    def replace(self, **changes: Any) -> AGAConfig:
        """A copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AGAConfig:
        """Build from a flat or nested dict (see the module docstring)."""
        flat = flatten_config(data)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(flat) - known)
        if unknown:
            raise AgenticError(
                ErrorCode.INVALID_CONFIG,
                f"unknown AGA config keys {unknown}; valid keys are {sorted(known - {'extra'})}",
            )
        if "layers" in flat and flat["layers"] is not None:
            flat["layers"] = tuple(flat["layers"])
        return cls(**flat)

    @classmethod
    def from_yaml(cls, path: str | Path) -> AGAConfig:
        """Load a YAML file in the nested layout."""
        import yaml

        p = Path(path)
        try:
            data = yaml.safe_load(p.read_text(encoding="utf-8"))
        except OSError as exc:
            raise AgenticError(ErrorCode.INVALID_CONFIG, f"cannot read AGA config {p}: {exc}") from exc
        except yaml.YAMLError as exc:
            raise AgenticError(ErrorCode.YAML, f"AGA config {p} is not valid YAML: {exc}") from exc
        if not isinstance(data, Mapping):
            raise AgenticError(ErrorCode.INVALID_CONFIG, f"AGA config {p} must be a mapping")
        return cls.from_dict(data)

    @classmethod
    def from_config(cls, source: AGAConfig | Mapping[str, Any] | str | Path) -> AGAConfig:
        """Accept a config, a dict (flat or nested) or a YAML path."""
        if isinstance(source, AGAConfig):
            return source
        if isinstance(source, Mapping):
            return cls.from_dict(source)
        return cls.from_yaml(source)


def flatten_config(data: Mapping[str, Any]) -> dict[str, Any]:
    """Flatten the nested layout into AGAConfig field names."""
    if "aga" in data and isinstance(data["aga"], Mapping):
        data = data["aga"]
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if key in _SECTION_PREFIX and isinstance(value, Mapping):
            prefix = _SECTION_PREFIX[key]
            for sub_key, sub_value in value.items():
                name = sub_key if (not prefix or sub_key.startswith(prefix)) else prefix + sub_key
                # "decay.hard_reset_threshold" and "retriever.backend" follow the prefix
                # rule; keys such as "retriever_slot_ratio" inside slot_governance keep theirs.
                flat[name] = sub_value
        else:
            flat[key] = value
    return flat
