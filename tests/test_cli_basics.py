"""CLI basics: --help is fast because it imports no torch; errors are one line + non-zero exit."""

import subprocess
import sys

from hackforge_edge.cli import main
from hackforge_edge.errors import HFEdgeError


def test_help_imports_no_torch_or_onnxruntime():
    code = (
        "import sys\n"
        "from hackforge_edge.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'onnxruntime', 'torchvision', 'transformers', 'matplotlib')"
        " if m in sys.modules]\n"
        "print('HEAVY=' + ','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY=\n" in out.stdout, out.stdout


def _registered_commands() -> list[str]:
    from typer.main import get_command

    from hackforge_edge.cli import app

    return sorted(get_command(app).commands)


def test_the_documented_commands_are_registered():
    assert set(_registered_commands()) >= {"train-and-export", "profile", "benchmark", "calibrate",
                                           "report", "compare", "serve", "profiles"}


def test_every_registered_command_has_help(capsys):
    # in this process (one interpreter start per command cost ~0.6 s each); the subprocess test
    # above checks that help imports nothing heavy
    for cmd in _registered_commands():
        code = main([cmd, "--help"])
        out = capsys.readouterr()
        assert code == 0, (cmd, out.err)
        assert "Usage" in out.out and "PLACEHOLDER" not in out.out, cmd


def test_error_root_is_one_line():
    err = HFEdgeError("first line\n  second line")
    assert str(err) == "first line second line"


def test_main_turns_library_errors_into_one_line(capsys, monkeypatch):
    import hackforge_edge.cli as cli

    def boom(*a, **k):
        raise HFEdgeError("something specific went wrong")

    monkeypatch.setattr(cli, "app", boom)
    assert main([]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "error: something specific went wrong"
