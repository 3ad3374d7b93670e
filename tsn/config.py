"""Typed, frozen experiment configs; config files are JSON or TOML data (never executed).

Glossary (paper symbol / Caffe field -> code name):
  K (segments per video, TSN section 3.1)            -> ModelCfg.num_segments
  stacked frames per snippet (5 flow fields, 1 RGB)  -> ModelCfg.new_length
  G (segmental consensus, "evenly averaging")        -> ModelCfg.consensus
  partial BN (TSN section 3.2)                       -> ModelCfg.partial_bn
  cross-modality pre-training (section 3.2)          -> ModelCfg.init
  mini-batch (256 paper, 128 release)                -> SolverCfg.effective_batch
  Caffe batch_size per GPU (32)                      -> SolverCfg.batch_per_process
  Caffe iter_size (gradient accumulation)            -> derived: SolverCfg.iter_size_for(world)
  base_lr, lr_policy, gamma, stepsize, stepvalue     -> SolverCfg fields of the same names
  clip_gradients (global L2 clip, release only)      -> SolverCfg.clip_gradients
  which gradient meets clip_gradients at iter_size>1 -> SolverCfg.clip_mode ("release": the
                                                        rank- and iter_size-averaged one)

Resolution order (`load_experiment`): dataclass defaults -> the named solver preset
(solver.preset, for data.dataset / model.modality) -> the config file -> `key=value` overrides.
Every key is checked against the field's type; an unknown key is an error naming the file.
Types are strict in files (a TOML/JSON string is never a number or a boolean: `max_iter = "100"`
is refused, docs/reliability.md); only `key=value` overrides, which are text by nature, are
parsed into the field's type.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from tsn.data.layout import layout
from tsn.engine import schedule
from tsn.engine.choices import CLIP_MODES, PRECISIONS
from tsn.modality import MODALITIES

try:  # Python >= 3.11; on 3.10 config files must be JSON
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - depends on the interpreter
    tomllib = None


DATASETS = ("ucf101", "hmdb51", "synth", "clips")  # data.dataset values (DataCfg)
# The rule configs written before solver.clip_mode existed ran: Caffe's literal iter_size rule.
LEGACY_CLIP_MODE = "caffe_iter_size"


class ConfigError(ValueError):
    """A config file or override that does not fit the experiment schema."""


@dataclass(frozen=True)
class ModelCfg:
    """The network: backbone, input modality and the TSN head."""

    arch: str = "bn_inception"  # tsn.models.BACKBONES name; "tiny" = the engine's smoke model
    modality: str = "rgb"  # a tsn.modality.MODALITIES name: rgb, flow, warped_flow, rgb_diff
    num_classes: int = 101  # UCF101; 51 for HMDB51
    num_segments: int = 3  # K, TSN section 4.1 and train_val num_segments
    new_length: int = 0  # frames per snippet; 0 = the modality's (tsn.modality: 1 rgb, 5 flow)
    consensus: str = "avg"  # G: AVE pooling of the segment logits (train_val)
    dropout: float = -1.0  # -1 = the modality's: 0.8 rgb, 0.7 flow (train_val dropout_ratio)
    partial_bn: str = "release"  # "release" (stats+affine frozen) | "paper" | "none" | "all"
    init: str = "imagenet"  # "imagenet" (release; cross-modality for flow) | "scratch"
    init_weights: str = ""  # converted ImageNet .pt (python -m prototxt_port convert); "" = none


def check_dataset(name: str, where: str = "") -> None:
    """data.dataset must be one of DATASETS; the pre-rename 'synthetic' gets a pointer."""
    if name not in DATASETS:
        hint = (" (renamed: 'clips' for the in-memory smoke data, 'synth' for `tsn synth` "
                "frame folders)") if name == "synthetic" else ""
        raise ConfigError(f"{where}data.dataset {name!r}: use one of {DATASETS}{hint}")


@dataclass(frozen=True)
class DataCfg:
    """Where the training videos come from and how they are loaded."""

    # "ucf101" | "hmdb51" | "synth" (`tsn synth` frame folders: UCF101's format and solver
    # presets) | "clips" (in-memory smoke tensors, tsn/data/clips.py; no files)
    dataset: str = "ucf101"
    split: int = 1  # official split 1-3
    train_list: str = ""  # file list "path num_frames label" (docs/caffe_release.md#file-lists)
    # data root of the layout <root>/<dataset>/lists/ (tsn.data.layout): an empty train_list
    # becomes that split's `<dataset>_<modality>_train_split_<k>.txt`, test.val_list "layout"
    # its val list; "" = give the lists yourself
    layout_root: str = ""
    root: str = ""  # frame folder root prepended to list paths
    num_workers: int = 2  # DataLoader worker processes
    # scale jittering: "release" train_val scale_ratios | "paper"
    # (docs/caffe_release.md#augmentation)
    scales: str = "release"
    synthetic_size: int = 64  # number of videos of the synthetic dataset
    synthetic_shape: tuple[int, ...] = (3, 16, 16)  # (C, H, W) of one synthetic frame
    synthetic_delay_s: float = 0.0  # simulated decode time per item (loader benchmarks)


@dataclass(frozen=True)
class SolverCfg:
    """Caffe SGD solver fields (docs/caffe_release.md#solvers, #sgd-update); `preset` fills the ones
    a file leaves out."""

    preset: str = "released"  # "released" (default) | "paper" | "custom" (tsn/engine/schedule.py)
    base_lr: float = 0.001
    lr_policy: str = "step"  # "fixed" | "step" | "multistep"
    gamma: float = 0.1
    stepsize: int = 1500  # step policy
    stepvalues: tuple[int, ...] = ()  # multistep policy (Caffe repeated stepvalue)
    max_iter: int = 3500
    momentum: float = 0.9
    weight_decay: float = 5e-4  # L2, times each blob's decay_mult
    clip_gradients: float = 40.0  # global L2 clip; <= 0 disables
    # which gradient's norm meets clip_gradients (tsn.engine.optim.CLIP_MODES): "release" =
    # averaged over ranks and iter_size, as the release's 4 GPUs x iter_size 1, whatever the
    # split; "caffe_iter_size" = solver.cpp's literal rule, the iter_size SUM (a clip
    # iter_size times tighter). docs/engine.md "Gradient clipping and iter_size".
    clip_mode: str = "release"
    effective_batch: int = 128  # videos per update: 32 x 4 GPUs in the release
    batch_per_process: int = 32  # Caffe VideoData batch_size (per GPU)

    def iter_size_for(self, world_size: int) -> int:
        """Gradient accumulation steps so one process (or N) reproduces the 4-GPU batch."""
        return schedule.iter_size_for(self.effective_batch, self.batch_per_process, world_size)


@dataclass(frozen=True)
class TestCfg:
    """Validation during training: Caffe's TEST phase (tsn.engine.validate); `tsn test` is apart."""

    # validation list file; "" = none; "clips" with data.dataset=clips; "layout" = the split's val
    # list in the data layout (data.layout_root)
    val_list: str = ""
    interval: int = 500  # Caffe test_interval (500; UCF101 flow 1000)
    initialization: bool = True  # Caffe test_initialization: validate before iteration 0
    batch_size: int = 8  # videos per validation forward (K segment-centre snippets each)


@dataclass(frozen=True)
class LogCfg:
    """What a run writes besides its CSVs (tsn/engine/runlog.py), which stay the source of truth;
    none of it changes the training (a resume may switch it)."""

    # mirror the CSVs' loss, lr, gradient norm, clip events and validation accuracy as TensorBoard
    # scalars in <run>/tensorboard/ (tsn/engine/tensorboard.py); needs the optional extra:
    # pip install '.[tensorboard]'
    tensorboard: bool = False


@dataclass(frozen=True)
class Experiment:
    """One training run: everything needed to reproduce it, written to the run folder."""

    name: str = "tsn"
    model: ModelCfg = field(default_factory=ModelCfg)
    data: DataCfg = field(default_factory=DataCfg)
    solver: SolverCfg = field(default_factory=SolverCfg)
    test: TestCfg = field(default_factory=TestCfg)
    log: LogCfg = field(default_factory=LogCfg)
    seed: int = 0  # seeds data order (with the epoch), dropout (with the rank) and init
    deterministic: bool = True  # torch.use_deterministic_algorithms + fixed threads
    # "fp32" (the release: IEEE float32, TF32 off) | "tf32" | "bf16" (autocast); see
    # tsn/engine/precision.py: the faster two are deviations and reports name them
    precision: str = "fp32"
    threads: int = 0  # torch intra-op threads per process; 0 = leave torch's default
    device: str = "auto"  # "auto" (cuda:LOCAL_RANK if available) | "cpu" | "cuda"
    run_root: str = "runs"  # run folders are <run_root>/<name>
    checkpoint_every: int = 500  # iterations between checkpoints (and one at the end)
    keep_checkpoints: int = 2  # newest checkpoints kept on disk
    display: int = 20  # log every N iterations (solver display)
    dist_timeout_s: float = 120.0  # a collective waiting longer than this fails the run

    def validate(self) -> None:
        """Check invariants that the type system cannot express."""
        if self.model.modality not in MODALITIES:
            raise ConfigError(f"model.modality {self.model.modality!r}: use one of "
                              f"{tuple(MODALITIES)}")
        check_dataset(self.data.dataset)
        channels = MODALITIES[self.model.modality].channels_per_frame
        if self.data.dataset == "clips" and self.data.synthetic_shape[0] != channels:
            raise ConfigError(f"data.synthetic_shape {self.data.synthetic_shape}: a "
                              f"{self.model.modality} frame has {channels} channels (C, H, W)")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision {self.precision!r}: use one of {PRECISIONS} "
                              "(fp32 = the release)")
        if self.model.partial_bn not in ("release", "paper", "none", "all"):
            raise ConfigError(f"model.partial_bn {self.model.partial_bn!r}: release/paper/none/all")
        if self.solver.clip_mode not in CLIP_MODES:
            raise ConfigError(f"solver.clip_mode {self.solver.clip_mode!r}: use one of "
                              f"{CLIP_MODES} (release = clip the gradient averaged over ranks "
                              "and iter_size, as the release's 4 GPUs x iter_size 1)")
        if self.solver.lr_policy not in schedule.POLICIES:
            raise ConfigError(f"solver.lr_policy {self.solver.lr_policy!r}: {schedule.POLICIES}")
        if self.test.val_list and self.test.interval <= 0:
            raise ConfigError("test.interval must be positive when test.val_list is set")
        if not 0 <= self.seed < 2**63:  # torch.manual_seed overflows later otherwise
            raise ConfigError(f"seed {self.seed} must be in 0 .. 2**63-1")
        if self.solver.max_iter <= 0 or self.checkpoint_every <= 0:
            raise ConfigError("solver.max_iter and checkpoint_every must be positive")
        if self.solver.effective_batch % self.solver.batch_per_process:
            raise ConfigError(
                f"solver.effective_batch {self.solver.effective_batch} is not a multiple of "
                f"solver.batch_per_process {self.solver.batch_per_process}"
            )


