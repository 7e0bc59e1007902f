"""pytest_xframe.cache in real pytest sessions: --cache-clear and an unusable cache directory."""

from __future__ import annotations


def test_default_cache_root_uses_pytest_cache_dir(pytester, monkeypatch):
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")  # the inner run needs no plugins
    pytester.makepyfile(
        """
        from pathlib import Path
        from pytest_xframe.cache import default_cache_root

        def test_root(pytestconfig):
            root = default_cache_root(pytestconfig)
            assert isinstance(root, Path) and root.is_dir()
            assert root == pytestconfig.rootpath / ".pytest_cache" / "d" / "xframe"
        """
    )
    pytester.runpytest("-p", "cacheprovider").assert_outcomes(passed=1)


def test_default_cache_root_is_none_without_cacheprovider(pytester, monkeypatch):
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makepyfile(
        """
        from pytest_xframe.cache import default_cache_root

        def test_root(pytestconfig):
            assert default_cache_root(pytestconfig) is None
        """
    )
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)
