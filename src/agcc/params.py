"""Pydantic models mirroring ``params.yaml``; the only place the file is parsed.

Every model forbids unknown keys (pydantic drops them silently by default) and is frozen, so a
typo in ``params.yaml`` is an error that names the key instead of a silently ignored setting.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from agcc.errors import ConfigError

#: A device parameter: auto (CUDA when available, else CPU), cpu, cuda or cuda:N (one GPU).
Device = Annotated[str, Field(pattern=r"^(auto|cpu|cuda(:[0-9]+)?)$")]

EMOTIONS = ("neutral", "anger", "happiness", "sadness")
SPLITS = ("train", "val", "dev", "test")
VOWELS = ("AA", "AH", "EH", "IY", "AE", "UW")


class Section(BaseModel):
    """Base for every params section: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class BaseParams(Section):
    """Settings shared by every stage."""

    seed: int = 13
    emotions: tuple[str, ...] = EMOTIONS
    max_skip_share: float = Field(0.25, ge=0.0, le=1.0)

    @field_validator("emotions")
    @classmethod
    def _known_emotions(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [e for e in v if e not in EMOTIONS]
        if unknown or len(set(v)) != len(v) or len(v) < 2:
            raise ValueError(f"emotions must be >= 2 distinct names from {EMOTIONS}, got {list(v)}")
        return v


class CorpusParams(Section):
    """Where one corpus lives and how to read it."""

    adapter: Literal["crema_d", "msp_improv", "manifest"]
    root: str
    landmarks_dir: str
    textgrid_dir: str
    labels: Literal["intended", "voice", "multimodal", "consensus"] = "intended"
    split_by: Literal["speaker", "session"] = "speaker"
    manifest_csv: str | None = None
    # openface_csv: read OpenFace CSVs; dlib: extract them from the manifest's videos first
    landmarks_source: Literal["openface_csv", "dlib"] = "openface_csv"
    # textgrid: read MFA TextGrids; pocketsphinx: align the transcripts in the `align` stage
    align_source: Literal["textgrid", "pocketsphinx"] = "textgrid"
    # manifest adapter: audio/video/landmarks/textgrid paths outside `root` are an error unless true
    allow_outside_root: bool = False

    @model_validator(mode="after")
    def _labels_fit_adapter(self) -> CorpusParams:
        allowed = {
            "crema_d": {"intended", "voice", "multimodal"},
            "msp_improv": {"consensus"},
            "manifest": {"intended"},
        }[self.adapter]
        if self.labels not in allowed:
            raise ValueError(
                f"labels={self.labels!r} does not fit adapter {self.adapter!r}; use one of "
                f"{sorted(allowed)}"
            )
        if self.adapter == "msp_improv" and self.split_by != "session":
            # MSP-IMPROV's two speakers of a session share the dyadic recordings.
            raise ValueError("msp_improv corpora split by session, got split_by='speaker'")
        return self


class DemoCorpusSize(Section):
    """Size of one generated demo corpus."""

    n_speakers: int = Field(ge=2)
    utts_per_speaker: int = Field(ge=1)


class DemoParams(Section):
    """The synthetic corpus generator (``agcc demo``)."""

    crema: DemoCorpusSize = DemoCorpusSize(n_speakers=16, utts_per_speaker=48)
    improv: DemoCorpusSize = DemoCorpusSize(n_speakers=12, utts_per_speaker=48)
    other_emotion_share: float = Field(0.05, ge=0.0, lt=1.0)
    crema_out: str = "data/raw/demo_crema"
    improv_out: str = "data/raw/demo_improv"

    @model_validator(mode="after")
    def _improv_sessions(self) -> DemoParams:
        if self.improv.n_speakers % 2:
            raise ValueError(
                f"demo.improv.n_speakers must be even (one F and one M per session), "
                f"got {self.improv.n_speakers}"
            )
        return self


class PrepareParams(Section):
    """Manifest writing and speaker-independent splits."""

    split_fractions: dict[str, float] = Field(
        default_factory=lambda: {"train": 0.6, "val": 0.15, "dev": 0.1, "test": 0.15}
    )
    # A pilot with fewer speakers (sessions) than splits: one each, splits filled in this order
    # (the speaker with the most video first); [] = such a corpus is an error.
    pilot_split_order: tuple[str, ...] = ("val", "train", "test", "dev")

    @field_validator("pilot_split_order")
    @classmethod
    def _pilot_order(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if v and (len(set(v)) != len(v) or not {"train", "val"} <= set(v) <= set(SPLITS)):
            raise ValueError(
                f"pilot_split_order must be [] or distinct names from {SPLITS} including train "
                f"and val, got {list(v)}"
            )
        return v

    @field_validator("split_fractions")
    @classmethod
    def _fractions(cls, v: dict[str, float]) -> dict[str, float]:
        if set(v) != set(SPLITS):
            raise ValueError(f"split_fractions needs exactly the keys {SPLITS}, got {sorted(v)}")
        if any(f <= 0 for f in v.values()) or abs(sum(v.values()) - 1.0) > 1e-6:
            raise ValueError(f"split_fractions must be positive and sum to 1, got {v}")
        return v


class LandmarkParams(Section):
    """OpenFace CSV reading and mouth normalisation."""

    min_confidence: float = Field(0.5, ge=0.0, le=1.0)
    max_gap_frames: int = Field(3, ge=0)
    # the built-in dlib extractor (corpora with landmarks_source: dlib)
    workers: int = Field(2, ge=1)  # videos extracted in parallel processes
    detect_max_side: int = Field(640, ge=64)  # frames are shrunk to this longer side to detect
    max_upsample: int = Field(1, ge=0, le=3)  # detector upsampling tried when no face is found


class AlignParams(Section):
    """The built-in pocketsphinx aligner (corpora with align_source: pocketsphinx)."""

    workers: int = Field(2, ge=1)  # utterances aligned in parallel processes
    beam: float = Field(1e-100, gt=0.0, le=1.0)  # HMM state and phone beams; wide for long pauses
    wbeam: float = Field(1e-80, gt=0.0, le=1.0)  # word-exit beam
    dictionary: str | None = None  # extra pronunciations, added to pocketsphinx's en-us ones
    g2p: bool = True  # words in no dictionary: pronunciation from the offline g2p model


class SegmentParams(Section):
    """Vowel segments cut from the mouth tracks."""

    vowels: tuple[str, ...] = VOWELS
    stressed_ah_as_ah: bool = True
    context_ms: float = Field(0.0, ge=0.0, le=200.0)
    fps: float = Field(50.0, gt=0.0, le=1000.0)
    min_frames: int = Field(3, ge=2)
    # largest disagreement (s) between the audio, TextGrid and landmark-track durations of an
    # utterance; beyond it the utterance is skipped (a cut file, a wrong alignment or video)
    max_duration_mismatch_s: float = Field(0.5, gt=0.0)

    @field_validator("vowels")
    @classmethod
    def _known_vowels(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [x for x in v if x not in VOWELS]
        if unknown or not v:
            raise ValueError(f"vowels must be a non-empty subset of {VOWELS}, got {list(v)}")
        return v


class ClusterParams(Section):
    """AG clustering: Soft-DTW k-means over the validation segments of all corpora."""

    engine: Literal["torch", "tslearn"] = "torch"
    device: Device = "auto"
    k: int | None = Field(10, ge=2)
    k_grid: tuple[int, ...] = tuple(range(5, 31))
    # Mouth coordinates are in inter-eye units (frame distances ~0.1): at gamma 1 soft-DTW is
    # dominated by the -gamma*log-sum-exp term and the inertia stops falling with k.
    gamma: float = Field(0.01, gt=0.0)
    max_iter: int = Field(30, ge=1)
    tol: float = Field(1e-4, ge=0.0)
    n_init: int = Field(1, ge=1)
    fit_split: Literal["train", "val", "dev", "test"] = "val"
    max_fit_segments: int | None = Field(None, ge=10)
    silhouette_sample: int = Field(1000, ge=10)

    @field_validator("k_grid")
    @classmethod
    def _grid(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if len(v) < 3 or min(v) < 2 or list(v) != sorted(set(v)):
            raise ValueError(f"k_grid must be >= 3 increasing distinct values >= 2, got {list(v)}")
        return v


class AnalyzeParams(Section):
    """The paper's analyses: Table I overlap, Fig. 1 trajectories, Fig. 2 AG-acoustic heatmaps."""

    common_threshold: float = Field(25.0, ge=0.0, le=100.0)
    fig1_vowels: tuple[str, str] = ("AA", "IY")
    fig1_samples: int = Field(50, ge=1)
    # Fig. 2: acoustic Soft-DTW k-means on z-normalised acoustic frames of the fit split
    fig2_k: int = Field(10, ge=2)
    fig2_gamma: float = Field(1.0, gt=0.0)
    fig2_max_fit: int = Field(1000, ge=10)  # seeded subsample of the fit segments

    @field_validator("fig1_vowels")
    @classmethod
    def _vowels(cls, v: tuple[str, str]) -> tuple[str, str]:
        if any(x not in VOWELS for x in v):
            raise ValueError(f"fig1_vowels must be two of {VOWELS}, got {list(v)}")
        return v


class FeatureParams(Section):
    """Frozen acoustic encoder whose frame features feed the SER model (docs/method.md s. 6)."""

    encoder: Literal["logmel", "wav2vec2"] = "logmel"
    model: str = "facebook/wav2vec2-base"  # hub name or local folder (wav2vec2, HuBERT, WavLM)
    layer: int | Literal["all"] = -1  # hidden-state index, or all layers for a learned sum
    n_mels: int = Field(80, ge=8, le=256)
    batch_seconds: float = Field(60.0, gt=0.0)  # audio per batch; batches are grouped by length
    device: Device = "auto"
    # wav2vec2 forward pass: float32, or bfloat16 autocast (faster on GPUs; frames ~1 % off)
    dtype: Literal["float32", "bfloat16"] = "float32"
    # per-utterance frame mean/variance normalisation; off: channel differences between
    # corpora are part of the problem the anchoring addresses
    utterance_norm: bool = False


class SourceOnlyParams(Section):
    """source_only (and the upper bounds it serves): L = L_ER, no hyperparameters of its own."""


class PaccParams(Section):
    """pa_cc: L_ER + gamma * L_triplet, triplets grouped by vowel, w = 1."""

    gamma: float = Field(1.0, ge=0.0)  # weight of the anchoring loss
    alpha: float = Field(0.3, ge=0.0)  # triplet margin


class HardAgParams(Section):
    """hard_ag: vowel triplets weighted by w = exp(-beta * Dv[v_a, v_n])."""

    gamma: float = Field(1.0, ge=0.0)  # weight of the anchoring loss
    alpha: float = Field(0.3, ge=0.0)  # triplet margin
    beta: float = Field(0.2, ge=0.0)  # soft-weight scale


class LaccParams(Section):
    """la_cc: L_ER + gamma * CORAL on the ``top_m`` layers most similar across the corpora.

    With all-layer features (``features.layer: all``) the layers are the upstream model's,
    chosen before training; otherwise the SER encoder's, chosen after ``warmup_epochs``
    source-only epochs. ``top_m`` must be smaller than the layers available (checked when the
    layer count is known: :func:`agcc.training.anchoring.check_top_m`).
    """

    gamma: float = Field(100.0, ge=0.0)  # weight of the CORAL term (its own scale, see docs)
    top_m: int = Field(1, ge=1)  # layers anchored, the most similar by linear CKA
    warmup_epochs: int = Field(2, ge=0)  # source-only epochs before choosing encoder layers


class AgccParams(Section):
    """ag_cc (the paper): AG-cluster triplets weighted by w = exp(-beta * D[k_a, k_n])."""

    gamma: float = Field(1.0, ge=0.0)  # weight of the anchoring loss
    alpha: float = Field(0.3, ge=0.0)  # triplet margin
    beta: float = Field(0.2, ge=0.0)  # soft-weight scale


#: A method's own hyperparameters, one section of ``train`` per method.
MethodParams = SourceOnlyParams | PaccParams | HardAgParams | LaccParams | AgccParams
#: Every trainable method and the type of its ``train.<method>`` section.
METHOD_SECTIONS: dict[str, type[Section]] = {
    "source_only": SourceOnlyParams,
    "pa_cc": PaccParams,
    "hard_ag": HardAgParams,
    "la_cc": LaccParams,
    "ag_cc": AgccParams,
}
#: Methods of Table II: the trained ones and the upper bound (source_only on its own corpus).
ALL_METHODS = (*METHOD_SECTIONS, "upper_bound")


class TrainParams(Section):
    """The SER model and the experiment grid (docs/method.md section 7).

    Shared settings are top-level fields; each method's own hyperparameters are its section
    (``train.ag_cc`` ...), so DVC re-runs only that method's stage when they change.
    ``upper_bound`` is not a method of its own: the source_only model of each target corpus
    tested on its own test split.
    """

    methods: tuple[Literal["source_only", "pa_cc", "hard_ag", "la_cc", "ag_cc"], ...] = (
        "source_only",
        "pa_cc",
        "hard_ag",
        "la_cc",
        "ag_cc",
    )
    upper_bound: bool = True  # source_only also trains on each target, tested on its own test
    directions: tuple[tuple[str, str], ...] = (("demo_crema", "demo_improv"),)
    seeds: tuple[int, ...] = (1, 2, 3)
    lr: float = Field(1e-4, gt=0.0)
    weight_decay: float = Field(1e-3, ge=0.0)
    batch_size: int = Field(64, ge=2)
    max_epochs: int = Field(70, ge=1)
    patience: int = Field(10, ge=1)
    pseudo_label_threshold: float = Field(0.6, ge=0.0, le=1.0)
    oracle: bool = False  # true target labels for the anchors: analysis only, marked everywhere
    d_model: int = Field(128, ge=8)
    n_heads: int = Field(4, ge=1)
    n_layers: int = Field(2, ge=1)
    fc_hidden: int = Field(128, ge=4)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    frame_stride: int = Field(1, ge=1, le=8)  # input frames per encoder frame (strided conv)
    device: Device = "auto"
    # dedicated one-vs-rest models, one per emotion of base.emotions, beside the 4-class one
    binary_models: bool = False
    workers: int = Field(1, ge=1)  # training processes at once; results do not depend on it
    # what runs the grid: local = a pool of `workers` processes; ray = one Ray task per model
    # (docs/scaling.md "The training grid on Ray"); results do not depend on it
    engine: Literal["local", "ray"] = "local"
    # engine ray: null = a private local Ray instance (`workers` CPUs; on CUDA every visible GPU);
    # "auto" (the cluster `ray start` made on this machine) or "ray://<head>:10001" = join it
    ray_address: str | None = None
    gpus_per_run: float = Field(1.0, gt=0, le=1)  # engine ray on CUDA: GPU share of one model
    source_only: SourceOnlyParams = SourceOnlyParams()
    pa_cc: PaccParams = PaccParams()
    hard_ag: HardAgParams = HardAgParams()
    la_cc: LaccParams = LaccParams()
    ag_cc: AgccParams = AgccParams()

    @model_validator(mode="before")
    @classmethod
    def _sections_of_listed_methods(cls, data: object) -> object:
        """A method listed in ``methods`` needs its own section in the same mapping."""
        if isinstance(data, dict) and "methods" in data:
            methods = list(data["methods"] or ())
            if "upper_bound" in methods:
                raise ValueError(
                    "upper_bound is not a method to list in train.methods: set "
                    "train.upper_bound: true (source_only's model tested on its own corpus)"
                )
            missing = [m for m in methods if m in METHOD_SECTIONS and m not in data]
            if missing:
                raise ValueError(
                    f"train.methods lists {missing} but train has no section for "
                    f"{'them' if len(missing) > 1 else 'it'}: add "
                    + ", ".join(f"train.{m}" for m in missing)
                    + " with the method's hyperparameters"
                )
        return data

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if not v or len(set(v)) != len(v):
            raise ValueError(f"seeds must be a non-empty list of distinct ints, got {list(v)}")
        return v

    @model_validator(mode="after")
    def _upper_bound_needs_source_only(self) -> TrainParams:
        if self.upper_bound and "source_only" not in self.methods:
            raise ValueError(
                "train.upper_bound: true needs source_only in train.methods (the upper bound "
                "is the target corpus's source_only model on its own test split)"
            )
        if len(set(self.methods)) != len(self.methods):
            raise ValueError(f"train.methods has duplicates: {list(self.methods)}")
        return self

    @field_validator("ray_address")
    @classmethod
    def _ray_address(cls, v: str | None) -> str | None:
        host, _, port = (v or "").removeprefix("ray://").rpartition(":")
        if v is not None and v != "auto" and not (host and port.isdigit() and " " not in v):
            raise ValueError(
                f"{v!r} is no Ray address: use null (a private local Ray instance), auto (the "
                "cluster `ray start` made on this machine), ray://<head>:10001 or <head>:6379"
            )
        return v

    @model_validator(mode="after")
    def _ray_picks_the_gpu(self) -> TrainParams:
        if self.engine == "ray" and self.device.startswith("cuda:"):
            raise ValueError(
                f"train.device: {self.device} with train.engine: ray: Ray gives each run its own "
                "GPU (train.gpus_per_run), which the run sees as 'cuda'; use device cuda or auto"
            )
        return self

    def hyper(self, method: str) -> MethodParams:
        """The section of a method's own hyperparameters (upper_bound: source_only's)."""
        if method == "upper_bound":
            method = "source_only"
        if method not in METHOD_SECTIONS:
            raise ConfigError(
                f"unknown method {method!r}; known methods: {list(METHOD_SECTIONS)} "
                "(and upper_bound, served by source_only)"
            )
        return getattr(self, method)

    def table_methods(self) -> tuple[str, ...]:
        """Methods of Table II: ``methods``, plus upper_bound with ``upper_bound``."""
        return (*self.methods, "upper_bound") if self.upper_bound else tuple(self.methods)

    def check_method(self, method: str) -> MethodParams:
        """A method the train stage may run: known and listed in ``train.methods``."""
        section = self.hyper(method)
        if method not in self.methods:
            raise ConfigError(
                f"method {method!r} is not in train.methods {list(self.methods)}; add it "
                f"(with its train.{method} section) to params.yaml"
            )
        return section


class EvaluateParams(Section):
    """Table II: UARs, binary UARs, bootstrap CIs over seeds and utterances (method.md s. 8)."""

    # methods whose train.<method> values came from a tuning study on the target dev split;
    # Table II marks their rows "tuned" and says when not every anchored method was tuned
    tuned: tuple[str, ...] = ()
    bootstrap: int = Field(1000, ge=10)  # resamples: seeds, then test utterances, per draw
    ci: float = Field(0.95, gt=0.5, lt=1.0)  # central percentile interval; p-values Holm-adjusted


#: Methods ``agcc tune`` can tune: those with an anchoring loss and hyperparameters of their own.
TUNABLE_METHODS = ("pa_cc", "hard_ag", "la_cc", "ag_cc")


def searchable_fields(method: str) -> dict[str, type]:
    """The numeric (float or int) fields of ``train.<method>``: what tuning ``method`` searches."""
    fields = METHOD_SECTIONS[method].model_fields
    return {n: f.annotation for n, f in fields.items() if f.annotation in (float, int)}


Range = tuple[float, float]
#: Default ranges: the triplet methods share theirs (same ranges, same budget); la_cc's CORAL
#: gamma has its own scale.
_TRIPLET_RANGES: dict[str, Range] = {"gamma": (0.1, 3.0), "alpha": (0.05, 1.0), "beta": (0.0, 1.0)}
DEFAULT_RANGES: dict[str, dict[str, Range]] = {
    "pa_cc": {k: _TRIPLET_RANGES[k] for k in ("gamma", "alpha")},
    "hard_ag": dict(_TRIPLET_RANGES),
    "la_cc": {"gamma": (100.0, 10000.0), "top_m": (1, 1), "warmup_epochs": (0, 4)},
    "ag_cc": dict(_TRIPLET_RANGES),
}


def _check_range(method: str, name: str, low: float, high: float) -> None:
    """A range of ``train.<method>.<name>``: a searched field, valid bounds (ints for ints)."""
    where = f"tune.ranges.{method}.{name}"
    fields = searchable_fields(method)
    if name not in fields:
        raise ValueError(f"{where}: train.{method} has no numeric field {name!r} ({list(fields)})")
    if not 0.0 <= low <= high:
        raise ValueError(f"{where} must be [low, high] with 0 <= low <= high, got {[low, high]}")
    if fields[name] is int and not (float(low).is_integer() and float(high).is_integer()):
        raise ValueError(f"{where}: train.{method}.{name} is an int, got {[low, high]}")
    for bound in (low, high):
        try:
            METHOD_SECTIONS[method].model_validate({name: bound})
        except ValidationError as e:
            raise ValueError(f"{where}: {bound} is invalid: {e.errors()[0]['msg']}") from e


class TuneParams(Section):
    """Optuna search over one anchored method's own section (and ag_cc's k) (method.md s. 9).

    ``method`` (pa_cc, hard_ag, la_cc or ag_cc) searches every numeric field of its
    ``train.<method>`` section within ``ranges[method]`` (uniform; ints as ints), with the same
    ``n_trials`` whichever the method; ag_cc also searches k among the
    cached elbow-sweep models of the cluster stage. The objective is the UAR on the labelled
    target DEV split (disjoint from test), mean over ``seeds``.
    """

    method: Literal["pa_cc", "hard_ag", "la_cc", "ag_cc"] = "ag_cc"
    direction: tuple[str, str] | None = None  # [source, target]; None = first train.directions
    study_name: str | None = Field(None, min_length=1)  # None = agcc-<method>
    storage: str = Field("sqlite:///data/tune/optuna.db", min_length=1)  # any RDB URL
    n_trials: int = Field(20, ge=1)  # finished trials the study reaches (all workers together)
    seed: int = 13  # TPE sampler seed
    seeds: tuple[int, ...] = (1,)  # training seeds per trial
    max_epochs: int | None = Field(None, ge=1)  # None = train.max_epochs
    # per method: {field: [low, high]} of every numeric field of train.<method>
    ranges: dict[Literal["pa_cc", "hard_ag", "la_cc", "ag_cc"], dict[str, Range]] = DEFAULT_RANGES
    k: tuple[int, ...] = (8, 10, 12, 15)  # ag_cc only
    pruner_startup_trials: int = Field(5, ge=0)  # MedianPruner: trials before pruning starts
    pruner_warmup_epochs: int = Field(2, ge=0)  # MedianPruner: epochs before a trial can be pruned
    # a worker's running trial beats every heartbeat_s; one silent for grace_s (a killed worker)
    # is failed by the next worker and retried with its values, at most max_retry times
    heartbeat_s: int = Field(30, ge=1)
    grace_s: int = Field(120, ge=2)
    max_retry: int = Field(3, ge=0)

    @model_validator(mode="after")
    def _grace_after_heartbeat(self) -> TuneParams:
        """A trial is stale only after missing at least one heartbeat."""
        if self.grace_s <= self.heartbeat_s:
            raise ValueError(
                f"grace_s must exceed heartbeat_s, got grace_s {self.grace_s} and heartbeat_s "
                f"{self.heartbeat_s}"
            )
        return self

    @property
    def study(self) -> str:
        """The study's name: ``study_name``, or ``agcc-<method>`` when unset."""
        return self.study_name or f"agcc-{self.method}"

    def space(self) -> dict[str, tuple[float, float]]:
        """The method's searched fields and their ranges (ints stay ints)."""
        ranges = self.ranges.get(self.method, {})
        return {
            n: tuple(int(b) for b in ranges[n]) if t is int else ranges[n]
            for n, t in searchable_fields(self.method).items()
        }

    @field_validator("ranges")
    @classmethod
    def _ranges(cls, v: dict[str, dict[str, Range]]) -> dict[str, dict[str, Range]]:
        """Each range names a numeric field of its method, is [low, high] and fits the field."""
        for method, fields in v.items():
            for name, (low, high) in fields.items():
                _check_range(method, name, low, high)
        return v

    @model_validator(mode="after")
    def _method_has_ranges(self) -> TuneParams:
        """Every searched field of the tuned method needs a range."""
        have = set(self.ranges.get(self.method, {}))
        missing = sorted(set(searchable_fields(self.method)) - have)
        if missing:
            raise ValueError(
                f"tune.method {self.method} searches train.{self.method} fields {missing}: "
                "add " + ", ".join(f"tune.ranges.{self.method}.{n}" for n in missing)
            )
        return self

    @field_validator("k", "seeds")
    @classmethod
    def _distinct(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        """k choices and training seeds: a non-empty list of distinct ints."""
        if not v or len(set(v)) != len(v):
            raise ValueError(f"must be a non-empty list of distinct ints, got {list(v)}")
        return v


class Params(Section):
    """The whole ``params.yaml``."""

    base: BaseParams = BaseParams()
    corpora: dict[str, CorpusParams]
    demo: DemoParams = DemoParams()
    prepare: PrepareParams = PrepareParams()
    landmarks: LandmarkParams = LandmarkParams()
    align: AlignParams = AlignParams()
    segments: SegmentParams = SegmentParams()
    cluster: ClusterParams = ClusterParams()
    analyze: AnalyzeParams = AnalyzeParams()
    features: FeatureParams = FeatureParams()
    train: TrainParams = TrainParams()
    evaluate: EvaluateParams = EvaluateParams()
    tune: TuneParams = TuneParams()

    @model_validator(mode="before")
    @classmethod
    def _default_directions(cls, data: object) -> object:
        """``train.directions`` null or absent: every ordered pair of the configured corpora."""
        if not isinstance(data, dict) or not isinstance(data.get("corpora"), dict):
            return data
        train = data.get("train")
        if train is None or (isinstance(train, dict) and train.get("directions") is None):
            names = list(data["corpora"])
            pairs = [[s, t] for s in names for t in names if s != t]
            data = data | {"train": dict(train or {}) | {"directions": pairs}}
        return data

    def direction_problems(self) -> list[str]:
        """Every ``train.directions`` entry naming a corpus not in ``corpora``, by key path.

        Checked by the stages that read the directions (train, tune) and by ``agcc check``,
        not when the file is loaded: a stage that does not read ``train`` is never stopped by
        a stale direction (e.g. right after replacing the ``corpora`` entries).
        """
        return [
            f"train.directions[{i}][{j}]: unknown corpus {name!r}; params.yaml corpora are "
            f"{sorted(self.corpora)}"
            for i, pair in enumerate(self.train.directions)
            for j, name in enumerate(pair)
            if name not in self.corpora
        ]

    def check_directions(self) -> None:
        """Raise ParamsError naming every ``train.directions`` key path with an unknown corpus."""
        problems = self.direction_problems()
        if problems:
            raise ParamsError("params.yaml: invalid parameters\n  " + "\n  ".join(problems))

    def check_tune_k(self) -> None:
        """Fail when a tune.k choice has no cached AG model (checked by the tune stage only,
        so shrinking cluster.k_grid does not break the other stages); only ag_cc searches k."""
        if self.tune.method != "ag_cc":
            return
        cached = set(self.cluster.k_grid) | ({self.cluster.k} if self.cluster.k else set())
        stray = sorted(set(self.tune.k) - cached)
        if stray:
            raise ParamsError(
                f"tune.k {stray} have no cached AG model; choose from cluster.k_grid and "
                f"cluster.k {sorted(cached)}"
            )

    @model_validator(mode="after")
    def _tune_direction(self) -> Params:
        """tune.direction, when set, is one of train.directions."""
        d = self.tune.direction
        if d is not None and tuple(d) not in {tuple(x) for x in self.train.directions}:
            raise ValueError(
                f"tune.direction {list(d)} is not one of train.directions "
                f"{[list(x) for x in self.train.directions]}"
            )
        return self

    def tune_direction(self) -> tuple[str, str]:
        """The [source, target] pair tuning trains on: ``tune.direction`` or the first one."""
        return tuple(self.tune.direction or self.train.directions[0])

    @field_validator("corpora")
    @classmethod
    def _corpus_names(cls, v: dict[str, CorpusParams]) -> dict[str, CorpusParams]:
        bad = [k for k in v if not k.replace("_", "").isalnum()]
        if bad or not v:
            raise ValueError(f"corpus names must be non-empty [A-Za-z0-9_], got {bad or '{}'}")
        return v

    def corpus(self, name: str) -> CorpusParams:
        """Return one corpus's settings or fail naming the known corpora."""
        if name not in self.corpora:
            raise ConfigError(
                f"unknown corpus {name!r}; params.yaml defines {sorted(self.corpora)}"
            )
        return self.corpora[name]


class ParamsError(ConfigError):
    """``params.yaml`` is missing, unreadable or invalid."""


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate ``params.yaml``; errors name the file and every offending key."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError as e:
        raise ParamsError(f"{path}: no such params file") from e
    except yaml.YAMLError as e:
        raise ParamsError(f"{path}: not valid YAML: {e}") from e
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping at top level, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as e:
        lines = [_error_line(err) for err in e.errors()]
        raise ParamsError(f"{path}: invalid parameters\n" + "\n".join(lines)) from e


def key_path(loc: tuple[str | int, ...]) -> str:
    """A pydantic error location as a params key path: ``train.directions[0][1]``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _error_line(err: dict) -> str:
    """One validation error as ``  key.path: message (got value)``.

    Errors of a whole section (or of the file) carry the section as input: it is not repeated,
    and a message that starts with its own key path is not prefixed again.
    """
    where = key_path(tuple(err["loc"])) or "(top level)"
    msg = str(err["msg"]).removeprefix("Value error, ")
    got = err.get("input")
    show = err["type"] != "missing" and not isinstance(got, dict)
    text = msg if where != "(top level)" and msg.startswith(where) else f"{where}: {msg}"
    return f"  {text}" + (f" (got {got!r})" if show else "")