SECTIONS = {"model": ModelCfg, "data": DataCfg, "solver": SolverCfg, "test": TestCfg,
            "log": LogCfg}


class Override(str):
    """A value typed on the command line (`key=value`): text, parsed into the field's type.
    Plain strings from a config file are not: a file says what type it means."""


def _coerce(value, hint, key: str, source: str, text: bool | None = None):
    """Check one value against a field type; parse it only when it is command-line text
    (`text`, default: the value is an Override)."""
    text = isinstance(value, Override) if text is None else text
    origin = typing.get_origin(hint)
    if origin is tuple:
        if isinstance(value, str) and text:
            stripped = value.strip().strip("[]()")
            value = [v for v in stripped.split(",") if v.strip()] if stripped else []
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{source}: {key} must be a list, got {value!r}")
        item = typing.get_args(hint)[0]
        return tuple(_coerce(v, item, key, source, text) for v in value)
    if origin in (typing.Union, types.UnionType):
        raise ConfigError(f"{source}: {key}: union fields are not supported")
    if isinstance(value, str) and hint is not str and not text:
        raise ConfigError(f"{source}: {key} must be {hint.__name__}, got the string {value!r} "
                          f"(write it without quotes)")
    if hint is bool:
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "false", "0", "no"):
            return value.lower() in ("true", "1", "yes")
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        elif isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        number = None
        if isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                pass
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        if number is not None:
            if not math.isfinite(number):
                # TOML/JSON/overrides allow nan/inf; as an lr they only fail hours later
                raise ConfigError(f"{source}: {key} must be a finite number, got {value!r}")
            return number
    elif hint is str:
        if isinstance(value, str):
            return str(value)  # a plain str: an Override must not reach checkpoints (pickle)
    else:
        raise ConfigError(f"{source}: {key}: unsupported field type {hint}")
    raise ConfigError(f"{source}: {key} must be {hint.__name__}, got {value!r}")


