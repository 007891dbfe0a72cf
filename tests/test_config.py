"""The run configuration: one option table (mcinit.options), the config hash, and strict reading
of option values from the command line and from config files."""

import dataclasses
import hashlib
import inspect
import json
import os
import shutil

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from mcinit import config, engine, options
from mcinit.cli import main
from mcinit.config import ConfigError, RunConfig


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def root_attr(path, name, group="/"):
    with h5py.File(path, "r") as f:
        return f[group].attrs[name]


@pytest.fixture(scope="module")
def rows6(tmp_path_factory):
    """A fixed dataset of 5 inputs of dimension 6."""
    p = tmp_path_factory.mktemp("rows") / "rows6.npy"
    np.save(p, np.random.default_rng(3).normal(size=(5, 6)) + 0.5)
    return p


# Small configurations that together set every run option to a value other than its
# default (some options exclude others: --widths / --width --depth, --sup-search / a data file).
def configurations(rows):
    return [
        dict(trials=12, input_dim=6, widths=[5, 7], samples=3, data=str(rows), normalize="center",
             init="wn", wn_gain=1.25, head="gaussian:3", kernel="blocked", precision="float32", seed=5),
        dict(trials=10, input_dim=6, width=7, depth=2, samples=2, init="glorot", dist="uniform",
             head="softmax:4", kernel="dense", seed=3),
        dict(trials=8, input_dim=2, width=6, depth=2, samples=3, data="sphere", init="lecun",
             sup_search="2,5", sup_bound="64,0.05", properties="forward", seed=2),
        dict(trials=6, input_dim=5, width=6, arch="residual", blocks=1, branch_scale="1/B", samples=2,
             init="wn", kernel="dense", seed=4),
        # --wn-grad direction: refused by every kernel until the plain dense kernel computes it
        dict(trials=6, input_dim=5, width=6, depth=2, samples=2, init="wn", wn_grad="direction", kernel="dense",
             seed=6),
        dict(trials=6, input_dim=5, widths=[6, 4], samples=2, activation="leaky-relu:0.2", init="orthogonal",
             gain=1.3, kernel="dense", seed=7),
    ]


def cli_args(values):
    args = []
    for k, v in values.items():
        args += [options.BY_NAME[k].flag, ",".join(map(str, v)) if isinstance(v, list) else str(v)]
    return args


def toml_text(values):
    def lit(v):
        if isinstance(v, list):
            return "[" + ", ".join(map(str, v)) + "]"
        return json.dumps(v)
    return "".join(f"{k} = {lit(v)}\n" for k, v in values.items())


def test_the_configurations_set_every_run_option_to_a_non_default(rows6):
    given = {}
    for values in configurations(rows6):
        given.update(values)
    assert set(given) == {o.name for o in options.RUN_OPTIONS}
    for name, default in options.defaults().items():
        assert given[name] != default, name


@pytest.mark.parametrize("which", [0, 1, pytest.param(2, marks=pytest.mark.slow), pytest.param(3, marks=pytest.mark.slow),
                                   4, 5])   # (2, 3: the search's and the residual kernels' compiles, with the slow tests)
def test_run_config_files_sweep_and_submit_give_one_config_hash(tmp_path, rows6, which):
    values = configurations(rows6)[which]
    want = engine.resolve(config.build(**values)[0]).config_hash()
    hashes = {}

    r = invoke("run", *cli_args(values), "-o", tmp_path / "run.h5", "-q")
    assert r.exit_code == 0, r.output
    hashes["run"] = root_attr(tmp_path / "run.h5", "config_hash")

    (tmp_path / "c.json").write_text(json.dumps(values))
    (tmp_path / "c.toml").write_text(toml_text(values))
    for name in ("c.json", "c.toml"):
        r = invoke("run", "--config", tmp_path / name, "-o", tmp_path / f"{name}.h5", "-q")
        assert r.exit_code == 0, r.output
        hashes[name] = root_attr(tmp_path / f"{name}.h5", "config_hash")

    r = invoke("sweep", *cli_args(values), "-o", tmp_path / "sweep.h5", "-q")
    assert r.exit_code == 0, r.output
    with h5py.File(tmp_path / "sweep.h5", "r") as f:
        (name,) = json.loads(f.attrs["runs"])
        hashes["sweep"] = f[f"runs/{name}"].attrs["config_hash"]

    out = tmp_path / "sub.h5"
    r = invoke("submit", *cli_args(values), "--shards", 2, "--dry-run", "-q", "-o", out)
    assert r.exit_code == 0, r.output
    parts = tmp_path / "sub.h5.parts"
    plan = json.loads((parts / "plan.json").read_text())
    (run,) = plan["runs"]
    hashes["plan"] = run["config_hash"]
    per_run = json.loads((parts / run["config"]).read_text())
    assert set(per_run) == {o.name for o in options.RUN_OPTIONS} - {"width", "depth", "blocks"}   # widths holds them
    r = invoke("run", "--config", parts / run["config"], "--shard", "0/2", "-o", tmp_path / "shard.h5", "-q")
    assert r.exit_code == 0, r.output
    hashes["submit"] = root_attr(tmp_path / "shard.h5", "config_hash")

    assert hashes == dict.fromkeys(hashes, want)


