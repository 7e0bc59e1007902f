"""The documentation site: its generated option reference, the README's links into it, the command
CI runs, and the quickstart's test, run as the page shows it."""

from __future__ import annotations

import dataclasses
import glob
import importlib.util
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def _hooks():
    """docs/hooks.py, the mkdocs hook module, loaded as the build loads it (a file, not a package)."""
    spec = importlib.util.spec_from_file_location("xframe_docs_hooks", DOCS / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _declared_names() -> tuple[list[str], list[str], list[str]]:
    """Every check option, command-line flag and ini key the plugin declares."""
    from pytest_xframe import plugin
    from pytest_xframe.plugin.options import CheckOptions

    flags, inis = _hooks().declared(plugin)
    return [f.name for f in dataclasses.fields(CheckOptions)], [n for names, _ in flags for n in names], list(inis)


def test_the_option_reference_lists_every_option_flag_and_ini_key() -> None:
    text = _hooks().options_markdown()
    options, flags, inis = _declared_names()
    assert len(flags) >= 16 and len(inis) >= 9
    for name in options + flags + inis:
        assert f"| `{name}` |" in text, name
    assert "| `--xframe-max-examples` | `N` | hypothesis examples per parity check" in text
    assert "| `--xframe-no-cache` | (switch) |" in text
    assert "| `max_examples` | `int` | `20` |" in text
    # a | inside a code span stays literal; outside one it would split the cell
    assert "| `--xframe-threads` | `auto|N` |" in text


def test_the_hook_fills_only_the_option_page() -> None:
    hooks = _hooks()

    class Page:  # what mkdocs passes: the page's source path under docs/
        def __init__(self, src_uri: str) -> None:
            self.file = type("File", (), {"src_uri": src_uri})()

    source = (DOCS / "reference" / "options.md").read_text()
    filled = hooks.on_page_markdown(source, page=Page("reference/options.md"))
    assert hooks.PLACEHOLDER not in filled and "## Command-line flags" in filled
    assert hooks.on_page_markdown(source, page=Page("quickstart.md")) == source
    with pytest.raises(ValueError, match="lost its placeholder"):
        hooks.on_page_markdown("# Options\n", page=Page("reference/options.md"))


@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None, reason="mkdocs is not installed: pip install -e '.[docs]'")
def test_the_site_builds_strictly_with_the_generated_reference(tmp_path: Path) -> None:
    build = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                           cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    options = (tmp_path / "site" / "reference" / "options" / "index.html").read_text()
    api = (tmp_path / "site" / "reference" / "api" / "index.html").read_text()
    for name in _declared_names()[1]:
        assert f"<code>{name}</code>" in options, name
    for name in ("pytest_xframe.TensorSpec", "pytest_xframe.Dim", "pytest_xframe.ParityError", "pytest_xframe.plugin.fixture.Xframe.check",
                 "pytest_xframe.backends.Backend", "pytest_xframe.backends.BuildContext", "pytest_xframe.backends.Prepared",
                 "pytest_xframe.backends.Runner"):
        assert f'id="{name}"' in api, name


def _readme_commands() -> list[str]:
    return [line for line in (ROOT / "README.md").read_text().splitlines()[:8] if line.startswith("python3 -m venv")]


def test_ci_and_the_development_page_run_the_readmes_commands_verbatim() -> None:
    commands = _readme_commands()
    assert len(commands) == 2
    script = (ROOT / ".ci" / "run").read_text().splitlines()
    assert commands[1] in script
    assert "mkdocs build --strict" in commands[1] and ",docs]" in commands[1]
    development = (DOCS / "contributing" / "index.md").read_text().splitlines()
    assert all(command in development for command in commands)


def _slug(heading: str) -> str:
    """A heading's anchor as mkdocs' toc and GitHub both write it for these pages."""
    text = unicodedata.normalize("NFKD", heading.replace("`", "")).encode("ascii", "ignore").decode()
    return re.sub(r"[-\s]+", "-", re.sub(r"[^\w\s-]", "", text).strip().lower())