def _flatten(data: dict, source: str, prefix: str = "") -> dict[str, object]:
    """Nested {"solver": {"base_lr": 1}} -> {"solver.base_lr": 1}."""
    flat = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            if prefix or key not in SECTIONS:
                raise ConfigError(f"{source}: {name!r} is not a config section {sorted(SECTIONS)}")
            flat.update(_flatten(value, source, f"{name}."))
        else:
            flat[name] = value
    return flat


def _hints(cls) -> dict[str, object]:
    return typing.get_type_hints(cls)


def _check_key(key: str, source: str) -> tuple[type, str, object]:
    """(dataclass, field name, type) of a dotted key; unknown keys raise with the valid ones."""
    section, _, name = key.rpartition(".")
    cls = SECTIONS.get(section) if section else Experiment
    hints = _hints(cls) if cls is not None else {}
    if cls is None or name not in hints or (not section and name in SECTIONS):
        valid = [f.name for f in fields(cls)] if cls is not None else sorted(SECTIONS)
        raise ConfigError(f"{source}: unknown config key {key!r}; valid here: {valid}")
    return cls, name, hints[name]


def read_config_file(path: str | Path) -> dict[str, object]:
    """Read a .json or .toml config as flat `section.key -> value` data (no code is executed)."""
    path = Path(path)
    if path.suffix not in (".toml", ".json"):
        raise ConfigError(f"{path}: config files must end in .json or .toml (never Python)")
    if path.suffix == ".toml" and tomllib is None:
        raise ConfigError(f"{path}: TOML needs Python >= 3.11; use a .json config")
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ConfigError(f"{path}: cannot read config file: {err.strerror}") from None
    try:
        text = raw.decode("utf-8")
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except ValueError as err:  # TOMLDecodeError, JSONDecodeError, UnicodeDecodeError
        raise ConfigError(f"{path}: not valid {path.suffix[1:].upper()}: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a table/object of config keys")
    return _flatten(data, str(path))


