"""scripts/check_doc_links.py, the documentation's link checker: it passes a tree whose links
all resolve and names each kind of broken link (missing file, missing heading, a page left out
of docs/SUMMARY.md), and the repository's own README.md and docs/ pass it."""

import importlib.util
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "check_doc_links.py"

spec = importlib.util.spec_from_file_location("check_doc_links", SCRIPT)
check_doc_links = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_doc_links)

GOOD_PAGE = """# The `defectdetect` element

See [the policy](policy.md#the-policy-file), [below](#tasks-detection-classification), the
[second *Errors*](#errors-1), the [schema](verdict.schema.json), ![a picture](annotated.png),
[the README](../README.md), [another site](https://example.com/missing.md#nowhere) and
<a href="policy.md#per-class-rules">the rules</a>.

## Tasks: detection, classification

## Errors

## Errors

```sh
# a comment in code, not a heading
echo "[not a link](missing.md)"
```

Neither is `[this](missing.md)`, nor what an HTML comment holds:
<!-- [pending](architecture.md) -->

[ref]: policy.md#per-class-rules
"""

POLICY_PAGE = """# Policy

## The policy file

Per-class rules
---------------
"""

# The line of a link appended to GOOD_PAGE after a blank line.
LAST = len(GOOD_PAGE.splitlines()) + 2

SUMMARY = """# Summary

- [defectdetect](defectdetect.md)
- [Policy](policy.md)
<!-- pending:
- [Architecture](architecture.md)
-->
"""


def make_tree(root, defectdetect=GOOD_PAGE, summary=SUMMARY):
    docs = root / "docs"
    docs.mkdir()
    (root / "README.md").write_text("# Project\n\n[The element](docs/defectdetect.md#errors)\n")
    (docs / "defectdetect.md").write_text(defectdetect)
    (docs / "policy.md").write_text(POLICY_PAGE)
    (docs / "SUMMARY.md").write_text(summary)
    (docs / "verdict.schema.json").write_text("{}")
    (docs / "annotated.png").write_bytes(b"\x89PNG")
    return root


def test_a_tree_whose_links_resolve_passes(tmp_path):
    assert check_doc_links.check(make_tree(tmp_path)) == []


def test_a_missing_file_is_reported_with_its_line(tmp_path):
    page = GOOD_PAGE + "\nAnd [a page that is not there](network.md).\n"
    problems = check_doc_links.check(make_tree(tmp_path, defectdetect=page))
    assert len(problems) == 1
    assert problems[0].startswith(f"docs/defectdetect.md:{LAST}: network.md: no such file")


def test_a_missing_heading_is_reported(tmp_path):
    page = GOOD_PAGE.replace("policy.md#the-policy-file", "policy.md#the-policy")
    problems = check_doc_links.check(make_tree(tmp_path, defectdetect=page))
    assert problems == [
        "docs/defectdetect.md:3: policy.md#the-policy: no heading with the id #the-policy in docs/policy.md"
    ]


def test_an_anchor_of_the_same_page_is_checked(tmp_path):
    page = GOOD_PAGE.replace("(#errors-1)", "(#errors-2)")
    problems = check_doc_links.check(make_tree(tmp_path, defectdetect=page))
    assert len(problems) == 1 and "#errors-2" in problems[0]


def test_a_page_left_out_of_the_summary_is_reported(tmp_path):
    root = make_tree(tmp_path)
    (root / "docs" / "robustness.md").write_text("# Robustness\n")
    assert check_doc_links.check(root) == [
        "docs/SUMMARY.md: docs/robustness.md is not listed (the site would leave it out)"
    ]


def test_links_that_leave_the_repository_or_are_absolute_are_reported(tmp_path):
    page = GOOD_PAGE + "\n[up](../../elsewhere.md) and [root](/docs/policy.md)\n"
    root = tmp_path / "repo"
    root.mkdir()
    problems = check_doc_links.check(make_tree(root, defectdetect=page))
    assert len(problems) == 2
    assert "points outside the repository" in problems[0]
    assert "absolute path" in problems[1]


def test_heading_ids_follow_mdbook():
    assert check_doc_links.heading_id("`defectmodbussink` and `defectopcuasink`: verdicts to the machine") == (
        "defectmodbussink-and-defectopcuasink-verdicts-to-the-machine"
    )
    assert check_doc_links.heading_id("Beside other elements: `spin`") == "beside-other-elements-spin"
    assert check_doc_links.heading_id("Tasks: detection, classification, anomaly detection") == (
        "tasks-detection-classification-anomaly-detection"
    )
    assert check_doc_links.heading_id("*Two* stages: a [detector](x.md), then `max_queue`") == (
        "two-stages-a-detector-then-max_queue"
    )


def test_the_command_line_fails_on_a_broken_link(tmp_path):
    root = make_tree(tmp_path, defectdetect=GOOD_PAGE + "\n[gone](gone.md#x)\n")
    run = subprocess.run([sys.executable, str(SCRIPT), str(root)], capture_output=True, text=True)
    assert run.returncode == 1
    assert f"docs/defectdetect.md:{LAST}: gone.md#x: no such file docs/gone.md" in run.stdout


def test_the_repository_documentation_has_no_broken_links():
    assert check_doc_links.check(ROOT) == []
