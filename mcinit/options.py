"""The options of ``mcinit run``, ``sweep`` and ``submit``: one table that says everything about each.

Every fact about an option lives in its :class:`Option` row of :data:`OPTIONS`: its
name (the Python keyword of ``mcinit.config.build`` and the key of a config file),
its command-line spelling, its kind, its choices, default and help, whether it is
part of the run configuration (it changes results, so it enters the config hash) or
of execution only, whether a sweep or a submission may list several values, and how
its value is read back from a :class:`~mcinit.config.RunConfig`.  From the table come
the click options (:mod:`mcinit.cli_options`), the config-file reader
(:func:`read_config_file`), sweep lists (:mod:`mcinit.sweep`), the per-run
configuration of a submission (``mcinit.hpc.run_config_dict``) and the keywords of
``build``.

Values are read strictly, in one place (:meth:`Option.parse`): text as the command
line gives it matches an ASCII pattern before ``int`` or ``float`` sees it (they
would take ``1__0`` or full-width digits), a list names no empty item, a boolean is a
boolean.  A config file (JSON or TOML) may give an option its JSON/TOML type or the
text the command line takes (``"1e6"``, ``"64,128"``); a flag only a boolean.
Unknown, repeated and aliased keys, and tables or lists where one value is expected,
are refused with the key named.
"""

import dataclasses
import json
import math
import numbers
import os
import re

from .bundled import example_config_path, example_configs

__all__ = ["ConfigError", "Option", "OPTIONS", "BY_NAME", "RUN", "EXEC", "RUN_OPTIONS", "EXEC_OPTIONS",
           "SEVERAL", "INITS", "DISTS", "HEADS", "KERNELS", "DATA_RANDOM", "NORMALIZE", "BACKENDS",
           "FORMS", "GAUSSIAN_INITS", "EXACT_INITS", "ARCHS", "RESIDUAL_ARCHS", "WN_GRADS", "DEFAULT_BLOCKS", "parse_branch_scale", "ACTIVATIONS",
           "HOMOGENEOUS_ACTIVATIONS", "DEFAULT_LEAKY_SLOPE", "parse_activation", "PRECISIONS", "PROPERTIES", "DEFAULT_CLASSES", "defaults", "read_config_file", "collect", "split_list",
           "parse_count", "parse_integer", "parse_float", "parse_widths", "parse_head", "parse_sup_search", "parse_sup_bound", "DEFAULT_SUP_BOUND",
           "parse_shard", "run_values", "COMMANDS", "options_of", "markdown_table"]


class ConfigError(ValueError):
    """A configuration value is invalid; the message is one line for the user."""


# -- the enumerations, one place each ---------------------------------------------------------

#: weight initialisations (variance-scaling presets and weight-normalised rows)
INITS = ("he", "he-in", "glorot", "lecun", "paper-glorot", "orthogonal", "wn", "wn-unit")
#: activations phi of the hidden layers (leaky-relu takes its slope: leaky-relu:ALPHA, default
#: DEFAULT_LEAKY_SLOPE); mcinit.activations holds their functions, codes and gains
ACTIVATIONS = ("relu", "leaky-relu", "abs", "linear", "tanh", "gelu")
DEFAULT_LEAKY_SLOPE = 0.01
#: the activations that are positively homogeneous (phi(c a) = c phi(a), c > 0): a layer's ratio
#: does not depend on the input's norm, and one input's ratios have closed-form laws
HOMOGENEOUS_ACTIVATIONS = ("relu", "leaky-relu", "abs", "linear")
#: distributions of the weight entries
DISTS = ("normal", "uniform")
#: output heads: softmax:K (cross-entropy) or gaussian:K
HEADS = ("softmax", "gaussian")
#: kernels ('auto' picks one of the others for the configuration)
KERNELS = ("auto", "dense", "blocked", "projected", "law")
#: arithmetic of the weights, activations and matrix products (norms are float64 always)
PRECISIONS = ("float64", "float32")
#: the properties a run computes and records: the forward ratios, the backward ones, or both
PROPERTIES = ("both", "forward", "backward")
#: random input sources (anything else is a fixed dataset)
DATA_RANDOM = ("gaussian", "sphere")
#: what is done to a fixed dataset's rows
NORMALIZE = ("none", "center", "unit")
#: the report's figure files, by the extension --plot names (pdf, svg: vector), and a PNG's resolution
FIGURE_FORMATS = ("pdf", "svg", "png")
PNG_DPI = 200
#: report --panels: every panel in one file, or one file per panel (NAME-a.EXT, NAME-b.EXT, ...)
PANEL_MODES = ("together", "separate")
#: where the kernels run
BACKENDS = ("cpu", "cuda", "auto")
#: the initialisations with Gaussian weights of a variance-scaling preset (the bounds' and
#: exact laws' domain)
GAUSSIAN_INITS = ("he", "he-in", "glorot", "lecun", "paper-glorot")
#: the initialisations the exact one-input laws cover (mcinit.theory; mcinit bound --init)
EXACT_INITS = GAUSSIAN_INITS + ("orthogonal",)
#: network architectures: a plain chain of ReLU layers; residual blocks with a skip in every
#: block (y = h + s W_2 ReLU(W_1 h)); the paper's code's variant: a first layer, a chain of
#: 2B ReLU layers and one skip around the whole chain (out = h_1 + s chain(h_1))
ARCHS = ("plain", "residual", "single-skip")
RESIDUAL_ARCHS = ("residual", "single-skip")
#: residual blocks when a residual architecture is named without --blocks, --depth or --widths
DEFAULT_BLOCKS = 10
#: the parameter whose gradient the backward ratio of weight-normalised rows measures: the
#: effective weight W (g v/||v||) or the row direction v (the paper's code's)
WN_GRADS = ("weight", "direction")
#: deviation forms: |sqrt(ratio) - 1| (norm), |ratio - 1| (squared), max(sqrt(ratio),
#: 1/sqrt(ratio)) - 1 (symmetric: the norm form above 1, infinite as the ratio goes to 0, so
#: that it sees collapsing norms at every eps); mcinit.stats.deviation computes them
FORMS = ("norm", "squared", "symmetric")
#: the head's class count when a head is named without one
DEFAULT_CLASSES = 20