def parse_overrides(pairs: list[str]) -> dict[str, Override]:
    """['solver.base_lr=0.01', ...] -> {'solver.base_lr': Override('0.01')}; values parsed later
    by the field's type."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {pair!r}: write it as section.key=value")
        out[key.strip()] = Override(value.strip())
    return out


def build_experiment(values: dict[str, object], source: str = "config") -> Experiment:
    """Resolve defaults -> solver preset -> the given flat values into a validated Experiment."""
    typed: dict[str, object] = {}
    for key, value in values.items():
        _cls, _name, hint = _check_key(key, source)
        typed[key] = _coerce(value, hint, key, source)
    sections: dict[str, dict] = {name: {} for name in SECTIONS}
    top: dict[str, object] = {}
    for key, value in typed.items():
        section, _, name = key.rpartition(".")
        (sections[section] if section else top)[name] = value
    model = ModelCfg(**sections["model"])
    data = DataCfg(**sections["data"])
    solver_fields = dict(sections["solver"])
    preset_name = solver_fields.get("preset", SolverCfg.preset)
    check_dataset(data.dataset, f"{source}: ")
    if preset_name != "custom":
        # the synthetic sets are shaped like UCF101 and train with its schedules
        dataset = "ucf101" if data.dataset in ("synth", "clips") else data.dataset
        try:
            base = schedule.preset(preset_name, dataset, model.modality)
        except ValueError as err:
            raise ConfigError(f"{source}: {err}") from None
        solver_fields = {**base, **solver_fields}
    data, test = resolve_layout(model, data, TestCfg(**sections["test"]), source)
    exp = Experiment(model=model, data=data, solver=SolverCfg(**solver_fields), test=test,
                     log=LogCfg(**sections["log"]), **top)
    exp.validate()
    return exp


def resolve_layout(model: ModelCfg, data: DataCfg, test: TestCfg,
                   source: str = "config") -> tuple[DataCfg, TestCfg]:
    """Point an empty data.train_list and test.val_list="layout" at the lists of the data layout
    under data.layout_root (tsn.data.layout), for the model's modality and data.split."""
    if test.val_list == "layout" and not data.layout_root:
        raise ConfigError(f"{source}: test.val_list=layout needs data.layout_root (e.g. data)")
    if not data.layout_root:
        return data, test
    where = layout(data.dataset, data.layout_root)
    if not data.train_list:
        data = replace(data, train_list=str(where.list_path(model.modality, "train", data.split)))
    if test.val_list == "layout":
        test = replace(test, val_list=str(where.list_path(model.modality, "val", data.split)))
    return data, test