def test_every_run_option_enters_the_config_hash():
    fields = {f.name for f in dataclasses.fields(RunConfig)}
    # (precision and properties enter the JSON where they are not their defaults: config.OPTIONAL_FIELDS)
    hashed = set(json.loads(engine.resolve(config.build(trials=3, width=4, depth=1, precision="float32",
                                                        properties="forward")[0]).config_json()))
    hashed |= set(json.loads(engine.resolve(config.build(trials=3, width=4, arch="residual", blocks=1,
                                                         branch_scale=0.5, init="wn", wn_grad="direction")[0]
                                            ).config_json()))
    hashed |= set(json.loads(config.build(trials=3, width=4, depth=1, activation="tanh", init="orthogonal",
                                          gain=1.2, kernel="dense")[0].config_json()))
    hashed |= set(json.loads(config.build(trials=3, width=4, depth=1, samples=2, sup_search="1,1")[0].config_json()))
    covered = set()
    for o in options.RUN_OPTIONS:
        assert o.fields and set(o.fields) <= fields, o.name
        assert set(o.fields) <= hashed, o.name
        covered |= set(o.fields)
    assert covered == fields            # and every field of a configuration is an option's
    for o in options.EXEC_OPTIONS:
        assert not o.fields and o.value_of is None


def test_build_takes_the_run_options_as_keywords():
    assert list(inspect.signature(config.build).parameters) == [o.name for o in options.RUN_OPTIONS]


def test_the_values_of_a_configuration_rebuild_it(rows6):
    for values in configurations(rows6):
        cfg = engine.resolve(config.build(**values)[0])
        again = engine.resolve(config.build(**cfg.values())[0])
        assert again == cfg


def test_a_data_file_enters_the_hash_by_its_content_not_its_path(tmp_path, rows6):
    a, b = tmp_path / "a", tmp_path / "mnt" / "elsewhere"
    a.mkdir(), b.mkdir(parents=True)
    shutil.copy(rows6, a / "x.npy"), shutil.copy(rows6, b / "y.npy")
    ca = config.build(trials=5, data=str(a / "x.npy"), width=4, depth=1)[0]
    cb = config.build(trials=5, data=str(b / "y.npy"), width=4, depth=1)[0]
    assert ca.data != cb.data and ca.config_hash() == cb.config_hash()
    assert json.loads(ca.config_json())["data"] == "npy"
    other = tmp_path / "other.npy"
    np.save(other, np.load(rows6) * 2)
    assert config.build(trials=5, data=str(other), width=4, depth=1)[0].config_hash() != ca.config_hash()
    # the path is provenance, beside the config
    r = invoke("run", "--trials", 5, "--data", b / "y.npy", "--width", 4, "--depth", 1, "-o", tmp_path / "r.h5", "-q")
    assert r.exit_code == 0, r.output
    assert root_attr(tmp_path / "r.h5", "data_path") == str(b / "y.npy")
    assert root_attr(tmp_path / "r.h5", "config_hash") == engine.resolve(ca).config_hash()
    text = root_attr(tmp_path / "r.h5", "config")
    assert RunConfig.from_json(text, data_path=str(b / "y.npy")).data == str(b / "y.npy")
    assert RunConfig.from_json(text).config_hash() == engine.resolve(ca).config_hash()


