"""A twin's shown source and its line count include the private modules it shares."""

from twinbench.harness.twin_source import count_code_lines, twin_files, twin_text
from twinbench.registry import builtin


def test_a_twin_that_builds_on_a_shared_module_counts_it():
    path = builtin("lstm").twin_path("torch")
    files = twin_files(path)
    assert files[0] == path
    assert [f.name for f in files[1:]] == ["_forecaster_torch.py"]
    own = sum(
        1
        for line in path.read_text().splitlines()
        if line.strip() and not line.strip().startswith("#")
    )
    assert count_code_lines(path) > own
    assert "class Forecaster" in twin_text(path)  # the shared code is shown with the twin


def test_a_self_contained_twin_is_its_own_file(tmp_path):
    twin = tmp_path / "twin.py"
    twin.write_text("import numpy as np\n\n# a comment\n\ndef build(config):\n    return np\n")
    assert twin_files(twin) == [twin]
    assert count_code_lines(twin) == 3
    assert twin_text(twin) == twin.read_text()
