"""plugin/options.py in real sessions: options are validated where they are given (check kwargs, marker, command line,
ini), and resolved in one order: check kwargs > marker (function > class > module) > command line > ini > defaults."""

from __future__ import annotations

import pytest


def test_marker_on_class_and_module_merges_options(xf_pytester: pytest.Pytester) -> None:
    xf_pytester.makepyfile(
        """
        import pytest
        from conftest import MLP
        from pytest_xframe import TensorSpec

        pytestmark = pytest.mark.xframe_parity(backends=["onnxruntime"], max_examples=7, exporter="torchscript")

        @pytest.mark.xframe_parity(max_examples=3)
        class TestModels:
            def test_mlp(self, xframe):
                report = xframe.check(MLP().eval(), inputs=[TensorSpec((2, 6))])
                assert report["onnxruntime"].examples == 3
        """
    )
    result = xf_pytester.runpytest("-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*test_mlp[[]onnxruntime[]] PASSED*"])


def test_option_precedence_marker_then_check_then_command_line(xf_pytester: pytest.Pytester) -> None:
    xf_pytester.makepyfile(
        """
        import pytest
        from conftest import MLP
        from pytest_xframe import TensorSpec

        @pytest.mark.xframe_parity(backends=["onnxruntime"], max_examples=3, exporter="torchscript")
        def test_marker_only(xframe):
            report = xframe.check(MLP().eval(), inputs=[TensorSpec((2, 6))])
            print("EXAMPLES marker_only", report["onnxruntime"].examples)

        @pytest.mark.xframe_parity(backends=["onnxruntime"], max_examples=3, exporter="torchscript")
        def test_check_overrides_marker(xframe):
            report = xframe.check(MLP().eval(), inputs=[TensorSpec((2, 6))], max_examples=5)
            print("EXAMPLES check", report["onnxruntime"].examples)
        """
    )
    result = xf_pytester.runpytest("-s")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*EXAMPLES marker_only 3*", "*EXAMPLES check 5*"])
    result = xf_pytester.runpytest("-s", "--xframe-max-examples=2")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*EXAMPLES marker_only 2*", "*EXAMPLES check 2*"])


def test_ini_sets_defaults_below_the_marker(xf_pytester: pytest.Pytester, shared_cache) -> None:
    xf_pytester.makeini(
        f"[pytest]\naddopts = --xframe-cache-dir={shared_cache}\nxframe_backends = onnxruntime\nxframe_max_examples = 4\n"
    )
    xf_pytester.makepyfile(
        """
        import pytest
        from conftest import MLP
        from pytest_xframe import TensorSpec

        @pytest.mark.xframe_parity(exporter="torchscript")
        def test_ini(xframe):
            report = xframe.check(MLP().eval(), inputs=[TensorSpec((2, 6))])
            assert report["onnxruntime"].examples == 4

        @pytest.mark.xframe_parity(exporter="torchscript", max_examples=2)
        def test_marker_wins(xframe):
            report = xframe.check(MLP().eval(), inputs=[TensorSpec((2, 6))])
            assert report["onnxruntime"].examples == 2
        """
    )
    result = xf_pytester.runpytest("-v")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*test_ini[[]onnxruntime[]] PASSED*"])


def test_command_line_backends_override_marker(xf_pytester: pytest.Pytester) -> None:
    xf_pytester.makepyfile(
        """
        import pytest
        from conftest import MLP
        from pytest_xframe import TensorSpec

        @pytest.mark.xframe_parity(max_examples=2, exporter="torchscript")
        def test_mlp(xframe):
            xframe.check(MLP().eval(), inputs=[TensorSpec((2, 6))])
        """
    )
    result = xf_pytester.runpytest("-v", "--xframe-backends=onnxruntime")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*test_mlp[[]onnxruntime[]] PASSED*"])
    bad = xf_pytester.runpytest("--xframe-backends=onnxruntime,caffe")
    assert bad.ret != 0
    bad.stderr.fnmatch_lines(["*unknown backend(s) 'caffe' in --xframe-backends*", "*valid backends: onnxruntime, tensorflow*"])