def test_config_json_of_earlier_versions_with_the_data_path_is_read(rows6):
    cfg = config.build(trials=5, data=str(rows6), width=4, depth=1)[0]
    old = cfg.to_dict()
    old["data"] = str(rows6)                       # as earlier versions wrote it
    text = json.dumps(old, sort_keys=True, separators=(",", ":"))
    back = RunConfig.from_json(text)
    assert back.data == str(rows6) and back.data_path == str(rows6) and back.fixed_data
    assert back.config_hash() == cfg.config_hash()
    assert hashlib.sha256(text.encode()).hexdigest() != cfg.config_hash()


def test_random_inputs_keep_their_config_hash():
    """Configurations without a data file hash as before the option table (results files
    written earlier resume and merge)."""
    cfg = config.build(trials=100, input_dim=6, widths="5,7", samples=2, seed=1)[0]
    assert json.loads(cfg.config_json())["data"] == "gaussian"


def test_example_configurations_read_strictly():
    from mcinit import bundled
    assert bundled.example_configs()
    for name in bundled.example_configs():
        values = options.read_config_file(bundled.example_config_path(name), several=True)
        assert values and all(k in options.BY_NAME for k in values)


def test_sweep_lists_seed_dist_and_head():
    from mcinit import sweep
    runs = sweep.expand(dict(trials=5, input_dim=4, width=4, depth=1, seed="1,2", dist="normal,uniform",
                             head="softmax:3,gaussian:2"))
    assert len(runs) == 8 and len({cfg.config_hash() for _, cfg, _ in runs}) == 8


def test_sweep_lists_from_a_config_file(tmp_path):
    from mcinit import sweep
    p = tmp_path / "s.toml"
    p.write_text('trials = 5\ninput_dim = 4\nwidth = [4, 6]\ndepth = 1\ninit = "he,glorot"\n')
    values = options.read_config_file(str(p), several=True)
    assert values["width"] == [4, 6] and values["init"] == ["he", "glorot"]
    assert len(sweep.expand(values)) == 4
    with pytest.raises(ConfigError, match="one value"):
        options.read_config_file(str(p), several=False)


def test_docs_cli_md_is_the_option_table():
    path = os.path.join(os.path.dirname(os.path.dirname(__file__)), "docs", "cli.md")
    with open(path) as f:
        text = f.read()
    start = text.index("| option |")
    table = options.markdown_table()
    assert text[start:start + len(table)] == table, \
        "docs/cli.md: regenerate the table with python -m mcinit.options"


# -- strictness --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("strict")
    r = invoke("run", "--trials", 20, "--input-dim", 4, "--widths", "3,3", "-o", d / "good.h5", "-q")
    assert r.exit_code == 0, r.output
    return d


