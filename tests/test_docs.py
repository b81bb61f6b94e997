"""The README's and docs' relative links reach a file, and a heading where they name one."""

import functools
import glob
import os
import re

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = [os.path.join(REPO, "README.md")] + sorted(glob.glob(os.path.join(REPO, "docs", "*.md")))
LINK = re.compile(r"\]\(([^)\s]+)\)")


@functools.lru_cache(maxsize=None)
def heading_anchors(path):
    """The anchors GitHub gives a page's headings: lower case, punctuation dropped, spaces
    turned into hyphens (code blocks skipped); read once per page, however many links name it."""
    anchors, in_code = set(), False
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("```"):
                in_code = not in_code
            elif not in_code and line.startswith("#"):
                title = line.lstrip("#").strip().lower()
                anchors.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return anchors


def test_github_anchors_drop_punctuation_and_join_words_with_hyphens(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Train, calibrate, evaluate, ship\n```\n# not a heading\n```\n"
                    "## Side by side with the peers, and the paper's ablation\n")
    assert heading_anchors(str(page)) == {"train-calibrate-evaluate-ship",
                                     "side-by-side-with-the-peers-and-the-papers-ablation"}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: os.path.relpath(p, REPO))
def test_relative_links_reach_a_file_and_heading(page):
    with open(page, encoding="utf-8") as handle:
        targets = LINK.findall(handle.read())
    broken = []
    for target in targets:
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        resolved = os.path.normpath(os.path.join(os.path.dirname(page), path)) if path else page
        if not os.path.exists(resolved):
            broken.append(target)
        elif anchor and resolved.endswith(".md") and anchor not in heading_anchors(resolved):
            broken.append(target)
    assert not broken, f"{os.path.relpath(page, REPO)} links nowhere: {broken}"
