"""Start from pretrained weights: the optional `pretrained` channel holds one state dict file
(`.pt`, `.pth` or `.bin`) — torchvision's published weights for the same `arch`, or a model.pt
or checkpoint trainbot wrote. Never downloaded: the file comes with the job's data.

The file is read with `torch.load(weights_only=True)` (tensors only, no code). A dict wrapped
as {"state_dict": …}, {"model": …} or {"model_state_dict": …} is unwrapped, and the prefixes
of DistributedDataParallel (`module.`), torch.compile (`_orig_mod.`) and a Lightning module's
attribute (`model.`) are stripped, in any order and nesting (`_orig_mod.module.`), until none
is left on every key.

The backbone must fit: every tensor of the file that the model has must have the model's
shape there, and the file must cover the model's backbone and not carry much more (a
ResNet-34 file fits a ResNet-18 name by name, but is not one). The head (`fc`,
`classifier`) is loaded when its shape fits and replaced otherwise — the usual case, since the
data set has its own classes. What was matched, missing or unexpected is printed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from architectures import is_head
from sm_contract import UserError, data_files, log
from standard_nets import STANDARD_ARCHS, build_standard
from torch import nn

__all__ = ["SUFFIXES", "LoadReport", "find_weights", "load_pretrained", "match_state_dict"]

SUFFIXES = (".pt", ".pth", ".bin")
_WRAPPERS = ("state_dict", "model", "model_state_dict")
_PREFIXES = ("module.", "_orig_mod.", "model.")
# Terminal escape sequences (torch colours parts of its weights_only refusal) and other
# control characters, kept out of the ERROR line and the failure file.
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-_]")
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SHOWN = 4
# A backbone with fewer of its tensors in the file, or a file with more extra tensors (as a
# share of the backbone), is another architecture.
MIN_BACKBONE_COVERAGE = 0.9
MAX_UNEXPECTED_SHARE = 0.1


@dataclass
class LoadReport:
    file: str = ""
    matched: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    # (key, shape in the file, shape in the model)
    head_replaced: list[tuple[str, list[int], list[int]]] = field(default_factory=list)
    backbone_mismatched: list[tuple[str, list[int], list[int]]] = field(default_factory=list)
    backbone_total: int = 0
    backbone_matched: int = 0

    def summary(self) -> dict[str, Any]:
        """What model.json records about the start."""
        return {
            "file": self.file,
            "matched": len(self.matched),
            "missing": len(self.missing),
            "unexpected": len(self.unexpected),
            "head_replaced": [key for key, _, _ in self.head_replaced],
        }

    def lines(self) -> list[str]:
        out = [
            f"pretrained: matched={len(self.matched)} missing={len(self.missing)} "
            f"unexpected={len(self.unexpected)} head_replaced={len(self.head_replaced)} "
            f"backbone={self.backbone_matched}/{self.backbone_total}"
        ]
        if self.missing:
            out.append(f"pretrained: missing (left as initialised): {_few(self.missing)}")
        if self.unexpected:
            out.append(f"pretrained: unexpected (ignored): {_few(self.unexpected)}")
        for key, found, wanted in self.head_replaced[:_SHOWN]:
            out.append(f"pretrained: head {key} {found} replaced by a new {wanted}")
        return out

    def refusal(self) -> str | None:
        """Why these weights are not for this model, or None when they are."""
        if self.backbone_mismatched:
            shown = ", ".join(f"{k} {f} vs {w}" for k, f, w in self.backbone_mismatched[:3])
            return (
                f"{len(self.backbone_mismatched)} backbone tensors have other shapes than this "
                f"model's (file vs model: {shown})"
            )
        total = max(self.backbone_total, 1)
        if self.backbone_matched < MIN_BACKBONE_COVERAGE * total:
            return (
                f"only {self.backbone_matched} of the model's {self.backbone_total} backbone "
                f"tensors are in the file (missing e.g. {_few(self.missing, 3)})"
            )
        if len(self.unexpected) > MAX_UNEXPECTED_SHARE * total:
            return (
                f"the file has {len(self.unexpected)} tensors this model lacks "
                f"(e.g. {_few(self.unexpected, 3)})"
            )
        return None


def find_weights(root: Path) -> Path:
    """The one state dict file in the channel directory."""
    files = data_files(root, SUFFIXES)
    if not files:
        raise UserError(
            f"channel pretrained: no {'/'.join(SUFFIXES)} file in {root}; give it one state "
            "dict file (torch.save(model.state_dict(), 'weights.pth'))"
        )
    if len(files) > 1:
        names = ", ".join(str(p.relative_to(root)) for p in files[:4])
        raise UserError(
            f"channel pretrained: {len(files)} weight files ({names}); give it exactly one"
        )
    return files[0]


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a state dict file, unwrapped and without DDP/compile prefixes."""
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle refusals, torn files, not a torch file at all
        text = str(exc)
        # torch's refusal of pickled objects explains itself after its advice: the line
        # naming the object is what helps.
        unpickler = re.search(r"WeightsUnpickler error: ([^\n]*)", text)
        reason = plain_text(unpickler.group(1) if unpickler else text)[:200]
        raise UserError(
            f"channel pretrained: cannot read {path.name} as a state dict with "
            f"torch.load(weights_only=True) ({type(exc).__name__}: {reason}); save "
            "model.state_dict(), not the model object"
        ) from exc
    state = loaded
    while isinstance(state, Mapping) and not _is_tensor_dict(state):
        inner = next((state[k] for k in _WRAPPERS if isinstance(state.get(k), Mapping)), None)
        if inner is None:
            break
        state = inner
    if not isinstance(state, Mapping) or not _is_tensor_dict(state):
        raise UserError(
            f"channel pretrained: {path.name} holds no state dict (a mapping of names to "
            f"tensors, possibly under {', '.join(repr(k) for k in _WRAPPERS)})"
        )
    tensors = {str(k): v for k, v in state.items() if isinstance(v, torch.Tensor)}
    return strip_prefixes(tensors)