#: config files refused: (file name, content)
BAD_FILES = {
    "string false overwrite (JSON)": ("c.json", '{"trials": 20, "input_dim": 4, "widths": [3, 3], "overwrite": "false"}'),
    "string false overwrite (TOML)": ("c.toml", 'trials = 20\ninput_dim = 4\nwidths = [3, 3]\noverwrite = "false"\n'),
    "string false resume": ("c.json", '{"trials": 20, "resume": "false"}'),
    "string false quiet (TOML)": ("c.toml", 'trials = 20\nquiet = "false"\n'),
    "number for a flag": ("c.json", '{"trials": 20, "overwrite": 0}'),
    "duplicate key (JSON)": ("c.json", '{"trials": 20, "trials": 30}'),
    "duplicate key (TOML)": ("c.toml", 'trials = 20\ntrials = 30\n'),
    "aliased key": ("c.json", '{"trials": 20, "input_dim": 4, "input-dim": 4}'),
    "aliased key (TOML)": ("c.toml", 'trials = 20\ninput_dim = 4\ninput-dim = 5\n'),
    "unknown key": ("c.json", '{"trials": 20, "colour": "red"}'),
    "boolean for a count": ("c.json", '{"trials": true}'),
    "fractional count": ("c.json", '{"trials": 2.5}'),
    "NaN": ("c.json", '{"trials": NaN}'),
    "fractional seed": ("c.json", '{"trials": 20, "seed": 1.5}'),
    "seed as a float": ("c.toml", 'trials = 20\nseed = 1e3\n'),
    "table for a value": ("c.toml", 'trials = 20\n[width]\nvalue = 8\n'),
    "object for widths": ("c.json", '{"trials": 20, "widths": {"a": 1}}'),
    "list for one value in run": ("c.json", '{"trials": 20, "width": [8, 16]}'),
    "nested list in widths": ("c.json", '{"trials": 20, "widths": [[3], 3]}'),
    "number for a choice": ("c.json", '{"trials": 20, "init": 3}'),
    "list for data": ("c.json", '{"trials": 20, "data": ["gaussian"]}'),
    "empty head count": ("c.json", '{"trials": 20, "head": "softmax:"}'),
    "lenient count text": ("c.json", '{"trials": "1__0_"}'),
    "full-width digits": ("c.json", '{"trials": "\\uff11\\uff10"}'),
    "not a table": ("c.json", '[1, 2]'),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_config_files_are_strict(files, tmp_path, case):
    name, content = BAD_FILES[case]
    cfg = tmp_path / name
    cfg.write_text(content)
    before = (files / "good.h5").read_bytes()
    r = invoke("run", "--config", cfg, "-o", files / "good.h5")
    assert r.exit_code == 2, (case, r.output)
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("mcinit: error: "), (case, r.output)
    assert "Traceback" not in r.output
    assert (files / "good.h5").read_bytes() == before


#: command lines refused
BAD_ARGS = {
    "underscores in a count": ["run", "--trials", "1__0_"],
    "full-width digits": ["run", "--trials", "\uff11\uff10"],
    "Arabic-Indic digits": ["run", "--width", "\u0663"],
    "empty widths item": ["run", "--widths", "8,,16"],
    "trailing comma in widths": ["run", "--widths", "8,"],
    "empty sweep item": ["sweep", "--width", "8,,16"],
    "empty head count": ["run", "--head", "softmax:"],
    "fractional threads": ["run", "--threads", "1.9"],
    "fractional batch size": ["run", "--batch-size", "2.5"],
    "underscore in a seed": ["run", "--seed", "1_0"],
    "float seed": ["run", "--seed", "1e3"],
    "underscore in a gain": ["run", "--init", "wn", "--wn-gain", "1_0"],
    "hexadecimal count": ["run", "--trials", "0x10"],
    "half a sup-search": ["run", "--sup-search", "2,"],
    "list in run": ["run", "--width", "8,16"],
    "unknown list item": ["sweep", "--init", "he,xavier"],
    "file overwrite false": ["run", "--config", "{d}/over.json"],
}


@pytest.mark.parametrize("case", sorted(BAD_ARGS))
def test_command_line_values_are_strict(files, case):
    (files / "over.json").write_text('{"overwrite": "false"}')
    before = (files / "good.h5").read_bytes()
    args = [str(a).format(d=files) for a in BAD_ARGS[case]]
    r = invoke(*args, "-o", files / "good.h5", "-q")
    assert r.exit_code == 2, (case, r.output)
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("mcinit: error: "), (case, r.output)
    assert "Traceback" not in r.output
    assert (files / "good.h5").read_bytes() == before


def test_file_booleans_as_booleans_are_taken(files, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("trials = 20\ninput-dim = 4\nwidths = [3, 3]\nseed = 3\noverwrite = false\nquiet = true\n")
    before = (files / "good.h5").read_bytes()
    r = invoke("run", "--config", cfg, "-o", files / "good.h5")   # another seed than good.h5's run
    assert r.exit_code == 2 and "exists" in r.output    # overwrite = false: not replaced
    assert (files / "good.h5").read_bytes() == before
    out = tmp_path / "new.h5"
    r = invoke("run", "--config", cfg, "-o", out)
    assert r.exit_code == 0 and r.stdout == f"{out}\n"  # quiet = true: only the path


def test_json_null_is_as_if_the_key_were_not_there(tmp_path):
    p = tmp_path / "c.json"
    p.write_text('{"trials": 20, "wn_gain": null, "overwrite": null}')
    assert options.read_config_file(str(p)) == {"trials": 20}


def test_counts_read_exactly():
    o = options.BY_NAME["trials"]
    assert o.parse("1e6") == 10 ** 6 and o.parse("2.5e5") == 250_000 and o.parse(" 12 ") == 12
    assert o.parse(1e6) == 10 ** 6 and o.parse(7) == 7 and o.parse(np.int64(9)) == 9
    assert type(o.parse(np.int64(9))) is int and options.BY_NAME["seed"].parse(np.uint64(2 ** 63)) == 2 ** 63
    for bad in ("1_000", "1e-3", "-1", "inf", "nan", "", "1,000", True, np.bool_(True), 2.5, [3]):
        with pytest.raises(ConfigError):
            o.parse(bad)
    assert options.parse_head("softmax") == ("softmax", 20) and options.parse_head("Gaussian:3") == ("gaussian", 3)
    assert options.BY_NAME["init"].parse_several("he, glorot") == ["he", "glorot"]


# -- precision and properties ----------------------------------------------------------------

@pytest.mark.parametrize("kernel", ["dense", "projected", "law"])
def test_float32_with_another_kernel_is_refused_by_build_as_by_resolve(kernel):
    """--precision float32 is the blocked kernel's: build refuses any other kernel at once,
    in the words kernel resolution uses (one check, config.check_precision)."""
    from mcinit import kernels
    from mcinit.initializers import DIST_NORMAL
    with pytest.raises(ConfigError) as built:
        config.build(trials=5, width=4, depth=2, precision="float32", kernel=kernel)
    with pytest.raises(ConfigError) as resolved:
        kernels.resolve(kernel, DIST_NORMAL, (4, 4, 4), 1, 20, "he", "float32")
    assert str(built.value) == str(resolved.value)
    with pytest.raises(ConfigError) as checked:
        config.check_precision(kernel, "float32")
    assert str(checked.value) == str(built.value)
    for ok in ("auto", "blocked"):
        config.check_precision(ok, "float32")
        cfg = engine.resolve(config.build(trials=5, width=4, depth=2, precision="float32", kernel=ok)[0])
        assert cfg.kernel == "blocked" and cfg.precision == "float32"
    config.check_precision(kernel, "float64")


def test_the_supremum_search_refuses_float32_and_the_backward_property_alone():
    with pytest.raises(ConfigError, match="supremum search runs the dense kernel, in float64"):
        config.build(trials=5, width=4, depth=2, sup_search="2,3", samples=3, precision="float32")
    with pytest.raises(ConfigError, match="supremum search is of the forward property"):
        config.build(trials=5, width=4, depth=2, sup_search="2,3", samples=3, properties="backward")
    cfg, _ = config.build(trials=5, width=4, depth=2, sup_search="2,3", samples=3, properties="forward")
    assert cfg.kernel == "dense" and cfg.properties == "forward"


def test_sweeps_list_precision_and_properties():
    """precision and properties take lists in a sweep and a submission (one value in a run);
    every combination is its own configuration, and its values rebuild it."""
    from mcinit import hpc, sweep
    assert options.BY_NAME["precision"].several and options.BY_NAME["properties"].several
    assert {"precision", "properties"} <= set(sweep.SWEEP_KEYS)
    runs = sweep.expand(dict(trials=5, input_dim=4, width=4, depth=1, precision="float64,float32",
                             properties="both,forward,backward"))
    assert len(runs) == 6 and len({cfg.config_hash() for _, cfg, _ in runs}) == 6
    assert {(c.precision, c.properties) for _, c, _ in runs} == {
        (p, q) for p in ("float64", "float32") for q in ("both", "forward", "backward")}
    for name, cfg, _ in runs:
        keys = hpc.run_config_dict(cfg)
        assert (keys["precision"], keys["properties"]) == (cfg.precision, cfg.properties)
        assert engine.resolve(config.build(**keys)[0]).config_hash() == cfg.config_hash(), name
    with pytest.raises(ConfigError, match="takes one value here"):
        config.build(trials=5, width=4, depth=1, properties="forward,both")
    with pytest.raises(ConfigError, match="blocked kernel"):
        sweep.expand(dict(trials=5, input_dim=4, width=4, depth=1, precision="float64,float32", kernel="dense"))


def test_the_defaults_of_precision_and_properties_keep_the_config_hash():
    """A run of both properties in float64 has the configuration JSON of earlier versions
    (neither key), so its files keep their hash; other values enter the JSON."""
    cfg = engine.resolve(config.build(trials=5, width=4, depth=1)[0])
    assert "precision" not in json.loads(cfg.config_json()) and "properties" not in json.loads(cfg.config_json())
    fwd = engine.resolve(config.build(trials=5, width=4, depth=1, properties="forward")[0])
    assert json.loads(fwd.config_json())["properties"] == "forward"
    assert RunConfig.from_json(fwd.config_json()) == fwd and fwd.config_hash() != cfg.config_hash()
