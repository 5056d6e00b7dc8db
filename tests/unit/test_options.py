"""tinykiln.options: every option typed and checked once, with clear errors; the build uses it."""
from __future__ import annotations

import pytest

from tinykiln import KilnError, options


def test_defaults_come_from_the_table():
    opts = options.Options()
    for o in options.OPTIONS:
        assert opts[o.key] == o.default and getattr(opts, o.key) == o.default
    assert opts.get("n") == 10 and opts.timeout == 60.0 and opts.board == "mps2-an500"


def test_values_are_typed():
    opts = options.parse({"n": "5", "timeout": "2.5", "run": "yes", "use_tuned": "0", "model": "cifar10"})
    assert (opts.n, opts.timeout, opts.run, opts.use_tuned, opts.model) == (5, 2.5, True, False, "cifar10")
    assert options.parse({"werror": "on"}).werror is True and options.parse({"werror": "off"}).werror is False


@pytest.mark.parametrize("key,text,complaint", [
    ("timeout", "abc", "takes a number"),
    ("timeout", "0", "must be more than 0"),
    ("timeout", "-1", "must be more than 0"),
    ("timeout", "inf", "finite"),
    ("timeout", "nan", "finite"),
    ("timeout", "1e9", "at most 604800"),
    ("n", "-1", "must be 0 or more"),
    ("n", "2.5", "whole number"),
    ("seed", "x", "whole number"),
    ("trials", "0", "must be 1 or more"),
    ("devices", "0", "must be 1 or more"),
    ("run", "maybe", "takes 1 or 0"),
    ("builddir", "", "must not be empty"),
])
def test_a_bad_value_names_the_option_and_what_it_takes(key, text, complaint):
    with pytest.raises(KilnError) as e:
        options.parse({key: text})
    assert f"{key}={text}" in str(e.value) and complaint in str(e.value)


def test_every_bad_value_and_unknown_options_are_reported_at_once():
    with pytest.raises(KilnError) as e:
        options.parse({"n": "x", "trials": "0"})
    assert "n=x" in str(e.value) and "trials=0" in str(e.value)
    with pytest.raises(KilnError, match="unknown option bogus"):
        options.parse({"bogus": "1"})


def test_options_are_read_only_and_replace_makes_new_ones():
    opts = options.Options()
    with pytest.raises(AttributeError):
        opts.n = 3
    assert opts.replace(n=3).n == 3 and opts.n == 10


def test_the_build_reports_bad_values_without_a_traceback(scons):
    r = scons("timeout=abc", "n=-1")
    assert r.returncode == 2, r.output
    assert "kiln: error: bad option value: timeout=abc takes a number" in r.output, r.output
    assert "n=-1 must be 0 or more" in r.output and "Traceback" not in r.output


def test_a_model_or_board_name_given_as_a_target_says_how_to_write_it(scons):
    r = scons("cifar10")
    assert r.returncode == 2 and "'cifar10' is not a target: options take key=value, e.g. ./kiln model=cifar10" \
        in r.output, r.output
    r = scons("host")
    assert r.returncode == 2 and "./kiln board=host" in r.output, r.output
