"""mcinit.sbatch: --sbatch-arg read as sbatch reads its options (long-option prefixes, bundled
short options), the allow list, and #SBATCH words read back as sbatch's script reader does."""

import pytest

from mcinit import sbatch
from mcinit.config import ConfigError


def sbatch_arguments(line):
    """The arguments sbatch takes from one ``#SBATCH`` line (SLURM 22.05's get_argument in
    src/sbatch/opt.c): split at white space; '...' and "..." group; a backslash takes the next
    character as it is (inside quotes too); an unquoted # starts a comment."""
    assert line.startswith("#SBATCH")
    text, args, i = line[len("#SBATCH"):], [], 0
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            return args
        arg, quote, escape = None, None, False
        while i < len(text) and (quote or not text[i].isspace()):
            c = text[i]
            if escape:
                escape = False
            elif c == "\\":
                escape, i = True, i + 1
                continue
            elif quote:
                if c == quote:
                    quote, i = None, i + 1
                    continue
            elif c in "\"'":
                quote, i = c, i + 1
                arg = arg or ""
                continue
            elif c == "#":
                i = len(text)
                break
            arg = (arg or "") + c
            i += 1
        assert quote is None, f"unmatched quote in {line!r}"
        if arg is None:
            return args
        args.append(arg)


HOSTILE = ["plain", "a b", "x$(touch PWNED)", 'say "hi"', "it's", "back\\slash\\", "#hash", "tab\there",
           "50%", "%j %A %%", "`id`", "--array=0-9", "a\\\"b", "  lead", "trail  ", "=", "é ü 雪"]


@pytest.mark.parametrize("value", HOSTILE)
def test_sbatch_word_reads_back_as_one_argument(value):
    line = sbatch.sbatch_line("comment", value)
    assert "\n" not in line
    assert sbatch_arguments(line) == [f"--comment={value}"]


@pytest.mark.parametrize("value", ["a\nb", "a\rb", "a\0b"])
def test_sbatch_word_refuses_line_breaks(value):
    with pytest.raises(ConfigError, match="newline"):
        sbatch.sbatch_word(value)


ACCEPTED = [
    ("--qos=high", [("qos", "high")]),
    ("--qo=high", [("qos", "high")]),                         # a prefix of one option
    ("-qhigh", [("qos", "high")]),
    ("-Hqhigh", [("hold", None), ("qos", "high")]),           # bundled: -H, then -q with the rest
    ("--exclusive", [("exclusive", None)]),
    ("--exclusi=user", [("exclusive", "user")]),
    ("-Cgpu&fast", [("constraint", "gpu&fast")]),
    ("--gres=gpu:a100:2", [("gres", "gpu:a100:2")]),
    ("--mail-type=END,FAIL", [("mail-type", "END,FAIL")]),
    ("--comment=a \"b\" #c", [("comment", "a \"b\" #c")]),
    ("-wnode[1-4]", [("nodelist", "node[1-4]")]),
    ("--nodes=1", [("nodes", "1")]),
    ("--no-k", [("no-kill", None)]),
]


@pytest.mark.parametrize("arg,options", ACCEPTED)
def test_allowed_options_read_as_sbatch_reads_them(arg, options):
    assert sbatch.parse_sbatch_arg(arg) == options


REFUSED = [
    ("--array=0-99", "sets itself"),
    ("--arr=0-99", "--array, which mcinit submit sets itself"),      # an abbreviation
    ("--chd=/x", "--chdir, which mcinit submit sets itself"),
    ("-a0-99", "--array, which mcinit submit sets itself"),          # attached short options
    ("-o/x", "--output, which mcinit submit sets itself"),
    ("-e/x", "--error"),
    ("-D/x", "--chdir"),
    ("-d1", "--dependency"),
    ("-Hd1", "--dependency"),                                        # hidden in a bundle
    ("-Jname", "--job-name"),
    ("--job-name=x", "--job-name"),
    ("--job=x", "--job-name"),
    ("--open-mode=truncate", "--open-mode"),
    ("--parsable", "--parsable"),
    ("--pars", "--parsable"),
    ("-W", "--wait"),
    ("--wai", "ambiguous"),                              # a prefix of --wait and --wait-all-nodes
    ("-c4", "--cpus-per-task"),
    ("--kill-on=no", "--kill-on-invalid-dep"),
    ("--partition=x", "give it as mcinit submit --partition"),
    ("-pshort", "mcinit submit --partition"),
    ("-t10", "mcinit submit --time"),
    ("--mem=1G", "mcinit submit --mem"),
    ("-Aproj", "mcinit submit --account"),
    ("--wrap=ls", "does not pass on"),
    ("--export=NONE", "does not pass on"),
    ("--test-only", "does not pass on"),
    ("-M other", "does not pass on"),
    ("--uid=0", "does not pass on"),
    ("-V", "does not pass on"),
    ("--clust=x", "ambiguous"),
    ("--t=1", "ambiguous"),
    ("--mem-per=1G", "ambiguous"),
    ("--colour=red", "not an sbatch option"),
    ("-X", "not an sbatch option"),
    ("--qos", "its value with ="),
    ("-q", "its value attached"),
    ("-Hq", "its value attached"),
    ("--hold=yes", "takes no value"),
    ("--qos=", "empty"),
    ("--qos=a\tb", "control character"),
    ("--qos=a\nb", "newline"),
    ("--qos=a\0b", "newline"),
    ("qos=high", "one sbatch option"),
    ("--", "one sbatch option"),
    ("--=x", "without a name"),
    ("-", "one sbatch option"),
    ("", "one sbatch option"),
]


@pytest.mark.parametrize("arg,word", REFUSED)
def test_refused_options(arg, word):
    with pytest.raises(ConfigError) as e:
        sbatch.parse_sbatch_arg(arg)
    assert word in str(e.value) and "\n" not in str(e.value)


def test_the_tables_agree():
    assert set(sbatch.SHORT_OPTIONS.values()) <= set(sbatch.LONG_OPTIONS)
    named = set(sbatch.ALLOWED) | set(sbatch.SET_BY_MCINIT) | set(sbatch.OWN_OPTIONS)
    assert named <= set(sbatch.LONG_OPTIONS)
    assert not set(sbatch.ALLOWED) & (set(sbatch.SET_BY_MCINIT) | set(sbatch.OWN_OPTIONS))
    # every full name resolves to itself, whatever else it is a prefix of
    assert all(sbatch.resolve_long(name) == name for name in sbatch.LONG_OPTIONS)