RUN = "run"     #: part of the run configuration: enters the config hash
EXEC = "exec"   #: how a run is executed: never changes a result
#: the commands built from the table (an option's ``commands`` names those that take it)
COMMANDS = ("run", "sweep", "submit")

COUNT, INTEGER, FLOAT, FLAG, CHOICE, TEXT, LIST = "count", "integer", "float", "flag", "choice", "text", "list"

_FLOAT_RE = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?", re.ASCII)
_INTEGER_RE = re.compile(r"[+-]?[0-9]+", re.ASCII)
_HEAD_RE = re.compile(r"([A-Za-z]+)(:(.*))?", re.ASCII | re.DOTALL)


def _is_number(value):
    """A real number (Python's or NumPy's), not a boolean (NumPy's is no number)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def parse_count(value, name="trials"):
    """A whole number >= 1 from 250000, 1e6 (an exact float), or the text '250000', '1e6', '2.5e5'.

    name: what the value is, for the error message.  Text is ASCII digits only (no
    underscores, no other scripts' digits); booleans are refused."""
    if isinstance(value, str):
        text = value.strip(" ")
        if _INTEGER_RE.fullmatch(text):
            n = int(text)
        elif _FLOAT_RE.fullmatch(text) and not text.startswith("-"):
            x = float(text)
            if not math.isfinite(x) or x != math.floor(x):
                raise ConfigError(f"{name} must be a whole number such as 250000 or 1e6, got {value!r}")
            n = int(x)
        else:
            raise ConfigError(f"{name} must be a whole number such as 250000 or 1e6, got {value!r}")
    elif not _is_number(value):
        raise ConfigError(f"{name} must be a whole number such as 250000 or 1e6, got {value!r}")
    elif not isinstance(value, numbers.Integral):
        if not math.isfinite(value) or value != math.floor(value):
            raise ConfigError(f"{name} must be a whole number such as 250000 or 1e6, got {value!r}")
        n = int(value)
    else:
        n = int(value)
    if n < 1:
        raise ConfigError(f"{name} must be at least 1, got {n}")
    return n


def parse_integer(value, name):
    """An integer from an int or ASCII text ('-3', '12'); booleans and floats are refused."""
    if isinstance(value, str):
        text = value.strip(" ")
        if not _INTEGER_RE.fullmatch(text):
            raise ConfigError(f"{name} must be an integer, got {value!r}")
        return int(text)
    if not (_is_number(value) and isinstance(value, numbers.Integral)):
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    return int(value)


def parse_float(value, name):
    """A number from an int, a float or ASCII text ('1.5', '2e-3'); booleans are refused."""
    if isinstance(value, str):
        text = value.strip(" ")
        if not _FLOAT_RE.fullmatch(text):
            raise ConfigError(f"{name} must be a number, got {value!r}")
        return float(text)
    if not _is_number(value):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    return float(value)


def split_list(text, name):
    """The items of a comma-separated list; an empty item ('8,,16', '8,') is refused."""
    items = [p.strip(" ") for p in text.split(",")]
    if any(not p for p in items):
        raise ConfigError(f"{name} lists an empty item: {text!r}")
    return items


def parse_widths(value):
    """Hidden widths (n_1, ..., n_L) from '64,128,96' or a list of whole numbers."""
    if isinstance(value, str):
        parts = split_list(value, "widths")
    elif isinstance(value, (list, tuple)):
        parts = list(value)
    else:
        raise ConfigError(f"widths must list the hidden widths, e.g. 64,128,96; got {value!r}")
    if not parts:
        raise ConfigError("widths must list at least one hidden width, e.g. 64,128,96")
    return tuple(parse_count(p, "each width") for p in parts)


def parse_head(value):
    """(kind, K) from 'softmax:20', 'gaussian:4' or ('softmax', 20); a bare 'softmax' has
    DEFAULT_CLASSES classes.  K is the number of classes (softmax) or outputs (gaussian)."""
    if isinstance(value, (list, tuple)) and len(value) == 2:
        kind, k = value
    elif isinstance(value, str):
        m = _HEAD_RE.fullmatch(value.strip(" "))
        if not m:
            raise ConfigError(f"head must be softmax:K or gaussian:K, got {value!r}")
        kind, k = m.group(1), (m.group(3) if m.group(2) else DEFAULT_CLASSES)
    else:
        raise ConfigError(f"head must be softmax:K or gaussian:K, got {value!r}")
    if not isinstance(kind, str) or kind.lower() not in HEADS:
        raise ConfigError(f"head must be softmax:K or gaussian:K, got {value!r}")
    kind = kind.lower()
    k = parse_count(k, "the head's class count")
    if kind == "softmax" and k < 2:
        raise ConfigError("a softmax head needs at least 2 classes")
    return kind, k


def parse_activation(value):
    """The canonical text of an activation: 'relu', 'abs', 'linear', 'tanh', 'gelu' or
    'leaky-relu:ALPHA' (ALPHA a finite number, shortest repr; a bare 'leaky-relu' has slope
    DEFAULT_LEAKY_SLOPE).  Case and surrounding spaces are ignored."""
    if not isinstance(value, str):
        raise ConfigError(f"activation must be one of {', '.join(ACTIVATIONS)} (leaky-relu:ALPHA), got {value!r}")
    text = value.strip(" ").lower()
    name, _, arg = text.partition(":")
    if name not in ACTIVATIONS or (arg and name != "leaky-relu") or (_ and not arg):
        raise ConfigError(f"activation must be one of {', '.join(ACTIVATIONS)} (leaky-relu:ALPHA), got {value!r}")
    if name != "leaky-relu":
        return name
    alpha = parse_float(arg, "the leaky-relu slope") if arg else DEFAULT_LEAKY_SLOPE
    if not math.isfinite(alpha):
        raise ConfigError(f"the leaky-relu slope must be a finite number, got {arg!r}")
    return f"leaky-relu:{alpha!r}"


def parse_branch_scale(value):
    """The residual branch's scale: a positive number (text '0.5' or a number) or '1/B' (one
    over the number of blocks, kept as the text '1/B' until the blocks are known)."""
    if isinstance(value, str) and value.strip(" ").upper() == "1/B":
        return "1/B"
    x = parse_float(value, "branch scale") if not isinstance(value, bool) else None
    if x is None or not (math.isfinite(x) and x > 0):
        raise ConfigError(f"branch scale must be a positive number or 1/B, got {value!r}")
    return x


def parse_sup_search(value):
    """(starts, steps) from 'STARTS,STEPS' (e.g. '4,50') or a pair of whole numbers."""
    if isinstance(value, str):
        parts = [p.strip(" ") for p in value.split(",")]
    elif isinstance(value, (list, tuple)):
        parts = list(value)
    else:
        parts = []
    if len(parts) != 2:
        raise ConfigError(f"sup-search must be STARTS,STEPS (e.g. 4,50), got {value!r}")
    return parse_count(parts[0], "sup-search starts"), parse_count(parts[1], "sup-search steps")


#: --sup-bound when --sup-search is given without it: boxes per layer and direction, and the
#: relative gap at which the branch-and-bound stops early
DEFAULT_SUP_BOUND = (256, 0.01)


def parse_sup_bound(value):
    """(boxes, gap) from 'BOXES' or 'BOXES,GAP' (e.g. '256,0.01') or such a pair: boxes a whole
    number >= 0 (0: only the global bound), gap a number >= 0 (0: use every box)."""
    if isinstance(value, str):
        parts = [p.strip(" ") for p in value.split(",")]
    elif isinstance(value, (list, tuple)):
        parts = list(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        parts = [value]
    else:
        parts = []
    if len(parts) not in (1, 2) or any(p == "" for p in parts):
        raise ConfigError(f"sup-bound must be BOXES or BOXES,GAP (e.g. 256,0.01), got {value!r}")
    boxes = parse_integer(parts[0], "sup-bound boxes")
    if boxes < 0 or boxes > MAX_SUP_BOXES:
        raise ConfigError(f"sup-bound boxes must be a whole number in [0, {MAX_SUP_BOXES}], got {parts[0]!r}")
    gap = DEFAULT_SUP_BOUND[1] if len(parts) == 1 else parse_float(parts[1], "sup-bound gap")
    if not (math.isfinite(gap) and gap >= 0):
        raise ConfigError(f"sup-bound gap must be a number >= 0, got {parts[1]!r}")
    return boxes, float(gap)


#: most boxes per layer and direction of the branch-and-bound
MAX_SUP_BOXES = 1 << 20


def _sup_bound_text(cfg):
    return None if cfg.sup_boxes is None else f"{cfg.sup_boxes},{cfg.sup_gap!r}"


_SHARD_RE = re.compile(r"([0-9]+)/([0-9]+)", re.ASCII)


def parse_shard(value):
    """(I, K) from 'I/K' (e.g. '0/4'): share I of K of the trial indices; the engine checks
    0 <= I < K <= trials."""
    m = _SHARD_RE.fullmatch(value.strip(" ")) if isinstance(value, str) else None
    if not m:
        raise ConfigError(f"shard must be I/K (e.g. 0/4), got {value!r}")
    return int(m.group(1)), int(m.group(2))


@dataclasses.dataclass(frozen=True)
class Option:
    """One option of run, sweep and submit.

    name         the Python keyword (``build(input_dim=...)``) and config-file key
    kind         count (whole number >= 1) | integer | float | flag | choice | text | list
    help         one line for ``--help``
    role         RUN (enters the config hash) or EXEC (never changes a result)
    default      the value when not given (None: none, or decided as ``default_text`` says)
    default_text the default as ``--help`` shows it (when it is not ``default`` itself)
    choices      the values of a choice, canonical spelling (read case-insensitively)
    several      a sweep and a submission may list several values, comma-separated
    in_file      a config file may set it
    short        a one-letter spelling, e.g. '-o'
    metavar      what --help shows for the value
    fields       the RunConfig fields the option sets (run options)
    value_of     RunConfig -> the value of this option that rebuilds it (None: not needed,
                 another option carries it)
    parse_text   for text options: the function that checks and converts a value
    commands     the commands that take it (run, sweep, submit)
    completion   words shell completion offers for a text value (choices offer theirs)
    files        shell completion offers file names too
    """

    name: str
    kind: str
    help: str
    role: str = RUN
    default: object = None
    default_text: str = None
    choices: tuple = None
    several: bool = False
    in_file: bool = True
    short: str = None
    metavar: str = None
    fields: tuple = ()
    value_of: object = None
    parse_text: object = None
    commands: tuple = COMMANDS
    completion: tuple = ()
    files: bool = False

    @property
    def flag(self):
        """The long command-line spelling, e.g. --input-dim."""
        return "--" + self.name.replace("_", "-")

    @property
    def spellings(self):
        """Every key under which a config file may give this option."""
        return tuple(dict.fromkeys((self.name, self.name.replace("_", "-"))))

    @property
    def label(self):
        """The option in words, as messages name it (batch size)."""
        return self.name.replace("_", " ")

    def parse(self, value):
        """The checked value of this option from a Python value or command-line text
        (strict; one-line ConfigError naming the option otherwise)."""
        name = self.label
        if self.kind == FLAG:
            if not isinstance(value, bool):
                raise ConfigError(f"{name} must be true or false, got {value!r}")
            return value
        if isinstance(value, (dict, list, tuple)) and self.kind not in (LIST, TEXT):
            raise ConfigError(f"{name} takes one value, got {value!r}")
        if isinstance(value, bool):
            raise ConfigError(f"{name} must not be a boolean, got {str(value).lower()}")
        if self.several and isinstance(value, str) and "," in value:
            raise ConfigError(f"{name} takes one value here (mcinit sweep and submit take lists), got {value!r}")
        if self.kind == COUNT:
            return parse_count(value, name)
        if self.kind == INTEGER:
            return parse_integer(value, name)
        if self.kind == FLOAT:
            return parse_float(value, name)
        if self.kind == LIST:
            return parse_widths(value)
        if self.kind == CHOICE:
            if not isinstance(value, str) or value.strip(" ").lower() not in self.choices:
                raise ConfigError(f"{name} must be one of {', '.join(self.choices)}; got {value!r}")
            return value.strip(" ").lower()
        # TEXT
        if self.parse_text is not None:
            return self.parse_text(value)
        if not isinstance(value, str):
            raise ConfigError(f"{name} must be text, got {value!r}")
        if not value.strip() or "\0" in value:
            raise ConfigError(f"{name} must be non-empty text without NUL characters, got {value!r}")
        return value

    def parse_several(self, value):
        """A list of checked values from 'a,b,c', a list, or one value (options with ``several``)."""
        if isinstance(value, str):
            items = split_list(value, self.flag)
        elif isinstance(value, (list, tuple)):
            items = list(value)
            if not items:
                raise ConfigError(f"{self.flag} lists no value")
        else:
            items = [value]
        return [self.parse(v) for v in items]

    def help_text(self, several=False):
        """--help's line: the help, the default, and (several) that a list is taken."""
        text = self.help
        shown = self.default_text if self.default_text is not None else self.default
        if self.kind == FLAG:
            shown = None
        if shown is not None:
            text += f"  [default: {shown}]"
        if several and self.several:
            text += "  A sweep takes a comma-separated list."
        return text


def _data(value):
    if not isinstance(value, str) or not value.strip(" ") or "\0" in value or "\n" in value:
        raise ConfigError(f"data must be gaussian, sphere, digits, a .npy file or FILE.h5:DATASET; got {value!r}")
    return value.strip(" ")


def _sup_text(cfg):
    return None if cfg.sup_starts is None else f"{cfg.sup_starts},{cfg.sup_steps}"


OPTIONS = (
    Option("trials", COUNT, "Number of trials (networks), e.g. 250000 or 1e6.", default=100_000,
           default_text="1e5", fields=("trials",), value_of=lambda c: c.trials),
    Option("input_dim", COUNT, "Input dimension n_0 (taken from the data for a fixed dataset).",
           default=500, several=True, fields=("input_dim",), value_of=lambda c: c.input_dim),
    Option("width", COUNT, "Width of every hidden layer.", default=512, several=True, fields=("widths",)),
    Option("depth", COUNT, "Number of hidden layers L.", default=10, several=True, fields=("widths",)),
    Option("widths", LIST, "One width per hidden layer, e.g. 64,128,96 (instead of --width/--depth).",
           fields=("widths",), value_of=lambda c: list(c.widths)),
    Option("samples", COUNT, "Inputs per trial N (the first N rows of a fixed dataset).", default=1,
           default_text="1, all rows of a fixed dataset", several=True, fields=("samples",),
           value_of=lambda c: c.samples),
    Option("data", TEXT, "gaussian | sphere (random inputs) | digits | PATH.npy | PATH.h5:DATASET "
           "(fixed datasets, one input per row).", default="gaussian", several=True, parse_text=_data,
           fields=("data", "data_sha256"), value_of=lambda c: c.data,
           completion=DATA_RANDOM + ("digits",), files=True),
    Option("normalize", CHOICE, "What is done to a fixed dataset: center subtracts the mean input, unit "
           "then scales every input to unit norm.", default="none", choices=NORMALIZE, fields=("normalize",),
           value_of=lambda c: c.normalize),
    Option("arch", CHOICE, "Architecture: plain ReLU layers; residual blocks y = h + s W_2 ReLU(W_1 h) after a "
           "first ReLU layer (a skip in every block); single-skip: the paper's code's variant, a first "
           "layer h_1, then 2B ReLU layers and one skip around them all (h_1 + s chain(h_1)).",
           default="plain", choices=ARCHS, several=True, fields=("arch",), value_of=lambda c: c.arch),
    Option("blocks", COUNT, "Residual blocks B of a residual architecture (depth 1 + 2B; instead of --depth).",
           default_text=f"{DEFAULT_BLOCKS} with --arch residual or single-skip", several=True,
           fields=("widths",)),
    Option("branch_scale", TEXT, "Scale s of the residual branch: a positive number, or 1/B.", default_text="1",
           several=True, parse_text=parse_branch_scale, fields=("branch_scale",),
           value_of=lambda c: c.branch_scale, completion=("1", "1/B")),
    Option("activation", TEXT, "Activation of the hidden layers: relu | leaky-relu:ALPHA | abs | linear | tanh "
           "| gelu.", default="relu", several=True, parse_text=parse_activation, fields=("activation",),
           value_of=lambda c: c.activation, completion=("relu", "leaky-relu:", "abs", "linear", "tanh", "gelu")),
    Option("init", CHOICE, "Weight initialisation: variance-scaling presets (paper-glorot: N(0, 1/n_l), what "
           "the paper's code calls glorot), orthogonal (Haar) weights, or weight-normalised rows (wn, wn-unit).",
           default="he", choices=INITS, several=True, fields=("init",), value_of=lambda c: c.init),
    Option("gain", FLOAT, "Gain g of the variance-scaling presets (Var = g^2 / fan) and of orthogonal weights.",
           default_text="the activation's gain for he, he-in and orthogonal (sqrt 2 for relu), 1 for glorot, "
           "lecun and paper-glorot", several=True, fields=("gain",), value_of=lambda c: c.gain),
    Option("wn_gain", FLOAT, "Constant gain g of weight-normalised rows g v/||v|| (with --init wn).",
           default_text="sqrt(2 n_(l-1)/n_l) for wn, 1 for wn-unit", fields=("wn_gain",),
           value_of=lambda c: c.wn_gain),
    Option("wn_grad", CHOICE, "With weight-normalised rows, the backward ratio's gradient: with respect to the "
           "effective weight W, or to the row direction (the paper's code's).", default="weight",
           choices=WN_GRADS, several=True, fields=("wn_grad",), value_of=lambda c: c.wn_grad),
    Option("dist", CHOICE, "Distribution of the weight entries (of the init's variance).", default="normal", choices=DISTS, several=True,
           fields=("dist",), value_of=lambda c: c.dist),
    Option("head", TEXT, "softmax:K (cross-entropy, random soft targets) | gaussian:K.",
           default=f"softmax:{DEFAULT_CLASSES}", several=True, parse_text=parse_head, fields=("head",),
           value_of=lambda c: f"{c.head[0]}:{c.head[1]}", completion=tuple(f"{h}:" for h in HEADS)),
    Option("kernel", CHOICE, "How the trials are computed (auto picks one for the configuration).", default="auto", choices=KERNELS,
           fields=("kernel",), value_of=lambda c: c.kernel),
    Option("precision", CHOICE, "Arithmetic of the weights, activations and matrix products (float32: "
           "the blocked kernel; norms and ratios are accumulated in float64).", default="float64",
           choices=PRECISIONS, several=True, fields=("precision",), value_of=lambda c: c.precision),
    Option("properties", CHOICE, "What each trial computes and records: forward (the hidden-layer norms "
           "only, no head or backward pass), backward (everything computed, the backward ratios recorded), "
           "or both.", default="both", choices=PROPERTIES,
           several=True, fields=("properties",), value_of=lambda c: c.properties),
    Option("sup_search", TEXT, "STARTS,STEPS: per trial, also search the unit sphere for the extreme "
           "forward ratios of every layer (the property for all inputs), from STARTS of the --samples "
           "random sphere inputs per layer and direction, STEPS points each (e.g. 4,50).",
           parse_text=parse_sup_search, fields=("sup_starts", "sup_steps"), value_of=_sup_text),
    Option("sup_bound", TEXT, "BOXES[,GAP]: with --sup-search, the certified bounds of the extreme forward "
           "ratios: a branch-and-bound over the sphere of at most BOXES boxes per layer and direction, "
           "stopping early at relative gap GAP.  Input dimension 2 (and small dimensions where the regions "
           "are few) is computed exactly instead.", default_text=f"{DEFAULT_SUP_BOUND[0]},{DEFAULT_SUP_BOUND[1]} "
           "with --sup-search", parse_text=parse_sup_bound, fields=("sup_boxes", "sup_gap"),
           value_of=_sup_bound_text),
    Option("seed", INTEGER, "Seed, 0 <= seed < 2**64.", default=0, several=True, fields=("seed",),
           value_of=lambda c: c.seed),
    Option("backend", CHOICE, "Where the trials are computed (auto: CUDA when an NVIDIA GPU is present).", role=EXEC,
           default="cpu", choices=BACKENDS),
    Option("threads", COUNT, "CPU threads (results do not depend on it).", role=EXEC, default_text="all"),
    Option("batch_size", COUNT, "Trials per batch (results do not depend on it).", role=EXEC,
           default_text="auto"),
    Option("output", TEXT, "Results file (HDF5).", role=EXEC, short="-o",
           default_text="mcinit-run.h5, sweeps mcinit-sweep.h5", metavar="PATH", files=True),
    Option("overwrite", FLAG, "Replace an existing results file.", role=EXEC, default=False),
    Option("resume", FLAG, "Continue the run in the output file where it stopped (start it if there is none); "
           "with a larger --trials, continue it to that many.", role=EXEC, default=False),
    Option("quiet", FLAG, "No progress bar and no summary; run and sweep print only the results file's path, "
           "on one line (a --dry-run prints its plan all the same).", role=EXEC, default=False, short="-q"),
    Option("verbose", FLAG, "Print every run's full summary as it ends, as well as the comparison table.",
           role=EXEC, default=False, short="-v", in_file=False, commands=("sweep",)),
    Option("shard", TEXT, "Run only share I of K of the trial indices of every run (contiguous), e.g. 0/4; "
           "merge the shard files with `mcinit merge` (`--sweep` for sweep files).", role=EXEC,
           parse_text=parse_shard, in_file=False, metavar="I/K", commands=("run", "sweep")),
    Option("ignore_limits", FLAG, "Run even when the memory or the disk the run needs (estimated from the "
           "configuration) exceeds what the machine has, or with more --threads than its cores.", role=EXEC,
           default=False),
    Option("dry_run", FLAG, "Say what the command would do and exit: the resolved configuration, the kernel "
           "and why, the time on this machine (from a short calibration, cached) and the disk; nothing is "
           "written (submit: writes and prints the scripts, submits nothing).", role=EXEC, default=False,
           in_file=False),
)

#: the options by name
BY_NAME = {o.name: o for o in OPTIONS}
#: the options of the run configuration (they enter the config hash), and of execution only
RUN_OPTIONS = tuple(o for o in OPTIONS if o.role == RUN)
EXEC_OPTIONS = tuple(o for o in OPTIONS if o.role == EXEC)
#: the options a sweep and a submission may list, comma-separated
SEVERAL = tuple(o.name for o in OPTIONS if o.several)


def options_of(command):
    """The rows of the table that ``command`` (run, sweep or submit) takes, in order."""
    if command not in COMMANDS:
        raise ValueError(f"command must be one of {COMMANDS}, got {command!r}")
    return tuple(o for o in OPTIONS if command in o.commands)


def defaults():
    """{name: default} of the run options that have one."""
    return {o.name: o.default for o in RUN_OPTIONS if o.default is not None}


def run_values(cfg):
    """{option: value} of every run option that rebuilds ``cfg`` with ``build`` (same config
    hash); None for an option that is not set (wn_gain, sup_search).  width and depth are
    carried by widths."""
    return {o.name: o.value_of(cfg) for o in RUN_OPTIONS if o.value_of is not None}


# -- config files ------------------------------------------------------------------------------


def _no_duplicates(path):
    def hook(pairs):
        seen = set()
        for k, _ in pairs:
            if k in seen:
                raise ConfigError(f"config file {path} gives key {k!r} twice")
            seen.add(k)
        return dict(pairs)
    return hook


def read_config_file(path, several=False):
    """{option name: checked value} of a JSON or TOML configuration file.

    several: the command takes lists (sweep, submit): options with ``several`` may then be
    given a list.  A JSON null is as if the key were not there.  Unknown keys, a key given twice or under two spellings (input_dim and
    input-dim), a value of the wrong type (a string for a flag, a table where one value is
    expected) are refused with the key named.  A path that does not exist but names a bundled
    example (``he_vs_glorot_norms`` or ``he_vs_glorot_norms.toml``, mcinit.bundled) reads
    that example; an existing file always wins."""
    if not os.path.lexists(path) and example_config_path(path) is not None:
        path = example_config_path(path)
    if not os.path.isfile(path):
        hint = "" if os.sep in path else f" (nor a bundled example: {', '.join(example_configs())})"
        shown = path if path.isprintable() else repr(path)      # a line break stays in one line
        raise ConfigError(f"config file not found: {shown}{hint}")
    try:
        if path.endswith(".toml"):
            try:
                import tomllib
            except ImportError:          # Python 3.10: the same reader as the tomli package
                import tomli as tomllib
            with open(path, "rb") as f:
                d = tomllib.load(f)
        else:
            with open(path, encoding="utf-8") as f:
                d = json.load(f, object_pairs_hook=_no_duplicates(path),
                              parse_constant=lambda c: _refuse_constant(path, c))
    except ConfigError:
        raise
    except Exception as e:  # any parse error is the user's file
        lines = str(e).splitlines() or [type(e).__name__]
        raise ConfigError(f"cannot read config file {path}: {lines[0]}") from None
    if not isinstance(d, dict):
        raise ConfigError(f"config file {path} must hold a table of keys")
    spelled = {s: o for o in OPTIONS if o.in_file for s in o.spellings}
    values, given_as = {}, {}
    for key, value in d.items():
        opt = spelled.get(key)
        if opt is None:
            raise ConfigError(f"unknown key {key!r} in config file {path}")
        if opt.name in given_as:
            raise ConfigError(f"config file {path} gives {opt.name} twice, as {given_as[opt.name]!r} "
                              f"and {key!r}")
        given_as[opt.name] = key
        if value is None:            # JSON null: as if the key were not there
            continue
        try:
            if isinstance(value, dict):
                raise ConfigError("a table where a value is expected")
            if several and opt.several and isinstance(value, (list, str)):
                values[opt.name] = opt.parse_several(value)
            elif isinstance(value, list) and opt.kind not in (LIST,) and opt.parse_text not in (parse_sup_search,
                                                                                       parse_sup_bound):
                raise ConfigError("a list where one value is expected"
                                  + (" (mcinit sweep and submit take lists)" if opt.several else ""))
            else:
                values[opt.name] = opt.parse(value)
        except ConfigError as e:
            raise ConfigError(f"key {key!r} in config file {path}: {e}") from None
    return values


def _refuse_constant(path, name):
    raise ConfigError(f"config file {path} holds {name}, which is not a number")


def collect(config_file, given, several=False):
    """(run values, execution values) of a command: the config file's keys overlaid with
    the options given on the command line (already checked by their click types).

    given: {option name: value or None (not given)}; several: the command takes lists.
    Run values are keywords of ``build`` (lists for a sweep); execution values have
    every EXEC option, with its default where not given."""
    values = read_config_file(config_file, several=several) if config_file else {}
    values.update({k: v for k, v in given.items() if v is not None})
    execution = {}
    for o in EXEC_OPTIONS:
        execution[o.name] = values.pop(o.name, o.default)
    return values, execution


# -- documentation -----------------------------------------------------------------------------


_VALUE_TEXT = {COUNT: "whole number >= 1 (`250000`, `1e6`)", INTEGER: "integer", FLOAT: "number",
               FLAG: "flag (`true`/`false` in a file)", TEXT: "text", LIST: "whole numbers (`64,128,96`)"}


def markdown_table():
    """The options as a Markdown table, as docs/cli.md shows them (``python -m mcinit.options``)."""
    rows = ["| option | config-file key | value | default | sweep lists | part of | meaning |",
            "|---|---|---|---|---|---|---|"]
    for o in OPTIONS:
        spell = f"`{o.short}`, `{o.flag}`" if o.short else f"`{o.flag}`"
        key = f"`{o.name}`" if o.in_file else "(command line only)"
        value = " \\| ".join(f"`{c}`" for c in o.choices) if o.kind == CHOICE else _VALUE_TEXT[o.kind]
        if o.kind == FLAG and not o.in_file:
            value = "flag"
        elif o.kind == TEXT and o.metavar:
            value = f"`{o.metavar}`"
        shown = "" if o.kind == FLAG else (o.default_text if o.default_text is not None else o.default)
        shown = "" if shown is None else f"{shown}"
        role = "configuration (hashed)" if o.role == RUN else "execution"
        meaning = o.help.replace("|", "\\|")
        if o.commands != COMMANDS:
            meaning += f" ({' and '.join(f'`{c}`' for c in o.commands)} only.)"
        rows.append(f"| {spell} | {key} | {value} | {shown} | {'yes' if o.several else ''} | {role} | {meaning} |")
    return "\n".join(rows) + "\n"

if __name__ == "__main__":   # python -m mcinit.options: the table of docs/cli.md
    print(markdown_table(), end="")
