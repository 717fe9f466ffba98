import os

import pytest


def committed_lines(out_dir):
    """Lines of the visible (committed) part files; hidden in-progress/pending files excluded."""
    lines = []
    for root, _, files in os.walk(out_dir):
        for name in files:
            if not name.startswith("."):
                with open(os.path.join(root, name)) as f:
                    lines.extend(f.read().splitlines())
    return sorted(lines)


@pytest.fixture
def committed():
    return committed_lines
