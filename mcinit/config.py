"""Run configuration: validation, defaults and the canonical JSON that identifies a run.

A :class:`RunConfig` holds everything that determines the per-trial results
(network, data, initialisation, head, kernel, seed, number of trials).  How a
run is executed (threads, batch size, output path, progress) is not part of it:
those never change a result.  ``config_json()`` is the canonical JSON stored in
every results file and ``config_hash()`` its sha256; resume and merge compare it.
"""

import dataclasses
import hashlib
import json
import math
import os
import re

__all__ = ["RunConfig", "ConfigError", "DEFAULTS", "INITS", "DISTS", "HEADS", "KERNELS",
           "parse_count", "parse_widths", "parse_head", "load_config_file"]

INITS = ("he", "he-in", "glorot", "lecun", "wn", "wn-unit")
DISTS = ("normal", "uniform")
HEADS = ("softmax", "gaussian")
KERNELS = ("auto", "dense", "projected", "law")
DATA_RANDOM = ("gaussian", "sphere")

#: the defaults mirror the authors' reference experiments (input_dim 500, depth 10,
#: softmax head with 20 classes) at a width where the properties visibly hold.
DEFAULTS = dict(trials=100_000, input_dim=500, width=512, depth=10, samples=1,
                data="gaussian", init="he", dist="normal", head="softmax:20",
                kernel="auto", seed=0)

MAX_WIDTH = 1 << 20
MAX_DEPTH = 4000


class ConfigError(ValueError):
    """A configuration value is invalid; the message is one line for the user."""


def parse_count(value, name="trials"):
    """An integer count from 250000, '250000', '1e6' or '2.5e5'; exact integers only."""
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be a whole number, got {value!r}")
    if isinstance(value, int):
        n = value
    else:
        text = str(value).strip().replace("_", "")
        try:
            if re.fullmatch(r"[+]?\d+", text):
                n = int(text)
            else:
                x = float(text)
                if not math.isfinite(x) or x != math.floor(x):
                    raise ValueError
                n = int(x)
        except ValueError:
            raise ConfigError(f"{name} must be a whole number such as 250000 or 1e6, got {value!r}") from None
    if n < 1:
        raise ConfigError(f"{name} must be at least 1, got {n}")
    return n


def parse_widths(value):
    """Hidden widths from '64,128,96' or a list of integers."""
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",") if p.strip()]
    else:
        parts = list(value)
    if not parts:
        raise ConfigError("widths must list at least one hidden width, e.g. 64,128,96")
    return [parse_count(p, "each width") for p in parts]