def strip_prefixes(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Without the wrappers' prefixes that every key carries, taken off until none is left
    (`_orig_mod.module.conv1.weight` → `conv1.weight`)."""
    changed = True
    while changed:
        changed = False
        for prefix in _PREFIXES:
            if tensors and all(k.startswith(prefix) and len(k) > len(prefix) for k in tensors):
                tensors = {k[len(prefix) :]: v for k, v in tensors.items()}
                changed = True
    return tensors


def plain_text(text: str) -> str:
    """`text` on one line, without terminal escape sequences or control characters."""
    return " ".join(_CONTROLS.sub(" ", _ESCAPES.sub("", text)).split())


def _is_tensor_dict(value: Mapping[Any, Any]) -> bool:
    return bool(value) and all(isinstance(v, torch.Tensor) for v in value.values())


def match_state_dict(
    model: nn.Module, state: Mapping[str, torch.Tensor]
) -> tuple[dict[str, torch.Tensor], LoadReport]:
    """What of `state` loads into `model`, and the report. `num_batches_tracked` counters
    (absent from older files) are neither matched nor missing."""
    own = {k: v for k, v in model.state_dict().items() if not _counter(k)}
    given = {k: v for k, v in state.items() if not _counter(k)}
    report = LoadReport()
    loadable: dict[str, torch.Tensor] = {}
    for key, tensor in own.items():
        head = is_head(model, key)
        report.backbone_total += 0 if head else 1
        if key not in given:
            report.missing.append(key)
            continue
        found, wanted = list(given[key].shape), list(tensor.shape)
        if found != wanted:
            (report.head_replaced if head else report.backbone_mismatched).append(
                (key, found, wanted)
            )
            continue
        report.matched.append(key)
        report.backbone_matched += 0 if head else 1
        loadable[key] = given[key]
    report.unexpected = [k for k in given if k not in own]
    return loadable, report


def _counter(key: str) -> bool:
    return key.endswith("num_batches_tracked")


def load_pretrained(model: nn.Module, root: Path, *, arch: str, quiet: bool = False) -> LoadReport:
    """Load the channel's weights into `model` (on the CPU, before it moves), print the
    report (unless `quiet`: ranks other than 0), and refuse weights of another architecture
    with a UserError."""
    path = find_weights(root)
    state = read_state_dict(path)
    loadable, report = match_state_dict(model, state)
    report.file = path.name
    if not quiet:
        log(f"pretrained: {path.name} into arch={arch}")
        for line in report.lines():
            log(line)
    why = report.refusal()
    if why:
        if arch == "small":
            source = "a trainbot model.pt of arch=small"
        else:
            source = f"torchvision's {arch} weights, or a trainbot model.pt of arch={arch}"
        guess = guess_arch(state)
        fix = f"set arch={guess}, which it fits" if guess else "set arch to the file's network"
        raise UserError(
            f"channel pretrained: {path.name} does not fit arch={arch}: {why}. Give weights "
            f"saved from the same architecture ({source}), or {fix}"
        )
    with torch.no_grad():
        model.load_state_dict(loadable, strict=False)
    return report


def guess_arch(state: Mapping[str, torch.Tensor]) -> str | None:
    """The standard arch whose backbone is exactly the file's (3 input channels), if any."""
    shapes = {k: list(v.shape) for k, v in state.items() if not _counter(k)}
    for arch in STANDARD_ARCHS:
        with torch.device("meta"):  # names and shapes only: no memory, no initialisation cost
            model = build_standard(arch, in_channels=3, num_classes=1000)
        backbone = {
            k: list(v.shape)
            for k, v in model.state_dict().items()
            if not _counter(k) and not is_head(model, k)
        }
        given = {k: v for k, v in shapes.items() if not is_head(model, k)}
        if backbone == given:
            return arch
    return None


def _few(keys: list[str], count: int = _SHOWN) -> str:
    shown = ", ".join(keys[:count])
    return shown + (f" … (+{len(keys) - count})" if len(keys) > count else "")