def load_experiment(path: str | Path | None, overrides: list[str] = ()) -> Experiment:
    """Config file (optional) plus `key=value` overrides -> a validated, frozen Experiment."""
    values = read_config_file(path) if path is not None else {}
    values.update(parse_overrides(list(overrides)))
    return build_experiment(values, source=str(path) if path else "command line")


def to_dict(exp: Experiment) -> dict:
    """The fully resolved experiment as plain JSON data (written to the run folder)."""
    return dataclasses.asdict(exp)


def from_resolved(data: dict, source: str) -> Experiment:
    """Rebuild an Experiment from `to_dict` output (the run folder's config.json).

    A config.json written before solver.clip_mode existed gets LEGACY_CLIP_MODE, the rule that
    run actually trained with.
    """
    flat = _flatten(data, source)
    flat.setdefault("solver.clip_mode", LEGACY_CLIP_MODE)
    # the resolved file already holds every solver field: do not re-apply a preset over it
    flat["solver.preset"] = "custom"
    exp = build_experiment(flat, source)
    return replace(exp, solver=replace(exp.solver, preset=data["solver"]["preset"]))


def solver_from_caffe(param, batch_per_process: int = 32, world_size: int = 1,
                      clip_mode: str = "release") -> SolverCfg:
    """A SolverCfg from a Caffe SolverParameter (prototxt_port.read_solver), preset 'custom'.

    `clip_mode` defaults to "release" (clip the gradient averaged over ranks and iter_size, so
    the prototxt's clip_gradients means what it meant on the release's GPUs, whatever the
    split); "caffe_iter_size" reproduces Caffe running this prototxt with its own iter_size.
    """
    if clip_mode not in CLIP_MODES:
        raise ConfigError(f"clip_mode {clip_mode!r}: use one of {CLIP_MODES}")
    if param.lr_policy not in schedule.POLICIES:
        raise ConfigError(f"solver lr_policy {param.lr_policy!r} is not one of {schedule.POLICIES}")
    if param.regularization_type not in ("", "L2"):
        raise ConfigError(f"solver regularization_type {param.regularization_type!r}: only L2")
    iter_size = max(1, int(param.iter_size))
    return SolverCfg(
        preset="custom",
        base_lr=float(param.base_lr),
        lr_policy=param.lr_policy,
        gamma=float(param.gamma),
        stepsize=int(param.stepsize),
        stepvalues=tuple(int(v) for v in param.stepvalue),
        max_iter=int(param.max_iter),
        momentum=float(param.momentum),
        weight_decay=float(param.weight_decay),
        clip_gradients=float(param.clip_gradients),
        clip_mode=clip_mode,
        effective_batch=batch_per_process * iter_size * world_size,
        batch_per_process=batch_per_process,
    )
