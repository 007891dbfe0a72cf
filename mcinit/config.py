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

from .options import (BY_NAME, DATA_RANDOM, DEFAULT_BLOCKS, DEFAULT_SUP_BOUND, DISTS, HEADS, INITS, KERNELS, ConfigError, defaults, parse_count,
                      parse_head, parse_widths, read_config_file, run_values)

__all__ = ["RunConfig", "ConfigError", "DEFAULTS", "INITS", "DISTS", "HEADS", "KERNELS", "build", "check_precision",
           "parse_count", "parse_widths", "parse_head", "load_config_file", "data_identity"]

#: the defaults (from the option table, mcinit.options) mirror the authors' reference
#: experiments (input_dim 500, depth 10, softmax head with 20 classes) at a width where
#: the properties visibly hold.
DEFAULTS = defaults()
#: fields added after the first format, left out of the config JSON at their default value
OPTIONAL_FIELDS = {"precision": "float64", "properties": "both", "arch": "plain", "branch_scale": 1.0,
                   "wn_grad": "weight", "activation": "relu", "gain": None, "sup_boxes": None, "sup_gap": None}

MAX_WIDTH = 1 << 20
MAX_DEPTH = 4000
#: inputs per trial at most
MAX_SAMPLES = 1 << 20


def data_identity(source):
    """What of a data source enters the config hash: a random source's name, 'digits',
    'npy' or 'h5:DATASET' for a file (whose content enters as data_sha256): the same file
    at another path is the same configuration."""
    if source in DATA_RANDOM or source == "digits":
        return source
    path, sep, dset = source.rpartition(":")
    if sep and (path == "h5" or path.lower().endswith((".h5", ".hdf5"))):
        return f"h5:{dset}"
    return "npy"


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
                a .npy file, or PATH.h5:DATASET (absolute paths).  A file's path is
                provenance only: the config JSON holds ``data_identity(data)``
    data_sha256 content hash of a fixed dataset's file (the file's identity in a run)
    normalize   none | center | unit: what is done to a fixed dataset (mcinit.data)
    wn_gain     constant gain of weight-normalised rows (None: the init's gains)
    sup_starts, sup_steps
                the supremum search over the unit sphere (kernels/sup.py): local searches
                per layer and direction, and points each evaluates (None: no search)
    sup_boxes, sup_gap
                with the supremum search, the certified bounds' budget: boxes of the
                branch-and-bound per layer and direction, and the relative gap at which it
                stops (--sup-bound).  None with the search: a run of an earlier mcinit,
                whose file holds the search's values only (it reads; it is not continued)
    init        he | he-in | glorot | lecun | wn | wn-unit (docs/design.md section 3)
    dist        normal | uniform (variance-scaling family; not used by wn inits)
    head        ('softmax', K) or ('gaussian', K)
    kernel      dense | blocked | projected | law (resolved; 'auto' is resolved before this)
    seed        0 <= seed < 2**64
    trials      number of trials T; trial indices run 0..T-1
    precision   float64 | float32: the arithmetic of weights, activations and products
    properties  both | forward | backward: what each trial computes and records
    arch        plain | residual | single-skip (mcinit.options.ARCHS); a residual network has
                depth 1 + 2B: layer 1, then block b's hidden layer 2b and output layer 2b + 1
    branch_scale
                the residual branch's scale s (1/B resolved to its number)
    wn_grad     weight | direction: the gradient of weight-normalised rows' backward ratio
    activation  the hidden layers' activation, canonical text (mcinit.options.parse_activation)
    gain        --gain of the variance-scaling presets and orthogonal weights (None: the
                default, mcinit.initializers.init_gain_squared)
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
    precision: str = "float64"
    properties: str = "both"
    arch: str = "plain"
    branch_scale: float = 1.0
    wn_grad: str = "weight"
    activation: str = "relu"
    gain: float = None
    sup_boxes: int = None
    sup_gap: float = None

    @property
    def residual(self):
        """Whether the network has residual blocks (arch residual or single-skip)."""
        return self.arch != "plain"

    @property
    def blocks(self):
        """The residual blocks B (0 for a plain network)."""
        return (self.depth - 1) // 2 if self.residual else 0

    @property
    def sup(self):
        """Whether each trial also searches the sphere for the extreme forward ratios."""
        return self.sup_starts is not None

    @property
    def sup_certified(self):
        """Whether the run records the two-sided extremes over the sphere (the exact or certified
        methods' columns, format version 4): every run with the search this mcinit makes."""
        return self.sup and self.sup_boxes is not None

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
        """The fields that identify the run (a data file by its content, not its path)."""
        d = dataclasses.asdict(self)
        d["data"] = data_identity(self.data)
        d["widths"] = list(self.widths)
        d["head"] = f"{self.head[0]}:{self.head[1]}"
        d["format"] = "mcinit-config-1"
        for k, default in OPTIONAL_FIELDS.items():
            if d[k] == default:     # a configuration of an earlier version keeps its hash
                del d[k]
        return d

    def config_json(self):
        """Canonical JSON: sorted keys, no spaces; stored as the file's ``config``."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    def config_hash(self):
        """sha256 of ``config_json()``: resume and merge compare it."""
        return hashlib.sha256(self.config_json().encode()).hexdigest()

    @property
    def data_path(self):
        """The fixed dataset's file (provenance, written beside the config), or None."""
        return self.data if data_identity(self.data) != self.data else None

    def values(self):
        """The keywords of ``build`` (and keys of a config file) that rebuild this
        configuration with the same config hash; the data file by its path."""
        return run_values(self)

    @classmethod
    def from_json(cls, text, data_path=None):
        """The configuration of a results file's ``config`` JSON.

        data_path: the dataset's path written beside it (files of earlier versions hold
        the path in the JSON itself); without it a data file is known by its content only."""
        d = json.loads(text)
        d.pop("format", None)
        d["widths"] = tuple(d["widths"])
        d["head"] = parse_head(d["head"])
        if data_path and data_identity(data_path) == d["data"]:
            d["data"] = data_path
        return cls(**d)


#: the kernels that compute in float32 (auto resolves to blocked there)
FLOAT32_KERNELS = ("auto", "blocked")


def check_precision(kernel, precision):
    """A ConfigError when the kernel asked for (auto or a name) does not compute ``precision``
    (the one check and its wording: configuration and kernel resolution share it)."""
    if precision != "float64" and kernel not in FLOAT32_KERNELS:
        raise ConfigError(f"--precision {precision} is computed by the blocked kernel; use --kernel blocked "
                          f"or auto, not {kernel}")


def load_config_file(path, several=False):
    """The checked option values of a JSON or TOML configuration file (``options.read_config_file``)."""
    return read_config_file(path, several=several)


def build(*, trials=None, input_dim=None, width=None, depth=None, widths=None, samples=None,
          data=None, normalize=None, arch=None, blocks=None, branch_scale=None, activation=None, init=None,
          gain=None, wn_gain=None, wn_grad=None, dist=None, head=None, kernel=None, precision=None,
          properties=None, sup_search=None, sup_bound=None, seed=None):
    """Validate user values and return (RunConfig with kernel possibly 'auto', fixed
    dataset (N, n_0) or None).  Raises ConfigError with one line.

    The keywords are the run options of mcinit.options (their meaning and defaults are
    there; None = the default): Python values or the command line's text ('1e6', '64,128').
    """
    from . import data as data_mod  # local: data imports numpy only

    given = dict(trials=trials, input_dim=input_dim, width=width, depth=depth, widths=widths,
                 samples=samples, data=data, normalize=normalize, init=init, wn_gain=wn_gain, dist=dist,
                 head=head, kernel=kernel, precision=precision, properties=properties, sup_search=sup_search,
                 sup_bound=sup_bound, seed=seed, arch=arch, blocks=blocks, branch_scale=branch_scale, wn_grad=wn_grad,
                 activation=activation, gain=gain)
    given = {k: BY_NAME[k].parse(v) for k, v in given.items() if v is not None}
    d = dict(DEFAULTS)
    d.update(given)
    trials = d["trials"]
    if trials >= 1 << 40:
        raise ConfigError("trials must be below 2**40")
    arch = d["arch"]
    if "blocks" in given and arch == "plain":
        raise ConfigError("--blocks counts residual blocks: use it with --arch residual or single-skip")
    if "widths" in given:
        if "width" in given or "depth" in given or "blocks" in given:
            raise ConfigError("give either --widths or --width with --depth or --blocks, not both")
        ws = list(given["widths"])
    elif arch != "plain":
        if "depth" in given and "blocks" in given:
            raise ConfigError("give either --depth or --blocks, not both (depth = 1 + 2 blocks)")
        ws = [d["width"]] * (d["depth"] if "depth" in given else 1 + 2 * given.get("blocks", DEFAULT_BLOCKS))
    else:
        ws = [d["width"]] * d["depth"]
    if arch != "plain":
        if len(ws) < 3 or len(ws) % 2 == 0:
            raise ConfigError(f"a residual network has depth 1 + 2B (a first layer, then B blocks of two "
                              f"layers): {len(ws)} layers is not of that form")
        off = [i + 1 for i in range(2, len(ws), 2) if ws[i] != ws[0]]
        if arch == "residual" and off:
            raise ConfigError(f"a block's output is added to its input: every block's output width must be "
                              f"the first layer's ({ws[0]}), not layer {off[0]}'s {ws[off[0] - 1]}")
        if arch == "single-skip" and ws[-1] != ws[0]:
            raise ConfigError(f"the single skip adds the last layer to the first: their widths must agree "
                              f"({ws[0]} and {ws[-1]})")
    scale = d.get("branch_scale", 1.0)
    if scale != 1.0 and arch == "plain":
        raise ConfigError("--branch-scale scales a residual branch: use it with --arch residual or single-skip")
    if scale == "1/B":
        scale = 1.0 / ((len(ws) - 1) // 2)
    wn_grad = d["wn_grad"]
    if len(ws) > MAX_DEPTH:
        raise ConfigError(f"depth must be at most {MAX_DEPTH}")
    if max(ws) > MAX_WIDTH:
        raise ConfigError(f"widths must be at most {MAX_WIDTH}")
    init, dist, kernel, norm = d["init"], d["dist"], d["kernel"], d["normalize"]
    if init.startswith("wn") and dist != "normal":
        raise ConfigError("weight-normalised inits draw row directions from N(0, I); --dist uniform does not apply")
    if wn_grad != "weight" and not init.startswith("wn"):
        raise ConfigError("--wn-grad applies to weight-normalised rows (--init wn or wn-unit)")
    activation = d["activation"]
    init_gain = given.get("gain")
    if init_gain is not None:
        if init.startswith("wn"):
            raise ConfigError("--gain is the gain of variance-scaling and orthogonal weights; weight-normalised "
                              "rows take --wn-gain")
        if not (math.isfinite(init_gain) and init_gain > 0):
            raise ConfigError(f"gain must be a positive number, got {gain!r}")
    if init == "orthogonal" and dist != "normal":
        raise ConfigError("orthogonal weights are a Haar matrix times the gain; --dist uniform does not apply")
    if arch != "plain" and (activation != "relu" or init == "orthogonal"):
        raise ConfigError(f"residual networks (--arch {arch}) have ReLU activations and Gaussian, uniform or "
                          "weight-normalised weights: --activation and --init orthogonal are for plain networks")
    head = parse_head(d["head"])
    seed = d["seed"]
    if not 0 <= seed < 1 << 64:
        raise ConfigError(f"seed must be an integer in [0, 2**64), got {seed}")

    sup_starts = sup_steps = sup_boxes = sup_gap = None
    if "sup_bound" in given and "sup_search" not in given:
        raise ConfigError("--sup-bound is the budget of the supremum search's certified bounds: give --sup-search too")
    if "sup_search" in given:
        sup_starts, sup_steps = given["sup_search"]
        sup_boxes, sup_gap = given.get("sup_bound", DEFAULT_SUP_BOUND)
        if "data" not in given:
            d["data"] = "sphere"
        elif given["data"].lower() != "sphere":
            raise ConfigError("the supremum search draws its inputs on the unit sphere: use --data sphere")
        if kernel not in ("auto", "dense"):
            raise ConfigError("the supremum search needs every weight: use --kernel dense")
        if d["precision"] != "float64":
            raise ConfigError(f"the supremum search runs the dense kernel, in float64: --precision "
                              f"{d['precision']} does not apply")
        if arch != "plain":
            raise ConfigError("the supremum search is of plain networks, not --arch " + arch)
        if activation != "relu" or init == "orthogonal":
            raise ConfigError("the supremum search is of ReLU networks with row-wise weights: not --activation "
                              f"{activation} or --init orthogonal")
        if d["properties"] == "backward":
            raise ConfigError("the supremum search is of the forward property: use --properties forward or both")
        kernel = "dense"
    check_precision(kernel, d["precision"])
    gain = given.get("wn_gain")
    if gain is not None:
        if not init.startswith("wn"):
            raise ConfigError("--wn-gain applies to weight-normalised rows (--init wn or wn-unit)")
        if not (math.isfinite(gain) and gain > 0):
            raise ConfigError(f"wn-gain must be a positive number, got {wn_gain!r}")
    src = d["data"]
    fixed = None
    sha = ""
    if src.lower() in DATA_RANDOM:
        src = src.lower()
        if norm != "none":
            raise ConfigError("--normalize applies to fixed datasets, not to random inputs")
        n0 = d["input_dim"]
        N = d["samples"]
    else:
        src, fixed, sha = data_mod.load_fixed(src, samples=given.get("samples"),
                                              input_dim=given.get("input_dim"), normalize=norm,
                                              scale_free=head[0] == "gaussian")
        N, n0 = fixed.shape
    if n0 > MAX_WIDTH:
        raise ConfigError(f"input_dim must be at most {MAX_WIDTH}")
    if N > MAX_SAMPLES:
        raise ConfigError("samples must be at most 2**20 per trial")
    cfg = RunConfig(widths=tuple(ws), input_dim=n0, samples=N, data=src, data_sha256=sha,
                    init=init, dist=dist, head=head, kernel=kernel, seed=seed, trials=trials,
                    normalize=norm, wn_gain=gain, sup_starts=sup_starts, sup_steps=sup_steps,
                    sup_boxes=sup_boxes, sup_gap=sup_gap,
                    precision=d["precision"], properties=d["properties"], arch=arch,
                    branch_scale=float(scale), wn_grad=wn_grad, activation=activation, gain=init_gain)
    if cfg.sup and sup_starts > N:
        raise ConfigError(f"sup-search starts ({sup_starts}) cannot exceed the random inputs (--samples {N})")
    return cfg, fixed