def test_the_readmes_links_into_the_docs_resolve() -> None:
    """mkdocs checks the site's own links; the README's, read on GitHub, are checked here."""
    readme = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\(((?:docs/)[^)#\s]+)(?:#([\w-]+))?\)", readme)
    assert len(links) >= 15
    for target, anchor in links:
        path = ROOT / target
        assert path.is_file(), target
        if anchor:
            headings = re.findall(r"^#+ (.+)$", path.read_text(), re.MULTILINE)
            assert anchor in {_slug(h) for h in headings}, f"{target}#{anchor}"


def _quickstart_test() -> str:
    page = (DOCS / "quickstart.md").read_text()
    block = re.search(r"```python\n# test_classifier.py\n(.*?)```", page, re.DOTALL)
    assert block is not None, "the quickstart's test file is gone"
    return block.group(1)


def test_the_quickstarts_test_runs_as_the_page_shows(pytester: pytest.Pytester, frameworks: None, shared_cache: Path) -> None:
    pytest.importorskip("onnxscript", reason="the page shows the dynamo exporter's rows (the dynamo extra)")
    pytester.makepyfile(test_classifier=_quickstart_test())
    result = pytester.runpytest(f"--xframe-cache-dir={shared_cache}", "-p", "no:randomly")
    result.assert_outcomes(passed=2)
    page = (DOCS / "quickstart.md").read_text()
    for backend in ("onnxruntime", "tensorflow"):
        row = next(line for line in page.splitlines() if line.startswith(f"test_classifier.py::test_classifier_parity[{backend}]"))
        test_id, name, onnx = re.split(r"\s{2,}", row)[:3]
        # the examples column is left out: a marked test's backends share a draw, and the second one's
        # own search may meet an input of the shared draw again (29 or 30 of max_examples=30)
        result.stdout.fnmatch_lines(["  *".join(glob.escape(cell) for cell in (test_id, name, onnx)) + "  *passed*"])
    result.stdout.fnmatch_lines(["xframe: 2 passed; worst * abs (*x tolerance) in test_classifier.py::test_classifier_parity?*"])


def _doc_texts() -> dict[str, str]:
    pages = {p.relative_to(ROOT).as_posix(): p.read_text() for p in DOCS.rglob("*.md")}
    return {**pages, "README.md": (ROOT / "README.md").read_text()}


def _resolve(dotted: str) -> object:
    """``pytest_xframe.a.b.C.d`` -> the object: the longest importable module, then attributes."""
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            target = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for attr in parts[split:]:
            target = getattr(target, attr)
        return target
    raise ImportError(dotted)


def test_the_names_and_files_the_docs_mention_exist() -> None:
    """The pages name the package's objects (``pytest_xframe.judge.policy.PRECISION_DEFAULTS``) and the
    repository's scripts and tests: a rename must take the docs with it."""
    for page, text in _doc_texts().items():
        for dotted in set(re.findall(r"pytest_xframe(?:\.\w+)+", text)):
            try:
                _resolve(dotted)
            except (ImportError, AttributeError) as exc:
                pytest.fail(f"{page} names {dotted}, which does not resolve: {exc}")
        for path in set(re.findall(r"(?<![\w/.-])((?:tests|benchmarks|examples|tools)/[\w/.-]+\.\w+)", text)):
            assert (ROOT / path).is_file(), f"{page} names {path}, which is not in the repository"


def test_the_random_weights_recipes_do_what_the_page_says() -> None:
    """docs/random-weights.md: its code blocks run, in order, in one namespace, and their asserts hold
    (the page's claims about transformers' models at their default initialisation and the recipes)."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers", reason="the page's examples build transformers' models")
    page = DOCS / "random-weights.md"
    blocks = re.findall(r"```python\n(.*?)```", page.read_text(), re.DOTALL)
    assert len(blocks) >= 4
    namespace: dict = {"__name__": "random_weights_doc"}
    for block in blocks:
        exec(compile(block, str(page), "exec"), namespace)  # the page's own code