def parse_head(value):
    """('softmax', 20) from 'softmax:20'; the class count defaults to 20."""
    if isinstance(value, (list, tuple)) and len(value) == 2:
        kind, k = value
    else:
        text = str(value).strip()
        kind, _, k = text.partition(":")
        k = k or 20
    kind = str(kind).strip().lower()
    if kind not in HEADS:
        raise ConfigError(f"head must be softmax:K or gaussian:K, got {value!r}")
    k = parse_count(k, "the head's class count")
    if kind == "softmax" and k < 2:
        raise ConfigError("a softmax head needs at least 2 classes")
    return kind, k


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything that determines a run's per-trial results.

    widths      hidden widths n_1..n_L (n_0 = input_dim)
    input_dim   n_0, the input dimension
    samples     N, inputs per trial
    data        'gaussian' (x ~ N(0, I)), 'sphere' (uniform on the unit sphere), or a
                fixed dataset, one input per row: 'digits' (the bundled 8x8 digits),
                a .npy file, or PATH.h5:DATASET (absolute paths)
    data_sha256 content hash of a fixed dataset's file (part of the identity of a run)
    normalize   none | center | unit: what is done to a fixed dataset (mcinit.data)
    wn_gain     constant gain of weight-normalised rows (None: the init's gains)
    sup_starts, sup_steps
                the supremum search over the unit sphere (kernels/sup.py): local searches
                per layer and direction, and points each evaluates (None: no search)
    init        he | he-in | glorot | lecun | wn | wn-unit (DESIGN section 3)
    dist        normal | uniform (variance-scaling family; not used by wn inits)
    head        ('softmax', K) or ('gaussian', K)
    kernel      dense | projected | law (resolved; 'auto' is resolved before this)
    seed        0 <= seed < 2**64
    trials      number of trials T; trial indices run 0..T-1
    """

    widths: tuple
    input_dim: int
    samples: int
    data: str
    data_sha256: str
    init: str
    dist: str
    head: tuple
    kernel: str
    seed: int
    trials: int
    normalize: str = "none"
    wn_gain: float = None
    sup_starts: int = None
    sup_steps: int = None

    @property
    def sup(self):
        """Whether each trial also searches the sphere for the extreme forward ratios."""
        return self.sup_starts is not None

    @property
    def depth(self):
        return len(self.widths)

    @property
    def all_widths(self):
        """(n_0, n_1, ..., n_L)."""
        return (self.input_dim,) + tuple(self.widths)

    @property
    def fixed_data(self):
        return self.data not in DATA_RANDOM

    def to_dict(self):
        d = dataclasses.asdict(self)
        d["widths"] = list(self.widths)
        d["head"] = f"{self.head[0]}:{self.head[1]}"
        d["format"] = "mcinit-config-1"
        return d

    def config_json(self):
        """Canonical JSON: sorted keys, no spaces; stored as the file's ``config``."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    def config_hash(self):
        return hashlib.sha256(self.config_json().encode()).hexdigest()

    @classmethod
    def from_json(cls, text):
        d = json.loads(text)
        d.pop("format", None)
        d["widths"] = tuple(d["widths"])
        d["head"] = parse_head(d["head"])
        return cls(**d)


def load_config_file(path):
    """The keys of a JSON or TOML configuration file, as a dict."""
    if not os.path.isfile(path):
        raise ConfigError(f"config file not found: {path}")
    try:
        if path.endswith(".toml"):
            try:
                import tomllib
            except ImportError:  # Python < 3.11
                import tomli as tomllib
            with open(path, "rb") as f:
                d = tomllib.load(f)
        else:
            with open(path) as f:
                d = json.load(f)
    except Exception as e:  # any parse error is the user's file
        raise ConfigError(f"cannot read config file {path}: {str(e).splitlines()[0]}") from None
    if not isinstance(d, dict):
        raise ConfigError(f"config file {path} must hold a table of keys")
    return {k.replace("-", "_"): v for k, v in d.items()}


def build(trials=None, input_dim=None, width=None, depth=None, widths=None, samples=None,
          data=None, init=None, dist=None, head=None, kernel=None, seed=None, normalize=None,
          wn_gain=None, sup_search=None):
    """Validate user values (None = default) and return (RunConfig with kernel
    possibly 'auto', fixed dataset or None).  Raises ConfigError with one line."""
    from . import data as data_mod  # local: data imports numpy only

    d = dict(DEFAULTS)
    given = dict(trials=trials, input_dim=input_dim, width=width, depth=depth, samples=samples,
                 data=data, init=init, dist=dist, head=head, kernel=kernel, seed=seed)
    d.update({k: v for k, v in given.items() if v is not None})
    trials = parse_count(d["trials"], "trials")
    if trials >= 1 << 40:
        raise ConfigError("trials must be below 2**40")
    if widths is not None:
        if width is not None or depth is not None:
            raise ConfigError("give either --widths or --width/--depth, not both")
        ws = parse_widths(widths)
    else:
        w = parse_count(d["width"], "width")
        L = parse_count(d["depth"], "depth")
        ws = [w] * L
    if len(ws) > MAX_DEPTH:
        raise ConfigError(f"depth must be at most {MAX_DEPTH}")
    if max(ws) > MAX_WIDTH:
        raise ConfigError(f"widths must be at most {MAX_WIDTH}")
    init = str(d["init"]).strip().lower()
    if init not in INITS:
        raise ConfigError(f"init must be one of {', '.join(INITS)}; got {d['init']!r}")
    dist = str(d["dist"]).strip().lower()
    if dist not in DISTS:
        raise ConfigError(f"dist must be normal or uniform; got {d['dist']!r}")
    if init.startswith("wn") and dist != "normal":
        raise ConfigError("weight-normalised inits draw row directions from N(0, I); --dist uniform does not apply")
    head = parse_head(d["head"])
    kernel = str(d["kernel"]).strip().lower()
    if kernel not in KERNELS:
        raise ConfigError(f"kernel must be one of {', '.join(KERNELS)}; got {d['kernel']!r}")
    try:
        seed_v = int(str(d["seed"]).strip())
    except ValueError:
        raise ConfigError(f"seed must be an integer in [0, 2**64), got {d['seed']!r}") from None
    if not 0 <= seed_v < 1 << 64:
        raise ConfigError(f"seed must be an integer in [0, 2**64), got {seed_v}")

    sup_starts = sup_steps = None
    if sup_search is not None:
        parts = [p.strip() for p in str(sup_search).split(",")]
        if len(parts) != 2:
            raise ConfigError(f"sup-search must be STARTS,STEPS (e.g. 4,50), got {sup_search!r}")
        sup_starts = parse_count(parts[0], "sup-search starts")
        sup_steps = parse_count(parts[1], "sup-search steps")
        if data is None:
            d["data"] = "sphere"
        elif str(data).strip().lower() != "sphere":
            raise ConfigError("the supremum search draws its inputs on the unit sphere: use --data sphere")
        if kernel not in ("auto", "dense"):
            raise ConfigError("the supremum search needs every weight: use --kernel dense")
        kernel = "dense"
    gain = None
    if wn_gain is not None:
        if not init.startswith("wn"):
            raise ConfigError("--wn-gain applies to weight-normalised rows (--init wn or wn-unit)")
        try:
            gain = float(wn_gain)
        except (TypeError, ValueError):
            raise ConfigError(f"wn-gain must be a positive number, got {wn_gain!r}") from None
        if not (math.isfinite(gain) and gain > 0):
            raise ConfigError(f"wn-gain must be a positive number, got {wn_gain!r}")
    norm = str(normalize or "none").strip().lower()
    if norm not in data_mod.NORMALIZE:
        raise ConfigError(f"normalize must be one of {', '.join(data_mod.NORMALIZE)}; got {normalize!r}")
    src = str(d["data"]).strip()
    samples_given = samples is not None
    fixed = None
    sha = ""
    if src.lower() in DATA_RANDOM:
        src = src.lower()
        if norm != "none":
            raise ConfigError("--normalize applies to fixed datasets, not to random inputs")
        n0 = parse_count(d["input_dim"], "input_dim")
        N = parse_count(d["samples"], "samples")
    else:
        src, fixed, sha = data_mod.load_fixed(
            src, samples=parse_count(samples, "samples") if samples_given else None,
            input_dim=parse_count(input_dim, "input_dim") if input_dim is not None else None,
            normalize=norm, scale_free=head[0] == "gaussian")
        N, n0 = fixed.shape
    if n0 > MAX_WIDTH:
        raise ConfigError(f"input_dim must be at most {MAX_WIDTH}")
    if N > 1 << 20:
        raise ConfigError("samples must be at most 2**20 per trial")
    cfg = RunConfig(widths=tuple(ws), input_dim=n0, samples=N, data=src, data_sha256=sha,
                    init=init, dist=dist, head=head, kernel=kernel, seed=seed_v, trials=trials,
                    normalize=norm, wn_gain=gain, sup_starts=sup_starts, sup_steps=sup_steps)
    if cfg.sup and sup_starts > N:
        raise ConfigError(f"sup-search starts ({sup_starts}) cannot exceed the random inputs (--samples {N})")
    return cfg, fixed