def test_bad_marker_usage_is_a_collection_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.xframe_parity(atoll=1e-5)
        def test_typo(xframe):
            pass

        @pytest.mark.xframe_parity(backends=["onnxruntime", "caffe2"])
        def test_backend(xframe):
            pass

        @pytest.mark.xframe_parity("onnxruntime")
        def test_positional(xframe):
            pass
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(errors=3)
    pytester.makepyfile(
        test_no_fixture="""
        import pytest

        @pytest.mark.xframe_parity()
        def test_forgot_fixture():
            pass
        """
    )
    no_fixture = pytester.runpytest("test_no_fixture.py")
    assert no_fixture.ret != 0
    no_fixture.stdout.fnmatch_lines(
        ["*test_forgot_fixture is marked xframe_parity but does not take the xframe fixture*", "*try:   add an `xframe` argument*"]
    )
    result.stdout.fnmatch_lines_random(
        [
            "*unknown xframe option(s) 'atoll' in @pytest.mark.xframe_parity on *test_typo*",
            "*valid options: backends, atol, rtol, max_examples, seed, exporter, opset, equal_nan, name*",
            "*unknown backend(s) 'caffe2'*",
            "*takes keyword options only*",
        ]
    )


# -- every key of every [tool.xframe*] table is checked, with a "did you mean" ---------------------
@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("[tool.xframe.polcy]\ncosine = 0.99\n", ["ERROR: unknown key 'polcy' in [tool.xframe] of pyproject.toml (did you mean 'policy'?)", "*valid keys: policy*"]),
        ("[tool.xframe]\nmax_exampels = 3\n", ["ERROR: unknown key 'max_exampels' in [tool.xframe] of pyproject.toml (did you mean 'max_examples'?)",
                                               "*set max_examples project-wide in the ini file (xframe_max_examples in [[]tool.pytest.ini_options[]])*"]),
        ('[tool.xframe]\nbackends = ["nope"]\n', ["ERROR: unknown key 'backends' in [tool.xframe] of pyproject.toml",
                                                 "*set backends project-wide in the ini file (xframe_backends in [[]tool.pytest.ini_options[]])*"]),
        ("[tool.xframe.policy]\ncosin = 0.99\n", ["ERROR: unknown policy key(s) 'cosin' in [[]tool.xframe.policy[]] of pyproject.toml (did you mean 'cosine'?)"]),
        ('[tool.xframe.baseline]\npth = "b.json"\n', ["ERROR: unknown key(s) 'pth' in [[]tool.xframe.baseline[]] in pyproject.toml (did you mean 'path'?)"]),
        ("[tool.xfame.policy]\ncosine = 0.99\n", ["ERROR: [[]tool.xfame[]] in */pyproject.toml is not a table pytest-xframe reads (did you mean [[]tool.xframe[]]?)"]),
    ],
    ids=["table-name", "option-typo", "option-not-here", "policy-key", "baseline-key", "tool-name"],
)
def test_an_unknown_pyproject_key_is_a_usage_error_naming_the_closest(pytester: pytest.Pytester, toml: str, expected: list[str]) -> None:
    pytester.makefile(".toml", pyproject=toml)
    pytester.makepyfile("def test_plain():\n    pass\n")
    result = pytester.runpytest("-p", "no:randomly")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(expected)


def test_a_declared_models_misspelt_option_names_the_closest(pytester: pytest.Pytester) -> None:
    pytester.makefile(".toml", pyproject='[[tool.xframe.models]]\nfactory = "os:getcwd"\ninputs = "x=float32[2]"\natoll = 1e-4\n')
    result = pytester.runpytest("--co", "-p", "no:randomly")
    result.stdout.fnmatch_lines(["*unknown xframe option(s) 'atoll' in [[][[]tool.xframe.models[]][]] #1 of pyproject.toml (did you mean 'atol'?)*"])


def test_an_empty_backends_flag_is_an_error_like_an_empty_list(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_plain():\n    pass\n")
    result = pytester.runpytest("--xframe-backends=", "-p", "no:randomly")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: unknown backend(s) (none given) in --xframe-backends*", "*valid backends: onnxruntime, tensorflow*"])


def test_a_project_policy_glob_that_matches_no_checked_output_is_reported(xf_pytester: pytest.Pytester) -> None:
    xf_pytester.makefile(
        ".toml",
        pyproject='[tool.xframe.policy.outputs."logits"]\ncosine = 0.99\n[tool.xframe.policy.outputs."out*"]\ncosine = 0.99\n',
    )
    xf_pytester.makepyfile(
        """
        from conftest import MLP
        from pytest_xframe import TensorSpec

        def test_mlp(xframe):
            xframe.check(MLP().eval(), [TensorSpec((2, 6))], backends=["onnxruntime"], exporter="torchscript", max_examples=2)
        """
    )
    result = xf_pytester.runpytest()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["xframe: warning: [[]tool.xframe.policy[]] of pyproject.toml outputs.\"logits\" names output 'logits', "
         "which matches no output of any model checked in this session"]
    )
    assert "'out*'" not in result.stdout.str()  # MLP's output is "output"
